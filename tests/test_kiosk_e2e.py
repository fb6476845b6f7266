"""The kiosk end to end: real Mosquitto, ingest, HTTP server and rendition worker, the kiosk, headless Chromium.

The only fake is the camera (the synthetic source).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select

from device.kiosk.kiosk import Kiosk
from device.kiosk.web import create_kiosk_app
from server import registry
from server.credentials import set_credential
from server.db.models import CLIPS, EVENTS, SESSIONS, ClipState, DeviceKind, EventStatus, RenditionState
from server.runtime import HttpServer
from tests.firmware.tcp_proxy import CuttableProxy
from tests.utils.browser import chromium_path
from tests.utils.browser import open_page as browser_page
from tests.utils.factories import Office, make_office, sign_in
from tests.utils.ingest import ingest_settings, running_ingest, wait_until
from tests.utils.kiosk import kiosk_config, kiosk_toml, running_server
from tests.utils.services import Mosquitto

pytestmark = [pytest.mark.broker, pytest.mark.slow]


@pytest.fixture
def office(engine: Engine) -> Office:
    made = make_office(engine, counters=1, kind=DeviceKind.KIOSK)
    sign_in(engine, made.counters[0], made.officials[0], datetime.now(UTC) - timedelta(minutes=5))
    return made


@pytest.fixture
def stack(engine: Engine, db_url: str, mosquitto: Mosquitto, tmp_path: Path) -> Iterator[Any]:
    settings = ingest_settings(db_url, mosquitto, data_dir=tmp_path / "server")
    with running_ingest(settings, engine), running_server(settings, engine) as (http, clips):
        yield http, clips


@pytest.fixture
def kiosk(office: Office, mosquitto: Mosquitto, stack: Any, tmp_path: Path) -> Iterator[tuple[Kiosk, HttpServer]]:
    http, _clips = stack
    cfg = kiosk_config(tmp_path / "kiosk", office.devices[0], mqtt_port=mosquitto.port, server_url=http.url)
    running = Kiosk(cfg).start()
    ui = HttpServer(create_kiosk_app(running), "127.0.0.1", 0).start()
    try:
        wait_until(lambda: running.server_config and running.server_config["official"], what="the retained config")
        yield running, ui
    finally:
        ui.stop()
        running.stop()


def _rows(engine: Engine, *cols: Any, where: Any = None) -> list[Any]:
    q = select(*cols)
    with engine.connect() as conn:
        return list(conn.execute(q.where(where) if where is not None else q))


def test_a_tap_on_a_face_in_chromium_becomes_a_stored_attributed_rating(
        engine: Engine, office: Office, kiosk: tuple[Kiosk, HttpServer]) -> None:
    running, ui = kiosk
    with browser_page() as page:
        page.goto(ui.url)
        page.wait_for_selector("text=Cán bộ 1")  # the official's card, from the retained config
        assert page.locator(".notice").inner_text().startswith("● Quầy đang được ghi hình")
        page.click(".face[data-value='4']")
        page.wait_for_selector("#screen-thanks.active")
    wait_until(lambda: running.agent.pending() == 0, what="the rating to be acknowledged")
    rows = _rows(engine, EVENTS.c.typ, EVENTS.c.rating, EVENTS.c.status, EVENTS.c.official_id)
    assert [tuple(r) for r in rows] == [("rating", 4, EventStatus.ACCEPTED, office.officials[0])]


def test_sign_in_at_the_kiosk_with_a_pin_and_a_refused_wrong_pin(
        engine: Engine, office: Office, kiosk: tuple[Kiosk, HttpServer]) -> None:
    _running, ui = kiosk
    with engine.begin() as conn:
        set_credential(conn, official_code="PX-CB002", method="pin", secret="246810", actor="test")
    with browser_page() as page:
        page.goto(ui.url)
        page.click("#staff")
        page.fill("#si-official", "PX-CB002")
        page.fill("#si-secret", "111111")
        page.click("#si-in")
        page.wait_for_selector("text=Không thành công", timeout=15_000)
        page.fill("#si-secret", "246810")
        page.click("#si-in")
        page.wait_for_selector("text=Đăng nhập thành công", timeout=15_000)
        page.wait_for_selector("#official-name:has-text('Cán bộ 2')", timeout=15_000)
    open_now = _rows(engine, SESSIONS.c.official_id, SESSIONS.c.opened_by, where=SESSIONS.c.ended_at.is_(None))
    assert [tuple(r) for r in open_now] == [(office.officials[1], f"device:{office.devices[0].id}")]


def _wait_clip(engine: Engine, clip_id: str, timeout: float = 60) -> Any:
    def done() -> Any:
        rows = _rows(engine, CLIPS.c.state, CLIPS.c.rendition_state, CLIPS.c.duration_ms, where=CLIPS.c.id == clip_id)
        return rows and rows[0].rendition_state != RenditionState.PENDING and rows[0]
    return wait_until(done, timeout, what=f"clip {clip_id} uploaded and transcoded")


def test_complaint_clip_reaches_the_server_and_plays_in_chromium(
        engine: Engine, office: Office, kiosk: tuple[Kiosk, HttpServer], stack: Any) -> None:
    running, ui = kiosk
    http, _clips = stack
    wait_until(lambda: running.evidence.camera_state() == "ok" and len(running.evidence.ring) >= 30,
               what="two seconds of pre-roll")
    with browser_page() as page:
        page.goto(ui.url)
        page.click(".face[data-value='1']")
        page.click(".chip[data-code='slow']")
        page.click("#complain")
        page.wait_for_selector("#screen-thanks.active")
    incident = wait_until(lambda: _rows(engine, EVENTS.c.body, where=EVENTS.c.typ == "incident"), what="incident")
    clip_id = incident[0].body["clip"]
    assert incident[0].body["camera"] == "ok" and incident[0].body["kind"] in ("complaint", "lowest_rating")
    row = _wait_clip(engine, clip_id)
    assert (row.state, row.rendition_state) == (ClipState.COMPLETE, RenditionState.DONE)
    # Lowest rating and complaint, seconds apart, share one clip: ~2 s pre-roll + gap + 2 s post-roll.
    assert len(_rows(engine, CLIPS.c.id)) == 1 and 3500 <= row.duration_ms <= 9000
    with engine.begin() as conn:
        token = registry.create_api_token(conn, name="viewer", scopes=["read", "clips:view"], actor="test")
    detail = httpx.get(f"{http.url}/api/v1/clips/{clip_id}",
                                     headers={"Authorization": f"Bearer {token}"}).json()
    assert {e["typ"] for e in detail["events"]} == {"rating", "incident"}
    assert detail["officials"] == ["PX-CB001"]
    duration = _play(http.url, clip_id, token)
    assert abs(duration * 1000 - row.duration_ms) < 250


def _play(base: str, clip_id: str, token: str) -> float:
    """Load the rendition in a <video> element; return its duration once it can play through."""
    with browser_page(extra_http_headers={"Authorization": f"Bearer {token}"}) as page:
        page.goto(f"{base}/healthz")
        page.set_content(f'<video id="v" muted preload="auto" src="{base}/api/v1/clips/{clip_id}/video"></video>')
        page.wait_for_function("document.getElementById('v').readyState >= 3 || document.getElementById('v').error",
                               timeout=20_000)
        assert page.evaluate("document.getElementById('v').error") is None
        return float(page.evaluate("document.getElementById('v').duration"))


def test_network_cut_during_upload_then_the_upload_resumes(
        engine: Engine, office: Office, mosquitto: Mosquitto, stack: Any, tmp_path: Path) -> None:
    http, _clips = stack
    proxy = CuttableProxy(http.port)
    cfg = kiosk_config(tmp_path / "kiosk", office.devices[0], mqtt_port=mosquitto.port,
                       server_url=f"http://127.0.0.1:{proxy.port}", upload_chunk_bytes=8 * 1024)
    running = Kiosk(cfg).start()
    try:
        wait_until(lambda: len(running.evidence.ring) >= 20, what="pre-roll")
        clip_id = running.incident("manual")["clip"]

        def started() -> bool:
            rows = _rows(engine, CLIPS.c.received, CLIPS.c.size, where=CLIPS.c.id == clip_id)
            return bool(rows) and 0 < rows[0].received < rows[0].size

        wait_until(started, 30, what="the upload to be under way")
        proxy.cut()
        cut_at = _rows(engine, CLIPS.c.received, where=CLIPS.c.id == clip_id)[0].received
        wait_until(lambda: running.uploader.last_error is not None, 60, what="the kiosk to notice the cut")
        proxy.restore()
        row = _wait_clip(engine, clip_id)
        assert row.state == ClipState.COMPLETE and cut_at > 0
        assert running.clips.state(clip_id) == "confirmed"
    finally:
        running.stop()
        proxy.close()


def test_kiosk_killed_mid_upload_loses_nothing_after_restart(
        engine: Engine, office: Office, mosquitto: Mosquitto, stack: Any, tmp_path: Path) -> None:
    http, _clips = stack
    proxy = CuttableProxy(http.port)
    cfg = kiosk_config(tmp_path / "kiosk", office.devices[0], mqtt_port=mosquitto.port,
                       server_url=f"http://127.0.0.1:{proxy.port}", upload_chunk_bytes=4 * 1024, http_port=0)
    conf = tmp_path / "kiosk.toml"
    conf.write_text(kiosk_toml(cfg), encoding="utf-8")
    log = (tmp_path / "kiosk.log").open("ab")

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "motcua", "kiosk", str(conf)], stdout=log, stderr=log,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})

    proc = start()
    try:
        ui = wait_until(lambda: _ui_url(tmp_path / "kiosk.log"), 30, what="the kiosk UI")


        wait_until(lambda: httpx.get(f"{ui}/api/state").json()["camera"] == "ok", what="camera")
        rated = httpx.post(f"{ui}/api/rating", json={"value": 2, "reasons": ["rude"]}).json()
        clip_id = httpx.post(f"{ui}/api/complaint", json={"ref": [rated["ep"], rated["seq"]]}).json()["clip"]
        proxy.cut()  # hold the upload so that the kill lands in the middle of it

        def started() -> bool:
            rows = _rows(engine, CLIPS.c.received, where=CLIPS.c.id == clip_id)
            return bool(rows) and rows[0].received > 0

        proxy.restore()
        wait_until(started, 30, what="part of the clip to arrive")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        partial = _rows(engine, CLIPS.c.received, CLIPS.c.size, where=CLIPS.c.id == clip_id)[0]
        assert partial.received < partial.size, "the upload finished before the kill: make it slower"
        proc = start()
        row = _wait_clip(engine, clip_id, timeout=90)
        assert row.state == ClipState.COMPLETE
        kinds = wait_until(lambda: (k := sorted(r.typ for r in _rows(engine, EVENTS.c.typ))) == ["incident", "rating"]
                           and k, what="both events stored")
        assert kinds == ["incident", "rating"]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        proxy.close()
        log.close()


def _ui_url(log: Path) -> str | None:
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines()[::-1]:
        if "open http://" in line:
            return line.split("open ", 1)[1].split()[0]
    return None


def test_chromium_is_present_when_services_are_required() -> None:
    assert Path(chromium_path()).exists()
