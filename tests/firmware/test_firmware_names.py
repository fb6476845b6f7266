"""Interned names (qstrs) under the real MicroPython unix port: every name a loaded module has, and
every character taken out of a str one by one, is interned for good, and past 300 names the
interpreter allocates a fifth pool of 320 (docs/firmware.md §6). What the firmware does at run time
with text it receives (an official's name on the display, the secret at boot) must add none."""

from __future__ import annotations

import re
from pathlib import Path

from tests.firmware.runtime import firmware_build, run_mp

_PROBE = """
import sys, micropython
sys.path.insert(0, {fw!r})
import display, config
display.fold("warm-up")
micropython.qstr_info()
{body}
micropython.qstr_info()
"""


def _names_added(tmp_path: Path, body: str) -> int:
    (tmp_path / "probe.py").write_text(_PROBE.format(fw=str(firmware_build()), body=body), encoding="utf-8")
    done = run_mp(["probe.py"], cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    counts = [int(n) for n in re.findall(r"n_qstr=(\d+)", done.stdout)]
    assert len(counts) == 2, done.stdout
    return counts[1] - counts[0]


def test_showing_an_official_interns_none_of_its_letters(tmp_path: Path) -> None:
    body = """
cfg = {"counter": {"code": "PX-07", "name": "Quầy 7 - Đất đai"},
       "official": {"code": "CB-1", "name": "Trương Thị Hường", "post": "Chuyên viên Địa chính - Xây dựng"}}
rows = display.screen(cfg, True, 3, False)
assert rows[0] == "Quay 7 - Dat dai" and "Truong Thi Huong" in rows, rows
assert display.fold("Ỹ ỹ ☃") == "Y y ?"
"""
    assert _names_added(tmp_path, body) == 0


def test_checking_the_configuration_interns_no_character_of_the_secret(tmp_path: Path) -> None:
    body = """
assert config.is_device_id("esp32-zq9x8w") and not config.is_device_id("-bad") and not config.is_device_id("A1b")
cfg = dict(config.DEFAULTS, device_id="esp32-zq9x8w", secret_hex="9f" * 32, mqtt_host="10.0.0.5")
config.validate(cfg)
"""
    assert _names_added(tmp_path, body) == 0
