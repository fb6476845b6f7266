"""Task results (70 points) and bonus/penalty items.

NĐ 335 (as published): quantity, quality and progress are each a share of the assigned points; each
major error takes 25% of the item's quality points, each delay 25% of its progress points, unless an
objective cause is confirmed. With equal weights an item's quality (or progress) points are 1/3 of
its share of the 70.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from server.scoring import Adjustment, InputError, RatingCounts, TaskItem, score_period
from tests.scoring.factories import official, policy

D = Decimal


def _tasks(*items: TaskItem, policy_id: str = "nd335") -> tuple[Decimal, list[tuple[str, str, Decimal]]]:
    [r] = score_period(policy(policy_id), [official("X", tasks=items)], period="2026-01")
    lines = [(ln.subject, ln.rule, ln.points) for ln in r.lines if ln.part == "tasks"]
    assert sum(p for _, _, p in lines) == r.components["tasks"]
    return r.components["tasks"], lines


def test_a_major_error_and_a_delay_each_take_25_percent_of_that_part() -> None:
    # 4 items of 1 point: share 70/4 = 17.5 each.
    # T2 one major error: −17.5 · ⅓ · 25% = −35/24 = −1.4583…; T3 one delay: the same.
    # T4 one delay with an objective cause confirmed: no deduction (a 0.00 line says why).
    # exact 70 − 35/12 = 67.0833… → 67.08; lines 17.50 ×4, −1.46, −1.46, 0.00
    total, lines = _tasks(
        TaskItem("T1", D(1)),
        TaskItem("T2", D(1), quality_failures=1),
        TaskItem("T3", D(1), delays=1),
        TaskItem("T4", D(1), delays=1, objective_cause=True),
    )
    assert total == D("67.08")
    assert lines == [
        ("task:T1", "tasks.points", D("17.50")),
        ("task:T2", "tasks.points", D("17.50")),
        ("task:T2", "tasks.quality_failure_deduction", D("-1.46")),
        ("task:T3", "tasks.points", D("17.50")),
        ("task:T3", "tasks.delay_deduction", D("-1.46")),
        ("task:T4", "tasks.points", D("17.50")),
        ("task:T4", "tasks.objective_cause_waives", D("0.00")),
    ]


def test_deductions_count_each_time_and_stop_at_the_parts_points() -> None:
    # T1 3 points done, T2 1 point delayed twice: share 70/4 = 17.5; −17.5·⅓·50% = −35/12 = −2.9166…
    # tasks = 70 − 2.9166… = 67.0833… → 67.08
    assert _tasks(TaskItem("T1", D(3)), TaskItem("T2", D(1), delays=2))[0] == D("67.08")
    # one item with 5 major errors: 5·25% = 125% → capped at 100% of its quality third: 70 − 70/3 → 46.66
    assert _tasks(TaskItem("T1", D(1), quality_failures=5))[0] == D("46.66")
    # both at once: quality third and progress third lost, quantity kept: 70/3 = 23.33…
    assert _tasks(TaskItem("T1", D(1), quality_failures=4, delays=4))[0] == D("23.33")


def test_a_task_not_completed_earns_nothing_even_with_an_objective_cause() -> None:
    # the decree exempts errors and delays with an objective cause, not unfinished work:
    # 2 items of 1 point, one not completed: 70·½ = 35
    for cause in (False, True):
        total, lines = _tasks(
            TaskItem("T1", D(1)), TaskItem("T2", D(1), completed=False, objective_cause=cause)
        )
        assert total == D("35.00")
        assert ("task:T2", "tasks.points", D("-35.00")) in lines


def test_weights_follow_the_policy() -> None:
    # quality and progress only (quantity 0): a delay takes 25% of ½ of the share: 70·(1 − ⅛) = 61.25
    variant = policy("nd335", ("quantity = 1\n", "quantity = 0\n"))
    [r] = score_period(variant, [official("X", tasks=(TaskItem("T1", D(1), delays=1),))], period="p")
    assert r.components["tasks"] == D("61.25")


def test_no_task_items_is_zero_and_provisional() -> None:
    [r] = score_period(policy(), [official("X", tasks=())], period="2026-01")
    assert r.components["tasks"] == D("0.00")
    assert "no_task_items" in r.provisional_reasons


def test_hanoi_bonus_items_are_capped_at_10() -> None:
    # bonuses 6 + 7 = 13 → +6, +7 and a cap line −3 → 10.00
    x = official("X", bonuses=(Adjustment("B1", D(6), "hoàn thành trước hạn"), Adjustment("B2", D(7))))
    [r] = score_period(policy("hanoi-3814"), [x], period="2026-01")
    assert r.components["adjustments"] == D("10.00")
    lines = [(ln.subject, ln.points) for ln in r.lines if ln.part == "adjustments"]
    assert lines == [("bonus:B1", D("6.00")), ("bonus:B2", D("7.00")), ("bonus", D("-3.00"))]


def test_hanoi_penalty_items_are_capped_and_the_total_never_goes_below_zero() -> None:
    # penalties 4 + 8 = 12 → −4, −8, cap line +2 → −10.00
    # everything else at 0: X alone, rated only at level 1 (C = R = 0 → satisfaction 0), the only task
    # not completed, 0 entered → raw total −10 → limits line +10 → 0.00, grade D
    x = official(
        "X",
        ratings=(RatingCounts("ho_tich", 3, (10, 0, 0)),),
        tasks=(TaskItem("T1", D(1), completed=False),),
        general={"ky_luat": D(0), "tac_phong": D(0)},
        penalties=(Adjustment("P1", D(4)), Adjustment("P2", D(8))),
    )
    [r] = score_period(policy("hanoi-3814"), [x], period="2026-01")
    assert r.components == {
        "general": D("0.00"),
        "tasks": D("0.00"),
        "adjustments": D("-10.00"),
        "limits": D("10.00"),
    }
    assert r.total == D("0.00") and r.grade == "D"
    assert [(ln.rule, ln.points) for ln in r.lines if ln.part == "limits"] == [("total_min", D("10.00"))]


def test_nd335_lists_bonus_items_but_its_frame_has_no_bonus_points() -> None:
    # bonus_cap = 0: +5 then −5 → 0.00
    [r] = score_period(policy(), [official("X", bonuses=(Adjustment("B1", D(5)),))], period="2026-01")
    assert r.components["adjustments"] == D("0.00")
    assert [ln.points for ln in r.lines if ln.part == "adjustments"] == [D("5.00"), D("-5.00")]


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"tasks": (TaskItem("T1", D(1)), TaskItem("T1", D(2)))}, "id given twice"),
        ({"tasks": (TaskItem("T1", D(-1)),)}, "negative"),
        ({"tasks": (TaskItem("T1", D(1), delays=-1),)}, "negative"),
        ({"penalties": (Adjustment("P", D(-3)),)}, "negative"),
    ],
)
def test_bad_task_items_are_refused(fields: dict, problem: str) -> None:
    with pytest.raises(InputError, match=problem):
        score_period(policy(), [official("X", **fields)], period="2026-01")
