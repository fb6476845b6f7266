"""Each official's month as server.scoring inputs, aggregated in SQL (GROUP BY, never a Python loop over events).

One query counts the ratings by official, service type, scale and level, splitting off the ones that
never count (misuse, repeat ratings of one ticket, ratings annulled by a dismissed complaint); one
reads the review verdicts; one the task results. Only accepted events count: a quarantined event
has no trustworthy official or time yet.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, and_, case, func, select
from sqlalchemy.sql.elements import ColumnElement

from server.db.models import (
    COUNTERS,
    EVENTS,
    OFFICIALS,
    REVIEWS,
    TASK_RESULTS,
    UNITS,
    EventStatus,
    ReviewStatus,
    TaskResultKind,
)
from server.scoring import Adjustment, ExcludedRatings, Incident, OfficialPeriod, Policy, RatingCounts, TaskItem

NO_SERVICE_TYPE = "chung"  # counters without a service type: one shared type ("general")
UNDECIDED = (ReviewStatus.PENDING, ReviewStatus.CONTESTED)


@dataclass(frozen=True, slots=True)
class Member:
    """An official as the evaluation sees them."""

    id: int
    code: str
    name: str
    unit_id: int
    unit_code: str
    duty_group: str | None

    @property
    def group(self) -> str:
        """The similar-duty group key: within the unit, since caps count per agency (NĐ 335)."""
        return f"{self.unit_code}/{self.duty_group}" if self.duty_group else self.unit_code


@dataclass(slots=True)
class _Gathered:
    ratings: dict[tuple[str, int], list[int]] = field(default_factory=dict)
    misuse: int = 0
    annulled: int = 0
    duplicate: int = 0
    incidents: list[Incident] = field(default_factory=list)
    dismissed: int = 0
    undecided: list[int] = field(default_factory=list)  # review ids
    tasks: list[TaskItem] = field(default_factory=list)
    bonuses: list[Adjustment] = field(default_factory=list)
    penalties: list[Adjustment] = field(default_factory=list)
    general: dict[str, Decimal] = field(default_factory=dict)
    discipline: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class UnitMonth:
    """A unit's officials and their inputs for one period, ready for score_period()."""

    unit_id: int
    unit_code: str
    members: list[Member]
    inputs: list[OfficialPeriod]
    undecided_reviews: list[int]  # pending or contested review ids of the unit's officials


def _scope(column: ColumnElement[Any], official_ids: Sequence[int] | None) -> ColumnElement[bool]:
    """Rows of these officials (of anyone when None). An explicit id list, not a subquery: PostgreSQL then
    reads one unit's month through ix_events_official_time instead of scanning the whole month."""
    if official_ids is None:
        return column.is_not(None)
    return column.in_(list(official_ids))


def members(conn: Connection, *, unit_ids: Sequence[int] | None, with_activity: Iterable[int] = (),
            everyone: bool = False) -> list[Member]:
    """Active officials of the units, and inactive ones who have something in the period (`with_activity`)."""
    q = (select(OFFICIALS.c.id, OFFICIALS.c.code, OFFICIALS.c.full_name, OFFICIALS.c.unit_id, UNITS.c.code,
                OFFICIALS.c.duty_group, OFFICIALS.c.active)
         .join(UNITS, UNITS.c.id == OFFICIALS.c.unit_id))
    if unit_ids is not None:
        q = q.where(OFFICIALS.c.unit_id.in_(list(unit_ids)))
    active = set(with_activity)
    return [Member(r[0], r[1], r[2], r[3], r[4], r[5]) for r in conn.execute(q).all()
            if everyone or r[6] or r[0] in active]


def rating_counts(conn: Connection, *, start: datetime, end: datetime,
                  official_ids: Sequence[int] | None) -> list[Any]:
    """(official, service type, levels, rating, valid, misuse, duplicate, annulled) for accepted ratings."""
    annulled_ids = (select(REVIEWS.c.annulled_event_id.label("eid"))
                    .where(REVIEWS.c.status == ReviewStatus.DISMISSED, REVIEWS.c.annulled_event_id.is_not(None))
                    .distinct().subquery())
    misuse = EVENTS.c.misuse.is_(True)
    duplicate = and_(EVENTS.c.misuse.is_(False), EVENTS.c.txn_duplicate.is_(True))
    annulled = and_(EVENTS.c.misuse.is_(False), EVENTS.c.txn_duplicate.is_(False), annulled_ids.c.eid.is_not(None))
    q = (select(EVENTS.c.official_id, COUNTERS.c.service_type, EVENTS.c.levels, EVENTS.c.rating,
                func.count().label("n"),
                func.sum(case((misuse, 1), else_=0)).label("misuse"),
                func.sum(case((duplicate, 1), else_=0)).label("duplicate"),
                func.sum(case((annulled, 1), else_=0)).label("annulled"))
         .join(COUNTERS, COUNTERS.c.id == EVENTS.c.counter_id)
         .outerjoin(annulled_ids, annulled_ids.c.eid == EVENTS.c.id)
         .where(EVENTS.c.typ == "rating", EVENTS.c.status == EventStatus.ACCEPTED, EVENTS.c.event_time >= start,
                EVENTS.c.event_time < end, EVENTS.c.rating.is_not(None), EVENTS.c.levels.is_not(None),
                _scope(EVENTS.c.official_id, official_ids))
         .group_by(EVENTS.c.official_id, COUNTERS.c.service_type, EVENTS.c.levels, EVENTS.c.rating))
    return list(conn.execute(q).all())


