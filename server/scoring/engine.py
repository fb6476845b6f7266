"""Scoring a whole agency or group for a period, and the year roll-up (NĐ 335: the mean of the months).

Pure and deterministic: the same inputs and the same policy bytes give the same results, byte for
byte (results.result_digest), whatever the order of the officials or of their items.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from server.scoring.explain import Draft, part_sums, points_by_part, settle, within
from server.scoring.grading import CapEntry, apply_caps, individual_grade
from server.scoring.inputs import InputError, OfficialPeriod, OfficialYear
from server.scoring.numbers import exact, show
from server.scoring.policy import Policy, PolicySpec
from server.scoring.results import Line, SatisfactionSummary, ScoreResult, YearResult
from server.scoring.satisfaction import (
    GroupContext,
    SatisfactionOutcome,
    Tally,
    assess_satisfaction,
    pool_groups,
    tally_ratings,
)
from server.scoring.tasks import adjustment_drafts, task_drafts

COMPONENTS = ("general", "tasks", "adjustments", "limits")
DISPLAY_PLACES = Decimal("0.000001")  # satisfaction statistics are shown, never summed


@dataclass(frozen=True, slots=True)
class _Assessed:
    """One official scored on their own, before the caps that need everyone's grade."""

    official: OfficialPeriod
    lines: tuple[Line, ...]
    total: Decimal
    grade: str
    components: dict[str, Decimal]
    criteria: dict[str, Decimal]
    satisfaction: SatisfactionOutcome | None
    provisional: tuple[str, ...]


def score_period(
    policy: Policy,
    officials: Sequence[OfficialPeriod],
    *,
    period: str,
    outstanding_units: frozenset[str] = frozenset(),
    contexts: Mapping[str, GroupContext] | None = None,
) -> list[ScoreResult]:
    """Score everyone of an agency or group for one period; results in the order of `officials`.

    Group means come from `officials` unless `contexts` (group key -> GroupContext) are given, e.g.
    when a similar-duty group spans more officials than this call. Caps count only `officials`.
    """
    _unique([o.official_id for o in officials])
    tallies = [tally_ratings(policy.spec, o) for o in officials]
    if contexts is None:
        contexts = pool_groups((o.group, mine) for o, mine in zip(officials, tallies, strict=True))
    assessed = [
        _assess(policy.spec, o, mine, _context(contexts, o))
        for o, mine in zip(officials, tallies, strict=True)
    ]
    entries = [
        CapEntry(a.official.official_id, a.official.agency, a.official.group, a.grade, a.total, a.components)
        for a in assessed
    ]
    capped = apply_caps(policy.spec, entries, "month", outstanding_units)
    return [_result(policy, a, period, *capped[a.official.official_id]) for a in assessed]


def _assess(spec: PolicySpec, o: OfficialPeriod, mine: Mapping[str, Tally], ctx: GroupContext) -> _Assessed:
    """Points, lines and grade before caps for one official."""
    general, sat, reasons = _general_drafts(spec, o, mine, ctx)
    tasks, task_reasons = task_drafts(spec, o)
    drafts = [*general, *tasks, *adjustment_drafts(spec, o)]
    by_part = part_sums(drafts)
    drafts += _limit_drafts(spec, sum(by_part.values(), Fraction(0)))
    lines = settle(drafts, spec.decimals)
    published = points_by_part(lines, spec.decimals)
    total = within(published, "", spec.decimals)
    # "Điểm liệt" looks at the exact points: a criterion at 0.004 is not at 0, even if shown 0.00.
    zero = [c.id for c in spec.general.criteria if not by_part.get(f"general.{c.id}")]
    zero += [] if by_part.get("tasks") else ["tasks"]
    _check_discipline(spec, o.official_id, o.discipline)
    grade, grade_lines = individual_grade(spec, total, zero, o.discipline)
    components = {name: within(published, name, spec.decimals) for name in COMPONENTS}
    criteria = {c.id: within(published, f"general.{c.id}", spec.decimals) for c in spec.general.criteria}
    provisional = tuple(dict.fromkeys([*reasons, *task_reasons]))
    return _Assessed(o, (*lines, *grade_lines), total, grade, components, criteria, sat, provisional)


