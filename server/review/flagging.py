"""Flagging: a review row for every accepted incident, made where the incident becomes attributed.

Two places: ingest's batch transaction (`flag_stored_incidents`, on the hot path: one snapshot insert
and one review insert per batch that holds incidents, nothing per event, nothing at all for a batch
without incidents), and any later attribution
(`sync_reviews`: a late sign-in, a clock anchor that arrives, a supervisor's decision), which also
keeps `reviews.official_id` in step with the event. A verdict given about one official never follows
the incident to another: if a decided incident is re-attributed, its review goes back to pending.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, literal, select, update

from server.audit import record
from server.db.bulk import any_of
from server.db.dialect import json_text
from server.db.models import (
    COUNTERS,
    DEVICES,
    EVENTS,
    INCIDENT_HEALTH,
    REVIEW_STEPS,
    REVIEWS,
    EventStatus,
    ReviewStatus,
)
from server.db.types import UTCDateTime, utcnow

FLAGGED_KINDS = frozenset({"complaint", "lowest_rating", "remote", "manual"})  # protocol §3.2
DECIDED = (ReviewStatus.CONFIRMED, ReviewStatus.CONTESTED)


def _kind(body: Any) -> str | None:
    kind = body.get("kind") if isinstance(body, dict) else None
    return kind if kind in FLAGGED_KINDS else None


def _units(conn: Connection, counter_ids: set[int]) -> dict[int, int]:
    rows = conn.execute(select(COUNTERS.c.id, COUNTERS.c.unit_id)
                        .where(any_of(conn, COUNTERS.c.id, sorted(counter_ids), "int")))
    return {r.id: r.unit_id for r in rows}


def _snapshot_health(conn: Connection, event_ids: Sequence[int]) -> None:
    """Each incident's device as it stood when the incident was stored: its last heartbeat's health.
    One INSERT ... SELECT for the batch (an array parameter on PostgreSQL: constant SQL text)."""
    source = (select(EVENTS.c.id, DEVICES.c.id, DEVICES.c.online, DEVICES.c.last_seen_at, DEVICES.c.health)
              .join(DEVICES, DEVICES.c.id == EVENTS.c.device_id)
              .where(any_of(conn, EVENTS.c.id, sorted(event_ids), "bigint")))
    conn.execute(insert(INCIDENT_HEALTH).from_select(["event_id", "device_id", "online", "last_seen_at", "health"],
                                                     source))


def _review_row(event_id: int, kind: str, unit_id: int, row: Any, now: datetime) -> dict[str, Any]:
    return {"event_id": event_id, "kind": kind, "unit_id": unit_id, "counter_id": row["counter_id"],
            "official_id": row["official_id"], "event_time": row["event_time"], "flagged_at": now,
            "status": ReviewStatus.PENDING}


def flag_stored_incidents(conn: Connection, stored: Sequence[tuple[int, dict[str, Any]]]) -> int:
    """In ingest's transaction, for events just inserted (id, row): snapshot every incident's device
    health, and open a review for each accepted one — two INSERT ... SELECT statements per batch that
    holds incidents, none for one that does not. Returns the reviews opened."""
    incidents = [event_id for event_id, row in stored if row["typ"] == "incident"]
    if not incidents:
        return 0
    _snapshot_health(conn, incidents)
    source = (select(EVENTS.c.id, json_text(conn, EVENTS.c.body, "kind"), COUNTERS.c.unit_id, EVENTS.c.counter_id,
                     EVENTS.c.official_id, EVENTS.c.event_time, literal(utcnow(), UTCDateTime()),
                     literal(ReviewStatus.PENDING.value))
              .join(COUNTERS, COUNTERS.c.id == EVENTS.c.counter_id)
              .where(any_of(conn, EVENTS.c.id, sorted(incidents), "bigint"), EVENTS.c.status == EventStatus.ACCEPTED))
    done = conn.execute(insert(REVIEWS).from_select(
        ["event_id", "kind", "unit_id", "counter_id", "official_id", "event_time", "flagged_at", "status"], source))
    return int(done.rowcount or 0)


def _incidents(conn: Connection, event_ids: Sequence[int]) -> list[Any]:
    return list(conn.execute(
        select(EVENTS.c.id, EVENTS.c.status, EVENTS.c.official_id, EVENTS.c.counter_id, EVENTS.c.event_time,
               EVENTS.c.body, REVIEWS.c.id.label("review_id"), REVIEWS.c.status.label("review_status"),
               REVIEWS.c.official_id.label("review_official"), REVIEWS.c.event_time.label("review_time"))
        .outerjoin(REVIEWS, REVIEWS.c.event_id == EVENTS.c.id)
        .where(any_of(conn, EVENTS.c.id, sorted(set(event_ids)), "bigint"), EVENTS.c.typ == "incident")))


def sync_reviews(conn: Connection, *, event_ids: Sequence[int], actor: str) -> None:
    """After events were (re-)attributed or re-timed: open reviews for incidents now accepted, and
    move existing reviews with their event (a decided one back to pending, with a step and an audit entry)."""
    if not event_ids:
        return
    rows = _incidents(conn, event_ids)
    fresh = [r for r in rows if r.review_id is None and r.status == EventStatus.ACCEPTED and _kind(r.body)]
    if fresh:
        units, now = _units(conn, {r.counter_id for r in fresh}), utcnow()
        conn.execute(insert(REVIEWS), [_review_row(r.id, str(_kind(r.body)), units[r.counter_id], r._mapping, now)
                                       for r in fresh])
    for r in rows:
        if r.review_id is not None and (r.official_id, r.event_time) != (r.review_official, r.review_time):
            _follow_event(conn, r, actor)


def _follow_event(conn: Connection, r: Any, actor: str) -> None:
    values: dict[str, Any] = {"official_id": r.official_id, "event_time": r.event_time}
    if r.official_id == r.review_official:
        conn.execute(update(REVIEWS).where(REVIEWS.c.id == r.review_id).values(**values))
        return
    status = ReviewStatus(r.review_status)
    if status in DECIDED:
        # The verdict was about someone else: the new official is judged afresh (and cannot be
        # charged with a deduction nobody decided about them).
        values.update(status=ReviewStatus.PENDING, severity=None, decided_by=None, decided_at=None, reason=None)
    conn.execute(update(REVIEWS).where(REVIEWS.c.id == r.review_id).values(**values))
    to = ReviewStatus.PENDING if status in DECIDED else status
    why = "the event was attributed to another official"
    conn.execute(insert(REVIEW_STEPS).values(review_id=r.review_id, at=utcnow(), actor=actor, action="reattribute",
                                             from_status=status.value, to_status=to.value, reason=why))
    record(conn, actor=actor, action="review.reattribute", target_type="review", target_id=r.review_id,
           detail={"event_id": r.id, "from_official_id": r.review_official, "to_official_id": r.official_id,
                   "from_status": status.value, "to_status": to.value})
