"""The demo's in-process broker (amqtt) under many clients connecting and subscribing at once."""

from __future__ import annotations

import logging
import threading

import paho.mqtt.client as mqtt
import pytest

from motcua.embedded_broker import EmbeddedBroker, _SnapshotDict


def test_the_subscription_table_can_change_while_it_is_iterated() -> None:
    table = _SnapshotDict({"a/#": [1], "b/#": [2]})
    seen = []
    for topic in table:  # a plain dict raises "dictionary changed size during iteration" here
        seen.append(topic)
        table[f"new/{topic}"] = [3]
        table.pop("b/#", None)
    for _topic, _subs in table.items():
        table.clear()
    assert seen == ["a/#", "b/#"]


def test_many_clients_connecting_and_subscribing_at_once_all_stay_connected(caplog: pytest.LogCaptureFixture) -> None:
    broker = EmbeddedBroker().start()
    clients: list[mqtt.Client] = []
    try:
        seed = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="seed")
        seed.connect(broker.host, broker.port)
        seed.loop_start()
        for i in range(20):  # retained messages make every new session walk the subscription table
            seed.publish(f"motcua/v1/dev/d{i}/config", b"{}", qos=1, retain=True).wait_for_publish(5)
        got: dict[int, threading.Event] = {}
        with caplog.at_level(logging.ERROR):
            for i in range(60):
                got[i] = threading.Event()
                c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"c{i}")
                c.on_connect = lambda cl, _u, _f, _rc, _p, i=i: cl.subscribe(f"motcua/v1/dev/d{i % 20}/config", 1)
                c.on_message = lambda _c, _u, _m, i=i: got[i].set()
                c.connect_async(broker.host, broker.port)
                c.loop_start()
                clients.append(c)
            missing = [i for i, ev in got.items() if not ev.wait(20)]
        assert not missing, f"clients {missing} never got their retained config"
        assert "dictionary changed size" not in caplog.text
        assert all(c.is_connected() for c in clients)
    finally:
        for c in clients:
            c.disconnect()
            c.loop_stop()
        seed.disconnect()
        seed.loop_stop()
        broker.stop()
