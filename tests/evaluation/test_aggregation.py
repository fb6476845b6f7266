"""The SQL aggregation gives the pure engine exactly the inputs a person would count by hand (both backends)."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import Engine

from server.db.models import ReviewStatus
from server.evaluation import reads, task_results
from server.evaluation.policies import active_policy
from server.scoring import (
    Adjustment,
    ExcludedRatings,
    Incident,
    OfficialPeriod,
    RatingCounts,
    TaskItem,
    load_policy,
    result_digest,
    score_period,
)
from tests.utils.evaluation import AFTER_MARCH_REVIEWS, MARCH, make_unit, rate, review, settings

D = Decimal


def _rows(period: str = "2026-03") -> list[dict[str, str]]:
    return [
        {"period": period, "official": "P-MK-CB001", "key": "T1", "points": "4"},
        {"period": period, "official": "P-MK-CB001", "key": "T2", "points": "2", "delays": "1"},
        {"period": period, "official": "P-MK-CB001", "kind": "general", "key": "pham_chat", "points": "9"},
        {"period": period, "official": "P-MK-CB001", "kind": "discipline", "key": "khien_trach"},
        {"period": period, "official": "P-MK-CB002", "key": "T1", "points": "3", "completed": "no"},
        {"period": period, "official": "P-MK-CB002", "kind": "bonus", "key": "B1", "points": "1.5"},
    ]


def test_sql_aggregation_equals_the_pure_engine_on_the_same_inputs(engine: Engine) -> None:
    unit = make_unit(engine, "P-MK", officials=3, services=("ho_tich", "dat_dai"), duty_group="tu_phap")
    with engine.begin() as conn:
        rate(conn, unit, "P-MK-CB001", [1, 0, 3, 16], misuse=2, quarantined=3)
        rate(conn, unit, "P-MK-CB001", [0, 1, 1, 2], service="dat_dai", duplicate=2)
        annulled = rate(conn, unit, "P-MK-CB002", [1, 0, 0, 0])  # the low rating a dismissed complaint annuls
        rate(conn, unit, "P-MK-CB002", [2, 0, 8, 10], service="dat_dai")
        rate(conn, unit, "P-MK-CB003", [0, 0, 0, 1, 0])  # a 5-level scale
        rate(conn, unit, "P-MK-CB003", [0, 0, 9], at=MARCH.replace(month=4))  # April: not March
        confirmed = review(conn, unit, "P-MK-CB001", ReviewStatus.CONFIRMED, severity="moderate")
        review(conn, unit, "P-MK-CB002", ReviewStatus.DISMISSED, annul=annulled[0])
        review(conn, unit, "P-MK-CB002", ReviewStatus.PENDING)
        review(conn, unit, "P-MK-CB003", ReviewStatus.CONTESTED)
        review(conn, unit, "P-MK-CB003", ReviewStatus.CONFIRMED, severity="serious", at=MARCH.replace(month=2))
        task_results.import_rows(conn, rows=_rows(), policy=active_policy(conn, settings=settings()).policy,
                                 actor="test", source="api")
    group = "P-MK/tu_phap"
    by_hand = [  # counted from the rows written above, worst level first
        OfficialPeriod("P-MK-CB001", "P-MK", group,
                       ratings=(RatingCounts("dat_dai", 4, (0, 1, 1, 2)), RatingCounts("ho_tich", 4, (1, 0, 3, 16))),
                       excluded=ExcludedRatings(misuse=2, txn_duplicate=2),
                       incidents=(Incident(str(confirmed), "complaint", "moderate"),),
                       tasks=(TaskItem("T1", D(4)), TaskItem("T2", D(2), delays=1)), general={"pham_chat": D(9)},
                       discipline="khien_trach"),
        OfficialPeriod("P-MK-CB002", "P-MK", group, ratings=(RatingCounts("dat_dai", 4, (2, 0, 8, 10)),),
                       excluded=ExcludedRatings(annulled=1), dismissed_incidents=1, pending_incidents=1,
                       tasks=(TaskItem("T1", D(3), completed=False),),
                       bonuses=(Adjustment("B1", D("1.5")),)),
        OfficialPeriod("P-MK-CB003", "P-MK", group, ratings=(RatingCounts("ho_tich", 5, (0, 0, 0, 1, 0)),),
                       pending_incidents=1),
    ]
    expected = {r.official_id: r for r in score_period(load_policy("nd335"), by_hand, period="2026-03")}
    with engine.connect() as conn:
        live = reads.live_unit(conn, settings=settings(), period="2026-03", unit_id=unit.id,
                               stored=active_policy(conn, settings=settings()))
    assert [m.code for m, _ in live] == ["P-MK-CB001", "P-MK-CB002", "P-MK-CB003"]
    for _member, result in live:
        assert result_digest(result) == result_digest(expected[result.official_id]), result.official_id
    cb1 = expected["P-MK-CB001"]
    assert cb1.grade == "KHTNV"  # the reprimand vetoes whatever the points
    assert any(line.subject == f"incident:{confirmed}" and line.points == D("-1.00") for line in cb1.lines)


def test_quarantined_misuse_and_repeat_ratings_never_count(engine: Engine) -> None:
    unit = make_unit(engine, "P-A", officials=1)
    with engine.begin() as conn:
        rate(conn, unit, "P-A-CB001", [0, 0, 0, 5], misuse=4, duplicate=3, quarantined=6)
    with engine.connect() as conn:
        [(_m, result)] = reads.live_unit(conn, settings=settings(), period="2026-03", unit_id=unit.id,
                                         stored=active_policy(conn, settings=settings()))
    assert result.satisfaction is not None and result.satisfaction.ratings == 5
    assert any("4 misuse, 0 annulled, 3 repeat" in line.text for line in result.lines)


def test_month_boundaries_follow_the_offices_time_zone(engine: Engine) -> None:
    """23:30 on 31 March in Hà Nội is 16:30 UTC: March. 00:30 on 1 April there is 17:30 UTC on 31 March: April."""
    from datetime import UTC, datetime

    unit = make_unit(engine, "P-B", officials=1)
    with engine.begin() as conn:
        rate(conn, unit, "P-B-CB001", [0, 0, 0, 2], at=datetime(2026, 3, 31, 16, 30, tzinfo=UTC))
        rate(conn, unit, "P-B-CB001", [7, 0, 0, 0], at=datetime(2026, 3, 31, 17, 30, tzinfo=UTC))
    with engine.connect() as conn:
        stored = active_policy(conn, settings=settings())
        [(_m, march)] = reads.live_unit(conn, settings=settings(), period="2026-03", unit_id=unit.id, stored=stored)
        [(_m, april)] = reads.live_unit(conn, settings=settings(), period="2026-04", unit_id=unit.id, stored=stored)
    assert march.satisfaction is not None and april.satisfaction is not None
    assert (march.satisfaction.ratings, april.satisfaction.ratings) == (2, 7)


def test_inactive_officials_are_scored_only_when_they_have_something_in_the_month(engine: Engine) -> None:
    from sqlalchemy import update

    from server.db.models import OFFICIALS

    unit = make_unit(engine, "P-C", officials=3)
    with engine.begin() as conn:
        conn.execute(update(OFFICIALS).where(OFFICIALS.c.code.in_(["P-C-CB002", "P-C-CB003"])).values(active=False))
        rate(conn, unit, "P-C-CB003", [0, 0, 1])
    with engine.connect() as conn:
        live = reads.live_unit(conn, settings=settings(), period="2026-03", unit_id=unit.id,
                               stored=active_policy(conn, settings=settings()))
    assert [m.code for m, _ in live] == ["P-C-CB001", "P-C-CB003"]
    assert AFTER_MARCH_REVIEWS > MARCH
