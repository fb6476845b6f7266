"""Explanation lines while they are still exact, and their rounding into published lines."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from server.scoring.numbers import apportion, fsum, to_decimal
from server.scoring.results import Line


@dataclass(frozen=True, slots=True)
class Draft:
    """An explanation line with its exact points, before rounding."""

    part: str
    rule: str
    subject: str
    text: str
    exact: Fraction = Fraction(0)


def settle(drafts: Sequence[Draft], decimals: int) -> tuple[Line, ...]:
    """Round the drafts into lines that sum to the floor of their exact sum.

    Two levels of largest-remainder apportionment: first the parts (each criterion, tasks,
    adjustments, limits), so that every published part is the floor or the ceiling of its exact
    points (a criterion at exactly 0 shows 0.00, never −0.01), then the lines within each part.
    """
    parts: dict[str, list[int]] = {}
    for i, d in enumerate(drafts):
        parts.setdefault(d.part, []).append(i)
    exact_parts = [fsum(drafts[i].exact for i in members) for members in parts.values()]
    units = [0] * len(drafts)
    for members, target in zip(parts.values(), apportion(exact_parts, decimals), strict=True):
        for i, u in zip(
            members, apportion([drafts[i].exact for i in members], decimals, target), strict=True
        ):
            units[i] = u
    return tuple(
        Line(d.part, d.rule, d.subject, d.text, to_decimal(u, decimals))
        for d, u in zip(drafts, units, strict=True)
    )


def note(part: str, rule: str, subject: str, text: str, decimals: int) -> Line:
    """A line that changes no points (a grade step, an excluded input) but must be seen."""
    return Line(part, rule, subject, text, Decimal(0).scaleb(-decimals))


def part_sums(drafts: Iterable[Draft]) -> dict[str, Fraction]:
    """Exact points per part, in one pass."""
    grouped: dict[str, list[Fraction]] = {}
    for d in drafts:
        grouped.setdefault(d.part, []).append(d.exact)
    return {part: fsum(values) for part, values in grouped.items()}


def points_by_part(lines: Iterable[Line], decimals: int) -> dict[str, Decimal]:
    """Published points per part, in one pass."""
    sums: dict[str, Decimal] = {}
    for ln in lines:
        sums[ln.part] = sums.get(ln.part, Decimal(0).scaleb(-decimals)) + ln.points
    return sums


def within(sums: Mapping[str, Decimal], outer: str, decimals: int) -> Decimal:
    """The points of every part inside `outer` ("general" holds "general.x"; "" is everything)."""
    return sum((v for part, v in sums.items() if _within(part, outer)), Decimal(0).scaleb(-decimals))


def _within(part: str, outer: str) -> bool:
    return not outer or part == outer or part.startswith(outer + ".")
