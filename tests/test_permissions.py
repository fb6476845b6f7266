"""The permission matrix: every route of the app × every role, on both databases.

Routes are enumerated from the app itself, so a new route without an entry in RULES fails the test.
For each route and role: allowed → neither 401/403 nor a 5xx (nor the login redirect for a page);
denied → 401 (API, anonymous), the login redirect (page, no session) or 403. Scoped routes are called
a second time with the other unit's records: a supervisor, unit head or official of unit A gets 403.
Every response a scoped person is allowed to see is checked to hold nothing of unit B ("not listed"),
and an official's nothing of a colleague's record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, insert, select, update
from starlette.routing import Mount

from server import registry
from server.api.app import create_app
from server.clips.service import ClipService
from server.db.models import CLIPS, QUARANTINE, REVIEWS, TOKENS, ClipState, DeviceKind, RenditionState
from server.db.types import utcnow
from server.settings import Settings
from tests.utils.console import Browser, complaint, make_user, review_of, sign_in
from tests.utils.factories import Office, make_office
from tests.utils.factories import sign_in as sign_in_official

ROLES = ("anonymous", "admin", "supervisor", "unit_head", "official", "viewer", "hr_token")
SCOPED = {"supervisor", "unit_head", "official"}  # limited to unit A (the official: to their own record)
PUBLIC = frozenset(ROLES)
NOBODY: frozenset[str] = frozenset()
ADMIN = frozenset({"admin"})
READ = frozenset({"admin", "supervisor", "unit_head", "viewer"})
REVIEW = frozenset({"admin", "supervisor", "unit_head"})
DECIDE = frozenset({"admin", "supervisor"})
HR = frozenset({"admin", "hr_token"})
TASKS = frozenset({"admin", "unit_head"})
NOW = datetime.now(UTC).replace(microsecond=0)


@dataclass(frozen=True)
class Rule:
    allowed: frozenset[str]
    a: dict[str, str] = field(default_factory=dict)  # path parameters for unit A's records
    b: dict[str, str] | None = None  # and for unit B's: called for scoped roles, who must get 403
    body: dict[str, Any] | None = None  # JSON body, or form fields for a page
    page: bool = False  # a console page: no session → login redirect; forms carry the CSRF token
    query: str = ""  # a query string the route needs
    device: bool = False  # signed by a device key: every person and token is refused (401)


# {placeholders} in bodies and params are filled from the fixture's ids (World.ids).
RULES: dict[tuple[str, str], Rule] = {
    ("GET", "/openapi.json"): Rule(PUBLIC), ("GET", "/docs"): Rule(PUBLIC),
    ("GET", "/docs/oauth2-redirect"): Rule(PUBLIC), ("GET", "/redoc"): Rule(PUBLIC),
    ("GET", "/healthz"): Rule(PUBLIC), ("GET", "/metrics"): Rule(PUBLIC), ("GET", "/static"): Rule(PUBLIC),
    ("POST", "/api/v1/counters/{code}/sign-in"): Rule(ADMIN, {"code": "PA-Q2"}, {"code": "PB-Q2"},
                                                     {"official": "{a_free_official}"}),
    ("POST", "/api/v1/counters/{code}/sign-out"): Rule(ADMIN, {"code": "PA-Q2"}, {"code": "PB-Q2"}, {}),
    ("POST", "/api/v1/sessions/batch"): Rule(ADMIN, body={"changes": [{"counter": "PA-Q2", "action": "sign_out"}]}),
    ("GET", "/api/v1/officials/{code}/ratings"): Rule(READ | {"official"}, {"code": "PA-CB001"},
                                                      {"code": "PB-CB001"}, query=f"period={NOW:%Y-%m}"),
    ("GET", "/api/v1/quarantine"): Rule(READ),
    ("GET", "/api/v1/quarantine/{qid}"): Rule(READ, {"qid": "{a_qid}"}, {"qid": "{b_qid}"}),
    ("POST", "/api/v1/quarantine/{qid}/attribute"): Rule(DECIDE, {"qid": "{a_qid}"}, {"qid": "{b_qid}"},
                                                         {"official": "PA-CB002", "reason": "camera shows her"}),
    ("GET", "/api/v1/devices"): Rule(READ),
    ("POST", "/api/v1/devices"): Rule(ADMIN, body={"counter": "PA-Q1", "kind": "simulated", "id": "pa-new-1"}),
    ("POST", "/api/v1/devices/{device_id}/revoke"): Rule(ADMIN, {"device_id": "pa-spare"}, body={"reason": "lost"}),
    ("GET", "/api/v1/units"): Rule(READ),
    ("GET", "/api/v1/units/{code}/live"): Rule(READ, {"code": "PA"}, {"code": "PB"}),
    ("GET", "/api/v1/clips"): Rule(READ),
    ("GET", "/api/v1/clips/{clip_id}"): Rule(READ, {"clip_id": "{a_clip}"}, {"clip_id": "{b_clip}"}),
    ("GET", "/api/v1/clips/{clip_id}/video"): Rule(DECIDE | {"official"}, {"clip_id": "{a_clip}"},
                                                   {"clip_id": "{b_clip}"}),
    ("GET", "/api/v1/clips/{clip_id}/thumbnail"): Rule(DECIDE | {"official"}, {"clip_id": "{a_clip}"},
                                                       {"clip_id": "{b_clip}"}),
    ("GET", "/api/v1/clips/{clip_id}/original"): Rule(ADMIN, {"clip_id": "{a_clip}"}),
    ("POST", "/api/v1/devices/{device_id}/clip-requests"): Rule(ADMIN, {"device_id": "pa-dev-1"}, body={}),
    ("PUT", "/api/v1/officials/{code}/credentials/{method}"): Rule(ADMIN, {"code": "PA-CB003", "method": "pin"},
                                                                  body={"secret": "2468"}),
    ("PUT", "/api/v1/device/clips/{clip_id}"): Rule(NOBODY, {"clip_id": "{a_clip}"}, device=True),
    ("PATCH", "/api/v1/device/clips/{clip_id}"): Rule(NOBODY, {"clip_id": "{a_clip}"}, device=True),
    ("HEAD", "/api/v1/device/clips/{clip_id}"): Rule(NOBODY, {"clip_id": "{a_clip}"}, device=True),
    ("GET", "/api/v1/device/clip-requests"): Rule(NOBODY, device=True),
    ("POST", "/api/v1/device/clip-requests/{request_id}/taken"): Rule(NOBODY, {"request_id": "1"}, device=True),
    ("GET", "/api/v1/reviews"): Rule(REVIEW | {"official"}),
    ("GET", "/api/v1/reviews/{review_id}"): Rule(REVIEW | {"official"}, {"review_id": "{a_review}"},
                                                 {"review_id": "{b_review}"}),
    ("POST", "/api/v1/reviews/{review_id}/viewed"): Rule(REVIEW | {"official"}, {"review_id": "{a_review}"},
                                                         {"review_id": "{b_review}"}, {}),
    ("POST", "/api/v1/reviews/{review_id}/confirm"): Rule(DECIDE, {"review_id": "{a_review}"},
                                                          {"review_id": "{b_review}"},
                                                          {"severity": "minor", "reason": "rude to a citizen"}),
    ("POST", "/api/v1/reviews/{review_id}/dismiss"): Rule(DECIDE, {"review_id": "{a_review}"},
                                                          {"review_id": "{b_review}"}, {"reason": "no grounds"}),
    ("POST", "/api/v1/reviews/{review_id}/contest"): Rule(frozenset({"official"}), {"review_id": "{a_confirmed}"},
                                                          {"review_id": "{b_confirmed}"}, {"reason": "not me"}),
    ("POST", "/api/v1/reviews/{review_id}/contest-decision"): Rule(
        DECIDE, {"review_id": "{a_confirmed}"}, {"review_id": "{b_confirmed}"},
        {"outcome": "uphold", "reason": "seen the clip again"}),
    ("GET", "/api/v1/reviews/{review_id}/audit"): Rule(REVIEW, {"review_id": "{a_review}"},
                                                       {"review_id": "{b_review}"}),
    ("GET", "/api/v1/audit"): Rule(ADMIN), ("GET", "/api/v1/audit/export.csv"): Rule(ADMIN),
    ("GET", "/api/v1/audit/verify"): Rule(ADMIN),
    ("GET", "/api/v1/alerts"): Rule(READ), ("GET", "/api/v1/dashboards/units"): Rule(READ),
    ("GET", "/api/v1/dashboards/units/{code}/heatmap"): Rule(READ, {"code": "PA"}, {"code": "PB"}),
    ("GET", "/api/v1/dashboards/officials/{code}/trend"): Rule(READ | {"official"}, {"code": "PA-CB001"},
                                                               {"code": "PB-CB001"}),
    # The scoring layer: HR systems read scores; unit heads enter task results; admins run the month.
    ("GET", "/api/v1/hr/scores"): Rule(HR, query=f"period={NOW:%Y-%m}"),
    ("GET", "/api/v1/hr/scores/export"): Rule(HR, query=f"period={NOW:%Y-%m}&format=csv"),
    ("GET", "/api/v1/hr/scores/{official}"): Rule(HR, {"official": "PA-CB001"}, query=f"period={NOW:%Y-%m}"),
    ("GET", "/api/v1/hr/months/{period}"): Rule(HR, {"period": f"{NOW:%Y-%m}"}),
    ("GET", "/api/v1/hr/years/{year}"): Rule(HR, {"year": f"{NOW:%Y}"}),
    ("POST", "/api/v1/tasks"): Rule(TASKS, body={"mode": "merge", "rows": []}),
    ("POST", "/api/v1/tasks/csv"): Rule(TASKS, body={}),
    ("GET", "/api/v1/tasks/{period}/officials/{code}"): Rule(TASKS, {"period": f"{NOW:%Y-%m}", "code": "PA-CB001"},
                                                             {"period": f"{NOW:%Y-%m}", "code": "PB-CB001"}),
    ("PUT", "/api/v1/tasks/{period}/officials/{code}"): Rule(
        TASKS, {"period": f"{NOW:%Y-%m}", "code": "PA-CB001"}, {"period": f"{NOW:%Y-%m}", "code": "PB-CB001"},
        {"tasks": [{"key": "T1", "label": "Hồ sơ", "points": "4"}]}),
    ("POST", "/api/v1/months/{period}/close"): Rule(ADMIN, {"period": f"{NOW:%Y-%m}"}, body={}),
    ("POST", "/api/v1/months/{period}/finalize"): Rule(ADMIN, {"period": f"{NOW:%Y-%m}"}, body={}),
    ("POST", "/api/v1/months/{period}/amendments"): Rule(ADMIN, {"period": f"{NOW:%Y-%m}"},
                                                         body={"unit": "PA", "reason": "a task was missing"}),
    ("GET", "/login"): Rule(PUBLIC, page=True),
    ("POST", "/login"): Rule(PUBLIC, body={"username": "nobody-at-all", "password": "wrong"}, page=True),
    ("POST", "/logout"): Rule(PUBLIC, body={}, page=True),
    ("GET", "/"): Rule(READ | {"official"}, page=True),
    ("GET", "/units/{code}"): Rule(READ, {"code": "PA"}, {"code": "PB"}, page=True),
    ("GET", "/units/{code}/heatmap"): Rule(READ, {"code": "PA"}, {"code": "PB"}, page=True),
    ("GET", "/reviews"): Rule(REVIEW, page=True),
    ("GET", "/reviews/{review_id}"): Rule(REVIEW | {"official"}, {"review_id": "{a_review}"},
                                          {"review_id": "{b_review}"}, page=True),
    ("POST", "/reviews/{review_id}/confirm"): Rule(DECIDE, {"review_id": "{a_review}"}, {"review_id": "{b_review}"},
                                                   {"severity": "minor", "reason": "rude to a citizen"}, page=True),
    ("POST", "/reviews/{review_id}/dismiss"): Rule(DECIDE, {"review_id": "{a_review}"}, {"review_id": "{b_review}"},
                                                   {"reason": "no grounds"}, page=True),
    ("POST", "/reviews/{review_id}/contest"): Rule(frozenset({"official"}), {"review_id": "{a_confirmed}"},
                                                   {"review_id": "{b_confirmed}"}, {"reason": "not me"}, page=True),
    ("POST", "/reviews/{review_id}/contest-decision"): Rule(
        DECIDE, {"review_id": "{a_confirmed}"}, {"review_id": "{b_confirmed}"},
        {"outcome": "uphold", "reason": "seen the clip again"}, page=True),
    ("GET", "/unattributed"): Rule(DECIDE, page=True),
    ("POST", "/unattributed/{qid}"): Rule(DECIDE, {"qid": "{a_qid}"}, {"qid": "{b_qid}"},
                                          {"official": "PA-CB002", "reason": "camera shows her"}, page=True),
    ("GET", "/dashboard"): Rule(READ, page=True),
    ("GET", "/officials/{code}"): Rule(READ | {"official"}, {"code": "PA-CB001"}, {"code": "PB-CB001"}, page=True),
    ("GET", "/me"): Rule(frozenset({"official"}), page=True),
    ("GET", "/devices"): Rule(READ, page=True),
    ("GET", "/audit"): Rule(ADMIN, page=True),
    ("GET", "/admin/users"): Rule(ADMIN, page=True),
    ("POST", "/admin/users/{username}/role"): Rule(ADMIN, {"username": "victim"}, body={"role": "viewer"}, page=True),
    ("POST", "/admin/users/{username}/state"): Rule(ADMIN, {"username": "victim"},
                                                    body={"disabled": "true", "reason": "left the office"}, page=True),
    ("POST", "/admin/users/{username}/unlock"): Rule(ADMIN, {"username": "victim"}, body={}, page=True),
}


def app_routes(app: Any) -> list[tuple[str, str]]:
    """(method, path) of every route, through included routers (FastAPI ≥ 0.165 keeps them nested)."""
    def walk(routes: Any, prefix: str) -> Any:
        for r in routes:
            if type(r).__name__ == "_IncludedRouter":
                yield from walk(r.original_router.routes, prefix + r.include_context.prefix)
            elif isinstance(r, Mount):
                yield "GET", prefix + r.path
            else:
                methods = set(r.methods) - {"HEAD"} or {"HEAD"}
                yield from ((m, prefix + r.path) for m in sorted(methods))
    return list(walk(app.routes, ""))


@dataclass
class World:
    app: Any
    clients: dict[str, Browser | None]
    tokens: dict[str, dict[str, str]]
    ids: dict[str, str]


def _clip(engine: Engine, storage: Any, office: Office, tmp: Path, name: str) -> str:
    clip_id = (name * 32)[:32]
    kinds = (("renditions", "mp4"), ("thumbnails", "jpg"), ("originals", "mkv"))
    keys = {k: f"{k}/{clip_id}.{ext}" for k, ext in kinds}
    for key in keys.values():
        (tmp / "blob").write_bytes(b"\x00" * 64)
        storage.put_file(key, tmp / "blob", "application/octet-stream")
    with engine.begin() as conn:
        conn.execute(insert(CLIPS).values(
            id=clip_id, device_id=office.devices[0].id, counter_id=office.counters[0], state=ClipState.COMPLETE,
            manifest=b"{}", sha256="0" * 64, size=64, received=64, epoch=1, frames=1, width=1, height=1,
            privacy="none", original_key=keys["originals"], rendition_key=keys["renditions"],
            thumbnail_key=keys["thumbnails"], rendition_state=RenditionState.DONE, duration_ms=1000,
            created_at=utcnow()))
    return clip_id


def _unit(engine: Engine, settings: Settings, storage: Any, code: str, tmp: Path) -> dict[str, Any]:
    office = make_office(engine, counters=2, officials=3, code=code, kind=DeviceKind.SIMULATED)
    sign_in_official(engine, office.counters[0], office.officials[0], NOW - timedelta(hours=3))
    clip = _clip(engine, storage, office, tmp, code.lower()[-1])
    pending = review_of(engine, complaint(engine, settings, office.devices[0], at=NOW - timedelta(hours=2))).id
    # The clip shows the confirmed incident: its official may watch it (the evidence against them).
    confirmed = review_of(engine, complaint(engine, settings, office.devices[0], at=NOW - timedelta(hours=1),
                                            clip=clip)).id
    complaint(engine, settings, office.devices[1], at=NOW - timedelta(minutes=50))  # nobody at Q2: unattributed
    with engine.begin() as conn:
        conn.execute(update(REVIEWS).where(REVIEWS.c.id.in_([pending, confirmed])).values(
            official_id=office.officials[0]))
        conn.execute(update(REVIEWS).where(REVIEWS.c.id == confirmed).values(
            status="confirmed", severity="minor", decided_by="user:someone-else", decided_at=utcnow(),
            reason="seen"))
        qid = conn.execute(select(QUARANTINE.c.id).where(QUARANTINE.c.device_id == office.devices[1].id)).scalar()
    return {"clip": clip, "review": str(pending), "confirmed": str(confirmed), "qid": str(qid), "office": office}


@pytest.fixture
def world(engine: Engine, db_url: str, tmp_path: Path) -> World:
    settings = Settings(mode="demo", database_url=db_url, data_dir=tmp_path)
    clips = ClipService.from_settings(settings, engine, with_worker=False)
    a, b = (_unit(engine, settings, clips.storage, code, tmp_path) for code in ("PA", "PB"))
    with engine.begin() as conn:
        registry.provision_device(conn, counter_id=a["office"].counters[1], kind=DeviceKind.SIMULATED, actor="test",
                                  device_id="pa-spare")
        # The HR system's token holds the scoring layer's scope only: no console, none of these routes.
        conn.execute(insert(TOKENS).values(name="hr", token_sha256=registry.token_digest("mc_hr_token_value"),
                                           scopes="read:scores", created_at=utcnow()))
    app = create_app(settings, engine, clip_service=clips)
    for role, extra in (("admin", {}), ("supervisor", {"units": ("PA",)}), ("unit_head", {"units": ("PA",)}),
                        ("official", {"official": "PA-CB001"}), ("viewer", {})):
        make_user(engine, role, role, **extra)  # type: ignore[arg-type]
    make_user(engine, "victim", "supervisor", units=("PA",))
    clients: dict[str, Browser | None] = {r: sign_in(app, r) for r in ROLES if r not in ("anonymous", "hr_token")}
    clients["anonymous"] = clients["hr_token"] = None
    ids = {f"{k}_{v}": str(x[v]) for k, x in (("a", a), ("b", b)) for v in ("clip", "review", "confirmed", "qid")}
    ids["a_free_official"] = "PA-CB003"
    return World(app, clients, {"hr_token": {"Authorization": "Bearer mc_hr_token_value"}}, ids)


def _fill(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, str) and value.startswith("{") and value.endswith("}"):
        return ids[value[1:-1]]
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    return value


def _call(world: World, role: str, method: str, path: str, rule: Rule, params: dict[str, str]) -> Any:
    url = path.format(**_fill(params, world.ids)) + (f"?{rule.query}" if rule.query else "")
    if url == "/static":
        url = "/static/app.css"
    browser = world.clients[role]
    client = browser.client if browser else TestClient(world.app)
    headers = dict(world.tokens.get(role, {}))
    body = _fill(rule.body, world.ids) if rule.body is not None else None
    if rule.page and method == "POST":
        data = dict(body or {})
        if browser and path != "/logout":
            data["csrf"] = browser.csrf  # a genuine form: the CSRF token is there (CSRF is tested apart)
        return client.request(method, url, data=data, headers=headers, follow_redirects=False)
    if browser and method not in ("GET", "HEAD"):
        headers["X-CSRF-Token"] = browser.csrf
    return client.request(method, url, json=body, headers=headers, follow_redirects=False)


def _denied_as_expected(res: Any, role: str, rule: Rule) -> bool:
    if rule.device:
        return res.status_code == 401
    if rule.page:
        to_login = res.status_code == 303 and res.headers["location"].startswith("/login")
        if role in ("anonymous", "hr_token"):  # no session: to the login form (a form post: refused, no token)
            return to_login or (res.request.method == "POST" and res.status_code == 403)
        return res.status_code == 403
    return res.status_code == (401 if role == "anonymous" else 403)


def _allowed_as_expected(res: Any, rule: Rule) -> bool:
    if rule.allowed == PUBLIC:  # sign-in, sign-out, health: anything but a server error
        return res.status_code < 500
    if res.status_code in (401, 403) or res.status_code >= 500:
        return False
    return not (rule.page and res.status_code == 303 and res.headers["location"].startswith("/login"))


def _leaks(role: str, res: Any) -> str | None:
    text = res.text
    if role in SCOPED and ("PB-" in text or "pb-dev" in text or '"PB"' in text or ">PB<" in text):
        return "unit B"
    if role == "official" and "PA-CB002" in text:
        return "a colleague's record"
    return None


def test_every_route_has_a_rule() -> None:
    from sqlalchemy import create_engine

    routes = set(app_routes(create_app(Settings(mode="demo"), create_engine("sqlite://"))))
    assert routes - set(RULES) == set(), "a route without a permission rule: add it to RULES"
    assert set(RULES) - routes == set(), "a rule for a route that no longer exists"


def test_permission_matrix_over_every_route_and_role(world: World) -> None:
    problems = []
    for (method, path), rule in RULES.items():
        for role in ROLES:
            res = _call(world, role, method, path, rule, rule.a)
            ok = _allowed_as_expected(res, rule) if role in rule.allowed else _denied_as_expected(res, role, rule)
            if not ok:
                problems.append(f"{role:<10} {method} {path}: {res.status_code} {res.text[:100]!r}")
            elif role in rule.allowed and method == "GET" and (leak := _leaks(role, res)):
                problems.append(f"{role:<10} {method} {path}: shows {leak}")
            if rule.b is not None and role in SCOPED and role in rule.allowed:
                other = _call(world, role, method, path, rule, rule.b)
                if other.status_code != 403:
                    problems.append(f"{role:<10} {method} {path} for unit B: {other.status_code}, not 403")
    assert not problems, "\n".join(problems)


def test_lists_and_counts_leave_other_units_out(world: World) -> None:
    sup = world.clients["supervisor"]
    assert sup is not None
    get = sup.client.get
    assert [u["code"] for u in get("/api/v1/units").json()] == ["PA"]
    quarantine = get("/api/v1/quarantine").json()
    assert quarantine["open_by_reason"] == {"unattributed": 2} and len(quarantine["items"]) == 2  # rating + incident
    reviews = get("/api/v1/reviews?status=all").json()
    assert sum(reviews["counts"].values()) == 2 and {i["unit"] for i in reviews["items"]} == {"PA"}
    assert {d["id"] for d in get("/api/v1/devices").json()} == {"pa-dev-1", "pa-dev-2", "pa-spare"}
    assert [u["code"] for u in get("/api/v1/dashboards/units").json()["units"]] == ["PA"]
    assert {c["id"] for c in get("/api/v1/clips").json()["items"]} == {world.ids["a_clip"]}
    assert get("/api/v1/reviews?unit=PB").status_code == 403
    admin = world.clients["admin"]
    assert admin is not None
    assert sum(admin.client.get("/api/v1/reviews?status=all").json()["counts"].values()) == 4
