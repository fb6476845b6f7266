"""Dashboard figures: unit overview, an official's monthly trend, counter × hour-of-day satisfaction,
device fleet health and the alerts (devices silent in office hours, streaks of lowest ratings).

Keyword-only, HTTP-agnostic, scoped by `units` (None = every unit). Satisfaction is put on one scale
whatever the device's: a rating's share of the way from worst to best, (value - 1) / (levels - 1),
averaged over counted ratings (misuse and repeat tickets left out), 0 = all worst, 1 = all best.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Float, Integer, and_, case, cast, func, select, true

from server.db.models import COUNTERS, DEVICES, EVENTS, OFFICIALS, REVIEWS, UNITS, DeviceStatus
from server.queries import counted, day_bounds, month_bounds
from server.settings import Settings


def satisfaction() -> Any:
    """SQL: the mean of (value - 1) / (levels - 1) over the rows in the group."""
    return func.avg(cast(EVENTS.c.rating - 1, Float) / (EVENTS.c.levels - 1))


def _in(column: Any, units: frozenset[int] | None) -> Any:
    return true() if units is None else column.in_(sorted(units))


def unit_overview(conn: Connection, *, units: frozenset[int] | None, start: datetime,
                  end: datetime) -> list[dict[str, Any]]:
    """Per unit in scope: counters, counted ratings and satisfaction in [start, end), share of lowest
    ratings, flagged incidents by status, devices online."""
    rated = (select(COUNTERS.c.unit_id, func.count().label("ratings"), satisfaction().label("satisfaction"),
                    func.avg(case((EVENTS.c.rating == 1, 1.0), else_=0.0)).label("lowest"))
             .join(COUNTERS, COUNTERS.c.id == EVENTS.c.counter_id)
             .where(counted(), EVENTS.c.event_time >= start, EVENTS.c.event_time < end)
             .group_by(COUNTERS.c.unit_id).subquery())
    rows = conn.execute(select(UNITS.c.id, UNITS.c.code, UNITS.c.name, rated.c.ratings, rated.c.satisfaction,
                               rated.c.lowest).outerjoin(rated, rated.c.unit_id == UNITS.c.id)
                        .where(_in(UNITS.c.id, units)).order_by(UNITS.c.code)).all()
    reviews = _by_unit(conn, select(REVIEWS.c.unit_id, REVIEWS.c.status, func.count()).where(
        REVIEWS.c.event_time >= start, REVIEWS.c.event_time < end).group_by(REVIEWS.c.unit_id, REVIEWS.c.status))
    devices = _by_unit(conn, select(COUNTERS.c.unit_id, DEVICES.c.online, func.count())
                       .join(DEVICES, DEVICES.c.counter_id == COUNTERS.c.id)
                       .where(DEVICES.c.status == DeviceStatus.ACTIVE).group_by(COUNTERS.c.unit_id, DEVICES.c.online))
    per_unit = select(COUNTERS.c.unit_id, func.count()).group_by(COUNTERS.c.unit_id)
    counters: dict[int, int] = dict(conn.execute(per_unit).all())
    return [{"code": r.code, "name": r.name, "counters": int(counters.get(r.id, 0)), "ratings": int(r.ratings or 0),
             "satisfaction": _f(r.satisfaction), "lowest_share": _f(r.lowest),
             "reviews": {s: reviews.get(r.id, {}).get(s, 0) for s in ("pending", "contested", "confirmed",
                                                                      "dismissed")},
             "devices_online": devices.get(r.id, {}).get(True, 0),
             "devices": sum(devices.get(r.id, {}).values())} for r in rows]


def _by_unit(conn: Connection, q: Any) -> dict[int, dict[Any, int]]:
    out: dict[int, dict[Any, int]] = {}
    for unit_id, key, n in conn.execute(q):
        out.setdefault(unit_id, {})[key if isinstance(key, bool) else str(key)] = int(n)
    return out


def _f(value: Any) -> float | None:
    return None if value is None else round(float(value), 4)


def officials_satisfaction(conn: Connection, *, unit_id: int, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """Per official of the unit: counted ratings and satisfaction in [start, end)."""
    rated = and_(EVENTS.c.official_id == OFFICIALS.c.id, counted(), EVENTS.c.event_time >= start,
                 EVENTS.c.event_time < end)
    rows = conn.execute(select(OFFICIALS.c.code, OFFICIALS.c.full_name, func.count(EVENTS.c.id).label("n"),
                               satisfaction().label("s")).outerjoin(EVENTS, rated)
                        .where(OFFICIALS.c.unit_id == unit_id)
                        .group_by(OFFICIALS.c.code, OFFICIALS.c.full_name).order_by(OFFICIALS.c.code)).all()
    return [{"code": r.code, "name": r.full_name, "ratings": int(r.n), "satisfaction": _f(r.s)} for r in rows]


def recent_periods(now: datetime, months: int, settings: Settings) -> list[str]:
    """The last `months` evaluation months up to the one holding `now`, oldest first."""
    local = now.astimezone(settings.zone)
    year, month = local.year, local.month
    out = []
    for _ in range(months):
        out.append(f"{year:04d}-{month:02d}")
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    return out[::-1]


def official_trend(conn: Connection, *, official_id: int, periods: list[str],
                   settings: Settings) -> list[dict[str, Any]]:
    """Per month: counted ratings, satisfaction, ratings by level, flagged incidents by verdict."""
    out = []
    for period in periods:
        start, end = month_bounds(period, settings.zone)
        rated = conn.execute(select(func.count(), satisfaction()).where(
            counted(), EVENTS.c.official_id == official_id, EVENTS.c.event_time >= start,
            EVENTS.c.event_time < end)).one()
        levels: dict[int, int] = dict(conn.execute(select(EVENTS.c.rating, func.count()).where(
            counted(), EVENTS.c.official_id == official_id, EVENTS.c.event_time >= start,
            EVENTS.c.event_time < end).group_by(EVENTS.c.rating)).all())
        verdicts: dict[Any, int] = dict(conn.execute(select(REVIEWS.c.status, func.count()).where(
            REVIEWS.c.official_id == official_id, REVIEWS.c.event_time >= start, REVIEWS.c.event_time < end)
            .group_by(REVIEWS.c.status)).all())
        out.append({"period": period, "ratings": int(rated[0]), "satisfaction": _f(rated[1]),
                    "lowest": int(levels.get(1, 0)),
                    "incidents": {s: int(verdicts.get(s, 0)) for s in ("pending", "contested", "confirmed",
                                                                       "dismissed")}})
    return out


def _local_hour(conn: Connection, settings: Settings, at: datetime) -> Any:
    """SQL: the hour of the day of the event time in the offices' zone."""
    if conn.dialect.name == "postgresql":
        return cast(func.extract("hour", func.timezone(settings.timezone, EVENTS.c.event_time)), Integer)
    # SQLite keeps naive UTC text: shift by the zone's offset in that month (Vietnam has no DST).
    offset = at.astimezone(settings.zone).utcoffset() or timedelta(0)
    return cast(func.strftime("%H", EVENTS.c.event_time, f"{int(offset.total_seconds())} seconds"), Integer)


