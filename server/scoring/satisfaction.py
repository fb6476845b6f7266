"""The satisfaction criterion: valid ratings -> a fair 0..1 score -> points (domain.md §3).

Each rating becomes a value in 0..1 (its level's points / the best level's points). An official's
mean R is first adjusted for the difficulty of the services they handled (each service type's mean
is compared with the group's, as hospital scores adjust for patient mix), then shrunk toward the
similar-duty group's mean C: S = (n·R' + m·C)/(n + m). With no ratings S = C; with many, S ≈ R'.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

from server.scoring.explain import Draft
from server.scoring.inputs import InputError, OfficialPeriod
from server.scoring.numbers import exact, fsum, show
from server.scoring.policy import Criterion, Policy, PolicySpec


@dataclass(frozen=True, slots=True)
class Tally:
    """A count of valid ratings and the sum of their 0..1 values."""

    n: int = 0
    total: Fraction = Fraction(0)

    def __add__(self, other: Tally) -> Tally:
        return Tally(self.n + other.n, self.total + other.total)

    @property
    def mean(self) -> Fraction | None:
        """The mean value, None without ratings."""
        return self.total / self.n if self.n else None


@dataclass(frozen=True, slots=True)
class GroupContext:
    """A similar-duty group's ratings this period: overall and per service type."""

    group: str
    overall: Tally
    by_service: Mapping[str, Tally]


@dataclass(frozen=True, slots=True)
class SatisfactionOutcome:
    """The criterion's exact statistics and explanation drafts."""

    n: int
    raw_mean: Fraction | None
    adjusted_mean: Fraction | None
    group_mean: Fraction
    score: Fraction
    drafts: tuple[Draft, ...]
    provisional: tuple[str, ...]


def tally_ratings(spec: PolicySpec, official: OfficialPeriod) -> dict[str, Tally]:
    """The official's valid ratings per service type; raises InputError on a scale the policy lacks."""
    tallies: dict[str, Tally] = {}
    seen: set[tuple[str, int]] = set()
    for rc in official.ratings:
        key = f"ratings[{rc.service_type}/{rc.levels}]"
        points = spec.satisfaction.level_points.get(rc.levels)
        if points is None:
            raise InputError(official.official_id, key, f"the policy accepts no {rc.levels}-level scale")
        if len(rc.counts) != rc.levels or any(c < 0 for c in rc.counts):
            raise InputError(official.official_id, key, f"needs {rc.levels} counts, none negative")
        if (rc.service_type, rc.levels) in seen:
            raise InputError(official.official_id, key, "given twice; merge the counts")
        seen.add((rc.service_type, rc.levels))
        best = exact(points[-1])
        value = fsum(c * exact(p) for c, p in zip(rc.counts, points, strict=True)) / best
        tallies[rc.service_type] = tallies.get(rc.service_type, Tally()) + Tally(sum(rc.counts), value)
    return tallies


def group_contexts(policy: Policy, officials: Iterable[OfficialPeriod]) -> dict[str, GroupContext]:
    """Pool the valid ratings of each similar-duty group, overall and per service type."""
    return pool_groups((o.group, tally_ratings(policy.spec, o)) for o in officials)


def pool_groups(tallies: Iterable[tuple[str, Mapping[str, Tally]]]) -> dict[str, GroupContext]:
    """Group contexts from (group, per-service tallies) pairs already computed."""
    pooled: dict[str, dict[str, Tally]] = {}
    for group, mine in tallies:
        services = pooled.setdefault(group, {})
        for service, tally in mine.items():
            services[service] = services.get(service, Tally()) + tally
    return {
        group: GroupContext(group, sum(services.values(), Tally()), dict(services))
        for group, services in pooled.items()
    }


def assess_satisfaction(
    spec: PolicySpec,
    criterion: Criterion,
    official: OfficialPeriod,
    mine: Mapping[str, Tally],
    ctx: GroupContext,
) -> SatisfactionOutcome:
    """Score the satisfaction criterion of one official (tallies `mine`) against their group."""
    sat = spec.satisfaction
    own = sum(mine.values(), Tally())
    c = ctx.overall.mean if ctx.overall.mean is not None else exact(sat.fallback_mean)
    r = own.mean
    r_adj = _difficulty_adjusted(spec, mine, ctx, c) if r is not None else None
    drafts = [*_rating_notes(criterion.id, official), _group_line(spec, criterion, ctx, c)]
    few = own.n < sat.min_ratings
    if few and sat.below_min == "full":
        drafts = [*drafts[:-1], _full_line(spec, criterion, own.n)]
        score = Fraction(1)
    elif r is None or r_adj is None or (few and sat.below_min == "group_mean"):
        drafts.append(_own_note(spec, criterion, own.n))
        score = c
    else:
        weight = own.n / (own.n + exact(sat.prior_weight))
        drafts += _own_lines(spec, criterion, own.n, weight, r, r_adj, c)
        score = c + weight * (r_adj - c)
    provisional = _provisional(spec, ctx, own.n)
    return SatisfactionOutcome(own.n, r, r_adj, c, score, tuple(drafts), provisional)


