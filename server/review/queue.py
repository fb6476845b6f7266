"""The review queue and one review in full: keyword-only reads, scoped by the caller's units.

`where.units` is the caller's unit scope (None = every unit): a review of another unit is never
listed, counted or returned. `where.official_id` limits an official to their own incidents.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, and_, func, or_, select

from server.db.dialect import json_text
from server.db.models import (
    CLIP_EVENTS,
    CLIPS,
    COUNTERS,
    DEVICES,
    EVENTS,
    INCIDENT_HEALTH,
    OFFICIALS,
    REVIEW_STEPS,
    REVIEW_VIEWS,
    REVIEWS,
    SESSIONS,
    UNITS,
)
from server.db.types import utcnow

OPEN = ("pending", "contested")  # what still needs a reviewer: the default queue


@dataclass(frozen=True, slots=True)
class QueueFilter:
    units: frozenset[int] | None = None  # the caller's scope; None = every unit
    official_id: int | None = None  # an official sees only their own incidents
    unit: str | None = None
    counter: str | None = None
    official: str | None = None
    statuses: tuple[str, ...] | None = OPEN
    kind: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _scoped(q: Select[Any], where: QueueFilter) -> Select[Any]:
    if where.units is not None:
        q = q.where(REVIEWS.c.unit_id.in_(sorted(where.units)) if where.units else REVIEWS.c.id.is_(None))
    if where.official_id is not None:
        q = q.where(REVIEWS.c.official_id == where.official_id)
    if where.unit:
        q = q.where(UNITS.c.code == where.unit)
    if where.counter:
        q = q.where(COUNTERS.c.code == where.counter)
    if where.official:
        q = q.where(OFFICIALS.c.code == where.official)
    if where.kind:
        q = q.where(REVIEWS.c.kind == where.kind)
    if where.since:
        q = q.where(REVIEWS.c.event_time >= where.since)
    if where.until:
        q = q.where(REVIEWS.c.event_time < where.until)
    return q


def _joined(*cols: Any) -> Select[Any]:
    return (select(*cols).select_from(REVIEWS).join(UNITS, UNITS.c.id == REVIEWS.c.unit_id)
            .join(COUNTERS, COUNTERS.c.id == REVIEWS.c.counter_id)
            .outerjoin(OFFICIALS, OFFICIALS.c.id == REVIEWS.c.official_id))


def queue_page(conn: Connection, *, where: QueueFilter, viewer: str, after: tuple[datetime, int] | None,
               limit: int) -> list[dict[str, Any]]:
    """Flagged incidents, oldest first (by when they happened), with whether `viewer` has opened each."""
    # The page is chosen on the reviews alone (ix_reviews_queue finds the open ones); only its rows are
    # then joined and their JSON read: reading every open incident's body first cost 4x on 5,000.
    page = _scoped(_joined(REVIEWS.c.id, REVIEWS.c.event_time), where)
    if where.statuses:
        page = page.where(REVIEWS.c.status.in_(where.statuses))
    if after is not None:
        page = page.where(or_(REVIEWS.c.event_time > after[0], and_(REVIEWS.c.event_time == after[0],
                                                                    REVIEWS.c.id > after[1])))
    chosen = page.order_by(REVIEWS.c.event_time, REVIEWS.c.id).limit(limit).subquery()
    seen = (select(REVIEW_VIEWS.c.review_id).where(REVIEW_VIEWS.c.viewer == viewer)).subquery()
    q = (_joined(REVIEWS.c.id, REVIEWS.c.kind, REVIEWS.c.status, REVIEWS.c.severity, REVIEWS.c.event_time,
                 REVIEWS.c.flagged_at, REVIEWS.c.decided_by, UNITS.c.code.label("unit"),
                 COUNTERS.c.code.label("counter"), COUNTERS.c.name.label("counter_name"),
                 OFFICIALS.c.code.label("official"), OFFICIALS.c.full_name.label("official_name"),
                 json_text(conn, EVENTS.c.body, "clip").label("clip"),
                 json_text(conn, EVENTS.c.body, "note").label("note"), seen.c.review_id.label("seen"))
         .join(chosen, chosen.c.id == REVIEWS.c.id).join(EVENTS, EVENTS.c.id == REVIEWS.c.event_id)
         .outerjoin(seen, seen.c.review_id == REVIEWS.c.id))
    rows = conn.execute(q.order_by(REVIEWS.c.event_time, REVIEWS.c.id))
    return [{**{k: v for k, v in r._mapping.items() if k != "seen"}, "viewed": r.seen is not None} for r in rows]


def queue_counts(conn: Connection, *, where: QueueFilter) -> dict[str, int]:
    """Reviews by status within the caller's scope and filters (the status filter aside)."""
    q = _scoped(_joined(REVIEWS.c.status, func.count()).group_by(REVIEWS.c.status), where)
    counts = {s: 0 for s in ("pending", "contested", "confirmed", "dismissed")}
    counts.update({str(s): int(n) for s, n in conn.execute(q)})
    return counts


