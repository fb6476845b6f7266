"""The satisfaction criterion (5 points in nd335): shrinkage, difficulty, small samples, incidents.

Values on the 3-level scale: level 1 = 0, level 2 = 0.5, level 3 = 1 (points [0, 1, 2] / 2).
Shipped prior weight m = 10, minimum sample 10, type prior weight k = 20.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from server.scoring import ExcludedRatings, Incident, InputError, RatingCounts, score_period
from tests.scoring.factories import by_id, official, policy

D = Decimal
CRIT = "thai_do_phuc_vu"

# Y: 100 ratings, 40 × level 2 and 60 × level 3: sum 40·0.5 + 60·1 = 80, mean 0.8.
Y = official("Y", ratings=(RatingCounts("ho_tich", 3, (0, 40, 60)),))


def _x_with(n: int) -> list:
    """Y, and X with n ratings all at level 1 (value 0, raw mean R = 0)."""
    ratings = (RatingCounts("ho_tich", 3, (n, 0, 0)),) if n else ()
    return [Y, official("X", ratings=ratings)]


@pytest.mark.parametrize(
    ("n", "score", "points"),
    [
        # n = 0: C = 80/100 = 0.8; no own ratings: S = C = 0.8 → 5·0.8 = 4.00
        (0, "0.800000", "4.00"),
        # n = 1: C = 80/101; S = (1·0 + 10·C)/11 = 800/1111 = 0.7200720… → 5S = 4000/1111 = 3.6003… → 3.60
        (1, "0.720072", "3.60"),
        # n = 5: C = 80/105 = 16/21; S = 10C/15 = 32/63 = 0.5079365… → 5S = 160/63 = 2.5396… → 2.53
        (5, "0.507937", "2.53"),
        # n = 500: C = 80/600 = 2/15; S = 10C/510 = 2/765 = 0.0026143… ≈ R = 0 → 5S = 0.0130… → 0.01
        (500, "0.002614", "0.01"),
    ],
)
def test_shrinkage_toward_the_group_mean(n: int, score: str, points: str) -> None:
    x = by_id(score_period(policy(), _x_with(n), period="2026-01"))["X"]
    assert x.satisfaction is not None and x.satisfaction.ratings == n
    assert x.satisfaction.score == D(score)
    assert x.criteria[CRIT] == D(points)
    assert ("few_ratings" in x.provisional_reasons) is (n < 10)


def test_lines_show_the_group_mean_and_how_far_own_ratings_moved_it() -> None:
    # n = 5: group line 5·C = 5·16/21 = 3.8095…; own line 5·(5/15)·(0 − 16/21) = −80/63 = −1.2698…
    # difficulty line 0 (one service type: its mean is the group mean). Sum 160/63 → 2.53.
    # Published lines are rounded down, 3.80 and −1.27, which already sum to 2.53: no unit to add.
    x = by_id(score_period(policy(), _x_with(5), period="2026-01"))["X"]
    sat = [ln for ln in x.lines if ln.part == f"general.{CRIT}" and ln.points]
    assert [(ln.rule, ln.points) for ln in sat] == [
        ("satisfaction.prior_weight", D("3.80")),
        ("satisfaction.prior_weight", D("-1.27")),
    ]
    assert "weight n/(n + m) = 5/(5 + 10)" in sat[1].text


# Difficulty: land registry ("dat_dai") is rated lower than certification ("chung_thuc").
# A1: dat_dai [2, 4, 4] → 0 + 2 + 4 = 6 over 10, R = 0.6
# A2: dat_dai [4, 4, 2] → 0 + 2 + 2 = 4 over 10, R = 0.4
# B1: chung_thuc [0, 4, 16] → 2 + 16 = 18 over 20, R = 0.9
# Group: 28 over 40, C = 0.7; type means: dat_dai 10/20 = 0.5, chung_thuc 18/20 = 0.9.
DIFFICULTY = [
    official("A1", ratings=(RatingCounts("dat_dai", 3, (2, 4, 4)),)),
    official("A2", ratings=(RatingCounts("dat_dai", 3, (4, 4, 2)),)),
    official("B1", ratings=(RatingCounts("chung_thuc", 3, (0, 4, 16)),)),
]


def test_difficulty_adjustment_compares_each_rating_with_its_service_type() -> None:
    # k = 0 (type means taken as they are):
    # A1: R' = C + (6 − 10·0.5)/10 = 0.8; w = 10/20; S = 0.7 + 0.5·(0.8 − 0.7) = 0.75 → 3.75
    #     lines 5·0.7 = 3.50, 5·0.5·(0.6 − 0.7) = −0.25, 5·0.5·(0.8 − 0.6) = +0.50
    # A2: R' = 0.7 + (4 − 5)/10 = 0.6; S = 0.7 + 0.5·(−0.1) = 0.65 → 3.25
    # B1: R' = 0.7 + (18 − 20·0.9)/20 = 0.7; w = 20/30; S = 0.7 → 3.50 (raw: 0.7 + ⅔·0.2 → 4.16)
    variant = policy("nd335", ("enabled = true\nprior_weight = 20", "enabled = true\nprior_weight = 0"))
    got = by_id(score_period(variant, DIFFICULTY, period="2026-01"))
    assert {k: r.criteria[CRIT] for k, r in got.items()} == {
        "A1": D("3.75"),
        "A2": D("3.25"),
        "B1": D("3.50"),
    }
    a1 = [(ln.rule, ln.points) for ln in got["A1"].lines if ln.part == f"general.{CRIT}" and ln.points]
    assert a1 == [
        ("satisfaction.prior_weight", D("3.50")),
        ("satisfaction.prior_weight", D("-0.25")),
        ("satisfaction.difficulty", D("0.50")),
    ]


def test_difficulty_with_the_shipped_type_prior_and_switched_off() -> None:
    # k = 20: dat_dai mean (10 + 20·0.7)/(20 + 20) = 0.6; chung_thuc (18 + 14)/40 = 0.8.
    # A1: R' = 0.7 + (6 − 10·0.6)/10 = 0.7; S = 0.7 + 0.5·0 = 0.7 → 3.50
    # B1: R' = 0.7 + (18 − 20·0.8)/20 = 0.8; S = 0.7 + ⅔·0.1 = 0.7666… → 3.8333… → 3.83
    got = by_id(score_period(policy(), DIFFICULTY, period="2026-01"))
    assert (got["A1"].criteria[CRIT], got["B1"].criteria[CRIT]) == (D("3.50"), D("3.83"))
    # disabled: A1: S = 0.7 + 0.5·(0.6 − 0.7) = 0.65 → 3.25; B1: 0.7 + ⅔·0.2 = 0.8333… → 4.16
    off = policy("nd335", ("enabled = true", "enabled = false"))
    got = by_id(score_period(off, DIFFICULTY, period="2026-01"))
    assert (got["A1"].criteria[CRIT], got["B1"].criteria[CRIT]) == (D("3.25"), D("4.16"))
    assert not any(ln.rule == "satisfaction.difficulty" for ln in got["A1"].lines)


def test_below_the_minimum_sample_is_provisional_and_handled_per_policy() -> None:
    # X: 5 ratings at level 1, Y as above. Shrunk (default): 2.53 as in the n = 5 case.
    # group_mean: S = C = 16/21 → 5·16/21 = 3.8095… → 3.80.  full: 5.00.
    for below_min, points in (("shrunk", "2.53"), ("group_mean", "3.80"), ("full", "5.00")):
        variant = policy("nd335", ('below_min = "shrunk"', f'below_min = "{below_min}"'))
        x = by_id(score_period(variant, _x_with(5), period="2026-01"))["X"]
        assert x.criteria[CRIT] == D(points), below_min
        assert x.provisional and "few_ratings" in x.provisional_reasons
    # at the minimum (10 ratings) it is no longer provisional: C = 80/110, S = 10C/20 = 40/110 → 1.81
    x = by_id(score_period(policy(), _x_with(10), period="2026-01"))["X"]
    assert x.criteria[CRIT] == D("1.81") and "few_ratings" not in x.provisional_reasons


def test_a_group_without_ratings_uses_the_fallback_mean() -> None:
    # nobody rated: C = fallback_mean = 1 → 5.00, provisional (no evidence either way)
    [x] = score_period(policy(), [official("X", ratings=())], period="2026-01")
    assert x.criteria[CRIT] == D("5.00")
    assert set(x.provisional_reasons) >= {"few_ratings", "no_group_ratings"}
    assert any(ln.rule == "satisfaction.fallback_mean" for ln in x.lines)


def test_confirmed_incidents_deduct_dismissed_ones_do_not() -> None:
    # X has no ratings: S = C = 0.8 → 4.00. One confirmed "moderate" (−1) → 3.00.
    # Three dismissed complaints deduct nothing but are listed; a pending one makes it provisional.
    x = official(
        "X",
        ratings=(),
        incidents=(Incident("412", "complaint", "moderate"),),
        dismissed_incidents=3,
        pending_incidents=1,
    )
    got = by_id(score_period(policy(), [Y, x], period="2026-01"))["X"]
    assert got.criteria[CRIT] == D("3.00")
    rules = {ln.subject: (ln.rule, ln.points) for ln in got.lines}
    assert rules["incident:412"] == ("incidents.deduction.moderate", D("-1.00"))
    assert rules["incidents:dismissed"] == ("input", D("0.00"))
    assert rules["incidents:pending"] == ("input", D("0.00"))
    assert "pending_incidents" in got.provisional_reasons
    # the same official with the complaint dismissed instead: back to 4.00
    cleared = official("X", ratings=(), dismissed_incidents=4)
    assert by_id(score_period(policy(), [Y, cleared], period="2026-01"))["X"].criteria[CRIT] == D("4.00")


def test_incidents_never_take_the_criterion_below_zero() -> None:
    # 4.00 − 3 × 2 (serious) = −2.00 → floor line +2.00 → 0.00
    incidents = tuple(Incident(str(i), "complaint", "serious") for i in range(3))
    got = by_id(score_period(policy(), [Y, official("X", ratings=(), incidents=incidents)], period="p"))["X"]
    assert got.criteria[CRIT] == D("0.00")
    assert [ln.points for ln in got.lines if ln.rule == "incidents.criterion"] == [D("2.00")]


def test_excluded_ratings_are_listed_not_scored() -> None:
    x = official("X", excluded=ExcludedRatings(misuse=7, annulled=2, txn_duplicate=1))
    [got] = score_period(policy(), [x], period="2026-01")
    assert got.criteria[CRIT] == D("5.00")  # only the 10 valid top ratings count
    [line] = [ln for ln in got.lines if ln.subject == "ratings:excluded"]
    assert line.points == 0 and "7 misuse, 2 annulled, 1 repeat" in line.text


def test_mixed_scales_are_put_on_one_value_range() -> None:
    # 5-level [0, 0, 0, 4, 0] → value 3/4 each: 3 over 4; 3-level [0, 4, 0] → 0.5 each: 2 over 4.
    # R = 5/8 = C (alone in the group) → S = 0.625 → 3.125 → 3.12
    x = official("X", ratings=(RatingCounts("a", 5, (0, 0, 0, 4, 0)), RatingCounts("a", 3, (0, 4, 0))))
    [got] = score_period(policy(), [x], period="2026-01")
    assert got.satisfaction is not None and got.satisfaction.raw_mean == D("0.625000")
    assert got.criteria[CRIT] == D("3.12")


@pytest.mark.parametrize(
    ("ratings", "problem"),
    [
        ((RatingCounts("a", 7, (1,) * 7),), "no 7-level scale"),
        ((RatingCounts("a", 3, (1, 2)),), "needs 3 counts"),
        ((RatingCounts("a", 3, (1, -1, 0)),), "none negative"),
        ((RatingCounts("a", 3, (1, 1, 1)), RatingCounts("a", 3, (1, 1, 1))), "given twice"),
    ],
)
def test_rating_counts_the_policy_cannot_read_are_refused(ratings: tuple, problem: str) -> None:
    with pytest.raises(InputError, match=problem):
        score_period(policy(), [official("X", ratings=ratings)], period="2026-01")


def test_incidents_still_under_review_at_close_are_listed_not_deducted_nor_provisional() -> None:
    # pending_at_close = "ignore": the closed month shows them, deducts nothing, is not provisional for them
    [closed] = score_period(policy(), [official("X", unresolved_incidents=2)], period="2026-01")
    [live] = score_period(policy(), [official("X", pending_incidents=2)], period="2026-01")
    assert closed.total == live.total
    assert "pending_incidents" in live.provisional_reasons and "pending_incidents" not in closed.provisional_reasons
    [line] = [ln for ln in closed.lines if ln.rule == "incidents.pending_at_close"]
    assert line.points == D("0.00") and "still under review when the month closed" in line.text
    assert policy().spec.incidents.pending_at_close == "ignore"
    with pytest.raises(InputError, match="cannot be negative"):
        score_period(policy(), [official("X", unresolved_incidents=-1)], period="2026-01")
