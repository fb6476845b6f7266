"""The one rounding rule: down to the policy's decimals, lines apportioned to the rounded total."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest

from server.scoring.numbers import apportion, exact, to_decimal


def test_three_equal_thirds_of_70_publish_70_not_69_99() -> None:
    # 70/3 = 23.333… three times. Rounding each line down would publish 69.99 and move a fully
    # successful official from HTT to HTNV. Apportioned: total floor(70) = 70.00; floors 23.33 ×3 =
    # 69.99, one unit missing, given to the first of the equal remainders.
    lines = [to_decimal(u, 2) for u in apportion([Fraction(70, 3)] * 3, 2)]
    assert lines == [Decimal("23.34"), Decimal("23.33"), Decimal("23.33")]
    assert sum(lines) == Decimal("70.00")


def test_total_is_rounded_down_so_a_total_never_reaches_a_band_by_rounding() -> None:
    # 89.996 → 89.99 (rounding half up would print 90.00 and grade HTXS on points never earned).
    assert apportion([Fraction(89996, 1000)], 2) == [8999]
    assert apportion([Fraction(90)], 2) == [9000]
    assert apportion([Fraction(-1, 3)], 2) == [-34]


def test_exact_lines_are_never_touched_and_negative_lines_round_too() -> None:
    # exact: 10, 0 (an informational line), -1.458333…, -1.458333… ; sum 7.083333… → 7.08.
    # floors 10, 0, -1.46, -1.46 = 7.08: nothing missing, every line at its floor.
    lines = apportion([Fraction(10), Fraction(0), Fraction(-35, 24), Fraction(-35, 24)], 2)
    assert lines == [1000, 0, -146, -146]


def test_a_part_can_be_apportioned_to_a_given_target() -> None:
    # 5/3 − 2 + 1/3 = 0 exactly: floors 1.66, −2.00, 0.33 = −0.01; target 0 → one unit to the
    # largest remainder (1.666… has 0.0066…, 0.333… has 0.0033…) → 1.67, −2.00, 0.33
    assert apportion([Fraction(5, 3), Fraction(-2), Fraction(1, 3)], 2, 0) == [167, -200, 33]
    with pytest.raises(ValueError, match="cannot apportion"):
        apportion([Fraction(1, 3)], 2, 35)


def test_floats_are_refused_even_when_equal_to_a_cached_value() -> None:
    assert exact(1) == 1
    for value in (0.1, 1.0):
        with pytest.raises(TypeError, match="not exact"):
            exact(value)  # type: ignore[arg-type]
