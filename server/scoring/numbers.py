"""Exact arithmetic and the single rounding rule behind every published number.

Every score is computed with exact fractions and rounded once, at the end, *down* to the policy's
number of decimals. Rounding down keeps the grade of the published total identical to the grade of the
exact total: with grade thresholds on the 0.01 grid, floor(x) >= 90 exactly when x >= 90, so an
official at 89.996 is shown 89.99 (HTT), never 90.00 next to an HTT grade or an HTXS earned by
rounding. The explanation lines are apportioned so that they sum to that total to the last digit.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from decimal import Decimal
from fractions import Fraction
from functools import lru_cache

Number = Decimal | int | Fraction


@lru_cache(maxsize=4096, typed=True)  # policy constants are converted for every official: convert them once
def exact(value: Number) -> Fraction:
    """The exact fraction of a Decimal, int or Fraction (never a float: floats are not exact)."""
    if isinstance(value, float):
        raise TypeError("floats are not exact; pass Decimal('0.25'), not 0.25")
    return Fraction(value)


def fsum(values: Iterable[Fraction]) -> Fraction:
    """The exact sum of fractions over one common denominator: one normalisation, not one per term."""
    terms = list(values)
    if not terms:
        return Fraction(0)
    common = math.lcm(*(v.denominator for v in terms))
    return Fraction(sum(v.numerator * (common // v.denominator) for v in terms), common)


def apportion(values: Sequence[Fraction], decimals: int, target: int | None = None) -> list[int]:
    """Round values to units of 10^-decimals that sum to `target` units (default: the floor of the sum).

    A target must lie between the sum of the floors and the ceiling of the exact sum.
    """
    scale = 10**decimals
    # Integer arithmetic over a common denominator: the same result as with Fractions, much faster.
    common = math.lcm(*(v.denominator for v in values)) if values else 1
    scaled = [v.numerator * scale * (common // v.denominator) for v in values]  # value × scale × common
    units = [s // common for s in scaled]
    missing = (sum(scaled) // common if target is None else target) - sum(units)
    if not 0 <= missing <= len(values):
        raise ValueError(f"cannot apportion {values} to {target} units")
    # Largest remainder first (Hamilton's method); equal remainders go to the earlier value so the
    # result is deterministic. Each value ends at its floor or its ceiling, and an exact value (an
    # informational 0, a whole deduction) is never touched.
    by_remainder = sorted(range(len(values)), key=lambda i: (units[i] * common - scaled[i], i))
    for i in by_remainder[:missing]:
        units[i] += 1
    return units


def to_decimal(units: int, decimals: int) -> Decimal:
    """Units of 10^-decimals as a Decimal with exactly that many places."""
    return Decimal(units).scaleb(-decimals)


def show(value: Fraction | Decimal, places: int = 4) -> str:
    """A number for explanation text: at most `places` decimals (half-even), trailing zeros dropped."""
    if isinstance(value, Fraction):
        value = Decimal(value.numerator) / Decimal(value.denominator)
    text = f"{value:.{places}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text == "-0" else text
