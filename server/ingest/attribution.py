"""Attribution: an event belongs to the session open on its counter at its event time.

Used by ingest for new events, and to settle stored events again when what they were waiting for
arrives: a clock anchor (untimed events) or a session recorded late (unattributed events).
"""

from __future__ import annotations

import bisect
import hashlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, or_, select, update

from server.db.bulk import any_of
from server.db.dialect import insert_for
from server.db.models import COUNTERS, EVENTS, QUARANTINE, SESSIONS, EventStatus
from server.db.types import utcnow
from server.ingest.reasons import Reason
from server.review.flagging import sync_reviews


@dataclass(frozen=True, slots=True)
class Span:
    """A counter session as a half-open interval [started, ended)."""

    id: int
    counter_id: int
    official_id: int
    started: datetime
    ended: datetime | None

    def covers(self, at: datetime) -> bool:
        return self.started <= at and (self.ended is None or at < self.ended)


class SessionIndex:
    """Sessions of some counters over a time range, searchable by (counter, instant)."""

    def __init__(self, spans: Iterable[Span]) -> None:
        by_counter: dict[int, list[Span]] = defaultdict(list)
        for span in spans:
            by_counter[span.counter_id].append(span)
        self._spans = {c: sorted(s, key=lambda x: x.started) for c, s in by_counter.items()}
        self._starts = {c: [s.started for s in spans] for c, spans in self._spans.items()}

    @classmethod
    def load(cls, conn: Connection, counter_ids: Iterable[int], earliest: datetime, latest: datetime) -> SessionIndex:
        """The sessions as committed, with the counters share-locked until the caller commits.

        The lock is what makes attribution and session changes see each other: a sign-in locks its
        counter FOR NO KEY UPDATE, so either it commits first and this reads its session, or it waits
        until the events attributed here are committed and then settles them itself. Without it, an
        ingest batch that read the sessions just before a sign-in committed stored its events as
        unattributed, and nothing ever looked at them again (the province simulation found 37,502).
        """
        ids = sorted(set(counter_ids))
        if not ids:
            return cls([])
        conn.execute(select(COUNTERS.c.id).where(any_of(conn, COUNTERS.c.id, ids, "int")).order_by(COUNTERS.c.id)
                     .with_for_update(read=True))
        rows = conn.execute(
            select(SESSIONS.c.id, SESSIONS.c.counter_id, SESSIONS.c.official_id, SESSIONS.c.started_at,
                   SESSIONS.c.ended_at)
            .where(any_of(conn, SESSIONS.c.counter_id, ids, "int"), SESSIONS.c.started_at <= latest,
                   or_(SESSIONS.c.ended_at.is_(None), SESSIONS.c.ended_at > earliest))
        )
        return cls(Span(*row) for row in rows)

    def at(self, counter_id: int, when: datetime) -> Span | None:
        """The session serving `counter_id` at `when`, if any (sessions never overlap on a counter)."""
        starts = self._starts.get(counter_id)
        if not starts:
            return None
        i = bisect.bisect_right(starts, when) - 1
        if i < 0:
            return None
        span = self._spans[counter_id][i]
        return span if span.covers(when) else None


def quarantine_row(
    *, reason: Reason, detail: str, topic: str, payload: bytes, received_at: datetime, device_id: str | None,
    epoch: int | None = None, seq: int | None = None, event_id: int | None = None, limit: int = 4096,
) -> dict[str, Any]:
    """A quarantine record for `payload` (kept up to `limit` bytes; the hash is of the whole)."""
    return {
        "reason": reason.value, "detail": _printable(detail)[:500], "topic": _printable(topic)[:255],
        "device_id": device_id,
        "epoch": epoch, "seq": seq, "payload": payload[:limit], "payload_size": len(payload),
        "payload_sha256": hashlib.sha256(payload).hexdigest(), "event_id": event_id, "count": 1,
        "first_received_at": received_at, "last_received_at": received_at,
    }


def _printable(text: str) -> str:
    # PostgreSQL text cannot hold NUL, and a record must never fail to be written.
    return text.replace("\x00", "\\x00")


