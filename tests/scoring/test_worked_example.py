"""The worked example of docs/scoring.md §9, computed by hand there and checked here."""

from __future__ import annotations

from decimal import Decimal

from server.scoring import ExcludedRatings, Incident, OfficialPeriod, RatingCounts, TaskItem, score_period
from tests.scoring.factories import policy

D = Decimal


def test_docs_worked_example() -> None:
    lan = OfficialPeriod(
        "CB-0042",
        "UBND xã A",
        "tu_phap_ho_tich",
        ratings=[RatingCounts("ho_tich", 3, [1, 3, 16])],
        excluded=ExcludedRatings(misuse=2),
        incidents=[Incident("412", "complaint", "minor")],
        dismissed_incidents=1,
        tasks=[
            TaskItem("T1", D(4), "Đăng ký khai sinh"),
            TaskItem("T2", D(2), "Chứng thực", delays=1),
            TaskItem("T3", D(2), "Báo cáo tháng"),
        ],
        general={"pham_chat": D(9), "trach_nhiem": D(5), "doi_moi": D(8)},
    )
    minh = OfficialPeriod(
        "CB-0043",
        "UBND xã A",
        "tu_phap_ho_tich",
        ratings=[RatingCounts("ho_tich", 3, [2, 8, 10])],
        tasks=[TaskItem("T1", D(1))],
        general={"pham_chat": D(8), "trach_nhiem": D(4), "doi_moi": D(6)},
    )
    r, m = score_period(policy(), [lan, minh], period="2026-03")
    # C = (17.5 + 14)/40 = 0.7875; R = 0.875; w = 20/30; S = 0.7875 + ⅔·0.0875 = 0.845833…
    assert r.satisfaction is not None and r.satisfaction.score == D("0.845833")
    # attitude 5S − 0.5 = 3.729166… → 3.73 (its part gets the unit the total needs)
    assert r.criteria == {
        "pham_chat": D(9),
        "trach_nhiem": D(5),
        "thai_do_phuc_vu": D("3.73"),
        "doi_moi": D(8),
    }
    # tasks 35 + 17.5 + 17.5 − 17.5·⅓·¼ = 68.541666… → 68.54; total 94.270833… → 94.27
    assert (r.components["tasks"], r.total) == (D("68.54"), D("94.27"))
    attitude = [ln.points for ln in r.lines if ln.part == "general.thai_do_phuc_vu"]
    assert attitude == [D(0), D(0), D("3.94"), D("0.29"), D(0), D("-0.50"), D(0)]
    # two graded HTT or better: ⌊2/6⌋ = 0 HTXS allowed, so Lan is HTT after the cap
    assert (r.grade_before_caps, r.grade) == ("HTXS", "HTT")
    # Minh: C as above, R = 0.7, S = 0.7875 − ⅔·0.0875 = 0.729166… → 3.645833… ; 18 + 70 → 91.64
    assert (m.total, m.grade_before_caps, m.grade) == (D("91.64"), "HTXS", "HTT")
