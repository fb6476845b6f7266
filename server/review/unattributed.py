"""Events waiting for a person: stored, but with no official (or no trustworthy time) to give them.

For the console's queue: each open record with its event, the counter's unit officials to choose from,
and the sessions just before and after the event on that counter, the likeliest answers. Assigning
one goes through server/resolution.py (audited; an incident becomes a flagged review then).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from server.db.models import COUNTERS, DEVICES, EVENTS, OFFICIALS, QUARANTINE, SESSIONS, UNITS
from server.ingest.reasons import STORED_AS_EVENT

WAITING = sorted(r.value for r in STORED_AS_EVENT)


def _base(units: frozenset[int] | None) -> Any:
    q = (select(QUARANTINE.c.id, QUARANTINE.c.reason, QUARANTINE.c.detail, QUARANTINE.c.first_received_at,
                EVENTS.c.id.label("event_id"), EVENTS.c.typ, EVENTS.c.rating, EVENTS.c.levels, EVENTS.c.event_time,
                EVENTS.c.time_source, EVENTS.c.counter_id, EVENTS.c.body, EVENTS.c.device_id,
                COUNTERS.c.code.label("counter"), COUNTERS.c.name.label("counter_name"), COUNTERS.c.unit_id,
                UNITS.c.code.label("unit"))
         .join(EVENTS, EVENTS.c.id == QUARANTINE.c.event_id).join(COUNTERS, COUNTERS.c.id == EVENTS.c.counter_id)
         .join(UNITS, UNITS.c.id == COUNTERS.c.unit_id)
         .where(QUARANTINE.c.reason.in_(WAITING), QUARANTINE.c.resolved_at.is_(None)))
    return q if units is None else q.where(COUNTERS.c.unit_id.in_(sorted(units)))


def in_scope(conn: Connection, *, quarantine_id: int, units: frozenset[int] | None) -> bool:
    """Is this an open waiting record of one of `units`?"""
    return conn.execute(_base(units).where(QUARANTINE.c.id == quarantine_id)).first() is not None


def _neighbours(conn: Connection, counter_id: int, at: Any) -> dict[str, Any]:
    """Who served at the counter last before `at` and first after it."""
    cols = (SESSIONS.c.started_at, SESSIONS.c.ended_at, OFFICIALS.c.code, OFFICIALS.c.full_name)
    base = select(*cols).join(OFFICIALS, OFFICIALS.c.id == SESSIONS.c.official_id).where(
        SESSIONS.c.counter_id == counter_id)
    before = conn.execute(base.where(SESSIONS.c.started_at <= at).order_by(SESSIONS.c.started_at.desc())
                          .limit(1)).first()
    after = conn.execute(base.where(SESSIONS.c.started_at > at).order_by(SESSIONS.c.started_at).limit(1)).first()
    return {"before": dict(before._mapping) if before else None, "after": dict(after._mapping) if after else None}


def unattributed_page(conn: Connection, *, units: frozenset[int] | None, after_id: int,
                      limit: int) -> list[dict[str, Any]]:
    """Open records of stored events waiting for an official or a time, oldest first, with hints."""
    rows = conn.execute(_base(units).where(QUARANTINE.c.id > after_id).order_by(QUARANTINE.c.id).limit(limit)).all()
    officials: dict[int, list[Any]] = {}
    out = []
    for r in rows:
        if r.unit_id not in officials:
            officials[r.unit_id] = list(conn.execute(select(OFFICIALS.c.code, OFFICIALS.c.full_name).where(
                OFFICIALS.c.unit_id == r.unit_id, OFFICIALS.c.active.is_(True)).order_by(OFFICIALS.c.code)))
        out.append({**r._mapping, "officials": officials[r.unit_id], "needs_time": r.time_source == "receive",
                    "sessions": _neighbours(conn, r.counter_id, r.event_time),
                    "device_kind": conn.execute(select(DEVICES.c.kind).where(DEVICES.c.id == r.device_id)).scalar()})
    return out
