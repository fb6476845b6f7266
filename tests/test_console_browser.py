"""The console in real headless Chromium: sign in, a unit's live page, a rating arriving; a supervisor
reviewing an incident whose clip plays, confirming it with a reason; screenshots of the main pages."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from server import registry
from server.api.app import create_app
from server.audit_chain import verify
from server.clips.service import ClipService
from server.db.models import AUDIT, CLIPS, DeviceKind
from server.db.types import to_ms
from server.ingest.messages import Incoming
from server.ingest.pipeline import Pipeline
from server.ingest.store import IngestRules
from server.runtime import HttpServer
from server.settings import Settings
from tests.utils.browser import open_page, screenshot
from tests.utils.console import (
    BOOT_MS,
    PASSWORD,
    complaint,
    ingest,
    make_user,
    review_of,
    synthetic_clip_file,
    upload_clip,
)
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


CLIP_ID = "c0ffee00c0ffee00c0ffee00c0ffee00"


@pytest.fixture
def console(engine: Engine, db_url: str, tmp_path: Path) -> Iterator[tuple[str, Settings, ClipService]]:
    settings = Settings(mode="demo", database_url=db_url, data_dir=tmp_path)
    clips = ClipService.from_settings(settings, engine, with_worker=True)
    http = HttpServer(create_app(settings, engine, clip_service=clips), "127.0.0.1", 0).start()
    try:
        yield http.url, settings, clips
    finally:
        http.stop()


def _sign_in(page: Any, base: str, username: str) -> None:
    page.goto(f"{base}/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("form.login button[type=submit]")
    page.wait_for_load_state()


def _sign_out(page: Any) -> None:
    page.click("form.who button[type=submit]")
    page.wait_for_url("**/login")


def test_supervisor_reviews_an_incident_in_chromium_clip_plays_and_the_verdict_is_recorded(
        engine: Engine, console: tuple[str, Settings, ClipService], tmp_path: Path) -> None:
    base, settings, clips = console
    office = make_office(engine, kind=DeviceKind.KIOSK)
    dev, now = office.devices[0], datetime.now(UTC).replace(microsecond=0)
    sign_in(engine, dev.counter_id, office.officials[0], now - timedelta(hours=1))
    good = to_ms(now - timedelta(minutes=30))  # six happy citizens first: the month score has something to lose
    ingest(engine, settings, *((dev.topic(), dev.rating(4, up=good + i * 60_000 - BOOT_MS, ts=good + i * 60_000),
                                good + i * 60_000 + 300) for i in range(6)))
    event_id = complaint(engine, settings, dev, at=now - timedelta(minutes=3), clip=CLIP_ID, reasons=("rude", "slow"),
                         note="Cán bộ quát tháo")
    data = synthetic_clip_file(tmp_path / "clip.mkv").read_bytes()
    upload_clip(engine, clips, dev, clip_id=CLIP_ID, data=data, events=[(dev.epoch, dev.seq - 1), (dev.epoch, dev.seq)])
    complaint(engine, settings, office.devices[1], at=now - timedelta(minutes=2))  # nobody at counter 2
    make_user(engine, "giamsat", "supervisor", units=("PX",))
    make_user(engine, "quantri", "admin")
    make_user(engine, "canbo1", "official", official="PX-CB001")
    rid = review_of(engine, event_id).id
    with open_page() as page:
        page.goto(f"{base}/reviews")
        screenshot(page, "console-login")
        _sign_in(page, base, "giamsat")
        page.wait_for_selector(f"tr[data-review='{rid}'] >> text=Phản ánh")
        screenshot(page, "console-review-queue")
        page.click(f"tr[data-review='{rid}'] a")
        page.wait_for_url(f"{base}/reviews/{rid}")
        page.wait_for_function("document.getElementById('clip').readyState >= 3", timeout=20_000)
        duration = page.evaluate("document.getElementById('clip').duration")
        assert page.evaluate("document.getElementById('clip').error") is None
        assert abs(duration * 1000 - _clip_ms(engine)) < 150 and 1800 < duration * 1000 < 2300
        assert "Thái độ không đúng mực, Chậm" in page.inner_text("dl") and "Cán bộ 1" in page.inner_text("dl")
        screenshot(page, "console-incident")
        assert page.inner_text("#panel-score-status") == "tạm tính"  # the month is open: computed live
        score_before = Decimal(page.inner_text("#panel-score"))
        page.select_option("#confirm-form select[name=severity]", "moderate")
        page.fill("#confirm-form textarea[name=reason]", "Quát tháo công dân, rõ trong đoạn ghi hình")
        page.click("#confirm-form button[type=submit]")
        page.wait_for_selector("#done")
        assert "Đã xác nhận" in page.inner_text("#status") and "Trung bình" in page.inner_text("#status")
        trail = page.inner_text("#trail")
        assert "review.confirm" in trail and "clip.view" in trail and "user:giamsat" in trail
        assert page.inner_text("#panel-confirmed") == "1" and page.inner_text("#panel-deduction") == "1"
        # The verdict moved the official's provisional month score by the severity's points (nd335: moderate = 1).
        assert abs(score_before - Decimal(page.inner_text("#panel-score")) - 1) <= Decimal("0.01")
        screenshot(page, "console-incident-confirmed")
        for name, path in (("console-dashboard", "/dashboard"), ("console-heatmap", "/units/PX/heatmap"),
                           ("console-official-trend", "/officials/PX-CB001"), ("console-devices", "/devices"),
                           ("console-unattributed", "/unattributed")):
            page.goto(base + path)
            screenshot(page, name)
        page.goto(f"{base}/reviews?lang=en")
        assert "Review queue" in page.inner_text("h1")  # the English toggle, remembered in a cookie
        page.goto(f"{base}/dashboard")
        assert page.inner_text("h1").startswith("Overview")
        page.goto(f"{base}/dashboard?lang=vi")
        _sign_out(page)
        _sign_in(page, base, "canbo1")
        page.goto(f"{base}/reviews/{rid}")
        page.wait_for_selector("#contest-form")
        screenshot(page, "console-official-contest")
        page.goto(f"{base}/me")
        screenshot(page, "console-my-record")
        _sign_out(page)
        _sign_in(page, base, "quantri")
        page.goto(f"{base}/audit?check=1")
        assert "nguyên vẹn" in page.inner_text("#chain")
        screenshot(page, "console-audit")
        page.goto(f"{base}/admin/users")
        screenshot(page, "console-users")
    review = review_of(engine, event_id)
    assert (review.status, review.severity, review.decided_by) == ("confirmed", "moderate", "user:giamsat")
    with engine.connect() as conn:
        assert verify(conn).ok
        views = conn.execute(select(AUDIT.c.actor).where(AUDIT.c.action == "clip.view",
                                                          AUDIT.c.target_id == CLIP_ID)).scalars().all()
    assert "user:giamsat" in views


def _clip_ms(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(CLIPS.c.duration_ms).where(CLIPS.c.id == CLIP_ID)).scalar_one())
