"""Console test helpers: users of each role signed in through the real login form, flagged incidents via ingest."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from server import registry
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
