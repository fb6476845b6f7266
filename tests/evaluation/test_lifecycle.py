"""The month lifecycle on both backends: open → provisional → closed → final, immutability, amendments, the year."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import Engine, select, text, update
from sqlalchemy.exc import DBAPIError

from server.db.models import AUDIT, SCORE_SNAPSHOTS, ReviewStatus
from server.evaluation import EvaluationError, lifecycle, reads, snapshots, task_results
from server.evaluation.policies import active_policy
from server.scoring import load_policy
from tests.utils.evaluation import AFTER_MARCH_REVIEWS, MARCH, Unit, make_unit, official_id, rate, review, settings

MID_MARCH = datetime(2026, 3, 15, tzinfo=UTC)
EARLY_APRIL = datetime(2026, 4, 3, tzinfo=UTC)  # March is over, its review window (10 days) is not


def _office(engine: Engine) -> Unit:
    unit = make_unit(engine, "P-MK", officials=3)
    with engine.begin() as conn:
        rate(conn, unit, "P-MK-CB001", [0, 1, 9])
        rate(conn, unit, "P-MK-CB002", [2, 4, 4])
        rows = [{"period": "2026-03", "official": code, "key": "T1", "points": "5"} for code in unit.officials]
        task_results.import_rows(conn, rows=rows, policy=active_policy(conn, settings=settings()).policy,
                                 actor="test", source="api")
    return unit


def _phase(engine: Engine, now: datetime, period: str = "2026-03") -> str:
    with engine.connect() as conn:
        [row] = lifecycle.month_status(conn, settings=settings(), period=period, unit_ids=None, now=now)
    return str(row["phase"])


def _close(engine: Engine, now: datetime = AFTER_MARCH_REVIEWS, **kw: object) -> lifecycle.CloseReport:
    with engine.begin() as conn:
        return lifecycle.close_month(conn, settings=kw.pop("s", settings()), period="2026-03",  # type: ignore[arg-type]
                                     units=None, actor="test", now=now, **kw)  # type: ignore[arg-type]


def _finalize(engine: Engine) -> list[str]:
    with engine.begin() as conn:
        return lifecycle.finalize_month(conn, period="2026-03", units=None, actor="test", now=AFTER_MARCH_REVIEWS)


def test_open_provisional_closed_final(engine: Engine) -> None:
    _office(engine)
    assert _phase(engine, MID_MARCH) == "open"
    assert _phase(engine, EARLY_APRIL) == "provisional"
    with pytest.raises(EvaluationError, match="not over yet"):
        _close(engine, MID_MARCH)
    with pytest.raises(EvaluationError, match="--force REASON"):
        _close(engine, EARLY_APRIL)
    report = _close(engine)
    assert report.closed == ["P-MK"] and report.officials == 3 and report.complete
    assert _phase(engine, AFTER_MARCH_REVIEWS) == "closed"
    assert _finalize(engine) == ["P-MK"]
    assert _phase(engine, AFTER_MARCH_REVIEWS) == "final"
    again = _close(engine)
    assert again.already_final == ["P-MK"] and again.closed == [] and again.officials == 0
    with engine.connect() as conn:
        actions = [r.action for r in conn.execute(select(AUDIT.c.action).order_by(AUDIT.c.id))]
    assert actions[-2:] == ["month.close", "month.finalize"]


def test_a_forced_early_close_needs_a_reason_and_records_it(engine: Engine) -> None:
    _office(engine)
    with pytest.raises(EvaluationError, match="at least 10"):
        _close(engine, EARLY_APRIL, force_reason="hurry")
    _close(engine, EARLY_APRIL, force_reason="HR needs the March figures for the quarterly council")
    with engine.connect() as conn:
        [row] = lifecycle.month_status(conn, settings=settings(), period="2026-03", unit_ids=None, now=EARLY_APRIL)
    assert row["forced_reason"].startswith("HR needs")


def test_a_closed_month_can_be_closed_again_a_final_one_only_amended(engine: Engine) -> None:
    unit = _office(engine)
    _close(engine)
    with engine.begin() as conn:
        rate(conn, unit, "P-MK-CB003", [0, 0, 12])  # a late correction before finalisation
    report = _close(engine)
    assert report.reclosed == ["P-MK"]
    with engine.connect() as conn:
        versions = conn.execute(select(SCORE_SNAPSHOTS.c.version)).scalars().all()
        detail = reads.month_score(conn, settings=settings(), official_code="P-MK-CB003", period="2026-03",
                                   now=AFTER_MARCH_REVIEWS)
    assert sorted(versions) == [1, 1, 1]  # replaced, not versioned: it was not final yet
    assert detail is not None and detail["result"]["satisfaction"]["ratings"] == 12
    _finalize(engine)
    with engine.begin() as conn, pytest.raises(EvaluationError, match="not closed"):
        lifecycle.finalize_month(conn, period="2026-04", units=["P-MK"], actor="test", now=AFTER_MARCH_REVIEWS)


def test_final_snapshots_are_immutable_in_the_database(engine: Engine) -> None:
    _office(engine)
    _close(engine)
    _finalize(engine)
    with pytest.raises(DBAPIError, match="immutable"), engine.begin() as conn:
        conn.execute(update(SCORE_SNAPSHOTS).values(total=Decimal("99")))
    with pytest.raises(DBAPIError, match="immutable"), engine.begin() as conn:
        conn.execute(text("UPDATE score_snapshots SET result = 'forged'"))


def test_digests_are_re_verifiable_and_tampering_is_found(engine: Engine) -> None:
    _office(engine)
    _close(engine)
    _finalize(engine)
    with engine.connect() as conn:
        assert snapshots.verify(conn, period="2026-03") == []
        for r in conn.execute(select(SCORE_SNAPSHOTS.c.result, SCORE_SNAPSHOTS.c.digest)):
            assert hashlib.sha256(r.result.encode("utf-8")).hexdigest() == r.digest
            assert json.loads(r.result)["policy"]["sha256"] == load_policy("nd335").ref.sha256
    with engine.begin() as conn:  # someone with database access bypasses the trigger
        if engine.dialect.name == "postgresql":
            conn.execute(text("ALTER TABLE score_snapshots DISABLE TRIGGER score_snapshots_immutable"))
        else:
            conn.execute(text("DROP TRIGGER score_snapshots_immutable"))
        conn.execute(text("UPDATE score_snapshots SET result = result || ' ' "  # still valid JSON, other bytes
                          "WHERE id = (SELECT min(id) FROM score_snapshots)"))
    with engine.connect() as conn:
        bad = snapshots.verify(conn, period="2026-03")
    assert len(bad) == 1 and "digest" in bad[0]["problem"]
    with engine.begin() as conn:  # leave the schema as the migration made it for the next test
        if engine.dialect.name == "postgresql":
            conn.execute(text("ALTER TABLE score_snapshots ENABLE TRIGGER score_snapshots_immutable"))
        else:
            conn.execute(text("CREATE TRIGGER score_snapshots_immutable BEFORE UPDATE OF result, digest, total, "
                              "grade, summary, version, period, unit_id, official_id, policy_pk, reason, "
                              "created_at, created_by ON score_snapshots BEGIN SELECT RAISE(ABORT, 'score "
                              "snapshots are immutable: correct a final month with an amendment (motcua month "
                              "amend)'); END"))


def test_amendment_after_final_is_a_new_version_with_reason_and_audit(engine: Engine) -> None:
    unit = _office(engine)
    with engine.begin() as conn:
        pending = review(conn, unit, "P-MK-CB002", ReviewStatus.PENDING)
    report = _close(engine)
    assert report.unresolved_reviews == 1  # pending_at_close = ignore: no deduction, listed
    _finalize(engine)
    with engine.begin() as conn, pytest.raises(EvaluationError, match="nothing to amend"):
        lifecycle.amend_month(conn, settings=settings(), period="2026-03", unit="P-MK", actor="test",
                              reason="checking that nothing changed", now=AFTER_MARCH_REVIEWS)
    with engine.begin() as conn:  # the verdict comes after the month was final
        from server.db.models import REVIEWS

        conn.execute(update(REVIEWS).where(REVIEWS.c.id == pending).values(status=ReviewStatus.CONFIRMED,
                                                                           severity="serious"))
    with engine.begin() as conn, pytest.raises(EvaluationError, match="at least 10"):
        lifecycle.amend_month(conn, settings=settings(), period="2026-03", unit="P-MK", actor="test", reason="x",
                              now=AFTER_MARCH_REVIEWS)
    with engine.begin() as conn:
        [amended] = lifecycle.amend_month(conn, settings=settings(), period="2026-03", unit="P-MK", actor="user:hr",
                                          reason=f"review {pending} confirmed after the month closed",
                                          now=AFTER_MARCH_REVIEWS)
    assert amended.official == "P-MK-CB002" and amended.version == 2
    assert Decimal(amended.previous["total"]) - Decimal(amended.current["total"]) == Decimal(2)  # serious: −2
    with engine.connect() as conn:
        detail = reads.month_score(conn, settings=settings(), official_code="P-MK-CB002", period="2026-03",
                                   now=AFTER_MARCH_REVIEWS)
        first = reads.month_score(conn, settings=settings(), official_code="P-MK-CB002", period="2026-03",
                                  now=AFTER_MARCH_REVIEWS, version=1)
        audit = conn.execute(select(AUDIT.c.actor, AUDIT.c.target_id, AUDIT.c.detail)
                             .where(AUDIT.c.action == "score.amend")).one()
        assert snapshots.verify(conn, period="2026-03") == []
    assert detail is not None and first is not None
    assert (detail["status"], detail["version"], first["version"]) == ("amended", 2, 1)
    assert [(v["version"], v["current"]) for v in detail["versions"]] == [(1, False), (2, True)]
    assert detail["versions"][1]["reason"].startswith(f"review {pending}")
    assert first["digest"] == amended.previous["digest"]  # the earlier version is kept as it was
    assert audit.actor == "user:hr" and audit.target_id == "P-MK-CB002/2026-03"
    assert audit.detail["previous"]["version"] == 1 and audit.detail["current"]["version"] == 2


def test_an_amendment_limited_to_one_official_is_refused_when_the_caps_move_others(engine: Engine) -> None:
    unit = make_unit(engine, "P-Q", officials=7)
    with engine.begin() as conn:
        rows = []
        for code in unit.officials:  # all 7 tied at 99: ⌊7/6⌋ = 1 HTXS allowed, and a tie at the cut → none
            rate(conn, unit, code, [0, 0, 10])
            rows += [{"period": "2026-03", "official": code, "key": "T1", "points": "5"},
                     *({"period": "2026-03", "official": code, "kind": "general", "key": k, "points": p}
                       for k, p in (("pham_chat", "10"), ("trach_nhiem", "5"), ("doi_moi", "9")))]
        task_results.import_rows(conn, rows=rows, policy=active_policy(conn, settings=settings()).policy,
                                 actor="test", source="api")
    _close(engine)
    _finalize(engine)
    with engine.begin() as conn:  # one official's point was forgotten: the tie is broken, the cap moves
        task_results.import_rows(conn, rows=[{"period": "2026-03", "official": "P-Q-CB001", "kind": "general",
                                              "key": "doi_moi", "points": "10"}],
                                 policy=active_policy(conn, settings=settings()).policy, actor="test", source="api")
    with engine.begin() as conn, pytest.raises(EvaluationError, match="also changes"):
        lifecycle.amend_month(conn, settings=settings(), period="2026-03", unit="P-Q", actor="test",
                              reason="doi_moi corrected by the unit head", officials=["P-Q-CB001"],
                              now=AFTER_MARCH_REVIEWS)
    with engine.begin() as conn:
        done = lifecycle.amend_month(conn, settings=settings(), period="2026-03", unit="P-Q", actor="test",
                                     reason="doi_moi corrected by the unit head", now=AFTER_MARCH_REVIEWS)
    grades = {a.official: (a.previous["grade"], a.current["grade"]) for a in done}
    assert len(done) == 7  # the others' cap lines changed too (no longer tied), not their grade
    assert grades.pop("P-Q-CB001") == ("HTT", "HTXS") and set(grades.values()) == {("HTT", "HTT")}


def test_pending_at_close_block_keeps_the_unit_open(engine: Engine, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.scoring.factories import POLICIES

    blocking = tmp_path / "nd335-block.toml"
    blocking.write_text((POLICIES / "nd335.toml").read_text(encoding="utf-8")
                        .replace('pending_at_close = "ignore"', 'pending_at_close = "block"'), encoding="utf-8")
    unit = _office(engine)
    other = make_unit(engine, "P-OK", officials=1)
    with engine.begin() as conn:
        waiting = review(conn, unit, "P-MK-CB001", ReviewStatus.CONTESTED)
    report = _close(engine, s=settings(policy=str(blocking)))
    assert report.blocked == {"P-MK": [waiting]} and report.closed == ["P-OK"] and not report.complete
    assert other.id  # the other unit closed on its own
    with engine.begin() as conn:
        from server.db.models import REVIEWS

        conn.execute(update(REVIEWS).values(status=ReviewStatus.DISMISSED))
    assert _close(engine, s=settings(policy=str(blocking))).closed == ["P-MK"]


def test_a_confirmed_review_without_severity_stops_only_its_unit(engine: Engine) -> None:
    unit = _office(engine)
    make_unit(engine, "P-OK", officials=1)
    with engine.begin() as conn:
        review(conn, unit, "P-MK-CB001", ReviewStatus.CONFIRMED, severity=None)
    report = _close(engine)
    assert report.closed == ["P-OK"] and report.failed[0]["unit"] == "P-MK"
    assert "unknown severity" in report.failed[0]["problem"]


def test_year_roll_up_is_the_mean_of_final_monthly_totals(engine: Engine) -> None:
    unit = make_unit(engine, "P-Y", officials=1)
    policy = load_policy("nd335")
    months = {"2026-01": "9", "2026-02": "10", "2026-03": "8"}  # pham_chat points: totals differ by month
    with engine.begin() as conn:
        for period, points in months.items():
            rate(conn, unit, "P-Y-CB001", [0, 0, 10], at=MARCH.replace(month=int(period[-2:])))
            task_results.import_rows(conn, rows=[
                {"period": period, "official": "P-Y-CB001", "key": "T1", "points": "1"},
                {"period": period, "official": "P-Y-CB001", "kind": "general", "key": "pham_chat", "points": points},
            ], policy=policy, actor="test", source="api")
    totals = []
    for period in months:
        with engine.begin() as conn:
            lifecycle.close_month(conn, settings=settings(), period=period, units=None, actor="test",
                                  now=AFTER_MARCH_REVIEWS)
            if period != "2026-03":  # March stays closed, not final: it does not count yet
                lifecycle.finalize_month(conn, period=period, units=None, actor="test", now=AFTER_MARCH_REVIEWS)
            totals.append(conn.execute(select(SCORE_SNAPSHOTS.c.total).where(SCORE_SNAPSHOTS.c.period == period))
                          .scalar_one())
    with engine.connect() as conn:
        [year] = reads.year_unit(conn, settings=settings(), year="2026", unit_id=unit.id, unit_code="P-Y")
    # 5 satisfaction + 70 tasks + pham_chat: 84 and 85 → (84 + 85) / 2 = 84.5 (HTT)
    assert [str(t) for t in totals] == ["84.00", "85.00", "83.00"]
    assert (year["months"], year["total"], year["grade"]) == (2, "84.50", "HTT")
    assert year["monthly_totals"] == {"2026-01": "84.00", "2026-02": "85.00"}
    with engine.begin() as conn:
        task_results.import_rows(conn, rows=[{"period": "2026-02", "official": "P-Y-CB001", "kind": "discipline",
                                              "key": "canh_cao"}], policy=policy, actor="test", source="api")
    with engine.connect() as conn:
        [vetoed] = reads.year_unit(conn, settings=settings(), year="2026", unit_id=unit.id, unit_code="P-Y")
    assert vetoed["grade"] == "KHTNV" and vetoed["total"] == "84.50"  # a warning in the year: veto (NĐ 335)
    assert official_id  # helper import kept for other tests
