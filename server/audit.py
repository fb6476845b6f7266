"""Append an audit entry in the caller's transaction: a change and its record commit together."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, insert

from server.db.models import AUDIT
from server.db.types import utcnow


def record(conn: Connection, *, actor: str, action: str, target_type: str, target_id: str | int,
           detail: dict[str, Any] | None = None) -> None:
    """Write who did what to which record."""
    conn.execute(insert(AUDIT).values(at=utcnow(), actor=actor, action=action, target_type=target_type,
                                      target_id=str(target_id), detail=detail))
