"""Creating and revoking the things the pipeline knows: units, counters, officials, devices, clients.

Keyword-only data-layer functions that know nothing about HTTP or the CLI; both call them.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Connection, insert, select, update

from motcua.protocol.topics import is_device_id
from server.audit import record
from server.db.models import (
    COUNTERS,
    DEVICES,
    OFFICIALS,
    TOKEN_UNITS,
    TOKENS,
    UNITS,
    DeviceKind,
    DeviceStatus,
)
from server.db.types import utcnow
from server.roles import TOKEN_SCOPES

SCOPES = TOKEN_SCOPES  # what a machine client's token may hold (server/roles.py)
RESERVED_PREFIX = "motcua"


class RegistryError(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind  # "not_found" | "conflict" | "invalid"


def _exists(conn: Connection, column: ColumnElement[object], value: object) -> bool:
    return conn.execute(select(column).where(column == value)).first() is not None


def create_unit(conn: Connection, *, code: str, name: str) -> int:
    if _exists(conn, UNITS.c.code, code):
        raise RegistryError("conflict", f"unit {code!r} exists")
    return int(conn.execute(insert(UNITS).values(code=code, name=name, created_at=utcnow())
                            .returning(UNITS.c.id)).scalar_one())


def unit_id(conn: Connection, code: str) -> int:
    found = conn.execute(select(UNITS.c.id).where(UNITS.c.code == code)).scalar()
    if found is None:
        raise RegistryError("not_found", f"no unit {code!r} (see `motcua admin list`)")
    return int(found)


def create_counter(conn: Connection, *, unit_id: int, code: str, name: str, service_type: str | None = None) -> int:
    if _exists(conn, COUNTERS.c.code, code):
        raise RegistryError("conflict", f"counter {code!r} exists")
    return int(conn.execute(insert(COUNTERS).values(unit_id=unit_id, code=code, name=name, service_type=service_type,
                                                    created_at=utcnow()).returning(COUNTERS.c.id)).scalar_one())


def counter_id(conn: Connection, code: str) -> int:
    found = conn.execute(select(COUNTERS.c.id).where(COUNTERS.c.code == code)).scalar()
    if found is None:
        raise RegistryError("not_found", f"no counter {code!r} (see `motcua admin list`)")
    return int(found)


def create_official(conn: Connection, *, unit_id: int, code: str, full_name: str, post: str = "",
                    photo_url: str | None = None, duty_group: str | None = None) -> int:
    if _exists(conn, OFFICIALS.c.code, code):
        raise RegistryError("conflict", f"official {code!r} exists")
    return int(conn.execute(insert(OFFICIALS).values(
        unit_id=unit_id, code=code, full_name=full_name, post=post, photo_url=photo_url, duty_group=duty_group,
        active=True, created_at=utcnow()).returning(OFFICIALS.c.id)).scalar_one())


@dataclass(frozen=True, slots=True)
class ProvisionedDevice:
    id: str
    secret_hex: str  # shown once, to be copied to the device; stored for signature checks
    counter_id: int
    kind: DeviceKind


def provision_device(conn: Connection, *, counter_id: int, kind: DeviceKind, actor: str,
                     device_id: str | None = None) -> ProvisionedDevice:
    """Register a device at a counter with a fresh 256-bit key."""
    device_id = device_id or f"{kind.value}-{secrets.token_hex(4)}"
    if not is_device_id(device_id):
        raise RegistryError("invalid", f"{device_id!r} is not a valid device id (a-z, 0-9, '-', 3-40 chars)")
    if device_id.startswith(RESERVED_PREFIX):
        # Device ids are also broker user names: "motcua-server" and kin belong to the server.
        raise RegistryError("invalid", f"device ids may not start with {RESERVED_PREFIX!r}")
    if _exists(conn, DEVICES.c.id, device_id):
        raise RegistryError("conflict", f"device {device_id!r} exists; revoke it or choose another id")
    if not _exists(conn, COUNTERS.c.id, counter_id):
        raise RegistryError("not_found", f"no counter with id {counter_id}")
    secret = secrets.token_hex(32)
    conn.execute(insert(DEVICES).values(id=device_id, counter_id=counter_id, kind=kind, secret_hex=secret,
                                        status=DeviceStatus.ACTIVE, created_at=utcnow(), config_rev=1,
                                        config_published_rev=0, online=False, duplicates=0))
    record(conn, actor=actor, action="device.provision", target_type="device", target_id=device_id,
           detail={"counter_id": counter_id, "kind": kind.value})
    return ProvisionedDevice(device_id, secret, counter_id, kind)


def revoke_device(conn: Connection, *, device_id: str, reason: str, actor: str) -> None:
    """Refuse the device's events from now on (quarantined as revoked_device) and clear its config."""
    done = conn.execute(update(DEVICES).where(DEVICES.c.id == device_id, DEVICES.c.status == DeviceStatus.ACTIVE)
                        .values(status=DeviceStatus.REVOKED, revoked_at=utcnow(), revoked_reason=reason,
                                config_rev=DEVICES.c.config_rev + 1))
    if done.rowcount == 0:
        if not _exists(conn, DEVICES.c.id, device_id):
            raise RegistryError("not_found", f"no device {device_id!r}")
        raise RegistryError("conflict", f"device {device_id!r} is already revoked")
    record(conn, actor=actor, action="device.revoke", target_type="device", target_id=device_id,
           detail={"reason": reason})


def token_digest(token: str) -> str:
    # Tokens are 256-bit random strings: a plain SHA-256 is enough, unlike passwords.
    return hashlib.sha256(token.encode()).hexdigest()


def create_api_token(conn: Connection, *, name: str, scopes: list[str], actor: str,
                     units: list[str] | None = None) -> str:
    """A new bearer token with `scopes`, limited to `units` (codes) if given; returned once, never stored."""
    unknown = set(scopes) - set(SCOPES)
    if unknown or not scopes:
        raise RegistryError("invalid", f"unknown scope(s) {sorted(unknown)}; choose from {sorted(SCOPES)}")
    unit_ids = [unit_id(conn, code) for code in units or []]
    token = "mc_" + secrets.token_urlsafe(32)
    new_id = conn.execute(insert(TOKENS).values(name=name, token_sha256=token_digest(token), scopes=" ".join(scopes),
                                                created_at=utcnow()).returning(TOKENS.c.id)).scalar_one()
    if unit_ids:
        conn.execute(insert(TOKEN_UNITS), [{"token_id": new_id, "unit_id": u} for u in unit_ids])
    record(conn, actor=actor, action="token.create", target_type="api_token", target_id=new_id,
           detail={"name": name, "scopes": scopes, "units": units or None})
    return token


def create_user(conn: Connection, *, username: str, password: str, role: str, actor: str,
                units: Sequence[str] = (), official: str | None = None) -> int:
    """A console user with a role (and its units, or the official whose record it is): server/users.py."""
    from server import users  # users.py builds on this module's errors; imported here to avoid a cycle

    return users.create_user(conn, username=username, password=password, role=role, actor=actor, units=units,
                             official=official)
