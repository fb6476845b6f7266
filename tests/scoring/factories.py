"""Builders for scoring tests: officials with hand-chosen totals, and policy variants.

Every expected number in the tests is computed by hand in a comment next to it; these helpers only
assemble inputs.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from server.scoring import (
    Adjustment,
    OfficialPeriod,
    Policy,
    RatingCounts,
    TaskItem,
    load_policy,
    parse_policy,
)

POLICIES = Path(__file__).resolve().parents[2] / "server" / "scoring" / "policies"
D = Decimal

# 10 ratings, all "Rất hài lòng" on the 3-level scale: when everyone in the group has only these,
# C = 1, R = R' = 1, S = 1 and the satisfaction criterion gives its full 5 points.
TOP_RATINGS = (RatingCounts("ho_tich", 3, (0, 0, 10)),)
ALL_DONE = (TaskItem("T1", D(1)),)  # 70 task points
HALF_DONE = (TaskItem("T1", D(1)), TaskItem("T2", D(1), completed=False))  # 70·1/2 = 35
THREE_OF_FOUR = tuple(TaskItem(f"T{i}", D(1), completed=i != 4) for i in range(1, 5))  # 70·3/4 = 52.5

# Criteria the unit head enters, in the order points are filled by with_total().
ENTERED = {
    "nd335": (("doi_moi", 10), ("pham_chat", 10), ("trach_nhiem", 5)),
    "hanoi-3814": (("ky_luat", 10), ("tac_phong", 5)),
}


def policy(name: str = "nd335", *edits: tuple[str, str]) -> Policy:
    """A shipped policy, optionally with exact text edits (old, new), each old found exactly once."""
    if not edits:
        return load_policy(name)
    text = (POLICIES / f"{name}.toml").read_text(encoding="utf-8")
    for old, new in edits:
        assert text.count(old) == 1, f"{old!r} must occur once in {name}.toml"
        text = text.replace(old, new)
    return parse_policy(text.encode("utf-8"), source=f"test variant of {name}.toml")


def official(oid: str, *, agency: str = "A", group: str = "G", **fields: object) -> OfficialPeriod:
    """An official with top ratings and all tasks done unless told otherwise."""
    base: dict[str, object] = {"ratings": TOP_RATINGS, "tasks": ALL_DONE}
    base.update(fields)
    return OfficialPeriod(oid, agency, group, **base)  # type: ignore[arg-type]


def with_total(
    oid: str, total: str, *, policy_id: str = "nd335", agency: str = "A", group: str = "G", **fields: object
) -> OfficialPeriod:
    """An official whose total is exactly `total`: satisfaction 5, tasks 70, the rest entered by hand.

    total - 75 points are spread over the entered criteria in ENTERED order (each up to its max),
    then, under hanoi-3814, a bonus item.
    """
    rest = D(total) - 75
    assert rest >= 0, "with_total() builds totals of 75 and more"
    general: dict[str, Decimal] = {}
    for cid, top in ENTERED[policy_id]:
        general[cid] = min(rest, D(top))
        rest -= general[cid]
    if policy_id == "hanoi-3814" and 0 < rest <= 10:  # Hà Nội's 10 bonus points hold the rest
        fields = {"bonuses": (Adjustment("bonus", rest),), **fields}
        rest = D(0)
    assert rest == 0, f"{total} is more than the entered criteria can hold"
    return official(oid, agency=agency, group=group, general=general, **fields)


def at_80(
    prefix: str, count: int, *, policy_id: str = "nd335", agency: str = "A", group: str = "G"
) -> list[OfficialPeriod]:
    """`count` officials graded HTT/B at exactly 80.00."""
    return [
        with_total(f"{prefix}{i}", "80", policy_id=policy_id, agency=agency, group=group)
        for i in range(count)
    ]


def by_id(results: list) -> dict:  # type: ignore[type-arg]
    return {r.official_id: r for r in results}