def heatmap(conn: Connection, *, unit_id: int, start: datetime, end: datetime,
            settings: Settings) -> dict[str, Any]:
    """Counter × hour of day: counted ratings and satisfaction in [start, end)."""
    hour = _local_hour(conn, settings, start).label("hour")
    rows = conn.execute(select(EVENTS.c.counter_id, hour, func.count().label("n"), satisfaction().label("s"))
                        .join(COUNTERS, COUNTERS.c.id == EVENTS.c.counter_id)
                        .where(counted(), COUNTERS.c.unit_id == unit_id, EVENTS.c.event_time >= start,
                               EVENTS.c.event_time < end)
                        .group_by(EVENTS.c.counter_id, hour)).all()
    counters = conn.execute(select(COUNTERS.c.id, COUNTERS.c.code, COUNTERS.c.name)
                            .where(COUNTERS.c.unit_id == unit_id).order_by(COUNTERS.c.code)).all()
    open_, close = settings.alerts.hours
    hours = sorted({*range(open_.hour, close.hour + (1 if close.minute else 0)), *(int(r.hour) for r in rows)})
    cells = {(r.counter_id, int(r.hour)): {"n": int(r.n), "satisfaction": _f(r.s)} for r in rows}
    return {"hours": hours, "counters": [{"code": c.code, "name": c.name,
                                          "cells": [cells.get((c.id, h)) for h in hours]} for c in counters]}


def in_office_hours(now: datetime, settings: Settings) -> bool:
    local = now.astimezone(settings.zone)
    start, end = settings.alerts.hours
    return local.weekday() in settings.alerts.office_days and start <= local.time() < end


