"""Sessions: the facts attribution rests on stay consistent, also under concurrent requests."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select

from server import registry, sessions
from server.db.models import COUNTERS, OFFICIALS, SESSIONS
from server.sessions import SessionError
from tests.utils.factories import make_office, sign_in, sign_out

T0 = datetime(2026, 11, 2, 0, 0, tzinfo=UTC)  # 07:00 in Hà Nội


@pytest.fixture
def pg_engine(pg_url: str) -> Iterator[Engine]:
    """An emptied engine on the real PostgreSQL: the locking tests are about its row locks."""
    from tests.utils.db import engine_for, wipe

    engine = engine_for(pg_url)
    wipe(engine)
    yield engine
    engine.dispose()


def spans(engine: Engine) -> list[tuple[int, int, datetime, datetime | None]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(  # type: ignore[misc]
            SESSIONS.c.counter_id, SESSIONS.c.official_id, SESSIONS.c.started_at, SESSIONS.c.ended_at)
            .order_by(SESSIONS.c.started_at, SESSIONS.c.id))]


def test_an_official_cannot_be_at_two_counters_at_once_even_when_reported_late(engine: Engine) -> None:
    office = make_office(engine)
    a, b = office.counters
    x = office.officials[0]
    sign_in(engine, b, x, T0 + timedelta(hours=1))
    sign_out(engine, b, T0 + timedelta(hours=2))
    with pytest.raises(SessionError, match=r"official \d+ has a recorded session ending after"):
        sign_in(engine, a, x, T0 + timedelta(hours=1, minutes=30), now=T0 + timedelta(hours=3))
    sign_in(engine, a, x, T0 + timedelta(hours=2, minutes=5), now=T0 + timedelta(hours=3))  # after: fine


def test_an_official_of_another_unit_is_refused(engine: Engine) -> None:
    office = make_office(engine)
    with engine.begin() as conn:
        other_unit = registry.create_unit(conn, code="QX", name="UBND phường QX")
        stranger = registry.create_official(conn, unit_id=other_unit, code="QX-1", full_name="Người ngoài")
    with pytest.raises(SessionError, match="does not work in the unit"):
        sign_in(engine, office.counters[0], stranger, T0)


def test_concurrent_sign_in_and_sign_out_on_postgresql_serialise(pg_engine: Engine) -> None:
    """The interleaving that used to leave X signed in for ever: A signs X in (uncommitted), B signs
    the counter out meanwhile. B must wait for A and then close X's session, not Y's."""
    engine = pg_engine
    office = make_office(engine)
    counter, (y, x) = office.counters[0], office.officials[:2]
    sign_in(engine, counter, y, T0)
    now = T0 + timedelta(hours=2)
    a = engine.connect()
    tx = a.begin()
    sessions.sign_in(a, counter_id=counter, official_id=x, at=T0 + timedelta(hours=1), now=now, actor="A")
    done = threading.Event()

    def sign_out_meanwhile() -> None:
        with engine.begin() as conn:
            sessions.sign_out(conn, counter_id=counter, at=T0 + timedelta(hours=1, minutes=30), now=now, actor="B")
        done.set()

    worker = threading.Thread(target=sign_out_meanwhile)
    worker.start()
    assert not done.wait(1.0), "the sign-out must wait for the sign-in holding the counter"
    tx.commit()
    a.close()
    worker.join(10)
    assert done.is_set()
    assert spans(engine) == [(counter, y, T0, T0 + timedelta(hours=1)),
                             (counter, x, T0 + timedelta(hours=1), T0 + timedelta(hours=1, minutes=30))]


def test_a_sign_in_does_not_wait_for_an_ingest_batch_holding_the_counters_devices(pg_engine: Engine) -> None:
    """What a province's morning sign-ins hit: an ingest batch holds its devices' rows (heartbeats) until it
    commits, and inserts events whose foreign keys take FOR KEY SHARE on the counter. A sign-in at that
    counter must neither wait for the batch (it bumped the devices' config revision: a lock convoy that
    held the whole session API to the ingest's pace) nor deadlock with it."""
    from sqlalchemy import text

    from server.db.models import DEVICES
    engine = pg_engine
    office = make_office(engine)
    device = office.devices[0]
    batch = engine.connect()
    tx = batch.begin()
    batch.execute(text("SET LOCAL lock_timeout = '5s'"))
    batch.execute(select(DEVICES.c.id).where(DEVICES.c.id == device.id)
                  .with_for_update(key_share=True))  # as store.load_devices
    outcome: dict[str, object] = {}

    def sign_in_meanwhile() -> None:
        try:
            with engine.begin() as conn:
                conn.execute(text("SET LOCAL lock_timeout = '5s'"))
                sessions.sign_in(conn, counter_id=device.counter_id, official_id=office.officials[0], at=T0,
                                 now=T0 + timedelta(hours=1), actor="queue")
            outcome["ok"] = True
        except Exception as exc:  # the assertion below shows it
            outcome["error"] = exc

    worker = threading.Thread(target=sign_in_meanwhile)
    worker.start()
    worker.join(8)
    assert outcome == {"ok": True}  # done while the batch still holds the device
    # What an event insert's foreign-key checks do to the counter and official rows:
    for table, key in ((COUNTERS, device.counter_id), (OFFICIALS, office.officials[0])):
        batch.execute(select(table.c.id).where(table.c.id == key).with_for_update(read=True, key_share=True))
    tx.commit()
    batch.close()
    with engine.connect() as conn:  # and the device will still be told who serves now
        rev = conn.execute(select(DEVICES.c.config_rev + COUNTERS.c.config_rev).join(
            COUNTERS, COUNTERS.c.id == DEVICES.c.counter_id).where(DEVICES.c.id == device.id)).scalar_one()
        published = conn.execute(select(DEVICES.c.config_published_rev).where(DEVICES.c.id == device.id)).scalar_one()
    assert rev > published


def test_a_sign_in_waits_for_an_ingest_batch_that_read_the_counters_sessions(pg_engine: Engine) -> None:
    """Attribution and session changes must see each other: a batch that read a counter's sessions (to
    attribute its events) keeps a share lock on the counter, and a sign-in there waits for its commit,
    then settles the batch's events itself. Without the lock the sign-in committed in between and the
    batch's events stayed unattributed for good."""
    from sqlalchemy import text

    from server.ingest.attribution import SessionIndex
    engine = pg_engine
    office = make_office(engine)
    counter = office.counters[0]
    batch = engine.connect()
    tx = batch.begin()
    assert SessionIndex.load(batch, [counter], T0, T0 + timedelta(hours=1)).at(counter, T0) is None
    done = threading.Event()

    def sign_in_meanwhile() -> None:
        with engine.begin() as conn:
            sessions.sign_in(conn, counter_id=counter, official_id=office.officials[0], at=T0,
                             now=T0 + timedelta(hours=1), actor="queue")
        done.set()

    worker = threading.Thread(target=sign_in_meanwhile)
    worker.start()
    with engine.connect() as probe:
        waiting = 0
        for _ in range(100):
            waiting = probe.execute(text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                         "AND datname = current_database()")).scalar_one()
            if waiting:
                break
            threading.Event().wait(0.05)
    assert waiting and not done.is_set(), "the sign-in did not wait for the batch that read the sessions"
    tx.commit()
    batch.close()
    worker.join(10)
    assert done.is_set()
