"""Cross-field checks of a policy: what a schema alone cannot say (sums, orderings, references)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from itertools import pairwise
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from server.scoring.policy import PolicySpec

Problem = tuple[str, str]  # (key, what is wrong)


def check_policy(spec: PolicySpec) -> Problem | None:
    """The first inconsistency in a schema-valid policy, or None."""
    checks: tuple[Callable[[PolicySpec], Iterator[Problem]], ...] = (
        _general,
        _satisfaction,
        _incidents,
        _tasks,
        _grades,
        _discipline,
        _caps,
        _totals,
    )
    for check in checks:
        for problem in check(spec):
            return problem
    return None


def _general(spec: PolicySpec) -> Iterator[Problem]:
    criteria = spec.general.criteria
    total = sum((c.max for c in criteria), Decimal(0))
    if total != spec.general.points:
        yield "general.points", f"is {spec.general.points} but the criteria's max add up to {total}"
    yield from _unique("general.criteria", [c.id for c in criteria], "id")
    sources = [i for i, c in enumerate(criteria) if c.source == "satisfaction"]
    if len(sources) > 1:
        yield f"general.criteria[{sources[1]}].source", "only one criterion can come from satisfaction"


def _satisfaction(spec: PolicySpec) -> Iterator[Problem]:
    for levels, points in spec.satisfaction.level_points.items():
        key = f"satisfaction.level_points.{levels}"
        if len(points) != levels:
            yield key, f"a {levels}-level scale needs {levels} points (worst first), not {len(points)}"
        elif any(a > b for a, b in pairwise(points)):
            yield key, "points must not decrease from the worst level to the best"
        elif points[-1] == 0:
            yield key, "the best level needs more than 0 points (values are points / best points)"
    if not spec.satisfaction.level_points:
        yield "satisfaction.level_points", "list at least one accepted scale, e.g. 3 = [0, 1, 2]"


def _incidents(spec: PolicySpec) -> Iterator[Problem]:
    if spec.incidents.criterion not in {c.id for c in spec.general.criteria}:
        yield "incidents.criterion", f"'{spec.incidents.criterion}' is not a general criterion id"


def _tasks(spec: PolicySpec) -> Iterator[Problem]:
    w = spec.tasks.weights
    if w.quantity + w.quality + w.progress == 0:
        yield "tasks.weights", "at least one of quantity, quality, progress must weigh more than 0"


def _grades(spec: PolicySpec) -> Iterator[Problem]:
    grades = spec.grades
    yield from _unique("grades", [g.code for g in grades], "code")
    step = Decimal(1).scaleb(-spec.decimals)
    previous: Decimal | None = None
    for i, grade in enumerate(grades):
        if (grade.min is None) != (i == len(grades) - 1):
            yield f"grades[{i}].min", "every grade but the last needs a min; the last (catch-all) has none"
        elif grade.min is not None and grade.min % step:
            yield f"grades[{i}].min", f"must be a multiple of {step} (decimals = {spec.decimals})"
        elif grade.min is not None and previous is not None and grade.min >= previous:
            yield f"grades[{i}].min", "grades go from best to worst: each min below the previous one"
        previous = grade.min


def _discipline(spec: PolicySpec) -> Iterator[Problem]:
    d = spec.discipline
    yield from _unique("discipline.measures", d.measures, None)
    if d.veto_from is not None and d.veto_from not in d.measures:
        yield "discipline.veto_from", f"'{d.veto_from}' is not in discipline.measures"
    if d.veto_grade not in _codes(spec):
        yield "discipline.veto_grade", f"'{d.veto_grade}' is not a grade code"


def _caps(spec: PolicySpec) -> Iterator[Problem]:
    codes = _codes(spec)
    for i, cap in enumerate(spec.caps):
        key = f"caps[{i}]"
        if cap.grade not in codes[:-1]:
            yield f"{key}.grade", f"'{cap.grade}' must be a grade code other than the last"
        elif cap.basis_from not in codes or codes.index(cap.basis_from) < codes.index(cap.grade):
            yield f"{key}.basis_from", "must be a grade code at or below the capped grade"
        elif cap.demote_to is not None and (
            cap.demote_to not in codes or codes.index(cap.demote_to) <= codes.index(cap.grade)
        ):
            yield f"{key}.demote_to", "must be a grade code below the capped grade"
        elif cap.outstanding_ratio is not None and cap.outstanding_ratio < cap.ratio:
            yield f"{key}.outstanding_ratio", "cannot be below ratio"
        yield from _unique(f"{key}.scopes", list(cap.scopes), None)
        yield from _unique(f"{key}.tie_break", list(cap.tie_break), None)
        yield from _unique(f"{key}.applies_to", list(cap.applies_to), None)


def _totals(spec: PolicySpec) -> Iterator[Problem]:
    if spec.total_min >= spec.total_max:
        yield "total_min", "must be below total_max"


def _unique(key: str, values: list[str], field: str | None) -> Iterator[Problem]:
    seen: set[str] = set()
    for i, value in enumerate(values):
        if value in seen:
            yield f"{key}[{i}]" + (f".{field}" if field else ""), f"'{value}' appears twice"
        seen.add(value)


def _codes(spec: PolicySpec) -> list[str]:
    return [g.code for g in spec.grades]