def upsert_quarantine(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Insert quarantine records; a record already there (same bytes, same reason) is counted and reopened."""
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        key = (row["payload_sha256"], row["reason"])
        if key in merged:
            merged[key]["count"] += 1
            merged[key]["last_received_at"] = max(merged[key]["last_received_at"], row["last_received_at"])
        else:
            merged[key] = dict(row)
    if not merged:
        return
    stmt = insert_for(conn, QUARANTINE)
    stmt = stmt.on_conflict_do_update(
        index_elements=["payload_sha256", "reason"],
        set_={
            "count": QUARANTINE.c.count + stmt.excluded.count,
            "last_received_at": stmt.excluded.last_received_at,
            "event_id": stmt.excluded.event_id,
            "resolved_at": None,
            "resolved_by": None,
            "resolution": None,
        },
    )
    # Deterministic order: two workers upserting the same records cannot deadlock on each other.
    conn.execute(stmt, sorted(merged.values(), key=lambda r: (r["payload_sha256"], r["reason"])))


def resolve_open(conn: Connection, event_ids: Sequence[int], reasons: Iterable[Reason], *, by: str, how: str) -> None:
    """Close the open quarantine records of these events for these reasons."""
    if not event_ids:
        return
    conn.execute(
        update(QUARANTINE)
        .where(QUARANTINE.c.event_id.in_(event_ids), QUARANTINE.c.reason.in_([r.value for r in reasons]),
               QUARANTINE.c.resolved_at.is_(None))
        .values(resolved_at=utcnow(), resolved_by=by, resolution=how[:500])
    )


def settle(conn: Connection, event_ids: Sequence[int], *, by: str, why: str) -> dict[str, Any]:
    """Attribute stored, timed events again; move them in or out of the `unattributed` quarantine.

    Returns how many became attributed and how many wait, and each change of official as
    [event id, from, to] (for the audit log).
    """
    if not event_ids:
        return {"attributed": 0, "unattributed": 0, "moved": []}
    rows = conn.execute(
        select(EVENTS.c.id, EVENTS.c.counter_id, EVENTS.c.event_time, EVENTS.c.official_id, EVENTS.c.payload,
               EVENTS.c.device_id, EVENTS.c.epoch, EVENTS.c.seq, EVENTS.c.received_at, EVENTS.c.typ,
               EVENTS.c.session_id, EVENTS.c.status)
        .where(EVENTS.c.id.in_(list(event_ids)))
    ).all()
    if not rows:
        return {"attributed": 0, "unattributed": 0, "moved": []}
    index = SessionIndex.load(conn, (r.counter_id for r in rows), min(r.event_time for r in rows),
                              max(r.event_time for r in rows))
    attributed, waiting, moved, changed = [], [], [], []
    for row in rows:
        span = index.at(row.counter_id, row.event_time)
        official = span.official_id if span else None
        if official != row.official_id:
            moved.append([row.id, row.official_id, official])
        if span is None:
            waiting.append(row)
            continue
        attributed.append(row.id)
        if (row.official_id, row.session_id, row.status) != (span.official_id, span.id, EventStatus.ACCEPTED):
            changed.append({"b_id": row.id, "b_official": span.official_id, "b_session": span.id})
    if changed:
        # One statement for all (a pipelined executemany), and only for the rows that change: a sign-in
        # reported late re-settles every later event of its counter, and most of them stay as they were.
        conn.execute(update(EVENTS).where(EVENTS.c.id == bindparam("b_id")).values(
            official_id=bindparam("b_official"), session_id=bindparam("b_session"), status=EventStatus.ACCEPTED),
            changed)
    resolve_open(conn, attributed, [Reason.UNATTRIBUTED], by=by, how=why)
    _to_unattributed(conn, waiting)
    sync_reviews(conn, event_ids=[r.id for r in rows if r.typ == "incident"], actor=by)  # flagged incidents follow
    return {"attributed": len(attributed), "unattributed": len(waiting), "moved": moved}


def _to_unattributed(conn: Connection, rows: Sequence[Any]) -> None:
    """Events without an official: quarantined as `unattributed`, unless already waiting there."""
    if not rows:
        return
    ids = [r.id for r in rows]
    changing = [r.id for r in rows if (r.official_id, r.session_id, r.status) != (None, None,
                                                                                  EventStatus.QUARANTINED)]
    if changing:
        conn.execute(update(EVENTS).where(EVENTS.c.id.in_(changing)).values(
            official_id=None, session_id=None, status=EventStatus.QUARANTINED))
    already = set(conn.scalars(select(QUARANTINE.c.event_id).where(
        QUARANTINE.c.event_id.in_(ids), QUARANTINE.c.reason == Reason.UNATTRIBUTED.value,
        QUARANTINE.c.resolved_at.is_(None))))
    upsert_quarantine(conn, [
        quarantine_row(reason=Reason.UNATTRIBUTED, detail="no official was signed in at the counter then",
                       topic=f"motcua/v1/dev/{r.device_id}/evt", payload=r.payload, received_at=r.received_at,
                       device_id=r.device_id, epoch=r.epoch, seq=r.seq, event_id=r.id)
        for r in rows if r.id not in already
    ])


