"""Every `test_*` function of tests/firmware/mp/mp_*.py, each run under the real MicroPython unix port
with a 128 KB heap (the ESP32's budget), in its own process and its own empty working directory."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.firmware.runtime import MP_TESTS_DIR, firmware_build, run_mp


def _cases() -> list[tuple[str, str]]:
    cases = []
    for path in sorted(MP_TESTS_DIR.glob("mp_*.py")):
        for name in re.findall(r"^def (test_\w+)\(", path.read_text(encoding="utf-8"), re.M):
            cases.append((path.stem, name))
    return cases


@pytest.mark.parametrize(("module", "func"), _cases(), ids=[f"{m}::{f}" for m, f in _cases()])
def test_under_micropython(module: str, func: str, tmp_path: Path) -> None:
    runner = str(MP_TESTS_DIR / "run.py")
    done = run_mp([runner, str(firmware_build()), str(tmp_path), module, func], cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.rstrip().endswith("PASS"), done.stdout + done.stderr
