"""The HTTP API and console pages, on both databases (FastAPI's TestClient, no network)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from server import registry
from server.api.app import create_app
from server.db.models import AUDIT, COUNTERS, DEVICES, EVENTS, SESSIONS
from server.db.types import to_ms
from server.ingest.messages import Incoming
from server.ingest.pipeline import Pipeline
from server.ingest.store import IngestRules
from server.settings import Settings
from tests.utils.factories import Office, make_office

SETTINGS = Settings(mode="demo")


@pytest.fixture
def office(engine: Engine) -> Office:
    return make_office(engine)


@pytest.fixture
def client(engine: Engine) -> TestClient:
    return TestClient(create_app(SETTINGS, engine))


def token(engine: Engine, *scopes: str) -> dict[str, str]:
    with engine.begin() as conn:
        value = registry.create_api_token(conn, name=f"t-{'-'.join(scopes)}", scopes=list(scopes), actor="test")
    return {"Authorization": f"Bearer {value}"}


def ingest(engine: Engine, *messages: tuple[str, bytes, int]) -> None:
    Pipeline(engine, IngestRules.from_settings(SETTINGS)).process([Incoming(t, p, r) for t, p, r in messages])


def assert_error(response, status: int, code: str) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["message"]


def test_health_and_openapi(client: TestClient) -> None:
    assert client.get("/healthz").json()["database"] == "ok"
    paths = client.get("/openapi.json").json()["paths"]
    assert "/api/v1/officials/{code}/ratings" in paths and "/api/v1/counters/{code}/sign-in" in paths


def test_authentication_and_scopes(client: TestClient, engine: Engine, office: Office) -> None:
    assert_error(client.get("/api/v1/units"), 401, "unauthenticated")
    assert_error(client.get("/api/v1/units", headers={"Authorization": "Bearer nope"}), 401, "unauthenticated")
    reader = token(engine, "read")
    assert client.get("/api/v1/units", headers=reader).json()[0]["code"] == "PX"
    assert_error(client.post("/api/v1/counters/PX-Q1/sign-in", json={"official": "PX-CB001"}, headers=reader),
                 403, "forbidden")


def test_sign_in_out_lifecycle(client: TestClient, engine: Engine, office: Office) -> None:
    queue = token(engine, "sessions:write")
    res = client.post("/api/v1/counters/PX-Q1/sign-in", json={"official": "PX-CB001"}, headers=queue)
    assert res.status_code == 201 and res.json()["official"] == "PX-CB001" and res.json()["ended_at"] is None
    again = client.post("/api/v1/counters/PX-Q1/sign-in", json={"official": "PX-CB001"}, headers=queue)
    assert again.json()["id"] == res.json()["id"]  # idempotent
    with engine.connect() as conn:
        rev = (select(DEVICES.c.config_rev + COUNTERS.c.config_rev)
               .join(COUNTERS, COUNTERS.c.id == DEVICES.c.counter_id).where(DEVICES.c.counter_id == office.counters[0]))
        assert conn.execute(rev).scalar() == 2  # the device will be told who serves
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert_error(client.post("/api/v1/counters/PX-Q2/sign-in", json={"official": "PX-CB002", "at": future},
                             headers=queue), 422, "invalid")
    assert_error(client.post("/api/v1/counters/PX-Q2/sign-in", json={"official": "PX-CB002",
                                                                      "at": "2026-11-02T08:00:00"}, headers=queue),
                 422, "invalid_request")  # no UTC offset: refused rather than guessed
    earlier = (datetime.fromisoformat(res.json()["started_at"]) - timedelta(minutes=5)).isoformat()
    assert_error(client.post("/api/v1/counters/PX-Q1/sign-in", json={"official": "PX-CB002", "at": earlier},
                             headers=queue), 409, "conflict")
    out = client.post("/api/v1/counters/PX-Q1/sign-out", json={}, headers=queue)
    assert out.status_code == 200 and out.json()["ended_at"] is not None
    assert_error(client.post("/api/v1/counters/PX-Q1/sign-out", json={}, headers=queue), 404, "not_found")
    assert_error(client.post("/api/v1/counters/NOPE/sign-out", json={}, headers=queue), 404, "not_found")


def test_a_batch_of_session_changes_answers_each_as_its_single_call_would(client: TestClient, engine: Engine,
                                                                         office: Office) -> None:
    queue = token(engine, "sessions:write")
    t = datetime(2026, 11, 2, 0, 30, tzinfo=UTC)
    changes = [
        {"counter": "PX-Q1", "action": "sign_in", "official": "PX-CB001", "at": t.isoformat()},
        {"counter": "PX-Q2", "action": "sign_in", "official": "PX-CB002", "at": t.isoformat()},
        {"counter": "PX-Q2", "action": "sign_in", "official": "PX-CB404", "at": t.isoformat()},  # unknown
        {"counter": "PX-Q1", "action": "sign_in", "official": "PX-CB003",  # before the session it would end
         "at": (t - timedelta(hours=1)).isoformat()},
        {"counter": "NOPE", "action": "sign_out"},
        {"counter": "PX-Q2", "action": "sign_in"},  # no official
        {"counter": "PX-Q1", "action": "sign_out", "at": (t + timedelta(hours=4)).isoformat()},
    ]
    res = client.post("/api/v1/sessions/batch", json={"changes": changes}, headers=queue)
    assert res.status_code == 200, res.text
    results = res.json()["results"]
    assert [r["status"] for r in results] == [201, 201, 404, 409, 404, 422, 200]
    assert all(r["error"]["message"] for r in results if r["status"] >= 400)
    assert results[6]["session"]["official"] == "PX-CB001" and results[6]["session"]["ended_at"] is not None
    # the failed changes left nothing behind, the others are stored as their single calls store them
    with engine.connect() as conn:
        stored = conn.execute(select(SESSIONS.c.counter_id, SESSIONS.c.ended_at.is_(None))
                              .order_by(SESSIONS.c.id)).all()
        audit = conn.execute(select(AUDIT.c.action).where(AUDIT.c.action.like("session.%"))).scalars().all()
    assert [(c, open_) for c, open_ in stored] == [(office.counters[0], False), (office.counters[1], True)]
    assert sorted(audit) == ["session.close", "session.open", "session.open"]
    assert_error(client.post("/api/v1/sessions/batch", json={"changes": []}, headers=queue), 422, "invalid_request")
    reader = token(engine, "read")
    assert_error(client.post("/api/v1/sessions/batch", json={"changes": changes[:1]}, headers=reader),
                 403, "forbidden")


def test_official_ratings_count_only_valid_presses(client: TestClient, engine: Engine, office: Office) -> None:
    dev = office.devices[0]
    queue, reader = token(engine, "sessions:write"), token(engine, "read")
    start = datetime(2026, 11, 3, 1, 0, tzinfo=UTC)
    client.post("/api/v1/counters/PX-Q1/sign-in", json={"official": "PX-CB002", "at": start.isoformat()},
                headers=queue)
    t = to_ms(start)
    ingest(engine, *[(dev.topic(), p, t + 600_000) for p in (
        dev.rating(4, up=100_000, ts=t + 60_000), dev.rating(1, up=101_000, ts=t + 61_000),  # 2nd is mashing
        dev.rating(3, up=300_000, ts=t + 260_000, txn="B-1"), dev.rating(2, up=400_000, ts=t + 360_000, txn="B-1"))])
    body = client.get("/api/v1/officials/PX-CB002/ratings?period=2026-11", headers=reader).json()
    [scale] = body["summary"]
    assert scale == {"levels": 4, "by_level": [0, 0, 1, 1], "counted": 2, "mean": 3.5, "excluded_misuse": 1,
                     "excluded_txn_duplicate": 1}
    assert [i["counts"] for i in body["items"]] == [True, False, True, False]
    page = client.get("/api/v1/officials/PX-CB002/ratings?period=2026-11&limit=3", headers=reader).json()
    rest = client.get(f"/api/v1/officials/PX-CB002/ratings?period=2026-11&cursor={page['next_cursor']}",
                      headers=reader).json()
    assert len(page["items"]) == 3 and len(rest["items"]) == 1 and rest["next_cursor"] is None
    assert client.get("/api/v1/officials/PX-CB002/ratings?period=2026-10", headers=reader).json()["items"] == []
    assert_error(client.get("/api/v1/officials/PX-CB002/ratings?period=2026-13", headers=reader), 422,
                 "invalid_request")
    for cursor in ("²", "9" * 30, "-1"):  # not what we hand out: a clear 422, never a 500
        assert_error(client.get(f"/api/v1/officials/PX-CB002/ratings?period=2026-11&cursor={cursor}",
                                headers=reader), 422, "invalid_request")
    assert_error(client.get("/api/v1/officials/NOBODY/ratings?period=2026-11", headers=reader), 404, "not_found")


def test_quarantine_listing_and_audited_attribution(client: TestClient, engine: Engine, office: Office) -> None:
    dev = office.devices[0]
    admin, reader = token(engine, "admin"), token(engine, "read")
    t = to_ms(datetime(2026, 11, 4, 2, 0, tzinfo=UTC))
    ingest(engine, (dev.topic(), dev.rating(2, up=5, ts=t), t), (dev.topic(), b"junk", t))
    page = client.get("/api/v1/quarantine", headers=reader).json()
    assert page["open_by_reason"] == {"malformed": 1, "unattributed": 1}
    unattributed = next(i for i in page["items"] if i["reason"] == "unattributed")
    detail = client.get(f"/api/v1/quarantine/{unattributed['id']}", headers=reader).json()
    assert detail["payload_text"].startswith('{"v":1,')
    junk = next(i for i in page["items"] if i["reason"] == "malformed")
    assert_error(client.post(f"/api/v1/quarantine/{junk['id']}/attribute",
                             json={"official": "PX-CB001", "reason": "checked the camera"}, headers=admin),
                 422, "invalid")
    assert_error(client.post(f"/api/v1/quarantine/{unattributed['id']}/attribute",
                             json={"official": "PX-CB001", "reason": "checked"}, headers=reader), 403, "forbidden")
    done = client.post(f"/api/v1/quarantine/{unattributed['id']}/attribute",
                       json={"official": "PX-CB001", "reason": "queue system was down; camera shows her"},
                       headers=admin)
    assert done.status_code == 200, done.text
    assert_error(client.post(f"/api/v1/quarantine/{unattributed['id']}/attribute",
                             json={"official": "PX-CB001", "reason": "again please"}, headers=admin), 409, "conflict")
    with engine.connect() as conn:
        assert conn.execute(select(EVENTS.c.official_id, EVENTS.c.status)).one() == (office.officials[0], "accepted")
        audit = conn.execute(select(AUDIT.c.actor, AUDIT.c.action, AUDIT.c.detail)
                             .where(AUDIT.c.action == "event.attribute")).one()
    assert audit.actor.startswith("token:") and audit.detail["reason"].startswith("queue system was down")
    assert client.get("/api/v1/quarantine?open=false&reason=unattributed", headers=reader).json()["items"][0][
        "resolved_by"].startswith("token:")


def test_device_provisioning_shows_the_key_once(client: TestClient, engine: Engine, office: Office) -> None:
    admin = token(engine, "admin")
    made = client.post("/api/v1/devices", json={"counter": "PX-Q2", "kind": "kiosk", "id": "kiosk-px-2"},
                       headers=admin)
    assert made.status_code == 201 and len(made.json()["secret_hex"]) == 64
    listed = client.get("/api/v1/devices", headers=admin).json()
    assert "kiosk-px-2" in {d["id"] for d in listed} and all("secret" not in str(d) for d in listed)
    assert_error(client.post("/api/v1/devices", json={"counter": "PX-Q2", "id": "kiosk-px-2"}, headers=admin),
                 409, "conflict")
    assert_error(client.post("/api/v1/devices", json={"counter": "PX-Q2", "id": "motcua-server"}, headers=admin),
                 422, "invalid")  # device ids are broker user names: the server's is reserved
    assert client.post("/api/v1/devices/kiosk-px-2/revoke", json={"reason": "lost"}, headers=admin).status_code == 200
    assert_error(client.post("/api/v1/devices/kiosk-px-2/revoke", json={"reason": "lost"}, headers=admin),
                 409, "conflict")


def _login(client: TestClient, engine: Engine, role: str = "viewer") -> None:
    with engine.begin() as conn:
        registry.create_user(conn, username=role, password="correct horse battery", role=role, actor="test")
    page = client.get("/login?next=/units/PX")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    bad = client.post("/login", data={"username": role, "password": "wrong password!", "csrf": csrf, "next": "/"})
    assert bad.status_code == 401 and "Sai tên đăng nhập" in bad.text
    ok = client.post("/login", data={"username": role, "password": "correct horse battery", "csrf": csrf,
                                     "next": "/units/PX"}, follow_redirects=False)
    assert ok.status_code == 303 and ok.headers["location"] == "/units/PX"
    assert "httponly" in ok.headers["set-cookie"].lower() and "samesite=lax" in ok.headers["set-cookie"].lower()


def test_console_login_pages_and_csrf(client: TestClient, engine: Engine, office: Office) -> None:
    assert client.get("/", follow_redirects=False).headers["location"] == "/login?next=/"
    _login(client, engine, role="admin")
    assert "UBND phường PX" in client.get("/").text
    live = client.get("/api/v1/units/PX/live").json()
    assert [c["code"] for c in live["counters"]] == ["PX-Q1", "PX-Q2"] and live["labels"][0] == "Rất không hài lòng"
    # A cookie-authenticated write without the session's CSRF token is refused; with it, it goes through.
    assert_error(client.post("/api/v1/counters/PX-Q1/sign-in", json={"official": "PX-CB001"}), 403, "csrf")
    assert_error(client.post("/api/v1/counters/PX-Q1/sign-in", json={"official": "PX-CB001"},
                             headers={"X-CSRF-Token": "guess"}), 403, "csrf")
    page = client.get("/units/PX").text
    token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    ok = client.post("/api/v1/counters/PX-Q1/sign-in", json={"official": "PX-CB001"},
                     headers={"X-CSRF-Token": token})
    assert ok.status_code == 201, ok.text


def test_login_refuses_open_redirects_and_forged_forms(client: TestClient, engine: Engine, office: Office) -> None:
    with engine.begin() as conn:
        registry.create_user(conn, username="v", password="correct horse battery", role="viewer", actor="test")
    page = client.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    res = client.post("/login", data={"username": "v", "password": "correct horse battery", "csrf": csrf,
                                      "next": "//evil.example/x"}, follow_redirects=False)
    assert res.headers["location"] == "/"
    other = TestClient(client.app)
    forged = other.post("/login", data={"username": "v", "password": "correct horse battery", "csrf": "guess"})
    assert forged.status_code == 403
