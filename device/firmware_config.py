"""The text of the ESP32 firmware's `config_local.py`, for `motcua device provision --counter …`.

The firmware (device/micropython/config.py) has a dict of defaults; `config_local.py`, untracked and
copied to the board next to the firmware, sets module-level names that override them. This module
renders that file from CPython. It checks what it can (known option, type, device id, secret shape)
so that provisioning fails here with a clear message rather than on the board; the firmware checks
the values again at boot (ranges, pin counts) and refuses to run with a bad one.
"""

from __future__ import annotations

import re
from typing import Any

from motcua.protocol.topics import DEVICE_ID_PATTERN, is_device_id

# Every option of device/micropython/config.py DEFAULTS with the Python types it accepts
# (tests/firmware/test_firmware_config.py keeps the two in step).
FIRMWARE_OPTIONS: dict[str, tuple[type, ...]] = {
    "device_id": (str,),
    "secret_hex": (str,),
    "mqtt_host": (str,),
    "mqtt_port": (int,),
    "mqtt_user": (str, type(None)),
    "mqtt_password": (str, type(None)),
    "wifi_ssid": (str, type(None)),
    "wifi_password": (str, type(None)),
    "ntp_host": (str, type(None)),
    "ntp_port": (int,),
    "ntp_resync_s": (int,),
    "levels": (int,),
    "thanks_ms": (int,),
    "hb_s": (int,),
    "button_pins": (tuple, list),
    "complaint_pin": (int, type(None)),
    "led_pin": (int,),
    "buzzer_pin": (int, type(None)),
    "display": (bool,),
    "i2c_sda": (int,),
    "i2c_scl": (int,),
    "display_addr": (int,),
    "debounce_ms": (int,),
    "keepalive_s": (int,),
    "resend_ms": (int,),
    "resend_max_ms": (int,),
    "backoff_min_ms": (int,),
    "backoff_max_ms": (int,),
    "auth_backoff_ms": (int,),
    "wifi_retry_ms": (int,),
    "window": (int,),
    "wdt_ms": (int,),
    "data_dir": (str,),
    "seg_slots": (int,),
    "max_segments": (int,),
}

_SECRET = re.compile(r"^[0-9a-f]{64}$")


def _literal(name: str, value: Any) -> str:
    """A Python literal that MicroPython reads back as the same value."""
    types = FIRMWARE_OPTIONS[name]
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        allowed = " or ".join(t.__name__ for t in types)
        raise ValueError(f"firmware option {name} must be {allowed}, got {value!r}")
    if isinstance(value, tuple | list):
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise ValueError(f"firmware option {name} must list GPIO numbers, got {value!r}")
        return repr(tuple(value))
    if isinstance(value, str) and any(ord(c) < 0x20 for c in value):
        raise ValueError(f"firmware option {name} contains a control character")
    return repr(value)


def render_config_local(
    *,
    device_id: str,
    secret_hex: str,
    mqtt_host: str,
    mqtt_port: int,
    mqtt_user: str | None = None,
    mqtt_password: str | None = None,
    wifi_ssid: str | None = None,
    wifi_password: str | None = None,
    ntp_host: str | None = None,
    **extra: Any,
) -> str:
    """The text of config_local.py: only the given options, each overriding a firmware default.

    Options left as None keep the firmware's default; `ntp_host=""` switches NTP off (events then
    carry uptime only and the server times them from heartbeats, docs/protocol.md §4). `extra`
    takes any other option of device/micropython/config.py (pins, display, timing knobs).
    Raises ValueError naming the option for an unknown option or a value of the wrong shape.
    """
    if not is_device_id(device_id):
        raise ValueError(f"device_id {device_id!r} does not match {DEVICE_ID_PATTERN}")
    if not _SECRET.match(secret_hex):
        raise ValueError("secret_hex must be 64 lowercase hex characters (the device's 32-byte secret)")
    if not mqtt_host or not isinstance(mqtt_host, str):
        raise ValueError("mqtt_host must be a host name or IP address")
    if not isinstance(mqtt_port, int) or not 0 < mqtt_port < 65536:
        raise ValueError(f"mqtt_port must be 1..65535, got {mqtt_port!r}")
    unknown = sorted(set(extra) - set(FIRMWARE_OPTIONS))
    if unknown:
        raise ValueError(
            f"unknown firmware option(s): {', '.join(unknown)} (see device/micropython/config.py)")
    options: dict[str, Any] = {
        "device_id": device_id,
        "secret_hex": secret_hex,
        "mqtt_host": mqtt_host,
        "mqtt_port": mqtt_port,
        "mqtt_user": mqtt_user,
        "mqtt_password": mqtt_password,
        "wifi_ssid": wifi_ssid,
        "wifi_password": wifi_password,
    }
    lines = [
        f"# config_local.py of motcua device {device_id} (overrides device/micropython/config.py).",
        "# Copy it to the board next to the firmware:  mpremote cp config_local.py :config_local.py",
        "# It holds the device's secret: keep it out of version control and shared folders.",
    ]
    for name, value in options.items():
        if value is not None:
            lines.append(f"{name} = {_literal(name, value)}")
    if ntp_host is not None:
        lines.append("ntp_host = None" if ntp_host == "" else f"ntp_host = {_literal('ntp_host', ntp_host)}")
    for name in sorted(extra):
        lines.append(f"{name} = {_literal(name, extra[name])}")
    return "\n".join(lines) + "\n"
