"""Kiosk sign-in/out events through the real pipeline, on both backends (docs/protocol.md §3.4)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, func, select

from server.credentials import remove_credential, set_credential
from server.db.models import AUDIT, CREDENTIALS, EVENTS, QUARANTINE, SESSIONS, EventStatus
from server.db.types import to_ms
from server.ingest.messages import Fate, Incoming
from server.ingest.pipeline import Pipeline
from server.ingest.store import IngestRules
from server.registry import RegistryError
from server.settings import Settings
from tests.utils.factories import Office, make_office

T0 = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)
T0_MS = to_ms(T0)
MIN = 60_000
PIN = "482913"


def run(engine: Engine, *messages: tuple[str, bytes, int]):  # type: ignore[no-untyped-def]
    rules = IngestRules.from_settings(Settings(mode="demo"))
    return Pipeline(engine, rules).process([Incoming(t, p, r) for t, p, r in messages]).results


@pytest.fixture
def office(engine: Engine) -> Office:
    made = make_office(engine)
    with engine.begin() as conn:
        set_credential(conn, official_code="PX-CB001", method="pin", secret=PIN, actor="test")
        set_credential(conn, official_code="PX-CB002", method="badge", secret="BADGE-7788-XY", actor="test")
    return made


def open_sessions(engine: Engine) -> list[tuple[int, int]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(SESSIONS.c.counter_id, SESSIONS.c.official_id)
                                                 .where(SESSIONS.c.ended_at.is_(None)))]


def open_reasons(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return sorted(conn.scalars(select(QUARANTINE.c.reason).where(QUARANTINE.c.resolved_at.is_(None))))


def test_sign_in_with_pin_opens_a_session_and_later_presses_are_attributed(engine: Engine, office: Office) -> None:
    dev = office.devices[0]
    sign = dev.session("in", "PX-CB001", PIN, up=1000, ts=T0_MS)
    rating = dev.rating(4, up=5000, ts=T0_MS + MIN)
    # One batch, rating first: session events are applied before the batch's other events.
    results = run(engine, (dev.topic(), rating, T0_MS + MIN + 5), (dev.topic(), sign, T0_MS + MIN + 5))
    assert [r.fate for r in results] == [Fate.STORED, Fate.STORED]
    assert open_sessions(engine) == [(dev.counter_id, office.officials[0])]
    with engine.connect() as conn:
        rows = conn.execute(select(EVENTS.c.typ, EVENTS.c.status, EVENTS.c.official_id, EVENTS.c.session_id)
                            .order_by(EVENTS.c.typ)).all()
        actors = set(conn.scalars(select(AUDIT.c.actor).where(AUDIT.c.action == "session.open")))
    assert [(r.typ, r.status, r.official_id) for r in rows] == [
        ("rating", EventStatus.ACCEPTED, office.officials[0]), ("session", EventStatus.ACCEPTED, office.officials[0])]
    assert rows[0].session_id == rows[1].session_id is not None
    assert actors == {f"device:{dev.id}"}


def test_wrong_pin_is_quarantined_as_bad_credential_and_acked_quar(engine: Engine, office: Office) -> None:
    dev = office.devices[0]
    [result] = run(engine, (dev.topic(), dev.session("in", "PX-CB001", "000000", up=1, ts=T0_MS,
                                                     enrolled_as="000000"), T0_MS + 5))
    assert (result.fate, result.reason, result.ack) == (Fate.QUARANTINED, "bad_credential", (1, 1, "quar"))
    assert open_sessions(engine) == []
    assert open_reasons(engine) == ["bad_credential"]
    with engine.connect() as conn:
        detail = conn.execute(select(QUARANTINE.c.detail)).scalar_one()
    assert detail == "wrong pin for PX-CB001" and PIN not in detail


@pytest.mark.parametrize(("official", "method", "reason"), [
    ("PX-CB404", "pin", "bad_credential"),  # no such official
    ("PX-CB003", "pin", "bad_credential"),  # nothing enrolled
    ("PX-CB001", "badge", "bad_credential"),  # enrolled a PIN, not a badge
])
def test_sign_in_without_a_matching_credential_is_refused(engine: Engine, office: Office, official: str,
                                                          method: str, reason: str) -> None:
    dev = office.devices[0]
    [result] = run(engine, (dev.topic(), dev.session("in", official, PIN, method=method, up=1, ts=T0_MS), T0_MS))
    assert (result.fate, result.reason) == (Fate.QUARANTINED, reason)
    assert open_sessions(engine) == []


def test_badge_sign_in_then_sign_out_by_the_same_official(engine: Engine, office: Office) -> None:
    dev = office.devices[1]
    run(engine, (dev.topic(), dev.session("in", "PX-CB002", "BADGE-7788-XY", method="badge", up=1, ts=T0_MS), T0_MS))
    assert open_sessions(engine) == [(dev.counter_id, office.officials[1])]
    # Another official's valid PIN cannot end someone else's session.
    [other] = run(engine, (dev.topic(), dev.session("out", "PX-CB001", PIN, up=2, ts=T0_MS + MIN), T0_MS + MIN))
    assert (other.fate, other.reason) == (Fate.QUARANTINED, "session_refused")
    out = dev.session("out", "PX-CB002", "BADGE-7788-XY", method="badge", up=3, ts=T0_MS + 2 * MIN)
    [done] = run(engine, (dev.topic(), out, T0_MS + 2 * MIN))
    assert done.fate is Fate.STORED and open_sessions(engine) == []


def test_a_resent_sign_out_is_a_duplicate_and_does_not_close_a_later_session(engine: Engine, office: Office) -> None:
    dev = office.devices[0]
    run(engine, (dev.topic(), dev.session("in", "PX-CB001", PIN, up=1, ts=T0_MS), T0_MS))
    out = dev.session("out", "PX-CB001", PIN, up=2, ts=T0_MS + MIN)
    run(engine, (dev.topic(), out, T0_MS + MIN))
    run(engine, (dev.topic(), dev.session("in", "PX-CB001", PIN, up=3, ts=T0_MS + 2 * MIN), T0_MS + 2 * MIN))
    [again] = run(engine, (dev.topic(), out, T0_MS + 3 * MIN))
    assert (again.fate, again.ack) == (Fate.DUPLICATE, (1, 2, "dup"))
    assert open_sessions(engine) == [(dev.counter_id, office.officials[0])]


def test_credentials_store_only_a_verifier_and_can_be_withdrawn(engine: Engine, office: Office) -> None:
    with engine.connect() as conn:
        stored = list(conn.execute(select(CREDENTIALS.c.verifier_hex)))
        logged = conn.execute(select(func.count()).select_from(AUDIT).where(AUDIT.c.action == "credential.set"))
        assert logged.scalar_one() == 2
    assert all(PIN not in v[0] and len(v[0]) == 64 for v in stored)
    with engine.begin() as conn:
        remove_credential(conn, official_code="PX-CB001", method="pin", actor="test")
    dev = office.devices[0]
    [result] = run(engine, (dev.topic(), dev.session("in", "PX-CB001", PIN, up=1, ts=T0_MS), T0_MS))
    assert result.reason == "bad_credential"
    with pytest.raises(RegistryError, match="4 to 12 digits"), engine.begin() as conn:
        set_credential(conn, official_code="PX-CB001", method="pin", secret="12", actor="test")
