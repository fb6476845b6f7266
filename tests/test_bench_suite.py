"""`motcua bench`: one table or JSON over the bench modules; a missing one is "not available"."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_bench_quick_json_has_every_bench_and_the_firmware_figures() -> None:
    res = subprocess.run([sys.executable, "-m", "motcua", "bench", "--quick", "--json", "--only", "firmware",
                          "--only", "scoring"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["quick"] is True and set(out["benches"]) == {"firmware", "scoring"}
    fw = out["benches"]["firmware"]
    assert fw["status"] == "ok" and fw["figures"]["micro"]["sign_enqueue_us"] > fw["figures"]["micro"]["hmac_us"] > 0
    assert out["benches"]["scoring"]["status"] in ("ok", "not available")


def test_bench_table_shows_a_missing_module_as_not_available() -> None:
    from bench import suite

    result = {"quick": True, "machine": "m", "benches": {"nope": suite.run_one("nope", "bench.no_such_module", True)}}
    text = suite.table(result)
    assert "not available" in text and "bench.no_such_module" in text
