"""device/firmware_config.render_config_local: what `motcua device provision` writes for the ESP32.

The rendered file must be valid MicroPython, change the firmware's effective configuration exactly
as asked, and nothing else; bad input must fail with a message naming the option."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest

from device.firmware_config import FIRMWARE_OPTIONS, render_config_local
from tests.firmware.runtime import FIRMWARE_DIR, firmware_build, run_mp

SECRET = "ab" * 32
BASE: dict[str, Any] = {
    "device_id": "esp32-0a1b2c", "secret_hex": SECRET, "mqtt_host": "h", "mqtt_port": 1883}
_DUMP = (
    "import sys, json\n"
    "sys.path[:0] = ['', {fw!r}]\n"
    "import config\n"
    "try:\n"
    "    print(json.dumps(config.load()))\n"
    "except config.ConfigError as e:\n"
    "    print('ConfigError:', e)\n"
)


def _firmware_defaults() -> dict[str, object]:
    tree = ast.parse((FIRMWARE_DIR / "config.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "DEFAULTS":
            return dict(ast.literal_eval(node.value))
    raise AssertionError("no DEFAULTS in device/micropython/config.py")


def _effective(tmp_path: Path, text: str | None) -> dict[str, object] | str:
    if text is not None:
        (tmp_path / "config_local.py").write_text(text, encoding="utf-8")
    (tmp_path / "dump.py").write_text(_DUMP.format(fw=str(firmware_build())), encoding="utf-8")
    done = run_mp(["dump.py"], cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout.strip()
    return out if out.startswith("ConfigError") else json.loads(out)


def test_options_match_the_firmware_defaults() -> None:
    assert set(FIRMWARE_OPTIONS) == set(_firmware_defaults())


def test_rendered_file_changes_exactly_the_given_options_under_micropython(tmp_path: Path) -> None:
    text = render_config_local(
        device_id="esp32-0a1b2c", secret_hex=SECRET, mqtt_host="10.0.0.5", mqtt_port=8883,
        mqtt_user="esp32-0a1b2c", mqtt_password="p'w\"d\\x", wifi_ssid="Phòng một cửa",
        wifi_password="s3cret",
        ntp_host="vn.pool.ntp.org", display=True, button_pins=[32, 33, 25], levels=3, complaint_pin=None,
    )
    cfg = _effective(tmp_path, text)
    assert isinstance(cfg, dict)
    expected = {k: (list(v) if isinstance(v, tuple) else v) for k, v in _firmware_defaults().items()}
    expected.update(device_id="esp32-0a1b2c", secret_hex=SECRET, mqtt_host="10.0.0.5", mqtt_port=8883,
                    mqtt_user="esp32-0a1b2c", mqtt_password="p'w\"d\\x", wifi_ssid="Phòng một cửa",
                    wifi_password="s3cret", ntp_host="vn.pool.ntp.org", display=True,
                    button_pins=[32, 33, 25], levels=3, complaint_pin=None)
    assert cfg == expected
    assert "secret" in text.splitlines()[2]  # the file warns that it holds the device secret


def test_empty_ntp_host_switches_ntp_off_and_none_keeps_the_default(tmp_path: Path) -> None:
    base = dict(BASE)
    off = _effective(tmp_path, render_config_local(**base, ntp_host=""))
    assert isinstance(off, dict) and off["ntp_host"] is None
    default = _effective(tmp_path, render_config_local(**base))
    assert isinstance(default, dict) and default["ntp_host"] == _firmware_defaults()["ntp_host"]


def test_firmware_refuses_to_boot_on_values_it_cannot_use(tmp_path: Path) -> None:
    base = dict(BASE)
    assert _effective(tmp_path, render_config_local(**base, levels=6)) == (
        "ConfigError: levels must be an integer from 2 to 5, got 6")
    (tmp_path / "config_local.py").write_text(render_config_local(**base) + "colour = 'red'\n")
    assert _effective(tmp_path, None) == "ConfigError: config_local.py sets unknown option 'colour'"
    (tmp_path / "config_local.py").unlink()
    assert "device_id must match" in str(_effective(tmp_path, None))  # unprovisioned: says so


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"device_id": "ESP32"}, "device_id"),
    ({"secret_hex": "AB" * 32}, "secret_hex"),
    ({"mqtt_port": 0}, "mqtt_port"),
    ({"mqtt_host": ""}, "mqtt_host"),
    ({"colour": "red"}, "unknown firmware option(s): colour"),
    ({"levels": "4"}, "levels must be int"),
    ({"display": 1}, "display must be bool"),
    ({"button_pins": [32, "x"]}, "button_pins must list GPIO numbers"),
    ({"wifi_ssid": "a\nb"}, "control character"),
])
def test_bad_input_is_a_clear_error(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, Any] = {"device_id": "esp32-0a1b2c", "secret_hex": SECRET, "mqtt_host": "h",
                               "mqtt_port": 1883, **kwargs}
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        render_config_local(**args)


def test_committed_example_is_valid_for_the_firmware(tmp_path: Path) -> None:
    text = (FIRMWARE_DIR / "config_local.example.py").read_text(encoding="utf-8")
    cfg = _effective(tmp_path, text)
    assert isinstance(cfg, dict) and cfg["device_id"] == "esp32-0a1b2c"
