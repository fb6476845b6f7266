"""Console pages for administrators: the audit trail (per item, per user, CSV, chain check) and users
(role changes, units, disabling, unlocking) — every change audited."""

from __future__ import annotations

from datetime import date, datetime, time
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from server.api.pages import back, check_form, page_user, render
from server.api.routes.officials import _cursor as parse_id_cursor  # the API's id cursor rule
from server.audit_chain import verify
from server.audit_views import AuditFilter, audit_page
from server.login_throttle import unlock
from server.registry import RegistryError
from server.roles import ROLES
from server.users import list_users, set_disabled, set_role

router = APIRouter(include_in_schema=False)
PAGE = 100


def _day(value: date | None, zone: object, end: bool = False) -> datetime | None:
    if value is None:
        return None
    return datetime.combine(value, time.max if end else time.min, tzinfo=zone)  # type: ignore[arg-type]


@router.get("/audit", response_class=HTMLResponse)
def audit(request: Request, actor: str = "", action: str = "", target_type: str = "", target_id: str = "",
          since: date | None = None, until: date | None = None, before: str | None = None,
          check: bool = False) -> Response:
    who = page_user(request, "audit:read")
    zone = request.app.state.settings.zone
    where = AuditFilter(actor=actor or None, action=action or None, target_type=target_type or None,
                        target_id=target_id or None, since=_day(since, zone), until=_day(until, zone, end=True))
    with request.app.state.engine.connect() as conn:
        items = audit_page(conn, where=where, before_id=parse_id_cursor(before) if before else None, limit=PAGE)
        report = verify(conn) if check else None
    query = urlencode({k: v for k, v in {"actor": actor, "action": action, "target_type": target_type,
                                         "target_id": target_id}.items() if v})
    return render(request, "audit.html", {
        "who": who, "items": items, "report": report, "query": query,
        "filters": {"actor": actor, "action": action, "target_type": target_type, "target_id": target_id,
                    "since": since, "until": until},
        "next_before": items[-1]["id"] if len(items) == PAGE else None})


@router.get("/admin/users", response_class=HTMLResponse)
def users(request: Request, done: str | None = None, error: str | None = None) -> Response:
    who = page_user(request, "admin")
    with request.app.state.engine.connect() as conn:
        people = list_users(conn)
    return render(request, "users.html", {"who": who, "people": people, "roles": ROLES, "done": done,
                                          "error": error}, status=200 if error is None else 422)


def _codes(text: str) -> list[str]:
    return [c for c in (part.strip() for part in text.replace(";", ",").split(",")) if c]


@router.post("/admin/users/{username}/role")
def change_role(username: str, request: Request, csrf: str = Form(""), role: str = Form(""),
                units: str = Form(""), official: str = Form("")) -> Response:
    check_form(request, csrf)
    who = page_user(request, "admin")
    try:
        with request.app.state.engine.begin() as conn:
            set_role(conn, username=username, role=role, actor=who.name, units=_codes(units),
                     official=official.strip() or None)
    except RegistryError as exc:
        return back("/admin/users", error=str(exc))
    return back("/admin/users", done=username)


@router.post("/admin/users/{username}/state")
def change_state(username: str, request: Request, csrf: str = Form(""), disabled: bool = Form(False),
                 reason: str = Form("")) -> Response:
    check_form(request, csrf)
    who = page_user(request, "admin")
    if len(reason.strip()) < 5:
        return back("/admin/users", error="reason_required")
    try:
        with request.app.state.engine.begin() as conn:
            set_disabled(conn, username=username, disabled=disabled, actor=who.name, reason=reason.strip())
    except RegistryError as exc:
        return back("/admin/users", error=str(exc))
    return back("/admin/users", done=username)


@router.post("/admin/users/{username}/unlock")
def unlock_user(username: str, request: Request, csrf: str = Form("")) -> Response:
    check_form(request, csrf)
    who = page_user(request, "admin")
    with request.app.state.engine.begin() as conn:
        unlock(conn, username=username, actor=who.name)
    return back("/admin/users", done=username)
