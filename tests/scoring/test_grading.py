"""Grades beyond the bands: điểm liệt, the discipline veto, and the HTXS / A caps with ties.

Totals are built with factories.with_total(): satisfaction 5, tasks 70, the rest entered.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from server.scoring import InputError, TaskItem, score_period
from tests.scoring.factories import at_80, by_id, official, policy, with_total

D = Decimal
LIET = policy("nd335", ("zero_blocks_top = false", "zero_blocks_top = true"))


def _grades(results: list) -> dict[str, str]:
    return {r.official_id: r.grade for r in results}


def test_diem_liet_a_criterion_at_zero_bars_the_top_grade() -> None:
    # 90.00 = doi_moi 0 + pham_chat 10 + trach_nhiem 5 + satisfaction 5 + tasks 70: HTXS by points,
    # but doi_moi is at 0 → HTT before any cap.
    x = official("X", general={"doi_moi": D(0), "pham_chat": D(10), "trach_nhiem": D(5)})
    [r] = score_period(LIET, [x], period="2026-01")
    assert r.total == D("90.00") and r.grade_before_caps == "HTT"
    [line] = [ln for ln in r.lines if ln.rule == "general.zero_blocks_top"]
    assert "doi_moi" in line.text and "HTXS → HTT" in line.text


def test_diem_liet_needs_the_criterion_at_exactly_zero_and_is_off_in_the_shipped_policies() -> None:
    # doi_moi 0.01, pham_chat 9.99: 90.00 and no criterion at 0 → HTXS
    x = official("X", general={"doi_moi": D("0.01"), "pham_chat": D("9.99"), "trach_nhiem": D(5)})
    assert score_period(LIET, [x], period="p")[0].grade_before_caps == "HTXS"
    # nd335 as shipped: điểm liệt off, doi_moi at 0 still HTXS by points
    y = official("Y", general={"doi_moi": D(0), "pham_chat": D(10), "trach_nhiem": D(5)})
    assert score_period(policy(), [y], period="p")[0].grade_before_caps == "HTXS"


@pytest.mark.parametrize(
    ("policy_id", "measure", "grade"),
    [
        ("nd335", "khien_trach", "KHTNV"),
        ("nd335", "canh_cao", "KHTNV"),
        ("nd335", "buoc_thoi_viec", "KHTNV"),
        ("nd335", None, "HTXS"),
        ("hanoi-3814", "khien_trach", "D"),
        ("hanoi-3814", None, "A"),
    ],
)
def test_discipline_of_reprimand_or_higher_vetoes_regardless_of_points(
    policy_id: str, measure: str | None, grade: str
) -> None:
    # 100.00 points: everything at max (hanoi: with 10 bonus points). A veto comes before the caps.
    x = with_total("X", "100", policy_id=policy_id, discipline=measure)
    [r] = score_period(policy(policy_id), [x], period="2026-01")
    assert r.total == D("100.00") and r.grade_before_caps == grade
    if measure:
        [line] = [ln for ln in r.lines if ln.rule == "discipline.veto_from"]
        assert measure in line.text and "regardless of points" in line.text


def test_an_unknown_discipline_measure_is_refused() -> None:
    with pytest.raises(InputError, match="discipline"):
        score_period(policy(), [with_total("X", "80", discipline="phe_binh")], period="p")


def _ten(totals: list[str], reading: str = "literal") -> dict[str, str]:
    """Officials at the given totals plus fillers at 80 to make 10, one agency, one group."""
    variant = policy("nd335", ('reading = "literal"', f'reading = "{reading}"'))
    officials = [with_total(f"X{t}", t) for t in totals] + at_80("F", 10 - len(totals))
    return _grades(score_period(variant, officials, period="2026-01"))


def test_htxs_cap_literal_reading_is_a_sixth_of_those_at_70_or_more() -> None:
    # T = 10 at ≥ 70; literal: x ≤ 0.2·(T − x) → x ≤ ⌊10/6⌋ = 1 → 95 kept, 94 and 93 → HTT
    got = _ten(["95", "94", "93"])
    assert (got["X95"], got["X94"], got["X93"]) == ("HTXS", "HTT", "HTT")


def test_htxs_cap_share_of_basis_reading_is_a_fifth_of_those_at_70_or_more() -> None:
    # share_of_basis: x ≤ ⌊0.2 · 10⌋ = 2 → 95 and 94 kept, 93 → HTT
    got = _ten(["95", "94", "93"], "share_of_basis")
    assert (got["X95"], got["X94"], got["X93"]) == ("HTXS", "HTXS", "HTT")


def test_the_cap_lines_state_the_reading_and_the_count() -> None:
    officials = [with_total("X95", "95"), with_total("X94", "94"), *at_80("F", 8)]
    x94 = by_id(score_period(policy(), officials, period="p"))["X94"]
    texts = [ln.text for ln in x94.lines if ln.rule == "caps[0]"]
    assert texts[0].startswith("HTXS cap in agency 'A': x ≤ 0.2·(T − x), T = 10 graded HTT or better")
    assert "⌊10·0.2/1.2⌋ = 1 (reading: literal)" in texts[0]
    assert texts[1].startswith("HTXS cap in group 'G'")
    assert texts[2] == "HTXS → HTT: agency 'A' already has its 1"
    assert x94.grade_before_caps == "HTXS" and x94.grade == "HTT"


def test_ties_at_the_cut_are_all_demoted_and_close_the_scope() -> None:
    # 13 at ≥ 70: 95, 93, 93, 91 and 9 at 80. literal: ⌊13/6⌋ = 2.
    # 95 kept (1 of 2); the two 93s tie for the last place: 1 + 2 > 2 → both → HTT (equal points,
    # equal grade); 91 → HTT too: nobody below a tie at the cut may pass it. One HTXS in all.
    officials = [with_total(i, t) for i, t in (("a", "95"), ("b", "93"), ("c", "93"), ("d", "91"))]
    got = by_id(score_period(policy(), [*officials, *at_80("F", 9)], period="2026-01"))
    assert {k: r.grade for k, r in got.items()} == {
        **{f"F{i}": "HTT" for i in range(9)},
        "a": "HTXS",
        "b": "HTT",
        "c": "HTT",
        "d": "HTT",
    }
    assert "tied at 93.00 with 1 other(s) in agency 'A': 1 + 2 > 2" in got["b"].lines[-1].text
    assert got["d"].lines[-1].text == "HTXS → HTT: agency 'A' was closed by a tie at the cut above"


def test_a_tie_break_key_resolves_ties_when_the_policy_names_one() -> None:
    # tie_break = ["tasks"]: two at 93.00 — "hi" with tasks 70 (general 23), "lo" with tasks 68:
    # items 23 + 12 points, the 12-point one delayed once: −70·12/35·⅓·25% = −2 → 68; general 25.
    # 12 at ≥ 70 → ⌊12/6⌋ = 2: 95 kept, hi kept (tasks 70 > 68), lo → HTT.
    variant = policy("nd335", ("tie_break = []", 'tie_break = ["tasks"]'))
    lo_tasks = (TaskItem("T1", D(23)), TaskItem("T2", D(12), delays=1))
    lo = official("lo", tasks=lo_tasks, general={"doi_moi": D(5), "pham_chat": D(10), "trach_nhiem": D(5)})
    officials = [with_total("top", "95"), with_total("hi", "93"), lo, *at_80("F", 9)]
    got = by_id(score_period(variant, officials, period="2026-01"))
    assert (got["lo"].total, got["lo"].components["tasks"]) == (D("93.00"), D("68.00"))
    assert (got["top"].grade, got["hi"].grade, got["lo"].grade) == ("HTXS", "HTXS", "HTT")


def test_agency_and_group_caps_are_applied_together_best_first() -> None:
    # Agency A1: a1 95 (group H), a2 93 (group G), a3 91 (group H), 9 fillers (A1, H).
    # Agency A2: g9 96 (group G), 4 fillers (A2, G), 1 filler (A2, H).
    # T(A1) = 12 → 2; T(A2) = 6 → 1; T(G) = a2, g9 + 4 = 6 → 1; T(H) = a1, a3 + 9 + 1 = 12 → 2.
    # Best first: g9 96 kept (G 1/1, A2 1/1); a1 95 kept (A1 1/2, H 1/2); a2 93: group G full → HTT;
    # a3 91: A1 1 < 2, H 1 < 2 → kept. (Applying the agency cap first and then the group cap
    # would have demoted a3 although its agency had room once a2 fell to the group cap.)
    officials = [
        with_total("a1", "95", agency="A1", group="H"),
        with_total("a2", "93", agency="A1", group="G"),
        with_total("a3", "91", agency="A1", group="H"),
        with_total("g9", "96", agency="A2", group="G"),
        *at_80("f", 9, agency="A1", group="H"),
        *at_80("g", 4, agency="A2", group="G"),
        *at_80("h", 1, agency="A2", group="H"),
    ]
    got = _grades(score_period(policy(), officials, period="2026-01"))
    assert (got["g9"], got["a1"], got["a2"], got["a3"]) == ("HTXS", "HTXS", "HTT", "HTXS")


def test_hanoi_a_is_capped_at_30_percent_of_all_graded_40_in_an_outstanding_unit() -> None:
    # 10 graded (A, B, C or D all count): 95, 94, 92, 91 and 6 at 80. ⌊0.3 · 10⌋ = 3 → 91 → B.
    officials = [with_total(f"X{t}", t, policy_id="hanoi-3814") for t in ("95", "94", "92", "91")]
    officials += at_80("F", 6, policy_id="hanoi-3814")
    got = _grades(score_period(policy("hanoi-3814"), officials, period="2026-01"))
    assert [got[f"X{t}"] for t in ("95", "94", "92", "91")] == ["A", "A", "A", "B"]
    # outstanding unit: ⌊0.4 · 10⌋ = 4 → all four keep A
    got = _grades(
        score_period(policy("hanoi-3814"), officials, period="p", outstanding_units=frozenset({"A"}))
    )
    assert [got[f"X{t}"] for t in ("95", "94", "92", "91")] == ["A", "A", "A", "A"]


def test_hanoi_counts_every_graded_official_including_d() -> None:
    # 95, 94, 92, 91, 5 at 80 and one D (vetoed): 10 graded → 3 A. Without the D: 9 → ⌊2.7⌋ = 2.
    base = [with_total(f"X{t}", t, policy_id="hanoi-3814") for t in ("95", "94", "92", "91")]
    base += at_80("F", 5, policy_id="hanoi-3814")
    vetoed = with_total("V", "80", policy_id="hanoi-3814", discipline="canh_cao")
    got = _grades(score_period(policy("hanoi-3814"), [*base, vetoed], period="p"))
    assert [got[f"X{t}"] for t in ("95", "94", "92", "91")] == ["A", "A", "A", "B"] and got["V"] == "D"
    got = _grades(score_period(policy("hanoi-3814"), base, period="p"))
    assert [got[f"X{t}"] for t in ("95", "94", "92", "91")] == ["A", "A", "B", "B"]


def test_demotions_by_the_cap_leave_points_alone() -> None:
    officials = [with_total("X", "95"), *at_80("F", 2)]  # T = 3 → ⌊3/6⌋ = 0
    x = by_id(score_period(policy(), officials, period="p"))["X"]
    assert (x.total, x.grade_before_caps, x.grade) == (D("95.00"), "HTXS", "HTT")
    assert sum(ln.points for ln in x.lines) == x.total
