"""Console security on both databases: sign-in rate limiting and lockout with backoff (per user name and
per client address), CSRF on every cookie-authenticated write, session cookie flags, disabled users."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, update

from server import registry
from server.api.app import create_app
from server.db.models import AUDIT, LOGIN_THROTTLE, REVIEWS
from server.settings import Settings
from server.users import set_disabled
from tests.test_permissions import RULES, app_routes
from tests.utils.console import CSRF, PASSWORD, complaint, make_user, review_of, sign_in
from tests.utils.factories import make_office
from tests.utils.factories import sign_in as sign_in_official

SETTINGS = Settings(mode="demo", login={"user_failures": 3, "address_failures": 5, "lock_s": 60,  # type: ignore[arg-type]
                                        "lock_max_s": 600})


@pytest.fixture
def app(engine: Engine) -> FastAPI:
    make_office(engine, code="PA")
    make_user(engine, "gs", "supervisor", units=("PA",))
    return create_app(SETTINGS, engine)


def _attempt(client: TestClient, username: str, password: str) -> Any:
    token = CSRF.search(client.get("/login").text).group(1)  # type: ignore[union-attr]
    return client.post("/login", data={"username": username, "password": password, "csrf": token, "next": "/"},
                       follow_redirects=False)


def _lock(engine: Engine, kind: str, key: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(LOGIN_THROTTLE).where(LOGIN_THROTTLE.c.kind == kind,
                                                         LOGIN_THROTTLE.c.key == key)).first()


def _expire_locks(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(update(LOGIN_THROTTLE).values(locked_until=datetime.now(UTC) - timedelta(seconds=1)))


def test_a_user_name_is_locked_after_failures_with_growing_locks(engine: Engine, app: FastAPI) -> None:
    client = TestClient(app)
    assert [_attempt(client, "gs", f"guess number {i}").status_code for i in range(2)] == [401, 401]
    third = _attempt(client, "gs", "guess number 3")
    assert third.status_code == 429 and 55 <= int(third.headers["retry-after"]) <= 60
    assert "Đăng nhập sai quá nhiều lần" in third.text
    blocked = _attempt(client, "gs", PASSWORD)  # right password, but locked: not even checked
    assert blocked.status_code == 429 and "motcua_session" not in blocked.headers.get("set-cookie", "")
    first = _lock(engine, "user", "gs")
    assert first.failures == 3 and 55 <= (first.locked_until - datetime.now(UTC)).total_seconds() <= 60
    _expire_locks(engine)
    again = _attempt(client, "GS", "one more guess")  # names are compared case-blind
    assert again.status_code == 429 and 115 <= int(again.headers["retry-after"]) <= 120  # backoff doubles
    _expire_locks(engine)
    assert _attempt(client, "gs", PASSWORD).status_code == 303
    assert _lock(engine, "user", "gs") is None  # a success ends the count
    with engine.connect() as conn:
        locks = [r.detail for r in conn.execute(select(AUDIT.c.detail).where(AUDIT.c.action == "auth.lockout",
                                                                              AUDIT.c.target_type == "user"))]
    assert [d["locked_s"] for d in locks] == [60, 120]


def test_a_client_address_is_locked_whatever_names_it_tries(engine: Engine, app: FastAPI) -> None:
    guesser = TestClient(app, client=("203.0.113.7", 40000))
    statuses = [_attempt(guesser, f"user{i}", "password guess").status_code for i in range(5)]
    assert statuses == [401, 401, 401, 401, 429]
    assert _attempt(guesser, "gs", PASSWORD).status_code == 429  # the address is locked for every name
    colleague = TestClient(app, client=("198.51.100.2", 40000))
    assert _attempt(colleague, "gs", PASSWORD).status_code == 303  # other addresses are not


def test_an_administrator_can_lift_a_lock(engine: Engine, app: FastAPI) -> None:
    client = TestClient(app)
    for i in range(3):
        _attempt(client, "gs", f"wrong {i}")
    make_user(engine, "admin", "admin")
    admin = sign_in(app, "admin")
    res = admin.form("/admin/users/gs/unlock", {})
    assert res.status_code == 303 and _lock(engine, "user", "gs") is None
    assert _attempt(client, "gs", PASSWORD).status_code == 303


def _writes(app: FastAPI) -> list[tuple[str, str]]:
    skip = {"/login", "/logout"}
    return [(m, p) for m, p in app_routes(app) if m not in ("GET", "HEAD") and p not in skip
            and not RULES[(m, p)].device]


def test_every_cookie_authenticated_write_needs_the_csrf_token(engine: Engine, app: FastAPI) -> None:
    make_user(engine, "admin", "admin")
    make_user(engine, "cb", "official", official="PA-CB001")
    people = {"admin": sign_in(app, "admin"), "official": sign_in(app, "cb")}
    refused = []
    for method, path in _writes(app):
        url = re.sub(r"\{[^}]+\}", "1", path)
        rule = RULES[(method, path)]
        who = people["admin" if "admin" in rule.allowed else "official"]  # someone the scope check lets through
        for token in (None, "forged-token"):
            if rule.page:
                data = {**(rule.body or {}), **({"csrf": token} if token else {})}
                res = who.client.request(method, url, data=data, follow_redirects=False)
            else:
                headers = {"X-CSRF-Token": token} if token else {}
                res = who.client.request(method, url, json=rule.body, headers=headers)
            if res.status_code != 403 or (not rule.page and res.json()["error"]["code"] != "csrf"):
                refused.append(f"{method} {path} with token {token!r}: {res.status_code}")
    assert not refused, "\n".join(refused)


def test_a_refused_write_changes_nothing_and_a_token_needs_no_csrf(engine: Engine, app: FastAPI) -> None:
    office_dev = make_office(engine, code="PZ")
    now = datetime.now(UTC)
    sign_in_official(engine, office_dev.counters[0], office_dev.officials[0], now - timedelta(hours=1))
    rid = review_of(engine, complaint(engine, SETTINGS, office_dev.devices[0], at=now - timedelta(minutes=5))).id
    gs = sign_in(app, "gs")
    forged = gs.client.post(f"/reviews/{rid}/confirm", data={"severity": "minor", "reason": "forged by a site"},
                            follow_redirects=False)
    assert forged.status_code == 403
    with engine.connect() as conn:
        assert conn.execute(select(REVIEWS.c.status).where(REVIEWS.c.id == rid)).scalar() == "pending"
    with engine.begin() as conn:
        bearer = registry.create_api_token(conn, name="admin-tool", scopes=["admin"], actor="test")
    ok = TestClient(app).post("/api/v1/counters/PZ-Q2/sign-in", json={"official": "PZ-CB002"},
                              headers={"Authorization": f"Bearer {bearer}"})
    assert ok.status_code == 201, ok.text  # no cookie, no CSRF risk: a bearer token is enough


def test_session_cookie_flags_and_a_disabled_user_is_signed_out(engine: Engine, app: FastAPI) -> None:
    client = TestClient(app)
    res = _attempt(client, "gs", PASSWORD)
    cookie = res.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "motcua_session=" in cookie
    assert client.get("/reviews").status_code == 200
    page = client.get("/reviews")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    with engine.begin() as conn:
        set_disabled(conn, username="gs", disabled=True, actor="test", reason="left the unit")
    gone = client.get("/reviews", follow_redirects=False)
    assert gone.status_code == 303 and gone.headers["location"].startswith("/login")
    assert _attempt(client, "gs", PASSWORD).status_code == 401  # and cannot sign in again
