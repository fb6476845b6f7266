"""Explanation lines while they are still exact, and their rounding into published lines."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from server.scoring.numbers import apportion
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
    """Round the drafts into lines that sum to the floor of their exact sum (numbers.apportion)."""
    points = apportion([d.exact for d in drafts], decimals)
    return tuple(Line(d.part, d.rule, d.subject, d.text, p) for d, p in zip(drafts, points, strict=True))


def note(part: str, rule: str, subject: str, text: str, decimals: int) -> Line:
    """A line that changes no points (a grade step, an excluded input) but must be seen."""
    return Line(part, rule, subject, text, Decimal(0).scaleb(-decimals))


def part_sums(drafts: Iterable[Draft]) -> dict[str, Fraction]:
    """Exact points per part, in one pass."""
    sums: dict[str, Fraction] = {}
    for d in drafts:
        sums[d.part] = sums.get(d.part, Fraction(0)) + d.exact
    return sums


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
