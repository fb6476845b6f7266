"""When a month closes for verdicts: the one place where the review workflow reads the month lifecycle.

An official may contest a confirmed verdict until the month of the incident closes, and the clips of
confirmed incidents are kept until then. The scoring layer owns the lifecycle (server/evaluation): a
unit's month closes at its review deadline (`scoring.review_days` after the month's last day), or
earlier when an administrator closed it before the deadline with a reason (`score_months`).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, select

from server.db.models import SCORE_MONTHS
from server.evaluation.periods import review_deadline
from server.settings import Settings


def period_of(at: datetime, settings: Settings) -> str:
    """The evaluation month ('YYYY-MM', offices' time zone) an instant belongs to."""
    return at.astimezone(settings.zone).strftime("%Y-%m")


def contest_closes_at(conn: Connection, *, period: str, settings: Settings, unit_id: int | None = None) -> datetime:
    """The instant after which verdicts of `period` (in `unit_id`, when given) can no longer be contested."""
    deadline = review_deadline(period, settings.zone, settings.scoring.review_days)
    if unit_id is None:
        return deadline
    closed = conn.execute(select(SCORE_MONTHS.c.closed_at).where(
        SCORE_MONTHS.c.period == period, SCORE_MONTHS.c.unit_id == unit_id)).scalar_one_or_none()
    return min(deadline, closed) if closed is not None else deadline


def contest_open(conn: Connection, *, event_time: datetime, settings: Settings, now: datetime,
                 unit_id: int | None = None) -> bool:
    """May a verdict on an incident at `event_time` still be contested at `now`?"""
    return now < contest_closes_at(conn, period=period_of(event_time, settings), settings=settings, unit_id=unit_id)
