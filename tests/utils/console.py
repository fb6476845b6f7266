"""Console test helpers: users of each role signed in through the real login form, flagged incidents via ingest."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from motcua.protocol import encode_clip_manifest
from server import registry
from server.clips.service import ClipService
from server.clips.uploads import UploadingDevice, accept_manifest, append_chunk
from server.db.models import EVENTS, REVIEWS
from server.db.types import to_ms
from server.ingest.messages import Incoming
from server.ingest.pipeline import Pipeline
from server.ingest.store import IngestRules
from server.settings import Settings
from tests.utils.factories import SignedDevice

PASSWORD = "mật khẩu đủ dài 2026"
BOOT_MS = to_ms(datetime(2025, 6, 1, tzinfo=UTC))
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def make_user(engine: Engine, username: str, role: str, *, units: tuple[str, ...] = (),
              official: str | None = None) -> int:
    with engine.begin() as conn:
        return registry.create_user(conn, username=username, password=PASSWORD, role=role, actor="test",
                                    units=list(units), official=official)


@dataclass
class Browser:
    """A TestClient holding one user's session cookie, and that session's CSRF token."""

    client: TestClient
    csrf: str

    def post_json(self, path: str, body: dict[str, Any]) -> Any:
        return self.client.post(path, json=body, headers={"X-CSRF-Token": self.csrf})

    def form(self, path: str, data: dict[str, Any], **kwargs: Any) -> Any:
        return self.client.post(path, data={**data, "csrf": self.csrf}, follow_redirects=False, **kwargs)


def sign_in(app: Any, username: str, password: str = PASSWORD) -> Browser:
    """Sign in through the login form, as a person does."""
    client = TestClient(app)
    page = client.get("/login")
    token = CSRF.search(page.text).group(1)  # type: ignore[union-attr]
    done = client.post("/login", data={"username": username, "password": password, "csrf": token, "next": "/"},
                       follow_redirects=False)
    assert done.status_code == 303, done.text
    csrf = CSRF.search(client.get("/login").text).group(1)  # type: ignore[union-attr]
    return Browser(client, csrf)


def ingest(engine: Engine, settings: Settings, *messages: tuple[str, bytes, int]) -> None:
    Pipeline(engine, IngestRules.from_settings(settings)).process([Incoming(t, p, r) for t, p, r in messages])


def complaint(engine: Engine, settings: Settings, dev: SignedDevice, *, at: datetime, kind: str = "complaint",
              clip: str | None = None, reasons: tuple[str, ...] = ("rude",), note: str | None = None) -> int:
    """A heartbeat, a lowest rating with reasons and the incident that follows it; returns the event id."""
    t = to_ms(at)
    up = t - BOOT_MS  # one boot for the whole test: uptime grows with time, as on a real device
    rating = dev.rating_with_reasons(1, list(reasons), up=up, ts=t)
    ref = (dev.epoch, dev.seq)
    incident = dev.incident(kind, up=up + 1000, ts=t + 1000, ref=ref, clip=clip, note=note,
                            camera="ok" if clip else None)
    ingest(engine, settings, (dev.topic("hb"), dev.heartbeat(up=up - 500, ts=t - 500), t - 500),
           (dev.topic(), rating, t + 1500), (dev.topic(), incident, t + 1500))
    with engine.connect() as conn:
        return int(conn.execute(select(EVENTS.c.id).where(EVENTS.c.device_id == dev.id, EVENTS.c.typ == "incident")
                                .order_by(EVENTS.c.id.desc()).limit(1)).scalar_one())


def review_of(engine: Engine, event_id: int) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(REVIEWS).where(REVIEWS.c.event_id == event_id)).first()


def synthetic_clip_file(path: Path, *, seconds: float = 2.0, fps: int = 15) -> Path:
    """A clip as a kiosk writes it (MJPEG in Matroska) from the synthetic camera."""
    import cv2

    from device.camera.frames import Frame
    from device.camera.sources import SyntheticSource
    from device.camera.writer import write_clip

    n = round(seconds * fps)
    source = SyntheticSource(320, 240, clock=iter(x / fps for x in range(10_000)).__next__)
    frames = [Frame(i / fps, 1000 + i * round(1000 / fps), 0, cv2.imencode(".jpg", source.read())[1].tobytes())
              for i in range(n)]
    return write_clip(frames, path, width=320, height=240, fps=fps).path


def upload_clip(engine: Engine, clips: ClipService, dev: SignedDevice, *, clip_id: str, data: bytes,
                events: list[tuple[int, int]]) -> None:
    """The kiosk's upload (signed manifest, then the bytes), through the server's data layer; then the
    rendition worker makes the H.264 MP4 and the thumbnail."""
    manifest = encode_clip_manifest(dev.secret, dev=dev.id, clip=clip_id, ep=dev.epoch, up0=1000, up1=3000,
                                    ts0=None, ts1=None, frames=30, width=320, height=240, size=len(data),
                                    sha256=hashlib.sha256(data).hexdigest(), events=events)
    device = UploadingDevice(dev.id, dev.secret, dev.counter_id)
    with engine.begin() as conn:
        accept_manifest(conn, device=device, manifest=manifest, incoming=clips.incoming, max_bytes=len(data))
        append_chunk(conn, device=device, clip_id=clip_id, offset=0, data=data, incoming=clips.incoming,
                     storage=clips.storage)
    assert clips.worker is not None and clips.worker.run_once()


def run_cli(*args: str, env: dict[str, str], stdin: str | None = None) -> Any:
    """The real `motcua` command in this process (typer's runner): a subprocess per call costs ~1 s here."""
    from typer.testing import CliRunner

    from motcua.cli import app

    return CliRunner().invoke(app, list(args), input=stdin, env=env)
