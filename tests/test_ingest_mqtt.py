"""Ingest over a real Mosquitto: paho publishers and CPython device agents, on both databases."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import Engine, select

from device.agent import DeviceAgent
from motcua.protocol import parse_json_strict, verify_payload
from server import registry
from server.db.models import EVENTS, EventStatus
from tests.utils.factories import Office, make_office, sign_in
from tests.utils.ingest import count_events, ingest_settings, running_ingest, wait_until
from tests.utils.services import Mosquitto

pytestmark = pytest.mark.broker


@pytest.fixture
def office(engine: Engine) -> Office:
    return make_office(engine)


def _now() -> datetime:
    return datetime.now(UTC)


def agent_for(office: Office, n: int, broker: Mosquitto, tmp_path: Path, engine: Engine, **kw: Any) -> DeviceAgent:
    dev = office.devices[n]
    return DeviceAgent(device_id=dev.id, secret_hex=dev.secret.hex(), state_dir=tmp_path / "dev", host="127.0.0.1",
                       port=broker.port, resend_after_s=kw.pop("resend_after_s", 2.0), heartbeat_s=5, **kw)


def test_signed_events_published_with_paho_are_stored_attributed_and_acked(
        engine: Engine, db_url: str, mosquitto: Mosquitto, office: Office) -> None:
    dev = office.devices[0]
    sign_in(engine, dev.counter_id, office.officials[0], _now() - timedelta(minutes=5))
    acks: list[dict[str, Any]] = []
    got = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="paho-device")

    def on_message(_c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        verify_payload(dev.secret, msg.payload)  # acks are signed with the device's own key
        acks.append(parse_json_strict(msg.payload))
        got.set()

    client.on_message = on_message
    client.connect("127.0.0.1", mosquitto.port)
    client.subscribe(dev.topic("ack"), qos=1)
    client.loop_start()
    with running_ingest(ingest_settings(db_url, mosquitto), engine):
        ts = int(_now().timestamp() * 1000)
        for value in (4, 3):
            client.publish(dev.topic(), dev.rating(value, up=10_000 * value, ts=ts), qos=1).wait_for_publish(5)
        wait_until(lambda: sum(len(a["acks"]) for a in acks) == 2, what="two end-to-end acks")
    client.loop_stop()
    assert sorted(tuple(x) for a in acks for x in a["acks"]) == [(1, 1, "ok"), (1, 2, "ok")]
    with engine.connect() as conn:
        rows = conn.execute(select(EVENTS.c.status, EVENTS.c.official_id, EVENTS.c.rating)).all()
    assert sorted(rows) == [(EventStatus.ACCEPTED, office.officials[0], 3), (EventStatus.ACCEPTED,
                                                                             office.officials[0], 4)]


def test_agent_outbox_empties_only_through_acks(engine: Engine, db_url: str, mosquitto: Mosquitto, office: Office,
                                                tmp_path: Path) -> None:
    sign_in(engine, office.devices[0].counter_id, office.officials[0], _now() - timedelta(minutes=1))
    agent = agent_for(office, 0, mosquitto, tmp_path, engine).start()
    try:
        for n in range(30):
            agent.press(1 + n % 4)
        assert agent.pending() > 0  # no server yet: everything waits in the outbox
        with running_ingest(ingest_settings(db_url, mosquitto), engine):
            wait_until(lambda: agent.pending() == 0, what="the outbox to drain")
        assert count_events(engine) == 30
    finally:
        agent.stop()


def test_retained_config_follows_sign_in_and_revocation(engine: Engine, db_url: str, mosquitto: Mosquitto,
                                                       office: Office, tmp_path: Path) -> None:
    configs: list[dict[str, Any] | None] = []
    agent = agent_for(office, 0, mosquitto, tmp_path, engine, on_config=configs.append).start()
    counter = office.devices[0].counter_id
    try:
        with running_ingest(ingest_settings(db_url, mosquitto), engine):
            wait_until(lambda: configs and configs[-1] and configs[-1]["official"] is None, what="initial config")
            sign_in(engine, counter, office.officials[1], _now())
            cfg = wait_until(lambda: configs[-1] and configs[-1]["official"] and configs[-1], what="sign-in config")
            assert cfg["official"]["name"] == "Cán bộ 2"
            assert cfg["counter"]["code"] == "PX-Q1" and cfg["scale"]["levels"] == 4
            with engine.begin() as conn:
                registry.revoke_device(conn, device_id=office.devices[0].id, reason="test", actor="test")
            wait_until(lambda: not _retained(mosquitto, office.devices[0].topic("cfg")),
                       what="the retained config to be cleared on the broker")
    finally:
        agent.stop()
    # The clearing message is unsigned: the device changes nothing because of it.
    assert configs[-1] is not None and configs[-1]["official"]["name"] == "Cán bộ 2"
    assert agent.link.rejected_server_messages == 0


def _retained(broker: Mosquitto, topic_name: str) -> bytes | None:
    """What a new subscriber gets as retained on `topic_name` (None: nothing)."""
    got: list[bytes] = []
    done = threading.Event()
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"peek-{time.monotonic_ns()}")
    c.on_message = lambda _c, _u, m: (got.append(m.payload), done.set())
    c.connect("127.0.0.1", broker.port)
    c.loop_start()
    c.subscribe(topic_name, qos=1)
    done.wait(1.0)
    c.loop_stop()
    c.disconnect()
    return got[0] if got else None


def test_forged_ack_deletes_nothing(engine: Engine, mosquitto: Mosquitto, office: Office, tmp_path: Path) -> None:
    from motcua.protocol import encode_ack

    agent = agent_for(office, 0, mosquitto, tmp_path, engine).start()
    try:
        entry = agent.press(2)
        wait_until(agent.link.connected.is_set, what="device connection")
        forger = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="forger")
        forger.connect("127.0.0.1", mosquitto.port)
        forger.loop_start()
        forged = encode_ack(b"\x00" * 32, dev=agent.device_id, ts=0, acks=[(entry.ep, entry.seq, "ok")])
        forger.publish(office.devices[0].topic("ack"), forged, qos=1).wait_for_publish(5)
        wait_until(lambda: agent.link.rejected_server_messages == 1, what="the forged ack to be refused")
        forger.loop_stop()
        assert agent.pending() == 1
    finally:
        agent.stop()


def test_a_device_whose_state_was_wiped_moves_to_a_fresh_epoch(engine: Engine, db_url: str, mosquitto: Mosquitto,
                                                               office: Office, tmp_path: Path) -> None:
    """Flash erased (or kiosk re-installed) with the same identity: it boots at epoch 1 again, which the
    server has seen. The server raises the device's epoch floor; the device continues above it."""
    sign_in(engine, office.devices[0].counter_id, office.officials[0], _now() - timedelta(minutes=5))
    with running_ingest(ingest_settings(db_url, mosquitto, ingest={"epoch_reuse_gap_ms": 1000}), engine):
        first = agent_for(office, 0, mosquitto, tmp_path / "life1", engine).start()
        for value in (4, 3, 2):
            first.press(value)
        wait_until(lambda: first.pending() == 0, what="the first life's presses to be acked")
        time.sleep(1.0)  # so the next life's first heartbeat has a smaller uptime than the last one
        first.stop()
        second = agent_for(office, 0, mosquitto, tmp_path / "life2", engine).start()  # empty state
        try:
            assert second.outbox.epoch == 1
            wait_until(lambda: second.outbox.epoch == 2, what="the config's ep_min to move the device on")
            for value in (1, 4, 4):
                second.press(value)
                time.sleep(0.1)
            wait_until(lambda: second.pending() == 0, what="the second life's presses to be acked")
        finally:
            second.stop()
    with engine.connect() as conn:
        keys = sorted(tuple(r) for r in conn.execute(select(EVENTS.c.epoch, EVENTS.c.seq)))
    assert keys == [(1, 1), (1, 2), (1, 3), (2, 1), (2, 2), (2, 3)]


def test_healthz_reports_an_ingest_that_lost_its_broker(engine: Engine, db_url: str, mosquitto: Mosquitto) -> None:
    from fastapi.testclient import TestClient

    from server.api.app import create_app

    settings = ingest_settings(db_url, mosquitto)
    with running_ingest(settings, engine) as service:
        client = TestClient(create_app(settings, engine, ingest=service))
        assert client.get("/healthz").status_code == 200
        mosquitto.kill()
        wait_until(lambda: client.get("/healthz").status_code == 503, what="health to turn degraded")
        assert "not connected to the broker" in client.get("/healthz").json()["problems"]
        mosquitto.start()
        wait_until(lambda: client.get("/healthz").status_code == 200, what="health to recover")
