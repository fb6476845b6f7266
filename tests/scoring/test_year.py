"""Year roll-up (NĐ 335): the mean of the final monthly totals, graded like a month."""

from __future__ import annotations

from decimal import Decimal

import pytest

from server.scoring import InputError, OfficialYear, score_year
from tests.scoring.factories import policy

D = Decimal


def _year(
    totals: list[str], discipline: str | None = None, oid: str = "X", agency: str = "A"
) -> OfficialYear:
    months = {f"2026-{m:02d}": D(t) for m, t in enumerate(totals, start=1)}
    return OfficialYear(oid, agency, "G", months, discipline)


def test_the_year_total_is_the_mean_rounded_down_so_it_never_rounds_into_a_band() -> None:
    # (90.00 + 90.00 + 89.99)/3 = 269.99/3 = 89.99666… → 89.99 → HTT (half-up would print 90.00)
    [r] = score_year(policy(), [_year(["90.00", "90.00", "89.99"])], year="2026")
    assert (r.total, r.grade, r.months) == (D("89.99"), "HTT", 3)
    # lines: 30.00 + 30.00 + 29.99666… → floors 30.00, 30.00, 29.99 = 89.99, nothing to add
    assert [ln.points for ln in r.lines if ln.part == "months"] == [D("30.00"), D("30.00"), D("29.99")]
    assert sum(ln.points for ln in r.lines) == r.total


def test_twelve_months_give_the_year_grade() -> None:
    # 11 × 92 + 80 = 1092 → /12 = 91.00 → HTXS by points (alone: capped to HTT, ⌊1/6⌋ = 0)
    [r] = score_year(policy(), [_year(["92"] * 11 + ["80"])], year="2026")
    assert (r.total, r.grade_before_caps, r.grade) == (D("91.00"), "HTXS", "HTT")
    # 6 × 70 + 6 × 69.98 = 839.88 → 69.99 → HTNV
    [r] = score_year(policy(), [_year(["70"] * 6 + ["69.98"] * 6)], year="2026")
    assert (r.total, r.grade) == (D("69.99"), "HTNV")


def test_a_reprimand_in_the_year_gives_khtnv_whatever_the_mean() -> None:
    [r] = score_year(policy(), [_year(["98"] * 12, discipline="khien_trach")], year="2026")
    assert (r.total, r.grade) == (D("98.00"), "KHTNV")


def test_year_grades_are_capped_like_monthly_ones() -> None:
    # 6 at ≥ 70 → ⌊6/6⌋ = 1 HTXS: 95 kept, 93 → HTT
    officials = [_year(["95"] * 12, oid="a"), _year(["93"] * 12, oid="b")]
    officials += [_year(["80"] * 12, oid=f"f{i}") for i in range(4)]
    got = {r.official_id: r.grade for r in score_year(policy(), officials, year="2026")}
    assert (got["a"], got["b"]) == ("HTXS", "HTT")


def test_a_year_without_months_is_refused() -> None:
    with pytest.raises(InputError, match="at least one monthly total"):
        score_year(policy(), [_year([])], year="2026")


def test_a_cap_can_be_limited_to_month_or_year_grades() -> None:
    # applies_to = ["month"]: the year grade of a lone 91.00 is no longer capped (⌊1/6⌋ = 0 otherwise)
    monthly_only = policy("nd335", ('applies_to = ["month", "year"]', 'applies_to = ["month"]'))
    [r] = score_year(monthly_only, [_year(["92"] * 11 + ["80"])], year="2026")
    assert (r.total, r.grade) == (D("91.00"), "HTXS")
    assert not any(ln.rule.startswith("caps") for ln in r.lines)
