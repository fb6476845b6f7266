"""Properties over generated months: the explanation always adds up, and grades follow the rules."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from server.scoring import (
    Adjustment,
    ExcludedRatings,
    Incident,
    OfficialPeriod,
    RatingCounts,
    TaskItem,
    band,
    score_period,
)
from tests.scoring.factories import ENTERED, policy

POLICIES = {name: policy(name) for name in ("nd335", "hanoi-3814")}
cents = st.integers(min_value=0, max_value=1000).map(lambda c: Decimal(c).scaleb(-2))


@st.composite
def officials(draw: st.DrawFn, policy_id: str, index: int) -> OfficialPeriod:
    levels = draw(st.sampled_from([3, 4, 5]))
    ratings = draw(
        st.lists(
            st.builds(
                RatingCounts,
                st.sampled_from(["ho_tich", "dat_dai", "chung_thuc"]),
                st.just(levels),
                st.lists(st.integers(0, 40), min_size=levels, max_size=levels),
            ),
            max_size=3,
            unique_by=lambda r: r.service_type,
        )
    )
    tasks = draw(
        st.lists(
            st.builds(
                TaskItem,
                st.text("T0123456789", min_size=1, max_size=3),
                cents,
                completed=st.booleans(),
                quality_failures=st.integers(0, 5),
                delays=st.integers(0, 5),
                objective_cause=st.booleans(),
            ),
            max_size=6,
            unique_by=lambda t: t.id,
        )
    )
    general = {
        cid: draw(st.integers(0, top * 100).map(lambda c: Decimal(c).scaleb(-2)))
        for cid, top in ENTERED[policy_id]
        if draw(st.booleans())
    }
    return OfficialPeriod(
        f"CB-{index}",
        draw(st.sampled_from(["A1", "A2"])),
        draw(st.sampled_from(["G1", "G2"])),
        ratings=ratings,
        excluded=ExcludedRatings(draw(st.integers(0, 5))),
        incidents=[
            Incident(str(i), "complaint", draw(st.sampled_from(["minor", "moderate", "serious"])))
            for i in range(draw(st.integers(0, 3)))
        ],
        dismissed_incidents=draw(st.integers(0, 2)),
        pending_incidents=draw(st.integers(0, 1)),
        tasks=tasks,
        general=general,
        bonuses=[Adjustment(f"B{i}", draw(cents)) for i in range(draw(st.integers(0, 2)))],
        penalties=[Adjustment(f"P{i}", draw(cents)) for i in range(draw(st.integers(0, 2)))],
        discipline=draw(st.sampled_from([None, None, None, "khien_trach"])),
    )


@st.composite
def months(draw: st.DrawFn) -> tuple[str, list[OfficialPeriod]]:
    policy_id = draw(st.sampled_from(sorted(POLICIES)))
    count = draw(st.integers(1, 12))
    return policy_id, [draw(officials(policy_id, i)) for i in range(count)]


@settings(max_examples=150, deadline=None)
@given(months())
def test_every_explanation_adds_up_to_its_total(month: tuple[str, list[OfficialPeriod]]) -> None:
    policy_id, group = month
    spec = POLICIES[policy_id].spec
    for r in score_period(POLICIES[policy_id], group, period="2026-01"):
        assert sum(ln.points for ln in r.lines) == r.total
        assert sum(r.components.values()) == r.total
        assert sum(r.criteria.values()) == r.components["general"]
        assert all(ln.points.as_tuple().exponent == -spec.decimals for ln in r.lines)
        assert spec.total_min <= r.total <= spec.total_max
        assert all(v >= 0 for v in r.criteria.values())


@settings(max_examples=150, deadline=None)
@given(months())
def test_grades_follow_the_band_the_veto_and_only_ever_drop_by_a_cap(month: tuple[str, list]) -> None:
    policy_id, group = month
    spec = POLICIES[policy_id].spec
    codes = [g.code for g in spec.grades]
    inputs = {o.official_id: o for o in group}
    for r in score_period(POLICIES[policy_id], group, period="2026-01"):
        if inputs[r.official_id].discipline:
            assert r.grade_before_caps == r.grade == spec.discipline.veto_grade
        else:
            assert r.grade_before_caps == spec.grades[band(spec, r.total)].code  # điểm liệt is off
        assert codes.index(r.grade) - codes.index(r.grade_before_caps) in (0, 1)
