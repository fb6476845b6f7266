"""Server-rendered pages (Vietnamese): sign-in, the list of units, a unit's live page.

Nothing is loaded from the internet: styles and scripts are served from server/api/static.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from server import queries
from server.api.auth import csrf_ok, csrf_token, current_principal
from server.users import check_password

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=str(Path(__file__).resolve().parent.parent / "templates"))


def _safe_next(target: str | None) -> str:
    # Only same-site paths: "//evil.example" or "https://..." would make the login an open redirect.
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _login_redirect(request: Request) -> RedirectResponse:
    return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/") -> Response:
    return templates.TemplateResponse(request, "login.html", {"csrf": csrf_token(request), "next": _safe_next(next),
                                                              "error": None})


@router.post("/login", response_class=HTMLResponse)
def login(request: Request, username: str = Form(...), password: str = Form(...), csrf: str = Form(""),
          next: str = Form("/")) -> Response:
    if not csrf_ok(request, csrf):
        return templates.TemplateResponse(request, "login.html", {"csrf": csrf_token(request), "next": _safe_next(next),
                                          "error": "Phiên đăng nhập đã hết hạn, vui lòng thử lại."}, status_code=403)
    with request.app.state.engine.connect() as conn:
        user = check_password(conn, username=username, password=password)
    if user is None:
        return templates.TemplateResponse(request, "login.html", {"csrf": csrf_token(request), "next": _safe_next(next),
                                          "error": "Sai tên đăng nhập hoặc mật khẩu."}, status_code=401)
    request.session.clear()  # a fresh session on login: no fixation
    request.session["uid"] = user[0]
    csrf_token(request)
    return RedirectResponse(_safe_next(next), status_code=303)


@router.post("/logout")
def logout(request: Request, csrf: str = Form("")) -> Response:
    if csrf_ok(request, csrf):
        request.session.clear()
    return RedirectResponse("/login", status_code=303)


@router.get("/", response_class=HTMLResponse)
def index(request: Request) -> Response:
    who = current_principal(request)
    if who is None or "read" not in who.scopes:
        return _login_redirect(request)
    with request.app.state.engine.connect() as conn:
        units = queries.units(conn)
    return templates.TemplateResponse(request, "index.html", {"units": units, "who": who,
                                                              "csrf": csrf_token(request)})


@router.get("/units/{code}", response_class=HTMLResponse)
def unit_page(code: str, request: Request) -> Response:
    who = current_principal(request)
    if who is None or "read" not in who.scopes:
        return _login_redirect(request)
    return templates.TemplateResponse(request, "unit.html", {"code": code, "who": who, "csrf": csrf_token(request)})