def _result(policy: Policy, a: _Assessed, period: str, grade: str, cap_lines: list[Line]) -> ScoreResult:
    o = a.official
    return ScoreResult(
        official_id=o.official_id,
        agency=o.agency,
        group=o.group,
        period=period,
        policy=policy.ref,
        total=a.total,
        grade=grade,
        grade_before_caps=a.grade,
        components=a.components,
        criteria=a.criteria,
        satisfaction=_summary(a.satisfaction),
        provisional_reasons=a.provisional,
        lines=(*a.lines, *cap_lines),
    )


def _general_drafts(
    spec: PolicySpec, o: OfficialPeriod, mine: Mapping[str, Tally], ctx: GroupContext
) -> tuple[list[Draft], SatisfactionOutcome | None, list[str]]:
    """Each general criterion: entered by the unit head or from satisfaction, then incidents."""
    _check_entered(spec, o)
    drafts: list[Draft] = []
    sat: SatisfactionOutcome | None = None
    reasons: list[str] = []
    for i, c in enumerate(spec.general.criteria):
        part, rule = f"general.{c.id}", f"general.criteria[{i}]"
        if c.source == "satisfaction":
            sat = assess_satisfaction(spec, c, o, mine, ctx)
            own = list(sat.drafts)
            reasons += sat.provisional
        elif c.id in o.general:
            text = f"{c.label}: entered by the unit head (max {show(c.max)})"
            own = [Draft(part, rule, "input:general", text, exact(o.general[c.id]))]
        else:
            own = [Draft(part, rule, "input:general", f"{c.label}: not entered yet")]
            reasons.append(f"missing_criterion:{c.id}")
        if c.id == spec.incidents.criterion:
            so_far = sum((d.exact for d in own), Fraction(0))
            incident_drafts, incident_reasons = _incident_drafts(spec, o, part, so_far)
            own += incident_drafts
            reasons += incident_reasons
        drafts += own
    return drafts, sat, reasons


def _incident_drafts(
    spec: PolicySpec, o: OfficialPeriod, part: str, so_far: Fraction
) -> tuple[list[Draft], list[str]]:
    """Confirmed incidents deduct per severity, never taking the criterion below 0; others deduct nothing."""
    drafts: list[Draft] = []
    for incident in sorted(o.incidents, key=lambda i: i.id):
        points = spec.incidents.deduction.get(incident.severity)
        if points is None:
            raise InputError(
                o.official_id, f"incidents[{incident.id}]", f"unknown severity '{incident.severity}'"
            )
        text = f"confirmed {incident.kind}, severity {incident.severity}"
        drafts.append(
            Draft(
                part,
                f"incidents.deduction.{incident.severity}",
                f"incident:{incident.id}",
                text,
                -exact(points),
            )
        )
    _unique([i.id for i in o.incidents], o.official_id, "incidents")
    if min(o.dismissed_incidents, o.pending_incidents, o.unresolved_incidents) < 0:
        raise InputError(o.official_id, "dismissed/pending/unresolved_incidents", "cannot be negative")
    if o.dismissed_incidents:
        text = f"{o.dismissed_incidents} complaint(s) dismissed after review: no deduction"
        drafts.append(Draft(part, "input", "incidents:dismissed", text))
    if o.pending_incidents:
        text = f"{o.pending_incidents} incident(s) under review: no deduction unless confirmed"
        drafts.append(Draft(part, "input", "incidents:pending", text))
    if o.unresolved_incidents:
        text = (f"{o.unresolved_incidents} incident(s) still under review when the month closed: no deduction "
                "(incidents.pending_at_close = ignore); a later verdict counts by amendment")
        drafts.append(Draft(part, "incidents.pending_at_close", "incidents:unresolved", text))
    below = so_far + sum((d.exact for d in drafts), Fraction(0))
    if below < 0:
        drafts.append(Draft(part, "incidents.criterion", part, "a criterion never goes below 0", -below))
    return drafts, ["pending_incidents"] if o.pending_incidents else []


