"""Flagged incidents end to end through ingest and the API, on both databases: flagging, verdicts, contests,
re-attribution, the queue with its filters, per-user viewed state, and every step in the audit chain."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import Engine, select

from server.api.app import create_app
from server.audit_chain import verify
from server.db.models import AUDIT, INCIDENT_HEALTH, QUARANTINE, REVIEW_STEPS, REVIEWS
from server.settings import Settings
from tests.test_api import assert_error
from tests.utils.console import Browser, complaint, make_user, review_of, sign_in
from tests.utils.factories import Office, make_office
from tests.utils.factories import sign_in as sign_in_official

SETTINGS = Settings(mode="demo")
NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def office(engine: Engine) -> Office:
    made = make_office(engine, counters=2, officials=3, code="PA")
    sign_in_official(engine, made.counters[0], made.officials[0], NOW - timedelta(hours=2))
    return made


@pytest.fixture
def app(engine: Engine) -> FastAPI:
    return create_app(SETTINGS, engine)


@pytest.fixture
def people(engine: Engine, app: FastAPI, office: Office) -> dict[str, Browser]:
    make_user(engine, "gs-a", "supervisor", units=("PA",))
    make_user(engine, "gs-b", "supervisor", units=("PA",))
    make_user(engine, "cb1", "official", official="PA-CB001")
    make_user(engine, "cb2", "official", official="PA-CB002")
    return {name: sign_in(app, name) for name in ("gs-a", "gs-b", "cb1", "cb2")}


def _steps(engine: Engine, review_id: int) -> list[tuple[str, str, str]]:
    with engine.connect() as conn:
        return [(r.action, r.from_status, r.to_status) for r in conn.execute(
            select(REVIEW_STEPS).where(REVIEW_STEPS.c.review_id == review_id).order_by(REVIEW_STEPS.c.id))]


def _audit_actions(engine: Engine, review_id: int) -> list[str]:
    with engine.connect() as conn:
        return list(conn.scalars(select(AUDIT.c.action).where(AUDIT.c.target_type == "review",
                                                              AUDIT.c.target_id == str(review_id))
                                 .order_by(AUDIT.c.chain_seq)))


def test_ingest_flags_an_accepted_incident_with_the_device_health_of_the_moment(engine: Engine, office: Office) -> None:
    event_id = complaint(engine, SETTINGS, office.devices[0], at=NOW - timedelta(minutes=30), note="chờ quá lâu")
    review = review_of(engine, event_id)
    assert (review.kind, review.status, review.official_id, review.unit_id, review.counter_id) == (
        "complaint", "pending", office.officials[0], office.unit_id, office.counters[0])
    assert abs(review.event_time - (NOW - timedelta(minutes=30) + timedelta(seconds=1))) < timedelta(seconds=1)
    with engine.connect() as conn:
        health = conn.execute(select(INCIDENT_HEALTH).where(INCIDENT_HEALTH.c.event_id == event_id)).one()
    assert health.online and health.health["fw"] == "test-1" and health.health["outbox"] == 0


def test_an_unattributed_incident_is_flagged_when_a_supervisor_assigns_it(
        engine: Engine, office: Office, people: dict[str, Browser]) -> None:
    event_id = complaint(engine, SETTINGS, office.devices[1], at=NOW - timedelta(minutes=20))  # nobody at Q2
    assert review_of(engine, event_id) is None
    with engine.connect() as conn:
        qid = conn.execute(select(QUARANTINE.c.id).where(QUARANTINE.c.event_id == event_id)).scalar_one()
    gs = people["gs-a"]
    done = gs.post_json(f"/api/v1/quarantine/{qid}/attribute",
                        {"official": "PA-CB002", "reason": "camera shows Cán bộ 2 at counter 2"})
    assert done.status_code == 200, done.text
    review = review_of(engine, event_id)
    assert (review.status, review.official_id) == ("pending", office.officials[1])


def test_confirm_needs_a_reason_and_a_policy_severity_and_happens_once(
        engine: Engine, office: Office, people: dict[str, Browser]) -> None:
    rid = review_of(engine, complaint(engine, SETTINGS, office.devices[0], at=NOW - timedelta(minutes=10))).id
    gs = people["gs-a"]
    assert_error(gs.post_json(f"/api/v1/reviews/{rid}/confirm", {"severity": "minor", "reason": "  ok "}),
                 422, "invalid")
    assert_error(gs.post_json(f"/api/v1/reviews/{rid}/confirm", {"severity": "catastrophic",
                                                                 "reason": "raised voice at citizen"}), 422, "invalid")
    assert_error(gs.client.post(f"/api/v1/reviews/{rid}/confirm",
                                json={"severity": "minor", "reason": "raised voice"}), 403, "csrf")
    ok = gs.post_json(f"/api/v1/reviews/{rid}/confirm", {"severity": "moderate", "reason": "raised voice at citizen"})
    assert ok.status_code == 200 and ok.json()["status"] == "confirmed", ok.text
    assert_error(gs.post_json(f"/api/v1/reviews/{rid}/dismiss", {"reason": "changed my mind"}), 409, "conflict")
    review = _review(engine, rid)
    assert (review.status, review.severity, review.decided_by, review.reason) == (
        "confirmed", "moderate", "user:gs-a", "raised voice at citizen")
    assert _steps(engine, rid) == [("confirm", "pending", "confirmed")]
    assert _audit_actions(engine, rid) == ["review.confirm"]


def _review(engine: Engine, rid: int) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(REVIEWS).where(REVIEWS.c.id == rid)).one()


def test_dismiss_can_annul_the_rating_the_incident_follows(engine: Engine, office: Office,
                                                           people: dict[str, Browser]) -> None:
    event_id = complaint(engine, SETTINGS, office.devices[0], at=NOW - timedelta(minutes=10))
    rid = review_of(engine, event_id).id
    res = people["gs-a"].post_json(f"/api/v1/reviews/{rid}/dismiss",
                                   {"reason": "the clip shows the citizen was served politely", "annul_rating": True})
    assert res.status_code == 200, res.text
    review = _review(engine, rid)
    detail = people["gs-a"].client.get(f"/api/v1/reviews/{rid}").json()
    assert review.status == "dismissed" and review.annulled_event_id == detail["rating"]["id"]
    assert detail["rating"]["rating"] == 1 and detail["rating"]["body"]["reasons"] == ["rude"]


def test_contest_by_the_official_decided_by_a_second_reviewer(engine: Engine, office: Office,
                                                              people: dict[str, Browser]) -> None:
    rid = review_of(engine, complaint(engine, SETTINGS, office.devices[0], at=NOW - timedelta(minutes=10))).id
    gs_a, gs_b, cb1, cb2 = (people[k] for k in ("gs-a", "gs-b", "cb1", "cb2"))
    assert_error(cb1.post_json(f"/api/v1/reviews/{rid}/contest", {"reason": "I was not rude"}), 409, "conflict")
    gs_a.post_json(f"/api/v1/reviews/{rid}/confirm", {"severity": "serious", "reason": "shouted at the citizen"})
    assert_error(cb2.post_json(f"/api/v1/reviews/{rid}/contest", {"reason": "not fair to her"}), 403, "forbidden")
    assert_error(cb1.post_json(f"/api/v1/reviews/{rid}/confirm", {"severity": "minor", "reason": "self-confirm"}),
                 403, "forbidden")
    res = cb1.post_json(f"/api/v1/reviews/{rid}/contest", {"reason": "the citizen shouted first; see the clip"})
    assert res.status_code == 200 and _review(engine, rid).status == "contested", res.text
    assert_error(gs_a.post_json(f"/api/v1/reviews/{rid}/contest-decision",
                                {"outcome": "uphold", "reason": "I stand by it"}), 403, "forbidden")
    res = gs_b.post_json(f"/api/v1/reviews/{rid}/contest-decision",
                         {"outcome": "uphold", "reason": "both raised voices; lowered", "severity": "minor"})
    assert res.status_code == 200, res.text
    review = _review(engine, rid)
    assert (review.status, review.severity, review.decided_by) == ("confirmed", "minor", "user:gs-b")
    assert_error(cb1.post_json(f"/api/v1/reviews/{rid}/contest", {"reason": "and again"}), 409, "conflict")
    assert _steps(engine, rid) == [("confirm", "pending", "confirmed"), ("contest", "confirmed", "contested"),
                                   ("uphold", "contested", "confirmed")]
    assert _audit_actions(engine, rid) == ["review.confirm", "review.contest", "review.uphold"]
    own = cb1.client.get("/api/v1/reviews?status=all").json()
    assert [i["id"] for i in own["items"]] == [rid] and cb2.client.get("/api/v1/reviews?status=all").json()[
        "items"] == []
    with engine.connect() as conn:
        assert verify(conn).ok


def test_no_contest_once_the_month_has_closed(engine: Engine, office: Office, app: FastAPI) -> None:
    closed = Settings(mode="demo", scoring={"review_days": 0})  # type: ignore[arg-type]
    last_month = (NOW.replace(day=1) - timedelta(days=3)).replace(hour=3)
    sign_in_official(engine, office.counters[1], office.officials[2], last_month - timedelta(hours=1), now=NOW)
    rid = review_of(engine, complaint(engine, closed, office.devices[1], at=last_month)).id
    strict = create_app(closed, engine)
    make_user(engine, "gs", "supervisor", units=("PA",))
    make_user(engine, "cb3", "official", official="PA-CB003")
    gs, cb3 = sign_in(strict, "gs"), sign_in(strict, "cb3")
    gs.post_json(f"/api/v1/reviews/{rid}/confirm", {"severity": "minor", "reason": "late for the counter"})
    res = cb3.post_json(f"/api/v1/reviews/{rid}/contest", {"reason": "the queue system was down"})
    assert_error(res, 409, "conflict")
    assert "closed" in res.json()["error"]["message"]


def test_a_late_sign_in_moves_a_decided_review_back_to_pending(engine: Engine, office: Office,
                                                               people: dict[str, Browser]) -> None:
    at = NOW - timedelta(minutes=30)
    rid = review_of(engine, complaint(engine, SETTINGS, office.devices[0], at=at)).id
    people["gs-a"].post_json(f"/api/v1/reviews/{rid}/confirm", {"severity": "minor", "reason": "rude reply"})
    # The queue system reports late that Cán bộ 3 took over counter 1 an hour ago.
    sign_in_official(engine, office.counters[0], office.officials[2], NOW - timedelta(hours=1), now=NOW)
    review = _review(engine, rid)
    assert (review.official_id, review.status, review.severity) == (office.officials[2], "pending", None)
    assert _steps(engine, rid)[-1] == ("reattribute", "confirmed", "pending")
    assert _audit_actions(engine, rid)[-1] == "review.reattribute"


def test_queue_oldest_first_with_filters_pages_and_per_user_viewed_state(
        engine: Engine, office: Office, people: dict[str, Browser]) -> None:
    sign_in_official(engine, office.counters[1], office.officials[1], NOW - timedelta(hours=2))
    ids = [review_of(engine, complaint(engine, SETTINGS, office.devices[i % 2], at=NOW - timedelta(minutes=50 - i),
                                       kind="complaint" if i % 3 else "lowest_rating")).id for i in range(5)]
    gs_a, gs_b = people["gs-a"], people["gs-b"]
    page = gs_a.client.get("/api/v1/reviews?limit=2").json()
    rest = gs_a.client.get(f"/api/v1/reviews?limit=2&cursor={page['next_cursor']}").json()
    last = gs_a.client.get(f"/api/v1/reviews?limit=2&cursor={rest['next_cursor']}").json()
    assert [i["id"] for i in page["items"] + rest["items"] + last["items"]] == ids and last["next_cursor"] is None
    assert page["counts"] == {"pending": 5, "contested": 0, "confirmed": 0, "dismissed": 0}
    q2 = gs_a.client.get("/api/v1/reviews?counter=PA-Q2").json()["items"]
    assert [i["id"] for i in q2] == ids[1::2] and {i["official"] for i in q2} == {"PA-CB002"}
    assert [i["id"] for i in gs_a.client.get("/api/v1/reviews?kind=lowest_rating").json()["items"]] == ids[::3]
    assert gs_a.client.get("/api/v1/reviews?official=PA-CB001").json()["counts"]["pending"] == 3
    tomorrow = (NOW + timedelta(days=2)).date().isoformat()
    assert gs_a.client.get(f"/api/v1/reviews?since={tomorrow}").json()["items"] == []
    assert_error(gs_a.client.get("/api/v1/reviews?status=maybe"), 422, "invalid_request")
    assert_error(gs_a.client.get("/api/v1/reviews?cursor=x"), 422, "invalid_request")
    gs_a.post_json(f"/api/v1/reviews/{ids[0]}/viewed", {})
    gs_a.post_json(f"/api/v1/reviews/{ids[2]}/dismiss", {"reason": "duplicate of an earlier complaint"})
    mine = {i["id"]: i["viewed"] for i in gs_a.client.get("/api/v1/reviews?status=all").json()["items"]}
    theirs = {i["id"]: i["viewed"] for i in gs_b.client.get("/api/v1/reviews?status=all").json()["items"]}
    assert mine[ids[0]] and not mine[ids[2]] and not any(theirs.values())  # viewed is per user, not the verdict
    assert ids[2] not in {i["id"] for i in gs_b.client.get("/api/v1/reviews").json()["items"]}  # decided: off the queue


def test_the_detail_has_what_a_reviewer_needs_and_an_item_trail(engine: Engine, office: Office,
                                                                people: dict[str, Browser]) -> None:
    rid = review_of(engine, complaint(engine, SETTINGS, office.devices[0], at=NOW - timedelta(minutes=5),
                                      reasons=("slow", "rude"), note="không được hướng dẫn")).id
    gs = people["gs-a"]
    doc = gs.client.get(f"/api/v1/reviews/{rid}").json()
    assert doc["review"]["official"] == "PA-CB001" and doc["review"]["counter"] == "PA-Q1"
    assert doc["event"]["body"]["note"] == "không được hướng dẫn"
    assert doc["rating"]["body"]["reasons"] == ["slow", "rude"]
    assert doc["session"]["official"] == "PA-CB001" and doc["session"]["ended_at"] is None
    assert doc["device"]["at_incident"]["health"]["clock"] == "synced" and doc["device"]["now"]["online"]
    assert set(doc["severities"]) == {"minor", "moderate", "serious"}
    assert doc["score_panel"]["incidents"]["pending"] == 1 and doc["score_panel"]["provisional"]
    gs.post_json(f"/api/v1/reviews/{rid}/confirm", {"severity": "serious", "reason": "refused to help"})
    panel = gs.client.get(f"/api/v1/reviews/{rid}").json()["score_panel"]
    assert panel["incidents"]["confirmed"] == 1 and panel["confirmed_deduction"] == "2"
    trail = gs.client.get(f"/api/v1/reviews/{rid}/audit").json()
    assert [e["action"] for e in trail] == ["review.confirm"] and trail[0]["actor"] == "user:gs-a"


def test_two_reviewers_deciding_at_once_get_one_verdict(engine: Engine, office: Office) -> None:
    import threading

    from server.review import verdicts
    from server.review.severities import severities

    rid = review_of(engine, complaint(engine, SETTINGS, office.devices[0], at=NOW - timedelta(minutes=3))).id
    outcomes: list[str] = []
    start = threading.Barrier(2)

    def decide(confirm: bool) -> None:
        start.wait()
        try:
            with engine.begin() as conn:
                if confirm:
                    verdicts.confirm(conn, review_id=rid, severity="minor", reason="seen on the clip", actor="user:a",
                                     at=NOW, options=severities(SETTINGS))
                else:
                    verdicts.dismiss(conn, review_id=rid, reason="no grounds found", annul_rating=False,
                                     actor="user:b", at=NOW)
            outcomes.append("done")
        except verdicts.ReviewError as exc:
            outcomes.append(exc.code)

    threads = [threading.Thread(target=decide, args=(flag,)) for flag in (True, False)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) == ["done", "wrong_status"]  # the row lock lets one through; the other is told why
    assert len(_steps(engine, rid)) == 1 and len(_audit_actions(engine, rid)) == 1
