"""Officials signing in and out of counters: the facts attribution rests on.

A sign-in or sign-out may be reported late (the queue system batches, a kiosk was offline): `at` may
lie in the past, as long as history stays consistent (sessions on one counter never overlap). Events
in the affected window are attributed again, and the counter's devices get a new retained config.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, insert, select, update

from server.audit import record
from server.db.models import COUNTERS, EVENTS, OFFICIALS, SESSIONS, TimeSource
from server.ingest.attribution import settle

MAX_FUTURE = timedelta(minutes=1)  # clocks of queue systems differ a little; the future is refused
AUDIT_MOVES = 1000  # [event, from official, to official] listed per audit entry; the total is always given


class SessionError(Exception):
    """A sign-in/out that cannot be applied; `kind` maps to an HTTP status in the API."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind  # "not_found" | "conflict" | "invalid"


@dataclass(frozen=True, slots=True)
class SessionView:
    id: int
    counter_id: int
    official_id: int
    started_at: datetime
    ended_at: datetime | None


def _open_on_counter(conn: Connection, counter_id: int) -> SessionView | None:
    row = conn.execute(select(SESSIONS.c.id, SESSIONS.c.counter_id, SESSIONS.c.official_id, SESSIONS.c.started_at,
                              SESSIONS.c.ended_at)
                       .where(SESSIONS.c.counter_id == counter_id, SESSIONS.c.ended_at.is_(None))).first()
    return SessionView(*row) if row else None


def serving(conn: Connection, *, counter_id: int) -> SessionView | None:
    """The session open at `counter_id` now, if any."""
    return _open_on_counter(conn, counter_id)


def _open_of_official(conn: Connection, official_id: int) -> SessionView | None:
    row = conn.execute(select(SESSIONS.c.id, SESSIONS.c.counter_id, SESSIONS.c.official_id, SESSIONS.c.started_at,
                              SESSIONS.c.ended_at)
                       .where(SESSIONS.c.official_id == official_id, SESSIONS.c.ended_at.is_(None))).first()
    return SessionView(*row) if row else None


def _check_time(at: datetime, now: datetime) -> None:
    if at > now + MAX_FUTURE:
        raise SessionError("invalid", f"{at.isoformat()} is in the future; send the time the change happened")


def _close(conn: Connection, s: SessionView, at: datetime, actor: str) -> None:
    if at <= s.started_at:
        raise SessionError("conflict", f"session {s.id} started at {s.started_at.isoformat()}, after "
                                       f"{at.isoformat()}: report changes in the order they happened")
    done = conn.execute(update(SESSIONS).where(SESSIONS.c.id == s.id, SESSIONS.c.ended_at.is_(None))
                        .values(ended_at=at, closed_by=actor))
    if done.rowcount != 1:  # closed meanwhile by a concurrent request: let the caller retry on fresh facts
        raise SessionError("conflict", f"session {s.id} was closed by another request just now; try again")
    record(conn, actor=actor, action="session.close", target_type="session", target_id=s.id,
           detail={"counter_id": s.counter_id, "official_id": s.official_id, "ended_at": at.isoformat()})


def _history_after(conn: Connection, column: Any, value: int, at: datetime) -> bool:
    """True when a closed session (of this counter, or this official) ends after `at`: a new session
    from `at` would overlap recorded history."""
    return conn.execute(select(SESSIONS.c.id).where(
        column == value, SESSIONS.c.ended_at.is_not(None), SESSIONS.c.ended_at > at)).first() is not None


def _lock(conn: Connection, counter_id: int, official_id: int | None) -> tuple[Any, Any]:
    """Row-lock the counter, then the official (always in this order): concurrent sign-ins and
    sign-outs touching them run one after the other. (SQLite serialises writers anyway.)

    FOR NO KEY UPDATE, not FOR UPDATE: ingest inserts events that reference the counter and the
    official, and each such foreign-key check takes FOR KEY SHARE on them; FOR NO KEY UPDATE lets those
    checks through and still serialises sign-ins, and it waits for (and is waited for by) the FOR SHARE
    an ingest batch takes on the counters whose events it attributes (SessionIndex.load)."""
    counter = conn.execute(select(COUNTERS.c.id, COUNTERS.c.unit_id).where(COUNTERS.c.id == counter_id)
                           .with_for_update(key_share=True)).first()
    official = None
    if official_id is not None:
        official = conn.execute(select(OFFICIALS.c.id, OFFICIALS.c.unit_id, OFFICIALS.c.active)
                                .where(OFFICIALS.c.id == official_id).with_for_update(key_share=True)).first()
    return counter, official