def _limit_drafts(spec: PolicySpec, raw: Fraction) -> list[Draft]:
    """Keep the total within [total_min, total_max], visibly."""
    low, high = exact(spec.total_min), exact(spec.total_max)
    if raw < low:
        return [Draft("limits", "total_min", "total", f"total {show(raw)} raised to total_min", low - raw)]
    if raw > high:
        return [Draft("limits", "total_max", "total", f"total {show(raw)} lowered to total_max", high - raw)]
    return []


def _check_entered(spec: PolicySpec, o: OfficialPeriod) -> None:
    """Points entered by the unit head must name an entered criterion and stay within 0..max."""
    criteria = {c.id: c for c in spec.general.criteria}
    for cid, points in o.general.items():
        c = criteria.get(cid)
        if c is None or c.source != "entered":
            raise InputError(o.official_id, f"general[{cid}]", "not a criterion the unit head enters")
        if not 0 <= points <= c.max:
            raise InputError(o.official_id, f"general[{cid}]", f"{points} is outside 0..{c.max}")


def _check_discipline(spec: PolicySpec, official_id: str, measure: str | None) -> None:
    if measure is not None and measure not in spec.discipline.measures:
        raise InputError(official_id, "discipline", f"'{measure}' is not in the policy's discipline.measures")


def _context(contexts: Mapping[str, GroupContext], o: OfficialPeriod) -> GroupContext:
    ctx = contexts.get(o.group)
    return ctx if ctx is not None else GroupContext(o.group, Tally(), {})


def _unique(ids: Sequence[str], official_id: str = "-", key: str = "officials") -> None:
    seen: set[str] = set()
    for i in ids:
        if i in seen:
            raise InputError(official_id, f"{key}[{i}]", "id given twice")
        seen.add(i)


def _summary(sat: SatisfactionOutcome | None) -> SatisfactionSummary | None:
    if sat is None:
        return None
    raw = None if sat.raw_mean is None else _display(sat.raw_mean)
    adjusted = None if sat.adjusted_mean is None else _display(sat.adjusted_mean)
    return SatisfactionSummary(sat.n, raw, adjusted, _display(sat.group_mean), _display(sat.score))


def _display(x: Fraction) -> Decimal:
    return (Decimal(x.numerator) / Decimal(x.denominator)).quantize(DISPLAY_PLACES)


def score_year(
    policy: Policy,
    officials: Sequence[OfficialYear],
    *,
    year: str,
    outstanding_units: frozenset[str] = frozenset(),
) -> list[YearResult]:
    """Year totals (mean of the monthly totals) and year grades with vetoes and caps (NĐ 335)."""
    spec = policy.spec
    _unique([o.official_id for o in officials])
    rolled = [_roll_up(spec, o) for o in officials]
    entries = [
        CapEntry(o.official_id, o.agency, o.group, grade, total)
        for o, (_, total, grade) in zip(officials, rolled, strict=True)
    ]
    capped = apply_caps(spec, entries, "year", outstanding_units)
    return [
        YearResult(
            o.official_id,
            o.agency,
            o.group,
            year,
            policy.ref,
            len(o.monthly_totals),
            total,
            capped[o.official_id][0],
            grade,
            (*lines, *capped[o.official_id][1]),
        )
        for o, (lines, total, grade) in zip(officials, rolled, strict=True)
    ]


def _roll_up(spec: PolicySpec, o: OfficialYear) -> tuple[tuple[Line, ...], Decimal, str]:
    """The mean of the monthly totals as lines (each month / count), and the grade it earns."""
    months = sorted(o.monthly_totals.items())
    if not months:
        raise InputError(o.official_id, "monthly_totals", "a year needs at least one monthly total")
    drafts = [
        Draft(
            "months",
            "year.mean",
            f"month:{label}",
            f"{label}: {total} / {len(months)}",
            exact(total) / len(months),
        )
        for label, total in months
    ]
    lines = settle(drafts, spec.decimals)
    total = within(points_by_part(lines, spec.decimals), "", spec.decimals)
    _check_discipline(spec, o.official_id, o.discipline)
    grade, grade_lines = individual_grade(spec, total, [], o.discipline)
    return (*lines, *grade_lines), total, grade