@dataclass(frozen=True, slots=True)
class ReviewScope:
    unit_id: int
    official_id: int | None
    event_time: datetime


def review_scope(conn: Connection, review_id: int) -> ReviewScope | None:
    """Whose and which unit's a review is, for access checks; None when there is no such review."""
    row = conn.execute(select(REVIEWS.c.unit_id, REVIEWS.c.official_id, REVIEWS.c.event_time)
                       .where(REVIEWS.c.id == review_id)).first()
    return ReviewScope(int(row.unit_id), row.official_id, row.event_time) if row else None


def mark_viewed(conn: Connection, *, review_id: int, viewer: str) -> None:
    """`viewer` opened the review (per-user state, apart from the verdict)."""
    now = utcnow()
    done = conn.execute(REVIEW_VIEWS.update().where(REVIEW_VIEWS.c.review_id == review_id,
                                                    REVIEW_VIEWS.c.viewer == viewer)
                        .values(last_viewed_at=now, views=REVIEW_VIEWS.c.views + 1))
    if not done.rowcount:
        conn.execute(REVIEW_VIEWS.insert().values(review_id=review_id, viewer=viewer, first_viewed_at=now,
                                                  last_viewed_at=now, views=1))


def clip_ids(conn: Connection, *, event_id: int) -> list[str]:
    """Clips showing an incident: the one it names, and any whose signed manifest lists it or its rating."""
    event = conn.execute(select(EVENTS.c.device_id, EVENTS.c.epoch, EVENTS.c.seq, EVENTS.c.body)
                         .where(EVENTS.c.id == event_id)).one()
    body = event.body if isinstance(event.body, dict) else {}
    keys = [(event.epoch, event.seq)] + ([tuple(body["ref"])] if body.get("ref") else [])
    listed = conn.scalars(select(CLIP_EVENTS.c.clip_id).where(
        CLIP_EVENTS.c.device_id == event.device_id,
        or_(*(and_(CLIP_EVENTS.c.epoch == ep, CLIP_EVENTS.c.seq == seq) for ep, seq in keys))))
    named = [body["clip"]] if body.get("clip") else []
    return list(dict.fromkeys([*named, *sorted(set(listed))]))


def official_may_view_clip(conn: Connection, *, official_id: int, clip_id: str) -> bool:
    """An official may see the evidence of a verdict against them (confirmed or contested): fairness."""
    events = conn.scalars(select(REVIEWS.c.event_id).where(REVIEWS.c.official_id == official_id,
                                                           REVIEWS.c.status.in_(["confirmed", "contested"])))
    return any(clip_id in clip_ids(conn, event_id=e) for e in events)


def _one(conn: Connection, q: Select[Any]) -> dict[str, Any] | None:
    row = conn.execute(q).first()
    return dict(row._mapping) if row else None


def _event(conn: Connection, event_id: int) -> dict[str, Any]:
    return dict(conn.execute(select(EVENTS.c.id, EVENTS.c.device_id, EVENTS.c.epoch, EVENTS.c.seq,
                                    EVENTS.c.event_time, EVENTS.c.received_at, EVENTS.c.time_source,
                                    EVENTS.c.session_id, EVENTS.c.attributed_by, EVENTS.c.body)
                             .where(EVENTS.c.id == event_id)).one()._mapping)


