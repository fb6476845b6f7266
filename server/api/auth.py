"""Who is calling: a machine client with a bearer token, or a person with a session cookie.

Scopes are the unit of permission. Cookie-authenticated writes must echo the session's CSRF token in
X-CSRF-Token (forms: a hidden field), so another site cannot make a signed-in browser act.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from fastapi import Depends, Request
from sqlalchemy import select, update

from server.api.errors import ApiError
from server.db.models import TOKEN_UNITS, TOKENS, USER_UNITS, USERS
from server.db.types import utcnow
from server.registry import token_digest

IMPLIED = {"admin": {"read", "sessions:write", "read:scores", "tasks:write"}}  # holding a scope grants these too
ROLE_SCOPES = {"admin": frozenset({"admin"}), "viewer": frozenset({"read"})}
UNSCOPED_ROLES = {"admin", "viewer"}  # see every unit; any other role sees only its user_units rows
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
TOKEN_USE_RESOLUTION = timedelta(minutes=5)


def expand(scopes: set[str] | frozenset[str]) -> frozenset[str]:
    """Scopes with the ones they imply."""
    return frozenset(scopes).union(*(IMPLIED.get(s, set()) for s in scopes))


@dataclass(frozen=True, slots=True)
class Principal:
    name: str  # as written to the audit log: "token:<name>" or "user:<username>"
    scopes: frozenset[str]
    via_cookie: bool
    units: frozenset[int] | None = None  # the units this caller may see; None = every unit
    official_id: int | None = None  # a user with role "official": the official whose record it is

    def sees_unit(self, unit_id: int) -> bool:
        return self.units is None or unit_id in self.units


def csrf_token(request: Request) -> str:
    """The session's CSRF token, created on first use."""
    token = request.session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(24)
        request.session["csrf"] = token
    return str(token)


def csrf_ok(request: Request, presented: str | None) -> bool:
    expected = request.session.get("csrf")
    return bool(expected and presented and hmac.compare_digest(str(expected), presented))


def _from_token(request: Request, header: str) -> Principal:
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise ApiError(401, "unauthenticated", "use 'Authorization: Bearer <token>'")
    engine = request.app.state.engine
    with engine.begin() as conn:
        row = conn.execute(select(TOKENS.c.id, TOKENS.c.name, TOKENS.c.scopes, TOKENS.c.last_used_at)
                           .where(TOKENS.c.token_sha256 == token_digest(token.strip()),
                                  TOKENS.c.revoked_at.is_(None))).first()
        if row is None:
            raise ApiError(401, "unauthenticated", "unknown or revoked token; ask an admin for a new one "
                                                   "(`motcua admin token-create`)")
        now = utcnow()
        if row.last_used_at is None or now - row.last_used_at > TOKEN_USE_RESOLUTION:
            # "Last used" to within minutes is what an admin needs; a write per request is not.
            conn.execute(update(TOKENS).where(TOKENS.c.id == row.id).values(last_used_at=now))
        units = frozenset(conn.scalars(select(TOKEN_UNITS.c.unit_id).where(TOKEN_UNITS.c.token_id == row.id)))
    return Principal(f"token:{row.name}", expand(set(row.scopes.split())), via_cookie=False,
                     units=units or None)


def _from_session(request: Request) -> Principal | None:
    uid = request.session.get("uid")
    if uid is None:
        return None
    with request.app.state.engine.connect() as conn:
        row = conn.execute(select(USERS.c.username, USERS.c.role, USERS.c.disabled, USERS.c.official_id)
                           .where(USERS.c.id == uid)).first()
        units = None if row is None or row.role in UNSCOPED_ROLES else frozenset(
            conn.scalars(select(USER_UNITS.c.unit_id).where(USER_UNITS.c.user_id == uid)))
    if row is None or row.disabled:
        request.session.clear()
        return None
    return Principal(f"user:{row.username}", expand(ROLE_SCOPES.get(row.role, frozenset())), via_cookie=True,
                     units=units, official_id=row.official_id)


def current_principal(request: Request) -> Principal | None:
    header = request.headers.get("authorization")
    return _from_token(request, header) if header else _from_session(request)


def require(scope: str) -> Callable[..., Principal]:
    """A dependency that admits callers holding `scope`."""

    def check(request: Request, who: Principal | None = Depends(current_principal)) -> Principal:  # noqa: B008
        if who is None:
            raise ApiError(401, "unauthenticated", "sign in at /login or send 'Authorization: Bearer <token>'")
        if scope not in who.scopes:
            raise ApiError(403, "forbidden", f"this needs the {scope!r} scope")
        if who.via_cookie and request.method not in SAFE_METHODS and \
                not csrf_ok(request, request.headers.get("x-csrf-token")):
            raise ApiError(403, "csrf", "missing or wrong X-CSRF-Token header; reload the page")
        return who

    return check
