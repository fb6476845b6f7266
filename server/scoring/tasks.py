"""Task results ("evaluation by product") and bonus/penalty items.

NĐ 335 scores task results from the quantity, quality and progress of the assigned products/work
(converted to points): each is a percentage of the assigned points; each major content error takes
25% of that item's *quality* points, each delay 25% of its *progress* points, unless an objective
cause is confirmed (domain.md §2; the rates and weights are policy values). Here every item first
earns its full share of the component, then each shortfall is a line of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from fractions import Fraction
from typing import TypeVar

from server.scoring.explain import Draft
from server.scoring.inputs import Adjustment, InputError, OfficialPeriod, TaskItem
from server.scoring.numbers import exact, show
from server.scoring.policy import PolicySpec

PART = "tasks"
T = TypeVar("T", TaskItem, Adjustment)


def task_drafts(spec: PolicySpec, official: OfficialPeriod) -> tuple[list[Draft], tuple[str, ...]]:
    """The task component's lines and, when there is nothing to score, a provisional reason."""
    items = _checked(official, official.tasks, "tasks")
    assigned = sum((exact(t.points) for t in items), Fraction(0))
    if not assigned:
        text = "no assigned task items with points this period: 0 task points"
        return [Draft(PART, "tasks.points", "tasks", text)], ("no_task_items",)
    w = spec.tasks.weights
    weights = [exact(w.quantity), exact(w.quality), exact(w.progress)]
    shares = [x / sum(weights) for x in weights]  # quantity, quality, progress
    drafts: list[Draft] = []
    for item in items:
        drafts += _item_drafts(spec, item, exact(spec.tasks.points) * exact(item.points) / assigned, shares)
    return drafts, ()


def _item_drafts(spec: PolicySpec, item: TaskItem, share: Fraction, shares: list[Fraction]) -> list[Draft]:
    subject = f"task:{item.id}"
    label = f" '{item.label}'" if item.label else ""
    drafts = [Draft(PART, "tasks.points", subject, f"assigned{label}: {show(item.points)} pts", share)]
    if not item.completed:
        # Not completed: no quantity, quality or progress points (no objective-cause exemption here).
        drafts.append(Draft(PART, "tasks.points", subject, "not completed: its whole share is lost", -share))
        return drafts
    faults = (
        ("quality", item.quality_failures, "quality_failure_deduction", shares[1], "major error"),
        ("progress", item.delays, "delay_deduction", shares[2], "delay"),
    )
    for kind, count, key, part_share, noun in faults:
        if not count:
            continue
        rule, rate = f"tasks.{key}", getattr(spec.tasks, key)
        if item.objective_cause and spec.tasks.objective_cause_waives:
            text = f"{count} {noun}(s), objective cause confirmed: no deduction"
            drafts.append(Draft(PART, "tasks.objective_cause_waives", subject, text))
            continue
        lost = min(Fraction(1), count * exact(rate))  # never more than the part's points
        text = (
            f"{count} {noun}(s) × {show(rate * 100)}% of the item's {kind} points ({show(part_share)} of it)"
        )
        drafts.append(Draft(PART, rule, subject, text, -share * part_share * lost))
    return drafts


def adjustment_drafts(spec: PolicySpec, official: OfficialPeriod) -> list[Draft]:
    """Bonus items (+) and penalty items (−), each side capped by the policy."""
    adj = spec.adjustments
    return [
        *_side(official, official.bonuses, 1, "bonus", "bonuses", adj.bonus_cap),
        *_side(official, official.penalties, -1, "penalty", "penalties", adj.penalty_cap),
    ]


def _side(
    official: OfficialPeriod, items: Sequence[Adjustment], sign: int, name: str, key: str, cap: Decimal
) -> list[Draft]:
    checked = _checked(official, items, key)
    drafts = [
        Draft(
            "adjustments",
            "input",
            f"{name}:{i.id}",
            f"{name} '{i.label}'" if i.label else name,
            sign * exact(i.points),
        )
        for i in checked
    ]
    total = sum((exact(i.points) for i in checked), Fraction(0))
    if total > exact(cap):
        text = f"{name} items total {show(total)}, capped at adjustments.{name}_cap = {show(cap)}"
        drafts.append(
            Draft("adjustments", f"adjustments.{name}_cap", name, text, -sign * (total - exact(cap)))
        )
    return drafts


def _checked(official: OfficialPeriod, items: Sequence[T], key: str) -> list[T]:
    """The items sorted by id, so that input order never changes a result; rejects bad items."""
    ordered = sorted(items, key=lambda i: i.id)
    for index, item in enumerate(ordered):
        if index and ordered[index - 1].id == item.id:
            raise InputError(official.official_id, f"{key}[{item.id}]", "id given twice")
        if item.points < 0:
            raise InputError(official.official_id, f"{key}[{item.id}]", "points cannot be negative")
        if isinstance(item, TaskItem) and (item.quality_failures < 0 or item.delays < 0):
            raise InputError(official.official_id, f"{key}[{item.id}]", "counts cannot be negative")
    return ordered