def fleet(conn: Connection, *, units: frozenset[int] | None, now: datetime, settings: Settings) -> list[dict[str, Any]]:
    """Every device in scope with its last heartbeat's health, and whether it is silent in office hours."""
    silent_after = timedelta(minutes=settings.alerts.silent_after_min)
    office = in_office_hours(now, settings)
    rows = conn.execute(select(DEVICES.c.id, DEVICES.c.kind, DEVICES.c.status, DEVICES.c.online, DEVICES.c.last_seen_at,
                               DEVICES.c.health, DEVICES.c.duplicates, COUNTERS.c.code.label("counter"),
                               UNITS.c.code.label("unit"))
                        .join(COUNTERS, COUNTERS.c.id == DEVICES.c.counter_id)
                        .join(UNITS, UNITS.c.id == COUNTERS.c.unit_id)
                        .where(_in(UNITS.c.id, units)).order_by(UNITS.c.code, COUNTERS.c.code, DEVICES.c.id)).all()
    out = []
    for r in rows:
        health = r.health or {}
        quiet = r.last_seen_at is None or now - r.last_seen_at > silent_after
        out.append({**{k: v for k, v in r._mapping.items() if k != "health"}, "fw": health.get("fw"),
                    "outbox": health.get("outbox"), "clock": health.get("clock"),
                    "clock_offset_ms": health.get("clock_offset_ms"), "dropped": health.get("dropped"),
                    "rssi": health.get("rssi"), "mem": health.get("mem"),
                    "silent": r.status == DeviceStatus.ACTIVE and quiet and office})
    return out


@dataclass(frozen=True, slots=True)
class Streak:
    unit: str
    counter: str
    official: str | None
    length: int
    ended_at: datetime
    ongoing: bool  # the counter's latest rating is part of it


def _streaks(rows: list[Any], minimum: int) -> list[Streak]:
    out: list[Streak] = []
    by_counter: dict[str, list[Any]] = {}
    for r in rows:
        by_counter.setdefault(r.counter, []).append(r)
    for ratings in by_counter.values():
        run: list[Any] = []
        for i, r in enumerate([*ratings, None]):
            if r is not None and r.rating == 1:
                run.append(r)
                continue
            if len(run) >= minimum:
                last = run[-1]
                out.append(Streak(last.unit, last.counter, last.official, len(run), last.event_time,
                                  i == len(ratings)))
            run = []
    return out


def negative_streaks(conn: Connection, *, units: frozenset[int] | None, now: datetime,
                     settings: Settings) -> list[Streak]:
    """Runs of at least `alerts.negative_streak` lowest ratings in a row at one counter today (HappyOrNot's
    negative-streak alert): something may be wrong at that counter now."""
    start, end = day_bounds(now.astimezone(settings.zone).date(), settings.zone)
    rows = conn.execute(select(EVENTS.c.rating, EVENTS.c.event_time, COUNTERS.c.code.label("counter"),
                               UNITS.c.code.label("unit"), OFFICIALS.c.code.label("official"))
                        .join(COUNTERS, COUNTERS.c.id == EVENTS.c.counter_id)
                        .join(UNITS, UNITS.c.id == COUNTERS.c.unit_id)
                        .outerjoin(OFFICIALS, OFFICIALS.c.id == EVENTS.c.official_id)
                        .where(counted(), _in(UNITS.c.id, units), EVENTS.c.event_time >= start,
                               EVENTS.c.event_time < end)
                        .order_by(COUNTERS.c.code, EVENTS.c.event_time, EVENTS.c.id)).all()
    return _streaks(list(rows), settings.alerts.negative_streak)


def alerts(conn: Connection, *, units: frozenset[int] | None, now: datetime, settings: Settings) -> dict[str, Any]:
    """What needs attention now: devices silent in office hours, negative streaks today."""
    silent = [d for d in fleet(conn, units=units, now=now, settings=settings) if d["silent"]]
    return {"office_hours": in_office_hours(now, settings), "silent_devices": silent,
            "negative_streaks": negative_streaks(conn, units=units, now=now, settings=settings)}


def count_in(conn: Connection, units: frozenset[int] | None) -> dict[str, int]:
    """Counters and officials in scope (for the overview's header)."""
    c = conn.execute(select(func.count()).select_from(COUNTERS).where(_in(COUNTERS.c.unit_id, units))).scalar_one()
    o = conn.execute(select(func.count()).select_from(OFFICIALS).where(
        and_(_in(OFFICIALS.c.unit_id, units), OFFICIALS.c.active.is_(True)))).scalar_one()
    return {"counters": int(c), "officials": int(o)}
