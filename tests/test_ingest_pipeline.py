"""The ingest pipeline below MQTT: verify -> de-duplicate -> time -> attribute -> store, on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select

from motcua.protocol import codec
from server import registry
from server.db.models import AUDIT, DEVICES, EVENTS, QUARANTINE, EventStatus, TimeSource
from server.db.types import to_ms
from server.ingest.messages import Fate, Incoming
from server.ingest.pipeline import Pipeline
from server.ingest.store import IngestRules
from server.settings import Settings
from tests.utils.factories import Office, SignedDevice, make_office, sign_in, sign_out

T0 = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)  # 08:00 in Hà Nội, a Monday
T0_MS = to_ms(T0)
MIN = 60_000


def rules(**ingest: int) -> IngestRules:
    return IngestRules.from_settings(Settings(mode="demo", ingest=ingest))  # type: ignore[arg-type]


def run(engine: Engine, *messages: tuple[str, bytes, int], **ingest: int):  # type: ignore[no-untyped-def]
    batch = [Incoming(topic, payload, received) for topic, payload, received in messages]
    return Pipeline(engine, rules(**ingest)).process(batch).results


def ev(dev: SignedDevice, payload: bytes, received_ms: int) -> tuple[str, bytes, int]:
    return dev.topic(), payload, received_ms


def events(engine: Engine) -> list:  # type: ignore[type-arg]
    with engine.connect() as conn:
        return list(conn.execute(select(EVENTS).order_by(EVENTS.c.id)))


def quarantine(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(select(QUARANTINE.c.reason, func.sum(QUARANTINE.c.count))
                            .where(QUARANTINE.c.resolved_at.is_(None)).group_by(QUARANTINE.c.reason))
        return {r[0]: int(r[1]) for r in rows}


@pytest.fixture
def office(engine: Engine) -> Office:
    return make_office(engine)


def test_signed_rating_is_stored_attributed_and_acked(engine: Engine, office: Office) -> None:
    dev = office.devices[0]
    sign_in(engine, dev.counter_id, office.officials[0], T0)
    [result] = run(engine, ev(dev, dev.rating(4, up=5000, ts=T0_MS + MIN), T0_MS + MIN + 40))
    assert (result.fate, result.ack) == (Fate.STORED, (1, 1, "ok"))
    [row] = events(engine)
    assert (row.status, row.official_id, row.rating, row.levels) == (EventStatus.ACCEPTED, office.officials[0], 4, 4)
    assert (row.time_source, to_ms(row.event_time)) == (TimeSource.DEVICE, T0_MS + MIN)
    assert bytes(row.payload) == dev.rating(4, up=5000, ts=T0_MS + MIN, seq=1)  # original bytes kept as evidence


def test_resends_are_acked_as_duplicates_and_stored_once(engine: Engine, office: Office) -> None:
    dev = office.devices[0]
    sign_in(engine, dev.counter_id, office.officials[0], T0)
    payload = dev.rating(3, up=1000, ts=T0_MS + MIN)
    first = run(engine, ev(dev, payload, T0_MS + MIN), ev(dev, payload, T0_MS + MIN + 5))
    again = run(engine, ev(dev, payload, T0_MS + 2 * MIN))
    assert [r.fate for r in first + again] == [Fate.STORED, Fate.DUPLICATE, Fate.DUPLICATE]
    assert [r.ack for r in again] == [(1, 1, "dup")]
    assert len(events(engine)) == 1
    with engine.connect() as conn:
        assert conn.execute(select(DEVICES.c.duplicates).where(DEVICES.c.id == dev.id)).scalar() == 2


def test_reused_sequence_number_with_other_bytes_is_a_conflict_not_a_duplicate(engine: Engine, office: Office) -> None:
    dev = office.devices[0]
    sign_in(engine, dev.counter_id, office.officials[0], T0)
    run(engine, ev(dev, dev.rating(4, up=1000, ts=T0_MS + MIN, seq=7), T0_MS + MIN))
    [clash] = run(engine, ev(dev, dev.rating(1, up=2000, ts=T0_MS + MIN, seq=7), T0_MS + MIN + 10))
    assert (clash.fate, clash.reason, clash.ack) == (Fate.QUARANTINED, "seq_conflict", (1, 7, "quar"))
    assert [e.rating for e in events(engine)] == [4]  # the first stays; the clash is kept apart
    assert quarantine(engine) == {"seq_conflict": 1}


def _forged(dev: SignedDevice) -> bytes:
    return codec.encode_event(b"x" * 32, dev=dev.id, ep=1, seq=99, up=1, ts=T0_MS, typ="rating",
                              body=codec.rating_body(1, 4))


def test_every_rejection_reason_is_quarantined_with_its_code(engine: Engine, office: Office) -> None:
    dev, other = office.devices
    with engine.begin() as conn:
        registry.revoke_device(conn, device_id=other.id, reason="stolen", actor="test")
    wrong_dev = codec.encode_event(dev.secret, dev="px-dev-9", ep=1, seq=1, up=1, ts=T0_MS, typ="rating",
                                   body=codec.rating_body(2, 4))
    schema_bad = codec.encode_event(dev.secret, dev=dev.id, ep=1, seq=2, up=1, ts=T0_MS, typ="rating",
                                    body={"value": 9, "levels": 4})
    at = T0_MS + MIN
    cases = {
        "oversized": (dev.topic(), b"{" + b" " * 5000 + b"}"),
        "malformed": (dev.topic(), b"\x00not json"),
        "bad_topic": ("motcua/v1/dev/x/evt", b"{}"),
        "unknown_device": ("motcua/v1/dev/ghost-1/evt", dev.rating(1, up=1)),
        "revoked_device": (other.topic(), other.rating(1, up=1, ts=at)),
        "bad_signature": (dev.topic(), _forged(dev)),
        "schema": (dev.topic(), schema_bad),
        "topic_mismatch": (dev.topic(), wrong_dev),
        "implausible_time": (dev.topic(), dev.rating(2, up=1, ts=at + 3_600_000, seq=3)),
        "untimed": (dev.topic(), dev.rating(2, up=1, seq=4)),
        "unattributed": (dev.topic(), dev.rating(2, up=1, ts=at, seq=5)),
    }
    results = run(engine, *[(t, p, at) for t, p in cases.values()])
    assert [r.reason for r in results] == list(cases)
    assert all(r.fate is Fate.QUARANTINED for r in results)
    assert quarantine(engine) == dict.fromkeys(cases, 1)
    acked = {r.reason for r in results if r.ack}
    # Authenticated events are acked "quar" (re-sending cannot help); forged or unknown ones are not.
    assert acked == {"schema", "topic_mismatch", "implausible_time", "untimed", "unattributed"}
    assert {e.status for e in events(engine)} == {EventStatus.QUARANTINED}
    assert len(events(engine)) == 3  # implausible_time, untimed, unattributed are stored as events


def test_quarantined_resend_is_counted_not_stored_twice(engine: Engine, office: Office) -> None:
    forged = _forged(office.devices[0])
    for n in range(3):
        run(engine, (office.devices[0].topic(), forged, T0_MS + n))
    assert quarantine(engine) == {"bad_signature": 3}
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(QUARANTINE)).scalar() == 1


def test_replayed_heartbeat_is_quarantined(engine: Engine, office: Office) -> None:
    dev = office.devices[0]
    old, new = dev.heartbeat(up=10_000), dev.heartbeat(up=70_000)
    results = run(engine, (dev.topic("hb"), old, T0_MS), (dev.topic("hb"), new, T0_MS + MIN))
    assert [r.fate for r in results] == [Fate.HEARTBEAT, Fate.HEARTBEAT]
    [replayed] = run(engine, (dev.topic("hb"), old, T0_MS + 2 * MIN))
    assert replayed.reason == "replay"


def test_untimed_event_is_timed_by_the_next_heartbeat_and_attributed(engine: Engine, office: Office) -> None:
    dev = office.devices[0]
    sign_in(engine, dev.counter_id, office.officials[1], T0)
    # Pressed at uptime 600 s, sent at once, but the device has no clock and no heartbeat was processed yet.
    [waiting] = run(engine, ev(dev, dev.rating(4, up=600_000), T0_MS + 30 * MIN))
    assert waiting.reason == "untimed"
    # The heartbeat at uptime 900 s arrives at T0+35 min: boot = T0+20 min, press = T0+30 min.
    run(engine, (dev.topic("hb"), dev.heartbeat(up=900_000), T0_MS + 35 * MIN))
    [row] = events(engine)
    assert (row.status, row.official_id, row.time_source) == (EventStatus.ACCEPTED, office.officials[1],
                                                              TimeSource.ANCHOR)
    assert to_ms(row.event_time) == T0_MS + 30 * MIN
    assert quarantine(engine) == {}


def test_skewed_device_clock_is_overruled_by_the_heartbeat_anchor(engine: Engine, office: Office) -> None:
    dev = office.devices[0]
    a, b = office.officials[:2]
    sign_in(engine, dev.counter_id, a, T0)
    sign_in(engine, dev.counter_id, b, T0 + timedelta(minutes=60))  # handover at 09:00
    skew = -90_000  # the device clock is 90 s slow: its 09:00:30 press claims 08:59:00
    run(engine, (dev.topic("hb"), dev.heartbeat(up=3_000_000, ts=T0_MS + 50 * MIN + skew), T0_MS + 50 * MIN))
    press = T0_MS + 60 * MIN + 30_000
    run(engine, ev(dev, dev.rating(5, levels=5, up=3_000_000 + 10 * MIN + 30_000, ts=press + skew), press + 200))
    [row] = events(engine)
    assert (row.official_id, row.time_source, to_ms(row.event_time)) == (b, TimeSource.ANCHOR, press)


def test_unattributed_event_is_attributed_when_a_late_sign_in_covers_it(engine: Engine, office: Office) -> None:
    dev = office.devices[0]
    [result] = run(engine, ev(dev, dev.rating(2, up=1, ts=T0_MS + 5 * MIN), T0_MS + 5 * MIN))
    assert result.reason == "unattributed"
    # The queue system reports at 08:20 that the official signed in at 08:00.
    sign_in(engine, dev.counter_id, office.officials[2], T0, now=T0 + timedelta(minutes=20))
    [row] = events(engine)
    assert (row.status, row.official_id) == (EventStatus.ACCEPTED, office.officials[2])
    assert quarantine(engine) == {}
    with engine.connect() as conn:
        actions = list(conn.scalars(select(AUDIT.c.action).order_by(AUDIT.c.id)))
    assert "events.reattribute" in actions


def test_late_sign_out_moves_later_events_back_to_quarantine(engine: Engine, office: Office) -> None:
    dev = office.devices[0]
    sign_in(engine, dev.counter_id, office.officials[0], T0)
    run(engine, ev(dev, dev.rating(3, up=1, ts=T0_MS + 40 * MIN), T0_MS + 40 * MIN))
    sign_out(engine, dev.counter_id, T0 + timedelta(minutes=30), now=T0 + timedelta(minutes=45))
    [row] = events(engine)
    assert (row.status, row.official_id) == (EventStatus.QUARANTINED, None)
    assert quarantine(engine) == {"unattributed": 1}


@pytest.mark.parametrize("order", ["pressed order", "reversed"])
def test_mashing_is_flagged_whatever_the_arrival_order(engine: Engine, office: Office, order: str) -> None:
    dev = office.devices[0]
    sign_in(engine, dev.counter_id, office.officials[0], T0)
    ups = [10_000, 11_000, 12_500, 20_000, 22_999, 40_000]  # presses, in ms of uptime
    payloads = [dev.rating(1, up=u, ts=T0_MS + MIN + u) for u in ups]
    if order == "reversed":
        payloads.reverse()
    for p in payloads:  # one batch each: arrival order is what varies
        run(engine, ev(dev, p, T0_MS + 2 * MIN))
    flags = {e.uptime_ms: e.misuse for e in events(engine)}
    assert flags == {10_000: False, 11_000: True, 12_500: True, 20_000: False, 22_999: True, 40_000: False}


def test_only_the_first_rating_per_ticket_counts(engine: Engine, office: Office) -> None:
    dev = office.devices[0]
    sign_in(engine, dev.counter_id, office.officials[0], T0)
    early = dev.rating(4, up=10_000, ts=T0_MS + 2 * MIN, txn="A-007", seq=1)
    late = dev.rating(1, up=90_000, ts=T0_MS + 3 * MIN, txn="A-007", seq=2)  # arrives first
    other_day = dev.rating(2, up=20_000_000, ts=T0_MS + 24 * 60 * MIN, txn="A-007", seq=3)
    run(engine, ev(dev, late, T0_MS + 4 * MIN))
    run(engine, ev(dev, early, T0_MS + 4 * MIN), ev(dev, other_day, T0_MS + 24 * 60 * MIN))
    got = {e.rating: e.txn_duplicate for e in events(engine)}
    assert got == {1: True, 4: False, 2: False}


@pytest.mark.allow_logged_errors
def test_a_bug_on_one_message_quarantines_it_and_spares_the_batch(engine: Engine, office: Office,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    dev = office.devices[0]
    sign_in(engine, dev.counter_id, office.officials[0], T0)
    from server.ingest import store

    real = store.BatchStore._row

    def explode_on_value_2(self, c, msg, timed):  # type: ignore[no-untyped-def]
        if c.event.body.value == 2:
            raise RuntimeError("boom")
        return real(self, c, msg, timed)

    monkeypatch.setattr(store.BatchStore, "_row", explode_on_value_2)
    results = run(engine, *[ev(dev, dev.rating(v, up=v * 10_000, ts=T0_MS + MIN), T0_MS + MIN) for v in (1, 2, 3)])
    assert [r.fate for r in results] == [Fate.STORED, Fate.QUARANTINED, Fate.STORED]
    assert results[1].ack is None  # not acked: the device re-sends, and a fixed server will take it
    assert quarantine(engine) == {"internal_error": 1}


def test_a_delayed_heartbeat_does_not_shift_the_clock(engine: Engine, office: Office) -> None:
    dev = office.devices[0]
    a, b = office.officials[:2]
    sign_in(engine, dev.counter_id, a, T0)
    sign_in(engine, dev.counter_id, b, T0 + timedelta(minutes=30, seconds=30))  # handover at 07:30:30 UTC
    boot = T0_MS  # the box booted at T0; the first heartbeat arrives 50 ms after it was sent
    run(engine, (dev.topic("hb"), dev.heartbeat(up=60_000), boot + 60_050))
    # 12 minutes of uptime later a heartbeat sits 90 s in a backlog before it reaches ingest.
    run(engine, (dev.topic("hb"), dev.heartbeat(up=720_000), boot + 720_000 + 90_000))
    press = 30 * MIN  # 07:30:00, still A's half-minute
    run(engine, ev(dev, dev.rating(2, up=press), boot + press + 100))
    [row] = events(engine)
    assert (row.official_id, to_ms(row.event_time)) == (a, boot + press + 50)


def test_the_anchor_follows_slow_drift(engine: Engine, office: Office) -> None:
    dev = office.devices[0]
    sign_in(engine, dev.counter_id, office.officials[0], T0)
    run(engine, (dev.topic("hb"), dev.heartbeat(up=60_000), T0_MS + 60_020))
    # An hour on, the device's uptime runs 150 ms behind the server's clock: a refresh inside the budget.
    run(engine, (dev.topic("hb"), dev.heartbeat(up=3_660_000), T0_MS + 3_660_000 + 150 + 20))
    run(engine, ev(dev, dev.rating(3, up=3_700_000), T0_MS + 3_700_200))
    [row] = events(engine)
    assert to_ms(row.event_time) == T0_MS + 3_700_000 + 170


def _reset_history(engine: Engine, office: Office) -> tuple[SignedDevice, int, int]:
    """A device that lived epochs 1..7 weeks ago (epoch 1 with a clock anchor), then was reset."""
    dev = office.devices[0]
    old, new = office.officials[:2]
    weeks_ago = T0 - timedelta(days=20)
    sign_in(engine, dev.counter_id, old, weeks_ago)
    run(engine, (dev.topic("hb"), dev.heartbeat(up=60_000, ts=to_ms(weeks_ago) + 60_000), to_ms(weeks_ago) + 60_050))
    run(engine, ev(dev, dev.rating(4, up=120_000, ts=to_ms(weeks_ago) + 120_000), to_ms(weeks_ago) + 120_100))
    for ep in range(2, 8):
        run(engine, (dev.topic("hb"), dev.heartbeat(up=1000, ts=to_ms(weeks_ago) + ep * 3_600_000, epoch=ep),
                     to_ms(weeks_ago) + ep * 3_600_000))
    sign_in(engine, dev.counter_id, new, T0, now=T0)
    return dev, old, new


def test_a_reset_device_is_told_to_jump_and_its_presses_are_not_credited_weeks_back(
        engine: Engine, office: Office) -> None:
    dev, _old, new = _reset_history(engine, office)
    dev.seq = 5  # the reset box counts again from epoch 1, past the one old press's number
    with engine.connect() as conn:
        rev_before = conn.execute(select(DEVICES.c.config_rev).where(DEVICES.c.id == dev.id)).scalar_one()
    # It boots at epoch 1 again; its heartbeat carries today's (synced) time.
    [hb] = run(engine, (dev.topic("hb"), dev.heartbeat(up=30_000, ts=T0_MS + 30_000), T0_MS + 30_040))
    assert hb.reason == "epoch_regression"
    press = dev.rating(1, up=90_000, ts=T0_MS + 90_000)
    [result] = run(engine, ev(dev, press, T0_MS + 90_050))
    [_, row] = events(engine)
    # Its stale epoch-1 anchor is gone: the press is timed by its own clock and credited to today's official.
    assert (row.time_source, to_ms(row.event_time), row.official_id) == (TimeSource.DEVICE, T0_MS + 90_000, new)
    with engine.connect() as conn:
        rev, floor = conn.execute(select(DEVICES.c.config_rev, DEVICES.c.epoch_floor)
                                  .where(DEVICES.c.id == dev.id)).one()
    assert rev > rev_before and floor == 8  # its next config says ep_min 8: it continues there
    assert result.fate is Fate.STORED


def test_a_press_whose_clock_contradicts_a_stale_anchor_waits_for_a_person(engine: Engine, office: Office) -> None:
    dev, _old, _new = _reset_history(engine, office)
    dev.seq = 5
    # The reset box presses before any heartbeat of its new life got through: epoch 1's old anchor
    # would put this press 20 days back, onto the official of then.
    [result] = run(engine, ev(dev, dev.rating(2, up=90_000, ts=T0_MS + 90_000), T0_MS + 90_050))
    assert (result.fate, result.reason) == (Fate.QUARANTINED, "clock_conflict")
    assert events(engine)[-1].official_id is None


def test_an_old_heartbeat_replayed_is_a_replay_not_a_reset(engine: Engine, office: Office) -> None:
    dev = office.devices[0]
    old = dev.heartbeat(up=10_000, ts=T0_MS + 10_000)
    run(engine, (dev.topic("hb"), old, T0_MS + 10_050), (dev.topic("hb"), dev.heartbeat(up=70_000), T0_MS + 70_000))
    [again] = run(engine, (dev.topic("hb"), old, T0_MS + 5 * MIN))
    assert again.reason == "replay"


def test_a_heartbeat_replayed_on_the_event_topic_earns_no_ack(engine: Engine, office: Office) -> None:
    """Otherwise its seq (the last one assigned) would make the device delete its newest press unstored."""
    dev = office.devices[0]
    dev.seq = 1
    [result] = run(engine, (dev.topic(), dev.heartbeat(up=10_000, ts=T0_MS), T0_MS + 50))
    assert (result.fate, result.reason, result.ack) == (Fate.QUARANTINED, "schema", None)


def test_junk_with_huge_numbers_is_quarantined_not_an_internal_error(engine: Engine, office: Office) -> None:
    dev = office.devices[0]
    junk = b'{"v":1,"dev":"px-dev-1","ep":99999999999999999999,"seq":1,"sig":"' + b"0" * 64 + b'"}'
    [result] = run(engine, (dev.topic(), junk, T0_MS))
    assert result.reason == "bad_signature"


def test_ticket_counting_does_not_depend_on_arrival_order(engine: Engine, office: Office) -> None:
    dev = office.devices[0]
    sign_in(engine, dev.counter_id, office.officials[0], T0)
    p1 = dev.rating(4, up=10_000, ts=T0_MS + 10_000, txn="A-001", seq=1)
    p2 = dev.rating(1, up=11_000, ts=T0_MS + 11_000, txn="A-002", seq=2)  # 1 s after p1: misuse
    p3 = dev.rating(3, up=60_000, ts=T0_MS + 60_000, txn="A-002", seq=3)  # so this one counts for A-002
    run(engine, ev(dev, p2, T0_MS + 2 * MIN), ev(dev, p3, T0_MS + 2 * MIN))
    run(engine, ev(dev, p1, T0_MS + 3 * MIN))  # arrives last
    got = {e.seq: (e.misuse, e.txn_duplicate) for e in events(engine)}
    assert got == {1: (False, False), 2: (True, False), 3: (False, False)}


def test_an_implausible_time_is_corrected_by_the_boots_anchor(engine: Engine, office: Office) -> None:
    dev = office.devices[0]
    sign_in(engine, dev.counter_id, office.officials[0], T0)
    [r] = run(engine, ev(dev, dev.rating(3, up=600_000, ts=1_000_000), T0_MS + 10 * MIN))  # a clock in 1970
    assert r.reason == "implausible_time"
    run(engine, (dev.topic("hb"), dev.heartbeat(up=660_000), T0_MS + 11 * MIN))
    [row] = events(engine)
    assert (row.status, row.time_source, to_ms(row.event_time)) == (EventStatus.ACCEPTED, TimeSource.ANCHOR,
                                                                     T0_MS + 10 * MIN)
    assert quarantine(engine) == {}


def test_a_nul_in_a_signed_body_is_kept_as_schema_on_both_databases(engine: Engine, office: Office) -> None:
    dev = office.devices[0]
    bad = codec.encode_event(dev.secret, dev=dev.id, ep=1, seq=1, up=1, ts=T0_MS, typ="rating",
                             body={"value": 1, "levels": 4, "\u0000x": 1})
    [r] = run(engine, ev(dev, bad, T0_MS))
    assert (r.reason, r.ack) == ("schema", (1, 1, "quar"))


def test_a_supervisors_attribution_survives_later_session_changes(engine: Engine, office: Office) -> None:
    from server.resolution import attribute_quarantined

    dev = office.devices[0]
    run(engine, ev(dev, dev.rating(2, up=1, ts=T0_MS + 5 * MIN), T0_MS + 5 * MIN))
    with engine.connect() as conn:
        qid = conn.execute(select(QUARANTINE.c.id)).scalar_one()
    with engine.begin() as conn:
        attribute_quarantined(conn, quarantine_id=qid, official_code="PX-CB002", reason="seen on the camera",
                              actor="user:giamsat", zone=rules().zone)
    # The queue system then reports, late, that someone else was signed in, and later signed out.
    sign_in(engine, dev.counter_id, office.officials[0], T0, now=T0 + timedelta(minutes=20))
    sign_out(engine, dev.counter_id, T0 + timedelta(minutes=1), now=T0 + timedelta(minutes=21))
    [row] = events(engine)
    assert (row.official_id, row.attributed_by, row.status) == (office.officials[1], "user:giamsat",
                                                                EventStatus.ACCEPTED)
    assert quarantine(engine) == {}


def test_a_heartbeat_from_a_later_boot_at_the_same_epoch_raises_the_floor(engine: Engine, office: Office) -> None:
    dev = office.devices[0]

    def floor() -> int | None:
        with engine.connect() as conn:
            return conn.execute(select(DEVICES.c.epoch_floor).where(DEVICES.c.id == dev.id)).scalar_one()

    run(engine, (dev.topic("hb"), dev.heartbeat(up=5_000), T0_MS + 5_050))
    run(engine, (dev.topic("hb"), dev.heartbeat(up=65_000), T0_MS + 66_500))  # 1.5 s late: same life
    assert floor() is None
    # No clock, epoch 1 again, but its uptime says it booted 10 minutes after that epoch's anchor.
    run(engine, (dev.topic("hb"), dev.heartbeat(up=70_000), T0_MS + 10 * MIN + 70_000))
    assert floor() == 2


def test_a_lost_lock_race_is_retried_at_once_not_backed_off(engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    """PostgreSQL aborts one side of a deadlock; that batch is retried within milliseconds, without the
    'database unavailable' backoff meant for outages."""
    import time as _time

    import psycopg.errors
    from sqlalchemy.exc import OperationalError

    class RacingPipeline(Pipeline):
        lost = 0

        def _commit(self, batch):  # type: ignore[no-untyped-def]
            if self.lost < 3:
                self.lost += 1
                raise OperationalError("INSERT ...", {}, psycopg.errors.DeadlockDetected("deadlock detected"))
            return super()._commit(batch)

    retries: list[int] = []
    pipeline = RacingPipeline(engine, rules(),
                              on_db_retry=lambda: retries.append(1))
    began = _time.monotonic()
    outcome = pipeline.process([])
    assert outcome.results == []
    assert len(retries) == 3 and _time.monotonic() - began < 0.5
    assert "database unavailable" not in caplog.text