def _difficulty_adjusted(
    spec: PolicySpec, mine: Mapping[str, Tally], ctx: GroupContext, c: Fraction
) -> Fraction:
    """R' = C + (sum of the official's values - what the group's type means predict) / n, kept in 0..1."""
    own = sum(mine.values(), Tally())  # n > 0: only called with ratings
    if not spec.satisfaction.difficulty.enabled:
        return own.total / own.n
    k = exact(spec.satisfaction.difficulty.prior_weight)
    expected = Fraction(0)
    for service, tally in mine.items():
        group_t = ctx.by_service.get(service, Tally())
        # the type mean, shrunk toward C by k pseudo-ratings: a rarely-rated type moves no one much
        type_mean = (group_t.total + k * c) / (group_t.n + k) if group_t.n + k else c
        expected += tally.n * type_mean
    return min(Fraction(1), max(Fraction(0), c + (own.total - expected) / own.n))


def _provisional(spec: PolicySpec, ctx: GroupContext, n: int) -> tuple[str, ...]:
    reasons = []
    if n < spec.satisfaction.min_ratings:
        reasons.append("few_ratings")
    if ctx.overall.n == 0:
        reasons.append("no_group_ratings")
    return tuple(reasons)


def _rating_notes(criterion_id: str, official: OfficialPeriod) -> list[Draft]:
    part = f"general.{criterion_id}"
    notes = []
    for rc in sorted(official.ratings, key=lambda rc: (rc.service_type, rc.levels)):
        counts = ", ".join(f"{c}×{level}" for level, c in enumerate(rc.counts, start=1) if c)
        text = f"valid ratings, {rc.service_type}, {rc.levels}-level scale: {counts or 'none'}"
        notes.append(Draft(part, "input", f"ratings:{rc.service_type}", text))
    ex = official.excluded
    if ex.misuse or ex.annulled or ex.txn_duplicate:
        text = (
            f"not scored: {ex.misuse} misuse, {ex.annulled} annulled, "
            f"{ex.txn_duplicate} repeat ratings of one transaction"
        )
        notes.append(Draft(part, "input", "ratings:excluded", text))
    return notes


def _group_line(spec: PolicySpec, criterion: Criterion, ctx: GroupContext, c: Fraction) -> Draft:
    top = exact(criterion.max)
    if ctx.overall.n:
        origin = f"group mean C = {show(c)} over {ctx.overall.n} valid ratings in group '{ctx.group}'"
    else:
        origin = f"no valid ratings in group '{ctx.group}': C = satisfaction.fallback_mean = {show(c)}"
    text = f"{origin}; {show(top)} × C"
    rule = "satisfaction.prior_weight" if ctx.overall.n else "satisfaction.fallback_mean"
    return Draft(f"general.{criterion.id}", rule, f"group:{ctx.group}", text, top * c)


def _full_line(spec: PolicySpec, criterion: Criterion, n: int) -> Draft:
    text = f"{n} < {spec.satisfaction.min_ratings} valid ratings: full points (satisfaction.below_min = full)"
    return Draft(f"general.{criterion.id}", "satisfaction.below_min", "ratings", text, exact(criterion.max))


def _own_note(spec: PolicySpec, criterion: Criterion, n: int) -> Draft:
    part = f"general.{criterion.id}"
    if n == 0:
        return Draft(part, "satisfaction.prior_weight", "ratings", "no valid ratings: the group mean stands")
    text = (
        f"{n} < {spec.satisfaction.min_ratings} valid ratings: own ratings not used (below_min = group_mean)"
    )
    return Draft(part, "satisfaction.below_min", "ratings", text)


def _own_lines(
    spec: PolicySpec,
    criterion: Criterion,
    n: int,
    weight: Fraction,
    r: Fraction,
    r_adj: Fraction,
    c: Fraction,
) -> Sequence[Draft]:
    """Own ratings move the score from C by the weight n/(n + m): raw mean, then difficulty."""
    part, top, m = f"general.{criterion.id}", exact(criterion.max), spec.satisfaction.prior_weight
    own = Draft(
        part,
        "satisfaction.prior_weight",
        "ratings",
        f"own mean R = {show(r)} from n = {n}; weight n/(n + m) = {n}/({n} + {show(m)}) = {show(weight)}; "
        f"{show(top)} × weight × (R − C)",
        top * weight * (r - c),
    )
    if not spec.satisfaction.difficulty.enabled:
        return [own]
    harder = Draft(
        part,
        "satisfaction.difficulty",
        "ratings",
        f"service-type difficulty: adjusted mean R' = {show(r_adj)}; {show(top)} × weight × (R' − R)",
        top * weight * (r_adj - r),
    )
    return [own, harder]
