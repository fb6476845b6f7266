"""Band edges 49.99 / 50 / 69.99 / 70 / 89.99 / 90 under both shipped policies.

Each total is built by hand: satisfaction 5 (everyone rated only "Rất hài lòng": C = R = 1), task
points from the items (70 · completed/assigned), the rest entered by the unit head. The band is
grade_before_caps: a lone HTXS is then capped (⌊1/6⌋ = 0), which test_caps covers.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from server.scoring import band, score_period
from tests.scoring.factories import HALF_DONE, THREE_OF_FOUR, official, policy

D = Decimal

# (policy, entered general points, tasks, expected total, expected band)
CASES = [
    # nd335: pham_chat + trach_nhiem + doi_moi entered; satisfaction 5.
    ("nd335", {"pham_chat": D("10"), "trach_nhiem": D(5)}, None, "90.00", "HTXS"),  # 10+5+5+0 + 70
    ("nd335", {"pham_chat": D("9.99"), "trach_nhiem": D(5)}, None, "89.99", "HTT"),  # 9.99+5+5 + 70
    ("nd335", {"pham_chat": D("7.5"), "trach_nhiem": D(5)}, THREE_OF_FOUR, "70.00", "HTT"),  # 17.5 + 52.5
    ("nd335", {"pham_chat": D("7.49"), "trach_nhiem": D(5)}, THREE_OF_FOUR, "69.99", "HTNV"),  # 17.49 + 52.5
    ("nd335", {"pham_chat": D("10")}, HALF_DONE, "50.00", "HTNV"),  # 10+5 + 35
    ("nd335", {"pham_chat": D("9.99")}, HALF_DONE, "49.99", "KHTNV"),  # 9.99+5 + 35
    # hanoi-3814: ky_luat + tac_phong entered; satisfaction 5.
    ("hanoi-3814", {"ky_luat": D(10), "tac_phong": D(5)}, None, "90.00", "A"),  # 10+5+5 + 70
    ("hanoi-3814", {"ky_luat": D("9.99"), "tac_phong": D(5)}, None, "89.99", "B"),
    ("hanoi-3814", {"ky_luat": D(10), "tac_phong": D("2.5")}, THREE_OF_FOUR, "70.00", "B"),  # 17.5 + 52.5
    ("hanoi-3814", {"ky_luat": D(10), "tac_phong": D("2.49")}, THREE_OF_FOUR, "69.99", "C"),
    ("hanoi-3814", {"ky_luat": D(10)}, HALF_DONE, "50.00", "C"),  # 10+5 + 35
    ("hanoi-3814", {"ky_luat": D("9.99")}, HALF_DONE, "49.99", "D"),
]


@pytest.mark.parametrize(("policy_id", "general", "tasks", "total", "grade"), CASES)
def test_band_edges_end_to_end(
    policy_id: str, general: dict, tasks: tuple | None, total: str, grade: str
) -> None:
    fields = {"general": general} | ({"tasks": tasks} if tasks else {})
    [result] = score_period(policy(policy_id), [official("CB-1", **fields)], period="2026-01")
    assert result.total == D(total)
    assert result.grade_before_caps == grade
    assert sum(line.points for line in result.lines) == result.total


@pytest.mark.parametrize(
    ("policy_id", "total", "grade"),
    [
        ("nd335", "100", "HTXS"),
        ("nd335", "90", "HTXS"),
        ("nd335", "89.99", "HTT"),
        ("nd335", "70", "HTT"),
        ("nd335", "69.99", "HTNV"),
        ("nd335", "50", "HTNV"),
        ("nd335", "49.99", "KHTNV"),
        ("nd335", "0", "KHTNV"),
        ("hanoi-3814", "90.00", "A"),
        ("hanoi-3814", "89.99", "B"),
        ("hanoi-3814", "70.00", "B"),
        ("hanoi-3814", "69.99", "C"),
        ("hanoi-3814", "50.00", "C"),
        ("hanoi-3814", "49.99", "D"),
    ],
)
def test_band_of_a_total(policy_id: str, total: str, grade: str) -> None:
    spec = policy(policy_id).spec
    assert spec.grades[band(spec, D(total))].code == grade
