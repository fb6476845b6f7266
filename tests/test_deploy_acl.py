"""deploy/mosquitto/acl against a real Mosquitto: each device is confined to its own subtree."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.utils.services import Mosquitto, unavailable

ACL = Path(__file__).parents[1] / "deploy" / "mosquitto" / "acl"
pytestmark = pytest.mark.broker


@pytest.fixture
def broker(tmp_path: Path) -> Any:
    tool = shutil.which("mosquitto_passwd")
    if tool is None:
        unavailable("mosquitto_passwd is not installed (it comes with the mosquitto package)")
    passwd = tmp_path / "passwd"
    passwd.touch()
    for user in ("motcua-server", "dev-a", "dev-b"):
        subprocess.run([str(tool), "-b", str(passwd), user, f"pw-{user}"], check=True)
    m = Mosquitto(tmp_path, extra=["allow_anonymous false", f"password_file {passwd}", f"acl_file {ACL}"])
    m.conf.write_text(m.conf.read_text().replace("allow_anonymous true\n", ""))
    m.start()
    yield m
    m.kill()


def client(port: int, user: str, received: list[tuple[str, bytes]] | None = None) -> mqtt.Client:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{user}-{time.monotonic_ns()}")
    c.username_pw_set(user, f"pw-{user}")
    connected = threading.Event()
    c.on_connect = lambda *_: connected.set()
    if received is not None:
        c.on_message = lambda _c, _u, m: received.append((m.topic, m.payload))
    c.connect("127.0.0.1", port)
    c.loop_start()
    assert connected.wait(5)
    return c


def test_devices_are_confined_to_their_own_subtree(broker: Mosquitto) -> None:
    server_got: list[tuple[str, bytes]] = []
    b_got: list[tuple[str, bytes]] = []
    server = client(broker.port, "motcua-server", server_got)
    server.subscribe("motcua/v1/dev/+/evt", qos=1)
    b = client(broker.port, "dev-b", b_got)
    b.subscribe("motcua/v1/dev/dev-a/ack", qos=1)  # eavesdropping on another device: refused by the ACL
    b.subscribe("motcua/v1/dev/dev-b/ack", qos=1)
    a = client(broker.port, "dev-a")
    time.sleep(0.5)
    a.publish("motcua/v1/dev/dev-a/evt", b"own", qos=1).wait_for_publish(5)
    a.publish("motcua/v1/dev/dev-b/evt", b"impersonation", qos=1).wait_for_publish(5)
    server.publish("motcua/v1/dev/dev-a/ack", b"ack-for-a", qos=1).wait_for_publish(5)
    server.publish("motcua/v1/dev/dev-b/ack", b"ack-for-b", qos=1).wait_for_publish(5)
    time.sleep(1.0)
    for c in (a, b, server):
        c.loop_stop()
        c.disconnect()
    assert server_got == [("motcua/v1/dev/dev-a/evt", b"own")]
    assert b_got == [("motcua/v1/dev/dev-b/ack", b"ack-for-b")]


def test_wrong_password_is_refused(broker: Mosquitto) -> None:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="intruder")
    c.username_pw_set("dev-a", "guess")
    result: list[Any] = []
    done = threading.Event()

    def on_connect(_c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        result.append(reason)
        done.set()

    c.on_connect = on_connect
    c.connect("127.0.0.1", broker.port)
    c.loop_start()
    assert done.wait(5)
    c.loop_stop()
    assert result[0].is_failure
