"""The console in real headless Chromium: sign in, a unit's live page, a rating arriving."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine

from server import registry
from server.api.app import create_app
from server.db.types import to_ms
from server.ingest.messages import Incoming
from server.ingest.pipeline import Pipeline
from server.ingest.store import IngestRules
from server.runtime import HttpServer
from server.settings import Settings
from tests.utils.browser import screenshot
from tests.utils.factories import make_office, sign_in

SETTINGS = Settings(mode="demo")
pytestmark = pytest.mark.slow


@pytest.fixture
def server(engine: Engine) -> Iterator[str]:
    http = HttpServer(create_app(SETTINGS, engine), "127.0.0.1", 0).start()
    try:
        yield http.url
    finally:
        http.stop()


def test_live_page_shows_who_serves_and_ratings_as_they_arrive(engine: Engine, server: str,
                                                                browser_page: Any) -> None:
    page = browser_page
    office = make_office(engine)
    dev = office.devices[0]
    sign_in(engine, dev.counter_id, office.officials[1], datetime.now(UTC) - timedelta(minutes=10))
    with engine.begin() as conn:
        registry.create_user(conn, username="giamsat", password="mat khau du dai", role="viewer", actor="test")
    page.goto(f"{server}/units/PX")
    assert "/login" in page.url  # not signed in: sent to the login form, and back afterwards
    page.fill("input[name=username]", "giamsat")
    page.fill("input[name=password]", "mat khau du dai")
    page.click("button[type=submit]")
    page.wait_for_url(f"{server}/units/PX")
    page.wait_for_selector("article[data-counter='PX-Q1'] >> text=Cán bộ 2")
    assert "Chưa có cán bộ đăng nhập" in page.inner_text("article[data-counter='PX-Q2']")
    now = to_ms(datetime.now(UTC))
    Pipeline(engine, IngestRules.from_settings(SETTINGS)).process(
        [Incoming(dev.topic(), dev.rating(1, up=1000, ts=now - 5000), now)])
    page.wait_for_selector("#feed tr >> text=Rất không hài lòng", timeout=10_000)  # no reload: it polls
    assert "Cán bộ 2" in page.inner_text("#feed")
    screenshot(page, "console-unit-live")
