"""Read-side data access for the API and the console: keyword-only, no HTTP, plain dicts out."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, and_, case, func, select, true

from server.db.models import (
    COUNTERS,
    DEVICES,
    EVENTS,
    OFFICIALS,
    QUARANTINE,
    SESSIONS,
    UNITS,
    EventStatus,
)


def month_bounds(period: str, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """'2026-11' -> [first instant, first instant of next month) in the offices' time zone."""
    try:
        year, month = (int(p) for p in period.split("-"))
        start = datetime(year, month, 1, tzinfo=zone)
    except ValueError:
        raise ValueError(f"period {period!r} is not YYYY-MM") from None
    nxt = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=zone)
    return start, nxt


def day_bounds(day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    start = datetime(day.year, day.month, day.day, tzinfo=zone)
    return start, start + timedelta(days=1)


def counted() -> Any:
    """The SQL condition for a rating that counts: attributed, not misuse, first of its ticket."""
    return and_(EVENTS.c.typ == "rating", EVENTS.c.status == EventStatus.ACCEPTED, EVENTS.c.misuse.is_(False),
                EVENTS.c.txn_duplicate.is_(False))


def official_by_code(conn: Connection, code: str) -> dict[str, Any] | None:
    row = conn.execute(select(OFFICIALS.c.id, OFFICIALS.c.code, OFFICIALS.c.full_name, OFFICIALS.c.post,
                              OFFICIALS.c.unit_id, UNITS.c.code.label("unit_code"))
                       .join(UNITS, UNITS.c.id == OFFICIALS.c.unit_id).where(OFFICIALS.c.code == code)).first()
    return dict(row._mapping) if row else None


def rating_summary(conn: Connection, *, official_id: int, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """Per scale size: counts by level of counted ratings, plus the excluded ones, for one official."""
    window = and_(EVENTS.c.official_id == official_id, EVENTS.c.typ == "rating", EVENTS.c.event_time >= start,
                  EVENTS.c.event_time < end, EVENTS.c.status == EventStatus.ACCEPTED)
    rows = conn.execute(select(EVENTS.c.levels, EVENTS.c.rating, func.count().label("n"),
                               func.sum(case((EVENTS.c.misuse, 1), else_=0)).label("misuse"),
                               func.sum(case((and_(EVENTS.c.txn_duplicate, EVENTS.c.misuse.is_(False)), 1),
                                             else_=0)).label("dup"))
                        .where(window).group_by(EVENTS.c.levels, EVENTS.c.rating)).all()
    scales: dict[int, dict[str, Any]] = {}
    for r in rows:
        s = scales.setdefault(r.levels, {"levels": r.levels, "by_level": [0] * r.levels, "counted": 0,
                                         "excluded_misuse": 0, "excluded_txn_duplicate": 0})
        valid = r.n - (r.misuse or 0) - (r.dup or 0)
        s["by_level"][r.rating - 1] += valid
        s["counted"] += valid
        s["excluded_misuse"] += r.misuse or 0
        s["excluded_txn_duplicate"] += r.dup or 0
    for s in scales.values():
        total = sum((i + 1) * n for i, n in enumerate(s["by_level"]))
        s["mean"] = round(total / s["counted"], 3) if s["counted"] else None
    return sorted(scales.values(), key=lambda s: s["levels"])


def ratings_page(conn: Connection, *, official_id: int, start: datetime, end: datetime, after_id: int,
                 limit: int) -> list[dict[str, Any]]:
    """Ratings attributed to an official in [start, end), in id order after `after_id`."""
    rows = conn.execute(
        select(EVENTS.c.id, EVENTS.c.event_time, EVENTS.c.rating, EVENTS.c.levels, EVENTS.c.misuse,
               EVENTS.c.txn_duplicate, EVENTS.c.time_source, EVENTS.c.device_id, EVENTS.c.epoch, EVENTS.c.seq,
               COUNTERS.c.code.label("counter"), EVENTS.c.body)
        .join(COUNTERS, COUNTERS.c.id == EVENTS.c.counter_id)
        .where(EVENTS.c.official_id == official_id, EVENTS.c.typ == "rating", EVENTS.c.status ==
               EventStatus.ACCEPTED, EVENTS.c.event_time >= start, EVENTS.c.event_time < end, EVENTS.c.id > after_id)
        .order_by(EVENTS.c.id).limit(limit))
    return [dict(r._mapping) for r in rows]


def in_units(units: frozenset[int] | None) -> Any:
    """The SQL condition "the quarantine record's device is in one of `units`" (None: any record)."""
    if units is None:
        return true()
    devices = select(DEVICES.c.id).join(COUNTERS, COUNTERS.c.id == DEVICES.c.counter_id).where(
        COUNTERS.c.unit_id.in_(sorted(units)))
    return QUARANTINE.c.device_id.in_(devices)


def quarantine_page(conn: Connection, *, reason: str | None, device_id: str | None, open_only: bool,
                    after_id: int, limit: int, units: frozenset[int] | None = None) -> list[dict[str, Any]]:
    """Quarantine records in id order; `units` limits them to records from those units' devices."""
    q = select(QUARANTINE.c.id, QUARANTINE.c.reason, QUARANTINE.c.detail, QUARANTINE.c.topic,
               QUARANTINE.c.device_id, QUARANTINE.c.epoch, QUARANTINE.c.seq, QUARANTINE.c.payload_size,
               QUARANTINE.c.payload_sha256, QUARANTINE.c.event_id, QUARANTINE.c.count,
               QUARANTINE.c.first_received_at, QUARANTINE.c.last_received_at, QUARANTINE.c.resolved_at,
               QUARANTINE.c.resolved_by, QUARANTINE.c.resolution).where(QUARANTINE.c.id > after_id,
                                                                       in_units(units))
    if reason:
        q = q.where(QUARANTINE.c.reason == reason)
    if device_id:
        q = q.where(QUARANTINE.c.device_id == device_id)
    if open_only:
        q = q.where(QUARANTINE.c.resolved_at.is_(None))
    return [dict(r._mapping) for r in conn.execute(q.order_by(QUARANTINE.c.id).limit(limit))]


def quarantine_counts(conn: Connection, *, open_only: bool = True,
                      units: frozenset[int] | None = None) -> dict[str, int]:
    """Quarantined messages by reason (re-sends of the same bytes counted), within `units` if given."""
    q = select(QUARANTINE.c.reason, func.sum(QUARANTINE.c.count)).where(in_units(units)).group_by(QUARANTINE.c.reason)
    if open_only:
        q = q.where(QUARANTINE.c.resolved_at.is_(None))
    return {r[0]: int(r[1]) for r in conn.execute(q)}


def unit_live(conn: Connection, *, unit_code: str, day: date, zone: ZoneInfo,
              recent: int = 25) -> dict[str, Any] | None:
    """Counters of a unit, who serves at each, their devices, today's counts and the latest ratings."""
    unit = conn.execute(select(UNITS).where(UNITS.c.code == unit_code)).first()
    if unit is None:
        return None
    start, end = day_bounds(day, zone)
    serving = (select(SESSIONS.c.counter_id, OFFICIALS.c.code, OFFICIALS.c.full_name, OFFICIALS.c.post,
                      SESSIONS.c.started_at)
               .join(OFFICIALS, OFFICIALS.c.id == SESSIONS.c.official_id)
               .where(SESSIONS.c.ended_at.is_(None)).subquery())
    today = (select(EVENTS.c.counter_id, func.count().label("n"),
                    func.sum(case((counted(), 1), else_=0)).label("counted"))
             .where(EVENTS.c.typ == "rating", EVENTS.c.event_time >= start, EVENTS.c.event_time < end)
             .group_by(EVENTS.c.counter_id).subquery())
    rows = conn.execute(
        select(COUNTERS.c.id, COUNTERS.c.code, COUNTERS.c.name, serving.c.code.label("official_code"),
               serving.c.full_name, serving.c.post, serving.c.started_at, today.c.n, today.c.counted)
        .outerjoin(serving, serving.c.counter_id == COUNTERS.c.id)
        .outerjoin(today, today.c.counter_id == COUNTERS.c.id)
        .where(COUNTERS.c.unit_id == unit.id).order_by(COUNTERS.c.code)).all()
    devices = conn.execute(select(DEVICES.c.id, DEVICES.c.counter_id, DEVICES.c.online, DEVICES.c.last_seen_at,
                                  DEVICES.c.status).join(COUNTERS, COUNTERS.c.id == DEVICES.c.counter_id)
                           .where(COUNTERS.c.unit_id == unit.id)).all()
    latest = conn.execute(
        select(EVENTS.c.id, EVENTS.c.event_time, EVENTS.c.rating, EVENTS.c.levels, EVENTS.c.misuse,
               EVENTS.c.status, COUNTERS.c.code.label("counter"), OFFICIALS.c.full_name.label("official"))
        .join(COUNTERS, COUNTERS.c.id == EVENTS.c.counter_id)
        .outerjoin(OFFICIALS, OFFICIALS.c.id == EVENTS.c.official_id)
        .where(COUNTERS.c.unit_id == unit.id, EVENTS.c.typ == "rating", EVENTS.c.event_time >= start,
               EVENTS.c.event_time < end)
        .order_by(EVENTS.c.event_time.desc(), EVENTS.c.id.desc()).limit(recent)).all()
    return {
        "unit": {"code": unit.code, "name": unit.name},
        "day": day.isoformat(),
        "counters": [{
            "code": r.code, "name": r.name,
            "official": ({"code": r.official_code, "name": r.full_name, "post": r.post,
                          "since": r.started_at.isoformat()} if r.official_code else None),
            "ratings_today": int(r.n or 0), "counted_today": int(r.counted or 0),
            "devices": [{"id": d.id, "online": bool(d.online), "status": d.status,
                         "last_seen": d.last_seen_at.isoformat() if d.last_seen_at else None}
                        for d in devices if d.counter_id == r.id],
        } for r in rows],
        "latest": [{"id": e.id, "time": e.event_time.isoformat(), "rating": e.rating, "levels": e.levels,
                    "misuse": bool(e.misuse), "status": e.status, "counter": e.counter, "official": e.official}
                   for e in latest],
    }


def units(conn: Connection, *, within: frozenset[int] | None = None) -> list[dict[str, Any]]:
    """Units with their number of counters; `within` limits them to a caller's scope (None: all)."""
    q = (select(UNITS.c.id, UNITS.c.code, UNITS.c.name, func.count(COUNTERS.c.id).label("counters"))
         .outerjoin(COUNTERS, COUNTERS.c.unit_id == UNITS.c.id)
         .group_by(UNITS.c.id, UNITS.c.code, UNITS.c.name).order_by(UNITS.c.code))
    if within is not None:
        q = q.where(UNITS.c.id.in_(sorted(within)))
    return [dict(r._mapping) for r in conn.execute(q)]


def ingest_summary(conn: Connection) -> dict[str, Any]:
    """The demo's closing figures: events stored, ratings, quarantined by reason, duplicates."""
    events = conn.execute(select(func.count()).select_from(EVENTS)).scalar_one()
    ratings = conn.execute(select(func.count()).select_from(EVENTS).where(EVENTS.c.typ == "rating")).scalar_one()
    dups = conn.execute(select(func.coalesce(func.sum(DEVICES.c.duplicates), 0))).scalar_one()
    return {"events_stored": int(events), "ratings": int(ratings),
            "quarantined": quarantine_counts(conn, open_only=False), "duplicates": int(dups)}
