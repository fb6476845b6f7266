"""When a month closes for verdicts: the one place the scoring layer's month state plugs in.

An official may contest a confirmed verdict until the month of the incident closes, and the clips of
confirmed incidents are kept until then. The scoring layer (issue 6) owns the month lifecycle; until
`contest_closes_at` reads it, a month closes `review.contest_days` after its last day.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Connection

from server.queries import month_bounds
from server.settings import Settings


def period_of(at: datetime, settings: Settings) -> str:
    """The evaluation month ('YYYY-MM', offices' time zone) an instant belongs to."""
    return at.astimezone(settings.zone).strftime("%Y-%m")


def contest_closes_at(conn: Connection, *, period: str, settings: Settings) -> datetime:
    """The instant after which verdicts of `period` can no longer be contested."""
    _start, end = month_bounds(period, settings.zone)
    return end + timedelta(days=settings.review.contest_days)


def contest_open(conn: Connection, *, event_time: datetime, settings: Settings, now: datetime) -> bool:
    """May a verdict on an incident at `event_time` still be contested at `now`?"""
    return now < contest_closes_at(conn, period=period_of(event_time, settings), settings=settings)