def _touch_counter(conn: Connection, counter_id: int, since: datetime, actor: str, why: str) -> None:
    """New config for the counter's devices; attribute the counter's timed events since `since` again."""
    conn.execute(update(COUNTERS).where(COUNTERS.c.id == counter_id).values(config_rev=COUNTERS.c.config_rev + 1))
    ids = list(conn.scalars(select(EVENTS.c.id).where(
        EVENTS.c.counter_id == counter_id, EVENTS.c.event_time >= since,
        EVENTS.c.time_source.in_([TimeSource.ANCHOR, TimeSource.DEVICE, TimeSource.MANUAL]),
        EVENTS.c.attributed_by.is_(None))))  # a person's decision is not undone by a session change
    if ids:
        outcome = settle(conn, ids, by=actor, why=why)
        moved = outcome.pop("moved")
        if moved:
            detail = {"since": since.isoformat(), "reason": why, **outcome,
                      "moved": moved[:AUDIT_MOVES], "moved_total": len(moved)}
            record(conn, actor=actor, action="events.reattribute", target_type="counter", target_id=counter_id,
                   detail=detail)


def sign_in(conn: Connection, *, counter_id: int, official_id: int, at: datetime, now: datetime,
            actor: str) -> SessionView:
    """Open a session for `official_id` at `counter_id` from `at`; idempotent for the same pair."""
    _check_time(at, now)
    counter, official = _lock(conn, counter_id, official_id)
    if counter is None or official is None:
        raise SessionError("not_found", "no such counter" if counter is None else "no such official")
    if not official.active:
        raise SessionError("invalid", "the official is not active")
    if official.unit_id != counter.unit_id:
        raise SessionError("invalid", "the official does not work in the unit of this counter")
    current = _open_on_counter(conn, counter_id)
    if current is not None and current.official_id == official_id:
        return current
    if current is not None:
        _close(conn, current, at, actor)
    elsewhere = _open_of_official(conn, official_id)
    if elsewhere is not None:
        _close(conn, elsewhere, at, actor)
        _touch_counter(conn, elsewhere.counter_id, at, actor, "official moved to another counter")
    if _history_after(conn, SESSIONS.c.counter_id, counter_id, at):
        raise SessionError("conflict", f"counter {counter_id} has a recorded session ending after {at.isoformat()}")
    if _history_after(conn, SESSIONS.c.official_id, official_id, at):
        # One person cannot serve at two counters at once, even when the report comes late.
        raise SessionError("conflict", f"official {official_id} has a recorded session ending after "
                                       f"{at.isoformat()}")
    new_id = conn.execute(insert(SESSIONS).values(counter_id=counter_id, official_id=official_id, started_at=at,
                                                  opened_by=actor).returning(SESSIONS.c.id)).scalar_one()
    record(conn, actor=actor, action="session.open", target_type="session", target_id=new_id,
           detail={"counter_id": counter_id, "official_id": official_id, "started_at": at.isoformat()})
    _touch_counter(conn, counter_id, at, actor, "official signed in")
    return SessionView(new_id, counter_id, official_id, at, None)


def sign_out(conn: Connection, *, counter_id: int, at: datetime, now: datetime, actor: str) -> SessionView:
    """Close the open session at `counter_id` at `at`."""
    _check_time(at, now)
    counter, _ = _lock(conn, counter_id, None)
    if counter is None:
        raise SessionError("not_found", "no such counter")
    current = _open_on_counter(conn, counter_id)
    if current is None:
        raise SessionError("not_found", f"nobody is signed in at counter {counter_id}")
    _close(conn, current, at, actor)
    _touch_counter(conn, counter_id, at, actor, "official signed out")
    return SessionView(current.id, current.counter_id, current.official_id, current.started_at, at)
