"""Console users: accounts, roles, the units a scoped role sees, passwords. Every change is audited.

Keyword-only data-layer functions (no HTTP, no CLI). Passwords are Argon2id hashes (argon2-cffi); no
account exists until an administrator creates one, so there is no default password anywhere.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, delete, insert, select, update

from server.audit import record
from server.db.models import OFFICIALS, UNITS, USER_UNITS, USERS
from server.db.types import utcnow
from server.registry import RegistryError
from server.roles import ROLES, UNIT_ROLES

MIN_PASSWORD = 12  # NIST SP 800-63B asks for at least 8; a shared office terminal deserves more
USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
_hasher = PasswordHasher()  # Argon2id with the library's current recommended parameters


def _check_password(username: str, password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise RegistryError("invalid", f"passwords need at least {MIN_PASSWORD} characters")
    if password.lower() == username.lower():
        raise RegistryError("invalid", "the password must not be the user name")


def _links(conn: Connection, role: str, units: Sequence[str], official: str | None) -> tuple[list[int], int | None]:
    """The unit ids and official id a role needs, checked: what each role may and must be tied to."""
    if role not in ROLES:
        raise RegistryError("invalid", f"unknown role {role!r}; choose from {list(ROLES)}")
    if role in UNIT_ROLES and not units:
        raise RegistryError("invalid", f"a {role} needs at least one unit (--unit CODE)")
    if role not in UNIT_ROLES and units:
        raise RegistryError("invalid", f"a {role} is not limited to units; leave out --unit")
    if (role == "official") != (official is not None):
        raise RegistryError("invalid", "an official account needs --official CODE (and only it does)")
    unit_ids = []
    for code in units:
        found = conn.execute(select(UNITS.c.id).where(UNITS.c.code == code)).scalar()
        if found is None:
            raise RegistryError("not_found", f"no unit {code!r} (see `motcua admin list`)")
        unit_ids.append(int(found))
    official_id = None
    if official is not None:
        official_id = conn.execute(select(OFFICIALS.c.id).where(OFFICIALS.c.code == official)).scalar()
        if official_id is None:
            raise RegistryError("not_found", f"no official {official!r} (see `motcua admin list`)")
    return sorted(set(unit_ids)), official_id


def _user(conn: Connection, username: str) -> Any:
    row = conn.execute(select(USERS).where(USERS.c.username == username).with_for_update()).first()
    if row is None:
        raise RegistryError("not_found", f"no user {username!r} (see `motcua admin user-list`)")
    return row


def _save_units(conn: Connection, user_id: int, unit_ids: list[int]) -> None:
    conn.execute(delete(USER_UNITS).where(USER_UNITS.c.user_id == user_id))
    if unit_ids:
        conn.execute(insert(USER_UNITS), [{"user_id": user_id, "unit_id": u} for u in unit_ids])


def create_user(conn: Connection, *, username: str, password: str, role: str, actor: str,
                units: Sequence[str] = (), official: str | None = None) -> int:
    """Create a console user; supervisors and unit heads need their units, an official their record."""
    if not USERNAME.match(username):
        raise RegistryError("invalid", "user names are 1-64 letters, digits and . _ @ - (starting with a letter "
                                       "or digit)")
    _check_password(username, password)
    unit_ids, official_id = _links(conn, role, units, official)
    if conn.execute(select(USERS.c.id).where(USERS.c.username == username)).first() is not None:
        raise RegistryError("conflict", f"user {username!r} exists")
    new_id = int(conn.execute(insert(USERS).values(
        username=username, password_hash=_hasher.hash(password), role=role, disabled=False, created_at=utcnow(),
        official_id=official_id).returning(USERS.c.id)).scalar_one())
    _save_units(conn, new_id, unit_ids)
    record(conn, actor=actor, action="user.create", target_type="user", target_id=username,
           detail={"role": role, "units": sorted(units), "official": official})
    return new_id


def check_password(conn: Connection, *, username: str, password: str) -> tuple[int, str] | None:
    """(user id, role) when the password is right and the user enabled; None otherwise."""
    row = conn.execute(select(USERS.c.id, USERS.c.password_hash, USERS.c.role, USERS.c.disabled)
                       .where(USERS.c.username == username)).first()
    if row is None:
        _hasher.hash(password)  # same cost either way: do not reveal which usernames exist by timing
        return None
    try:
        _hasher.verify(row.password_hash, password)
    except (VerificationError, InvalidHashError):
        return None
    return None if row.disabled else (row.id, row.role)


def _described(conn: Connection, row: Any) -> dict[str, Any]:
    units = sorted(conn.scalars(select(UNITS.c.code).join(USER_UNITS, USER_UNITS.c.unit_id == UNITS.c.id)
                                .where(USER_UNITS.c.user_id == row.id)))
    official = None if row.official_id is None else conn.execute(
        select(OFFICIALS.c.code).where(OFFICIALS.c.id == row.official_id)).scalar()
    return {"role": row.role, "units": units, "official": official}


def set_role(conn: Connection, *, username: str, role: str, actor: str, units: Sequence[str] = (),
             official: str | None = None) -> dict[str, Any]:
    """Change a user's role and its units or official; returns {"from": ..., "to": ...} (audited)."""
    row = _user(conn, username)
    before = _described(conn, row)
    unit_ids, official_id = _links(conn, role, units, official)
    conn.execute(update(USERS).where(USERS.c.id == row.id).values(role=role, official_id=official_id))
    _save_units(conn, row.id, unit_ids)
    change = {"from": before, "to": {"role": role, "units": sorted(units), "official": official}}
    record(conn, actor=actor, action="user.role", target_type="user", target_id=username, detail=change)
    return change


def set_disabled(conn: Connection, *, username: str, disabled: bool, actor: str, reason: str) -> None:
    """Disable (sessions end at their next request) or enable a user (audited with the reason)."""
    row = _user(conn, username)
    if bool(row.disabled) == disabled:
        raise RegistryError("conflict", f"user {username!r} is already {'disabled' if disabled else 'enabled'}")
    conn.execute(update(USERS).where(USERS.c.id == row.id).values(disabled=disabled))
    record(conn, actor=actor, action="user.disable" if disabled else "user.enable", target_type="user",
           target_id=username, detail={"reason": reason})


def set_password(conn: Connection, *, username: str, password: str, actor: str) -> None:
    """Replace a user's password (the audit entry says who did it, never the password)."""
    row = _user(conn, username)
    _check_password(username, password)
    conn.execute(update(USERS).where(USERS.c.id == row.id).values(password_hash=_hasher.hash(password)))
    record(conn, actor=actor, action="user.password", target_type="user", target_id=username)


def list_users(conn: Connection) -> list[dict[str, Any]]:
    """Every user with role, units, official and state, by name."""
    rows = conn.execute(select(USERS).order_by(USERS.c.username)).all()
    return [{"username": r.username, **_described(conn, r), "disabled": bool(r.disabled),
             "created_at": r.created_at} for r in rows]
