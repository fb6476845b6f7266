"""A TEST HARNESS standing in for the server's ingest (not on this branch yet) at the MQTT level.

It does what docs/protocol.md §7 asks of the server, and nothing more: it subscribes to every
device's `evt`, verifies each payload with the device key (`motcua.protocol.verify_payload`) and the
v1 schema, records it, and only *after* recording publishes a signed ack (`encode_ack`): "ok" for a
new (ep, seq), "dup" for a re-send. It also records heartbeats and retained status, and can publish
signed retained configs. Tests switch acking off to play a server that is down.

The real end-to-end test (firmware -> Mosquitto -> server/ingest -> database) replaces this class
with the ingest service; tests/firmware/firmware_process.py works unchanged with either.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt

from motcua.protocol import ProtocolError, encode_ack, encode_config, parse_json_strict, verify_payload
from motcua.protocol.messages import validate_event, validate_heartbeat
from motcua.protocol.topics import ROOT

Key = tuple[str, int, int]  # (device id, ep, seq)
# The official of docs/protocol.md §5's example config.
STAFFED = {"code": "CB-0042", "name": "Nguyễn Thị Lan", "post": "Công chức Tư pháp - Hộ tịch",
           "photo": "https://motcua.example.gov.vn/photos/CB-0042.jpg"}


class AckHarness:
    """Verify, record, then ack, for the devices whose secrets it is given."""

    def __init__(self, host: str, port: int, secrets: dict[str, str]) -> None:
        self.secrets = {dev: bytes.fromhex(s) for dev, s in secrets.items()}
        self.acking = True
        self.stored: dict[Key, bytes] = {}  # what a database would hold: one payload per (dev, ep, seq)
        self.docs: dict[Key, dict[str, Any]] = {}
        self.arrivals: list[Key] = []  # every verified event received, re-sends included
        self.conflicts: list[Key] = []  # same (dev, ep, seq), different bytes: a reused number
        self.refused: list[tuple[str, str]] = []  # (topic, reason) of payloads that failed checks
        self.heartbeats: list[dict[str, Any]] = []
        self.status: dict[str, dict[str, Any]] = {}  # last retained status per device
        self.acks_sent = 0
        self._lock = threading.Condition()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="ack-harness",
                                  protocol=mqtt.MQTTv311)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(min_delay=1, max_delay=1)
        self.host, self.port = host, port
        self.connected = threading.Event()

    def start(self, timeout: float = 10) -> AckHarness:
        self.client.connect(self.host, self.port, keepalive=10)
        self.client.loop_start()
        if not self.connected.wait(timeout):
            raise TimeoutError("ack harness could not connect to the broker")
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self) -> AckHarness:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- MQTT callbacks (paho's network thread) ----

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any = None) -> None:
        # (Re)subscribe on every connect: the broker may have been restarted without persistence.
        client.subscribe([(f"{ROOT}/dev/+/evt", 1), (f"{ROOT}/dev/+/hb", 0), (f"{ROOT}/dev/+/status", 1)])
        self.connected.set()

    def _on_message(self, client: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        parts = msg.topic.split("/")
        if len(parts) != 5:
            return
        dev, kind = parts[3], parts[4]
        payload = bytes(msg.payload)
        if kind == "status":
            with self._lock:
                self.status[dev] = json.loads(payload) if payload else {}
                self._lock.notify_all()
            return
        secret = self.secrets.get(dev)
        try:
            if secret is None:
                raise ProtocolError("unknown_device", dev)
            doc = parse_json_strict(payload)
            verify_payload(secret, payload)
            model = validate_heartbeat(doc) if kind == "hb" else validate_event(doc)
            if model.dev != dev:
                raise ProtocolError("topic_mismatch", f"{model.dev} on {dev}'s topic")
        except ProtocolError as exc:
            with self._lock:
                self.refused.append((msg.topic, exc.code))
                self._lock.notify_all()
            return
        if kind == "hb":
            with self._lock:
                self.heartbeats.append(doc)
                self._lock.notify_all()
            return
        key = (dev, int(doc["ep"]), int(doc["seq"]))
        with self._lock:
            old = self.stored.get(key)
            if old is None:
                self.stored[key] = bytes(payload)  # "commit" first ...
                self.docs[key] = doc
                code = "ok"
            elif old == payload:
                code = "dup"
            else:
                self.conflicts.append(key)
                code = "quar"
            self.arrivals.append(key)
            acking = self.acking
            self._lock.notify_all()
        if acking:  # ... and only then the ack, as the real ingest does (§7)
            ack = encode_ack(secret, dev=dev, ts=int(time.time() * 1000), acks=[(key[1], key[2], code)])
            client.publish(f"{ROOT}/dev/{dev}/ack", ack, qos=1)
            self.acks_sent += 1

    # ---- test side ----

    def publish_config(self, dev: str, *, rev: int, levels: int = 4, thanks_ms: int = 0, hb_s: int = 5,
                       official: dict[str, Any] | None = None, counter: dict[str, Any] | None = None,
                       labels: list[str] | None = None, secret: bytes | None = None) -> bytes:
        """Publish a signed retained config (§5) for dev; `secret` to sign it with another key."""
        payload = encode_config(
            secret or self.secrets[dev], dev=dev, ts=int(time.time() * 1000), rev=rev,
            counter=counter or {"code": "PX-01", "name": "Quầy 1 - Tư pháp"}, official=official,
            scale={"levels": levels, "labels": labels or [f"L{i}" for i in range(1, levels + 1)]},
            thanks_ms=thanks_ms, hb_s=hb_s,
        )
        self.client.publish(f"{ROOT}/dev/{dev}/cfg", payload, qos=1, retain=True).wait_for_publish(5)
        return payload

    def publish_staffed_config(self, dev: str, *, rev: int = 1, thanks_ms: int = 0, hb_s: int = 5) -> bytes:
        """The config the server publishes for a counter with an official signed in: the example of
        docs/protocol.md §5 (Vietnamese names and labels, a photo URL), as a box gets at every connect."""
        return self.publish_config(dev, rev=rev, levels=4, thanks_ms=thanks_ms, hb_s=hb_s, official=STAFFED,
                                   labels=["Rất không hài lòng", "Không hài lòng", "Hài lòng", "Rất hài lòng"])

    def wait_until(self, check: Callable[[], bool], timeout: float = 15, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        with self._lock:
            while not check():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"ack harness: {what} not reached within {timeout}s "
                                         f"(stored {len(self.stored)}, arrivals {len(self.arrivals)})")
                self._lock.wait(min(left, 0.2))

    def wait_stored(self, keys: set[Key], timeout: float = 15) -> None:
        self.wait_until(lambda: keys <= self.stored.keys(), timeout, f"{len(keys)} events stored")

    def seqs(self, dev: str) -> list[tuple[int, int]]:
        with self._lock:
            return sorted((ep, seq) for d, ep, seq in self.stored if d == dev)
