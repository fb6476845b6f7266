"""Periods (YYYY-MM months in the offices' zone), their phase, and the review deadline."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from server.evaluation.errors import EvaluationError
from server.queries import month_bounds

# Years 2000-2999: evaluations exist from 2018 on, and every month of the range has a next month that
# Python's datetime can represent (year 9999's December would not).
PERIOD_PATTERN = r"^2\d{3}-(0[1-9]|1[0-2])$"
YEAR_PATTERN = r"^2\d{3}$"
PERIOD = re.compile(PERIOD_PATTERN)
YEAR = re.compile(YEAR_PATTERN)


class Phase(StrEnum):
    OPEN = "open"  # the month is still running: scores are computed live and will change
    PROVISIONAL = "provisional"  # the month is over, not yet closed: computed live, reviews may still change it
    CLOSED = "closed"  # scored and frozen (version 1), awaiting finalisation; may be closed again
    FINAL = "final"  # immutable snapshot; corrections are amendments


def check_period(period: str) -> str:
    """The period if it is YYYY-MM, else an error that shows the format."""
    if not PERIOD.match(period):
        raise EvaluationError("invalid", f"period {period!r}: write the month as YYYY-MM (2000-2999), e.g. 2026-03")
    return period


def check_year(year: str) -> str:
    if not YEAR.match(year):
        raise EvaluationError("invalid", f"year {year!r}: write it as YYYY, e.g. 2026")
    return year


def bounds(period: str, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """[first instant, first instant of the next month) of a period, in the offices' zone."""
    return month_bounds(check_period(period), zone)


def review_deadline(period: str, zone: ZoneInfo, review_days: int) -> datetime:
    """When the review window after the month ends: the earliest a month may close without --force."""
    return bounds(period, zone)[1] + timedelta(days=review_days)


def live_phase(period: str, zone: ZoneInfo, now: datetime) -> Phase:
    """The phase of a month that has no closed/final state row."""
    return Phase.OPEN if now < bounds(period, zone)[1] else Phase.PROVISIONAL


def months_of(year: str) -> list[str]:
    return [f"{check_year(year)}-{m:02d}" for m in range(1, 13)]
