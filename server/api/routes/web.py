"""Sign-in and sign-out (with rate limiting and lockout), the list of units, a unit's live page.

Nothing is loaded from the internet: styles and scripts are served from server/api/static.
"""

from __future__ import annotations

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from server import queries
from server.api.auth import Principal, csrf_ok, csrf_token
from server.api.pages import PageError, page_user, render, tr
from server.api.scope import unit_of_code
from server.db.types import utcnow
from server.login_throttle import active_lock, record_failure, record_success
from server.users import check_password

router = APIRouter(include_in_schema=False)


def _safe_next(target: str | None) -> str:
    # Only same-site paths: "//evil.example" or "https://..." would make the login an open redirect.
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _login_page(request: Request, next_: str, error: str | None, status: int = 200,
                retry_after: int | None = None) -> Response:
    response = render(request, "login.html", {"next": _safe_next(next_), "error": error, "who": None},
                      status=status)
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/") -> Response:
    csrf_token(request)
    return _login_page(request, next, None)


def _locked_message(request: Request, seconds: int) -> str:
    minutes = max(1, (seconds + 59) // 60)
    return tr(request, "Too many failed sign-ins. Try again in %(minutes)s minute(s), or ask an administrator "
                       "to unlock the account.") % {"minutes": minutes}


@router.post("/login", response_class=HTMLResponse)
def login(request: Request, username: str = Form(...), password: str = Form(...), csrf: str = Form(""),
          next: str = Form("/")) -> Response:
    if not csrf_ok(request, csrf):
        return _login_page(request, next, tr(request, "The sign-in form expired. Please try again."), 403)
    now, rules = utcnow(), request.app.state.settings.login
    address = request.client.host if request.client else None
    engine = request.app.state.engine
    with engine.begin() as conn:
        lock = active_lock(conn, username=username, address=address, now=now)
    if lock is not None:  # the password is not even looked at while locked
        return _login_page(request, next, _locked_message(request, lock.seconds_left(now)), 429,
                           retry_after=lock.seconds_left(now))
    with engine.connect() as conn:
        user = check_password(conn, username=username, password=password)
    with engine.begin() as conn:
        if user is None:
            started = record_failure(conn, username=username, address=address, now=now, rules=rules)
        else:
            record_success(conn, username=username)
    if user is None:
        if started is not None:
            return _login_page(request, next, _locked_message(request, started.seconds_left(now)), 429,
                               retry_after=started.seconds_left(now))
        return _login_page(request, next, tr(request, "Wrong user name or password."), 401)
    request.session.clear()  # a fresh session on login: no fixation
    request.session["uid"] = user[0]
    csrf_token(request)
    return RedirectResponse(_safe_next(next if next != "/" else _home(user[1])), status_code=303)


def _home(role: str) -> str:
    return {"supervisor": "/reviews", "official": "/me", "unit_head": "/dashboard"}.get(role, "/")


@router.post("/logout")
def logout(request: Request, csrf: str = Form("")) -> Response:
    if csrf_ok(request, csrf):
        request.session.clear()
    return RedirectResponse("/login", status_code=303)


@router.get("/", response_class=HTMLResponse)
def index(request: Request) -> Response:
    who = page_user(request)
    if not who.has("read"):
        return RedirectResponse("/me" if who.has("own:read") else "/login", status_code=303)
    with request.app.state.engine.connect() as conn:
        units = queries.units(conn, within=who.units)
    return render(request, "index.html", {"units": units, "who": who})


def _unit_page_access(request: Request, code: str) -> Principal:
    who = page_user(request, "read")
    with request.app.state.engine.connect() as conn:
        unit = unit_of_code(conn, code)
    if unit is None:
        raise PageError(404, "No such unit.")
    if not who.sees_unit(unit):
        raise PageError(403, "This unit is outside your scope.")
    return who


@router.get("/units/{code}", response_class=HTMLResponse)
def unit_page(code: str, request: Request) -> Response:
    who = _unit_page_access(request, code)
    return render(request, "unit.html", {"code": code, "who": who,
                                         "labels": request.app.state.settings.devices.scale_labels})