def review_verdicts(conn: Connection, *, start: datetime, end: datetime,
                    official_ids: Sequence[int] | None) -> list[Any]:
    """Reviews attributed to officials, by the month of the event they are about."""
    q = (select(REVIEWS.c.id, REVIEWS.c.official_id, REVIEWS.c.kind, REVIEWS.c.status, REVIEWS.c.severity)
         .where(REVIEWS.c.event_time >= start, REVIEWS.c.event_time < end,
                _scope(REVIEWS.c.official_id, official_ids))
         .order_by(REVIEWS.c.id))
    return list(conn.execute(q).all())


TASK_COLUMNS = (TASK_RESULTS.c.official_id, TASK_RESULTS.c.kind, TASK_RESULTS.c.key, TASK_RESULTS.c.points,
                TASK_RESULTS.c.label, TASK_RESULTS.c.completed, TASK_RESULTS.c.quality_failures, TASK_RESULTS.c.delays,
                TASK_RESULTS.c.objective_cause)


def task_results(conn: Connection, *, period: str, official_ids: Sequence[int] | None) -> list[Any]:
    """(official, kind, key, points, label, completed, quality_failures, delays, objective_cause) rows."""
    # No ORDER BY: the engine sorts each official's items by id, so the result does not depend on it.
    q = select(*TASK_COLUMNS).where(TASK_RESULTS.c.period == period, _scope(TASK_RESULTS.c.official_id,
                                                                              official_ids))
    return list(conn.execute(q).all())


def unit_months(conn: Connection, *, period: str, start: datetime, end: datetime,
                unit_ids: Sequence[int] | None, policy: Policy, at_close: bool) -> list[UnitMonth]:
    """Every scored official's inputs, grouped by unit (the scope of score_period and of the caps).

    At close, undecided reviews follow incidents.pending_at_close = "ignore": listed, no deduction, not
    provisional. (Under "block" the caller refuses to close a unit that has any.)
    """
    gathered: dict[int, _Gathered] = defaultdict(_Gathered)
    ids = None if unit_ids is None else [m.id for m in members(conn, unit_ids=unit_ids, everyone=True)]
    for r in rating_counts(conn, start=start, end=end, official_ids=ids):
        _add_ratings(gathered[r[0]], r)
    for r in review_verdicts(conn, start=start, end=end, official_ids=ids):
        _add_review(gathered[r.official_id], r)
    for r in task_results(conn, period=period, official_ids=ids):
        _add_task_result(gathered[r[0]], r)
    measures = policy.spec.discipline.measures
    by_unit: dict[int, UnitMonth] = {}
    for m in sorted(members(conn, unit_ids=unit_ids, with_activity=gathered), key=lambda m: (m.unit_id, m.id)):
        g = gathered.get(m.id) or _Gathered()
        unit = by_unit.setdefault(m.unit_id, UnitMonth(m.unit_id, m.unit_code, [], [], []))
        unit.members.append(m)
        unit.inputs.append(_official_period(m, g, measures, at_close))
        unit.undecided_reviews.extend(g.undecided)
    return list(by_unit.values())


def _add_ratings(g: _Gathered, r: tuple[Any, ...]) -> None:
    _official, service_type, levels, rating, n, misuse, duplicate, annulled = r
    g.misuse += misuse
    g.duplicate += duplicate
    g.annulled += annulled
    valid = n - misuse - duplicate - annulled
    if valid and 1 <= rating <= levels:
        counts = g.ratings.setdefault((service_type or NO_SERVICE_TYPE, levels), [0] * levels)
        counts[rating - 1] += valid


def _add_review(g: _Gathered, r: Any) -> None:
    if r.status == ReviewStatus.CONFIRMED:
        # A confirmed review without a severity is scored as the severity "" and refused by the engine
        # (unknown severity), naming the review: the verdict must be completed, not guessed.
        g.incidents.append(Incident(str(r.id), r.kind, r.severity or ""))
    elif r.status == ReviewStatus.DISMISSED:
        g.dismissed += 1
    elif r.status in UNDECIDED:
        g.undecided.append(int(r.id))


def _add_task_result(g: _Gathered, r: tuple[Any, ...]) -> None:
    _official, kind, key, points, label, completed, quality_failures, delays, objective_cause = r
    if kind == TaskResultKind.TASK:
        g.tasks.append(TaskItem(key, points, label, completed, quality_failures, delays, objective_cause))
    elif kind == TaskResultKind.BONUS:
        g.bonuses.append(Adjustment(key, points, label))
    elif kind == TaskResultKind.PENALTY:
        g.penalties.append(Adjustment(key, points, label))
    elif kind == TaskResultKind.GENERAL:
        g.general[key] = points
    else:
        g.discipline.append(key)


def _official_period(m: Member, g: _Gathered, measures: Sequence[str], at_close: bool) -> OfficialPeriod:
    known = [d for d in g.discipline if d in measures]
    unknown = [d for d in g.discipline if d not in measures]
    # The most severe measure counts (measures are listed mildest first); an unknown one is passed on
    # so that the engine refuses it by name rather than it being dropped here.
    discipline = unknown[0] if unknown else (max(known, key=measures.index) if known else None)
    ratings = tuple(RatingCounts(st, levels, tuple(c)) for (st, levels), c in sorted(g.ratings.items()))
    return OfficialPeriod(
        official_id=m.code, agency=m.unit_code, group=m.group, ratings=ratings,
        excluded=ExcludedRatings(misuse=g.misuse, annulled=g.annulled, txn_duplicate=g.duplicate),
        incidents=tuple(g.incidents), dismissed_incidents=g.dismissed,
        pending_incidents=0 if at_close else len(g.undecided),
        unresolved_incidents=len(g.undecided) if at_close else 0,
        tasks=tuple(g.tasks), bonuses=tuple(g.bonuses), penalties=tuple(g.penalties), general=dict(g.general),
        discipline=discipline)