def _rating(conn: Connection, event: dict[str, Any]) -> dict[str, Any] | None:
    ref = event["body"].get("ref") if isinstance(event["body"], dict) else None
    if not ref:
        return None
    return _one(conn, select(EVENTS.c.id, EVENTS.c.rating, EVENTS.c.levels, EVENTS.c.event_time, EVENTS.c.misuse,
                             EVENTS.c.txn_duplicate, EVENTS.c.body)
                .where(EVENTS.c.device_id == event["device_id"], EVENTS.c.epoch == ref[0], EVENTS.c.seq == ref[1],
                       EVENTS.c.typ == "rating"))


def _clips(conn: Connection, event_id: int) -> list[dict[str, Any]]:
    ids = clip_ids(conn, event_id=event_id)
    if not ids:
        return []
    rows = conn.execute(select(CLIPS.c.id, CLIPS.c.state, CLIPS.c.rendition_state, CLIPS.c.duration_ms,
                               CLIPS.c.privacy, CLIPS.c.sha256, CLIPS.c.started_at, CLIPS.c.ended_at,
                               CLIPS.c.purged_at, CLIPS.c.purge_reason, CLIPS.c.rendition_key, CLIPS.c.thumbnail_key)
                        .where(CLIPS.c.id.in_(ids)))
    found = {r.id: r for r in rows}
    return [{**{k: v for k, v in found[i]._mapping.items() if not k.endswith("_key")},
             "playable": found[i].rendition_key is not None and found[i].purged_at is None,
             "has_thumbnail": found[i].thumbnail_key is not None and found[i].purged_at is None}
            for i in ids if i in found]


def _session(conn: Connection, session_id: int | None) -> dict[str, Any] | None:
    if session_id is None:
        return None
    return _one(conn, select(SESSIONS.c.id, SESSIONS.c.started_at, SESSIONS.c.ended_at, SESSIONS.c.opened_by,
                             SESSIONS.c.closed_by, OFFICIALS.c.code.label("official"),
                             OFFICIALS.c.full_name.label("official_name"))
                .join(OFFICIALS, OFFICIALS.c.id == SESSIONS.c.official_id).where(SESSIONS.c.id == session_id))


def _health(conn: Connection, event_id: int, device_id: str) -> dict[str, Any]:
    snap = _one(conn, select(INCIDENT_HEALTH.c.online, INCIDENT_HEALTH.c.last_seen_at, INCIDENT_HEALTH.c.health)
                .where(INCIDENT_HEALTH.c.event_id == event_id))
    now = _one(conn, select(DEVICES.c.id, DEVICES.c.kind, DEVICES.c.status, DEVICES.c.online, DEVICES.c.last_seen_at)
               .where(DEVICES.c.id == device_id))
    return {"at_incident": snap, "now": now}


def review_detail(conn: Connection, *, review_id: int, viewer: str) -> dict[str, Any] | None:
    """One review with all a reviewer needs: the incident, the rating and reasons, the clip, who was
    serving (the counter session), the device's health when it happened, every step, who has opened it."""
    review = _one(conn, _joined(REVIEWS, UNITS.c.code.label("unit"), UNITS.c.name.label("unit_name"),
                                COUNTERS.c.code.label("counter"), COUNTERS.c.name.label("counter_name"),
                                OFFICIALS.c.code.label("official"), OFFICIALS.c.full_name.label("official_name"),
                                OFFICIALS.c.post.label("official_post")).where(REVIEWS.c.id == review_id))
    if review is None:
        return None
    event = _event(conn, review["event_id"])
    steps = [dict(r._mapping) for r in conn.execute(select(REVIEW_STEPS).where(REVIEW_STEPS.c.review_id == review_id)
                                                    .order_by(REVIEW_STEPS.c.id))]
    views = [dict(r._mapping) for r in conn.execute(
        select(REVIEW_VIEWS.c.viewer, REVIEW_VIEWS.c.first_viewed_at, REVIEW_VIEWS.c.last_viewed_at,
               REVIEW_VIEWS.c.views).where(REVIEW_VIEWS.c.review_id == review_id).order_by(REVIEW_VIEWS.c.viewer))]
    return {"review": review, "event": event, "rating": _rating(conn, event), "clips": _clips(conn, event["id"]),
            "session": _session(conn, event["session_id"]), "device": _health(conn, event["id"], event["device_id"]),
            "steps": steps, "views": views, "viewed_by_me": any(v["viewer"] == viewer for v in views)}
