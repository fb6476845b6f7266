"""The one rounding rule: down to the policy's decimals, lines apportioned to the rounded total."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest

from server.scoring.numbers import apportion, exact, floor_decimal


def test_three_equal_thirds_of_70_publish_70_not_69_99() -> None:
    # 70/3 = 23.333… three times. Rounding each line down would publish 69.99 and move a fully
    # successful official from HTT to HTNV. Apportioned: total floor(70) = 70.00; floors 23.33 ×3 =
    # 69.99, one unit missing, given to the first of the equal remainders.
    lines = apportion([Fraction(70, 3)] * 3, 2)
    assert lines == [Decimal("23.34"), Decimal("23.33"), Decimal("23.33")]
    assert sum(lines) == Decimal("70.00")


def test_total_is_rounded_down_so_a_total_never_reaches_a_band_by_rounding() -> None:
    # 89.996 → 89.99 (rounding half up would print 90.00 and grade HTXS on points never earned).
    assert floor_decimal(Fraction(89996, 1000), 2) == Decimal("89.99")
    assert floor_decimal(Fraction(90), 2) == Decimal("90.00")
    assert floor_decimal(Fraction(-1, 3), 2) == Decimal("-0.34")


def test_exact_lines_are_never_touched_and_negative_lines_round_too() -> None:
    # exact: 10, 0 (an informational line), -1.458333…, -1.458333… ; sum 7.083333… → 7.08.
    # floors 10, 0, -1.46, -1.46 = 7.08: nothing missing, every line at its floor.
    lines = apportion([Fraction(10), Fraction(0), Fraction(-35, 24), Fraction(-35, 24)], 2)
    assert lines == [Decimal("10.00"), Decimal("0.00"), Decimal("-1.46"), Decimal("-1.46")]


def test_floats_are_refused() -> None:
    with pytest.raises(TypeError, match="not exact"):
        exact(0.1)  # type: ignore[arg-type]
