"""Nothing a citizen pressed is lost or stored twice: ingest SIGKILLed, broker killed, two workers."""

from __future__ import annotations

import secrets
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import Engine, func, select

from device.agent import DeviceAgent
from server.db.models import DEVICES, EVENTS
from server.ingest.service import IngestService
from tests.utils.factories import Office, make_office, sign_in
from tests.utils.ingest import count_events, ingest_process, ingest_settings, running_ingest, wait_until
from tests.utils.services import Mosquitto

pytestmark = [pytest.mark.broker, pytest.mark.slow]


@pytest.fixture
def office(engine: Engine) -> Office:
    office = make_office(engine, counters=4, officials=4)
    for counter, official in zip(office.counters, office.officials, strict=True):
        sign_in(engine, counter, official, datetime.now(UTC) - timedelta(minutes=10))
    return office


@contextmanager
def pressing(office: Office, broker: Mosquitto, tmp_path: Path, per_device: int,
             interval: float) -> Iterator[list[DeviceAgent]]:
    """Every device presses `per_device` times, `interval` apart, in its own thread."""
    agents = [DeviceAgent(device_id=d.id, secret_hex=d.secret.hex(), state_dir=tmp_path / "devices",
                          host="127.0.0.1", port=broker.port, resend_after_s=1.5, heartbeat_s=5).start()
              for d in office.devices]

    def citizen(agent: DeviceAgent) -> None:
        for n in range(per_device):
            agent.press(1 + n % 4)
            time.sleep(interval)

    threads = [threading.Thread(target=citizen, args=(a,), daemon=True) for a in agents]
    for t in threads:
        t.start()
    try:
        yield agents
        for t in threads:
            t.join(120)
    finally:
        for a in agents:
            a.stop()


def assert_exactly_once(engine: Engine, office: Office, per_device: int) -> None:
    """Each device's sequence 1..n of its one epoch is stored once, nothing else."""
    with engine.connect() as conn:
        rows = conn.execute(select(EVENTS.c.device_id, EVENTS.c.epoch, func.count(), func.min(EVENTS.c.seq),
                                   func.max(EVENTS.c.seq)).group_by(EVENTS.c.device_id, EVENTS.c.epoch)).all()
    assert sorted(rows) == sorted((d.id, 1, per_device, 1, per_device) for d in office.devices)


def drained(agents: list[DeviceAgent]) -> bool:
    return all(a.pending() == 0 for a in agents)


def test_ingest_sigkilled_mid_stream_and_restarted_loses_nothing(
        engine: Engine, db_url: str, mosquitto: Mosquitto, office: Office, tmp_path: Path) -> None:
    env = {"MOTCUA_MODE": "production", "MOTCUA_SECRET_KEY": secrets.token_urlsafe(32),
           "MOTCUA_DATABASE_URL": db_url, "MOTCUA_MQTT__URL": mosquitto.url,
           "MOTCUA_MQTT__CLIENT_ID": "ingest-under-test", "MOTCUA_INGEST__BATCH_WAIT_MS": "5"}
    log = tmp_path / "ingest.log"
    per_device = 150
    proc = ingest_process(env, log)
    try:
        with pressing(office, mosquitto, tmp_path, per_device, interval=0.01) as agents:
            wait_until(lambda: count_events(engine) >= 120, timeout=60, what="ingest to store some events")
            proc.send_signal(signal.SIGKILL)  # a power cut of the server, mid-batch
            proc.wait(10)
            stored_at_kill = count_events(engine)
            time.sleep(1.0)
            proc = ingest_process(env, log)
            wait_until(lambda: drained(agents), timeout=90, what="every outbox to drain after the restart")
        assert stored_at_kill < 4 * per_device, "the kill should land mid-stream"
        assert_exactly_once(engine, office, per_device)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
    assert "Traceback" not in log.read_text()


def test_broker_killed_and_restarted_mid_stream_loses_nothing(
        engine: Engine, db_url: str, mosquitto: Mosquitto, office: Office, tmp_path: Path) -> None:
    per_device = 80
    with running_ingest(ingest_settings(db_url, mosquitto), engine) as service, \
            pressing(office, mosquitto, tmp_path, per_device, interval=0.02) as agents:
        wait_until(lambda: count_events(engine) >= 60, timeout=30, what="some events stored")
        mosquitto.kill()  # presses go on into the outboxes meanwhile
        time.sleep(2.0)
        mosquitto.start()
        wait_until(lambda: drained(agents), timeout=90, what="every outbox to drain after the broker came back")
        wait_until(service.bus.connected.is_set, what="ingest to reconnect")
    assert_exactly_once(engine, office, per_device)


def test_two_shared_subscription_workers_no_loss_no_duplicates(pg_url: str, mosquitto: Mosquitto,
                                                               tmp_path: Path) -> None:
    from tests.utils.db import engine_for, wipe

    engine = engine_for(pg_url)
    wipe(engine)
    office = make_office(engine, counters=4, officials=4)
    for counter, official in zip(office.counters, office.officials, strict=True):
        sign_in(engine, counter, official, datetime.now(UTC) - timedelta(minutes=10))
    workers = [IngestService(ingest_settings(pg_url, mosquitto, mqtt={"shared_group": "motcua"}), engine).start()
               for _ in range(2)]
    per_device = 200
    now_ms = int(time.time() * 1000)
    payloads = [(d.topic(), d.rating(1 + n % 4, up=10_000 + n * 5_000, ts=now_ms - 1000))
                for d in office.devices for n in range(per_device)]
    try:
        for w in workers:
            assert w.bus.wait_connected(10)
        time.sleep(0.3)  # both shared subscriptions in place
        pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bulk-publisher")
        pub.max_inflight_messages_set(500)
        pub.connect("127.0.0.1", mosquitto.port)
        pub.loop_start()
        for _round in range(2):  # every event twice: the copies land on either worker
            infos = [pub.publish(t, p, qos=1) for t, p in payloads]
            for info in infos:
                info.wait_for_publish(30)
        pub.loop_stop()
        wait_until(lambda: sum(w.committed for w in workers) >= 2 * len(payloads), timeout=60,
                   what="both copies of every event to be committed")
        assert all(w.committed > 0 for w in workers), "both workers should have taken part"
    finally:
        for w in workers:
            w.stop()
    assert_exactly_once(engine, office, per_device)
    with engine.connect() as conn:
        assert conn.execute(select(func.sum(DEVICES.c.duplicates))).scalar() == len(payloads)
    engine.dispose()
