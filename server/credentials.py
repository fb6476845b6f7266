"""Officials' kiosk credentials: enrolment (admin) and the check made when a kiosk `session` event arrives.

Only the PBKDF2 verifier of a PIN or badge code is stored (motcua/protocol/credentials.py); the code
itself is never written anywhere, nor put in the audit log.
"""

from __future__ import annotations

from sqlalchemy import Connection, delete, insert, select

from motcua.protocol.credentials import METHODS, Method, credential_verifier, proof_matches
from server.audit import record
from server.db.models import CREDENTIALS, OFFICIALS
from server.db.types import utcnow
from server.registry import RegistryError

MIN_PIN_DIGITS = 4


def _official_id(conn: Connection, code: str) -> int:
    found = conn.execute(select(OFFICIALS.c.id).where(OFFICIALS.c.code == code)).scalar()
    if found is None:
        raise RegistryError("not_found", f"no official {code!r} (see `motcua admin list`)")
    return int(found)


def _check_secret(method: str, secret: str) -> None:
    if method not in METHODS:
        raise RegistryError("invalid", f"method must be one of {list(METHODS)}")
    if method == "pin" and not (secret.isdigit() and MIN_PIN_DIGITS <= len(secret) <= 12):
        raise RegistryError("invalid", f"a PIN is {MIN_PIN_DIGITS} to 12 digits")
    if method == "badge" and not 4 <= len(secret) <= 128:
        raise RegistryError("invalid", "a badge code is 4 to 128 characters, as the reader types it")


def set_credential(conn: Connection, *, official_code: str, method: Method, secret: str, actor: str) -> None:
    """Enrol (or replace) an official's PIN or badge for kiosk sign-in."""
    _check_secret(method, secret)
    official_id = _official_id(conn, official_code)
    verifier = credential_verifier(secret, official=official_code, method=method)
    conn.execute(delete(CREDENTIALS).where(CREDENTIALS.c.official_id == official_id, CREDENTIALS.c.method == method))
    conn.execute(insert(CREDENTIALS).values(official_id=official_id, method=method, verifier_hex=verifier,
                                            created_at=utcnow(), created_by=actor))
    record(conn, actor=actor, action="credential.set", target_type="official", target_id=official_code,
           detail={"method": method})


def remove_credential(conn: Connection, *, official_code: str, method: Method, actor: str) -> None:
    """Withdraw a PIN or badge: kiosk sign-ins with it are refused from now on."""
    official_id = _official_id(conn, official_code)
    gone = conn.execute(delete(CREDENTIALS).where(CREDENTIALS.c.official_id == official_id,
                                                  CREDENTIALS.c.method == method)).rowcount
    if not gone:
        raise RegistryError("not_found", f"{official_code} has no {method} credential")
    record(conn, actor=actor, action="credential.remove", target_type="official", target_id=official_code,
           detail={"method": method})


def verifier_for(conn: Connection, *, official_id: int, method: str) -> str | None:
    """The stored verifier, or None when the official has no credential of that kind."""
    return conn.execute(select(CREDENTIALS.c.verifier_hex).where(
        CREDENTIALS.c.official_id == official_id, CREDENTIALS.c.method == method)).scalar()


__all__ = ["proof_matches", "remove_credential", "set_credential", "verifier_for"]
