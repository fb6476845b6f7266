"""The button box end to end: real firmware (MicroPython) -> real Mosquitto -> real ingest -> database."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from server.db.models import EVENTS, EventStatus, TimeSource
from tests.firmware.firmware_process import FirmwareProcess
from tests.utils.factories import make_office, sign_in
from tests.utils.ingest import ingest_settings, running_ingest, wait_until
from tests.utils.services import Mosquitto

pytestmark = [pytest.mark.broker, pytest.mark.slow]


def test_presses_land_attributed_through_a_power_cut_and_a_broker_restart(
        engine: Engine, db_url: str, mosquitto: Mosquitto, tmp_path: Path) -> None:
    office = make_office(engine, counters=1, officials=1)
    dev = office.devices[0]
    sign_in(engine, dev.counter_id, office.officials[0], datetime.now(UTC) - timedelta(minutes=5))
    # No NTP on the desk: the box sends no device time, so ingest must time every press from the
    # box's heartbeat anchor (docs/protocol.md §4) before it can attribute it.
    box = FirmwareProcess(device_id=dev.id, secret_hex=dev.secret.hex(), mqtt_port=mosquitto.port,
                          state_dir=tmp_path / "box", knobs={"ntp_host": ""})
    pressed: list[tuple[int, int]] = []
    with running_ingest(ingest_settings(db_url, mosquitto), engine):
        box.start()
        box.wait_for("subscribed")
        for value in (4, 3, 4, 1):
            pressed.append(box.press(value))
            time.sleep(0.3)
        box.kill()  # power cut, with presses possibly still in the outbox
        box.start()
        pressed += [box.press(2), box.press(4)]
        mosquitto.kill()  # the broker dies while the box holds unacked presses
        pressed.append(box.press(3))
        mosquitto.start()
        box.wait_for("subscribed", after=box.count("subscribed"), timeout=30)
        box.wait_drained(timeout=60)
        wait_until(lambda: _stored(engine) == len(pressed), what="every press stored", timeout=30)
    box.stop()
    with engine.connect() as conn:
        rows = conn.execute(select(EVENTS.c.epoch, EVENTS.c.seq, EVENTS.c.status, EVENTS.c.official_id,
                                   EVENTS.c.time_source, EVENTS.c.device_ts).order_by(EVENTS.c.id)).all()
    assert sorted((r.epoch, r.seq) for r in rows) == sorted(pressed)  # each exactly once
    assert {r.epoch for r in rows} == {1, 2}  # the power cut began a new epoch; nothing re-used
    assert all(r.status == EventStatus.ACCEPTED and r.official_id == office.officials[0] for r in rows)
    assert {r.time_source for r in rows} == {TimeSource.ANCHOR} and {r.device_ts for r in rows} == {None}


def _stored(engine: Engine) -> int:
    with engine.connect() as conn:
        return len(conn.execute(select(EVENTS.c.id)).all())


def test_a_box_whose_flash_was_wiped_moves_past_its_old_epochs(
        engine: Engine, db_url: str, mosquitto: Mosquitto, tmp_path: Path) -> None:
    office = make_office(engine, counters=1, officials=1)
    dev = office.devices[0]
    sign_in(engine, dev.counter_id, office.officials[0], datetime.now(UTC) - timedelta(minutes=5))
    first = FirmwareProcess(device_id=dev.id, secret_hex=dev.secret.hex(), mqtt_port=mosquitto.port,
                            state_dir=tmp_path / "flash-1", knobs={"ntp_host": ""})
    # Lives seconds apart here (a real reset takes minutes): the gap that reveals a re-used epoch is shortened.
    with running_ingest(ingest_settings(db_url, mosquitto, ingest={"epoch_reuse_gap_ms": 1000}), engine):
        first.start()
        first.wait_for("subscribed")
        old = [first.press(v) for v in (4, 2)]
        first.wait_drained(timeout=30)
        first.kill()
        time.sleep(1.5)  # the next life boots well after this one
        # Same identity, empty flash: it boots at epoch 1 again, which the server has seen.
        second = FirmwareProcess(device_id=dev.id, secret_hex=dev.secret.hex(), mqtt_port=mosquitto.port,
                                 state_dir=tmp_path / "flash-2", knobs={"ntp_host": ""})
        second.start()
        assert second.epoch == 1
        moved = second.wait_for("epoch", timeout=30)  # the config's ep_min
        new = [second.press(v) for v in (1, 3)]
        second.wait_drained(timeout=30)
        wait_until(lambda: _stored(engine) == 4, what="all four presses stored")
        second.stop()
    assert moved["ep"] == 2 and {ep for ep, _ in new} == {2}
    with engine.connect() as conn:
        keys = sorted(tuple(r) for r in conn.execute(select(EVENTS.c.epoch, EVENTS.c.seq)))
    assert keys == sorted(old + new)
