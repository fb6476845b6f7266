"""Running the real server (uvicorn, clip worker), a real kiosk and Debian's Chromium for kiosk tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from device.kiosk.config import KioskConfig
from server.api.app import create_app
from server.clips.service import ClipService
from server.runtime import HttpServer
from server.settings import Settings
from tests.utils.factories import SignedDevice


@contextmanager
def running_server(settings: Settings, engine: Engine) -> Iterator[tuple[HttpServer, ClipService]]:
    """The HTTP API with its clip service and rendition worker, on a free port."""
    clips = ClipService.from_settings(settings, engine, with_worker=True)
    assert clips.worker is not None
    clips.worker.start()
    http = HttpServer(create_app(settings, engine, clip_service=clips), "127.0.0.1", 0).start()
    try:
        yield http, clips
    finally:
        http.stop()
        clips.worker.stop()


def kiosk_config(state_dir: Path, device: SignedDevice, *, mqtt_port: int, server_url: str,
                 **overrides: Any) -> KioskConfig:
    values: dict[str, Any] = {
        "device_id": device.id, "secret_hex": device.secret.hex(), "mqtt_host": "127.0.0.1", "mqtt_port": mqtt_port,
        "server_url": server_url, "state_dir": state_dir, "http_port": 0, "camera": "synthetic",
        "pre_roll_s": 2.0, "post_roll_s": 2.0, "resend_after_s": 2.0, "heartbeat_s": 5, "request_poll_s": 0.5,
    }
    values.update(overrides)
    return KioskConfig(**values)


def kiosk_toml(cfg: KioskConfig) -> str:
    """The same configuration as a TOML file, for `motcua kiosk` in a subprocess."""
    lines = []
    for key, value in cfg.model_dump(exclude_none=True).items():
        if isinstance(value, str | Path):
            lines.append(f'{key} = "{value}"')
        elif isinstance(value, bool):
            lines.append(f"{key} = {str(value).lower()}")
        elif isinstance(value, int | float):
            lines.append(f"{key} = {value}")
    return "\n".join(lines) + "\n"
