"""What every console page shares: templates with i18n, who may open it, CSRF on forms, errors, headers.

Pages are for people with a session cookie: a bearer token (an HR system, a queue system) never opens
the console. A page names the scopes it needs; without a session the reader goes to the login form,
with one but without the scope they get a 403 page saying so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.api import i18n
from server.api.auth import Principal, csrf_ok, csrf_token, current_principal

templates = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))
i18n.install(templates.env)

# Only our own origin: no inline script, no external anything. Inline SVG and its presentation
# attributes are not scripts or style sheets, so the charts need no exception.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self'; "
       "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


def N_(message: str) -> str:
    """Marks a message for extraction (pybabel -k N_) where it is translated later, at rendering."""
    return message


NAV = [  # (path, label, scope): the menu shows what the reader may open
    ("/reviews", N_("Review queue"), "review:read"),
    ("/unattributed", N_("Unattributed"), "events:attribute"),
    ("/dashboard", N_("Overview"), "read"),
    ("/devices", N_("Devices"), "read"),
    ("/", N_("Units"), "read"),
    ("/audit", N_("Audit trail"), "audit:read"),
    ("/admin/users", N_("Users"), "admin"),
    ("/me", N_("My record"), "own:read"),
]


class PageError(Exception):
    """Shown as an error page: an HTTP status and an English message (translated when rendered)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class LoginRequired(Exception):
    pass


def page_user(request: Request, *scopes: str) -> Principal:
    """The signed-in person, who must hold one of `scopes` (none given: any signed-in person)."""
    who = current_principal(request)
    if who is None or not who.via_cookie:
        raise LoginRequired
    if scopes and not any(who.has(s) for s in scopes):
        raise PageError(403, "Your role does not allow this page.")
    return who


def check_form(request: Request, token: str) -> None:
    """Every form carries the session's CSRF token (a hidden field): another site cannot post for you."""
    if not csrf_ok(request, token):
        raise PageError(403, "The form has expired. Reload the page and try again.")


def lang_link(request: Request, locale: str) -> str:
    params = {k: v for k, v in request.query_params.items() if k != "lang"}
    return f"{request.url.path}?{urlencode({**params, 'lang': locale})}"


def render(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
    """A page in the reader's language; a ?lang= choice is remembered in a cookie."""
    locale = i18n.locale_of(request)
    who = context.get("who")
    nav = [(path, label) for path, label, scope in NAV if who is not None and who.has(scope)]
    ctx = {"locale": locale, "zone": request.app.state.settings.zone, "csrf": csrf_token(request), "nav": nav,
           "other_lang": "en" if locale == "vi" else "vi", "lang_link": lambda loc: lang_link(request, loc),
           "path": request.url.path, **context}
    response = templates.TemplateResponse(request, name, ctx, status_code=status)
    if request.query_params.get("lang") in i18n.LOCALES:
        response.set_cookie(i18n.COOKIE, locale, max_age=365 * 86400, samesite="lax", httponly=True)
    return response


def tr(request: Request, message: str) -> str:
    """`message` in the reader's language (for texts built in code, like error messages)."""
    return i18n.gettext(i18n.locale_of(request), message)


def back(path: str, **params: Any) -> RedirectResponse:
    """After a form: back to a page (POST/redirect/GET, so a reload does not post again)."""
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return RedirectResponse(f"{path}?{query}" if query else path, status_code=303)


class SecurityHeaders:
    """Pure ASGI middleware (streams, such as clip media, pass through untouched): nosniff and referrer
    policy everywhere; CSP, no framing and no caching on HTML pages."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Referrer-Policy", "same-origin")
                if headers.get("content-type", "").startswith("text/html"):
                    headers.setdefault("Content-Security-Policy", CSP)
                    headers.setdefault("X-Frame-Options", "DENY")
                    headers.setdefault("Cache-Control", "no-store")
            await send(message)

        await self.app(scope, receive, with_headers)


def install(app: FastAPI) -> None:
    """Error pages and security headers for the console."""
    app.add_middleware(SecurityHeaders)

    @app.exception_handler(LoginRequired)
    async def _login(request: Request, _exc: LoginRequired) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target)}", status_code=303)

    @app.exception_handler(PageError)
    async def _page_error(request: Request, exc: PageError) -> Response:
        who = current_principal(request)
        return render(request, "error.html", {"who": who if who and who.via_cookie else None,
                                              "message": tr(request, exc.message), "status": exc.status},
                      status=exc.status)


__all__ = ["HTMLResponse", "LoginRequired", "PageError", "back", "check_form", "install", "page_user", "render",
           "templates", "tr"]
