"""The device's one MQTT boundary (CPython devices): sends the outbox, takes acks and configs.

Nothing here decides what a citizen pressed; it only moves signed bytes and their acknowledgements,
and it never deletes an event that the server has not acknowledged with a valid signature.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from device.outbox import Outbox
from motcua.protocol import ProtocolError, TopicKind, encode_heartbeat, encode_status, topic, verify_payload
from motcua.protocol.messages import AckMessage, ConfigMessage, parse_json_strict, validate_server_message

log = logging.getLogger("motcua.device")

RESEND_AFTER_S = 15.0  # unacked events are sent again after this (protocol §7)
SEND_BATCH = 200  # events published per tick: bounds how long a tick holds the outbox
TICK_S = 0.2


class DeviceLink:
    def __init__(self, *, device_id: str, secret: bytes, outbox: Outbox, host: str, port: int,
                 username: str | None = None, password: str | None = None, fw: str = "cpython-0.1",
                 resend_after_s: float = RESEND_AFTER_S, heartbeat_s: float = 60.0,
                 clock: Callable[[], float] = time.time, clock_synced: Callable[[], bool] = lambda: True,
                 uptime_ms: Callable[[], int] | None = None,
                 on_config: Callable[[dict[str, Any]], None] | None = None,
                 on_ack: Callable[[list[tuple[int, int, str]]], None] | None = None, tick_s: float = TICK_S) -> None:
        self.device_id, self.secret, self.outbox = device_id, secret, outbox
        self.host, self.port = host, port
        self.fw = fw
        self.resend_after_ms = int(resend_after_s * 1000)
        self.heartbeat_s = heartbeat_s
        self.tick_s = tick_s  # a host running hundreds of simulated devices ticks less often
        self.clock, self.clock_synced = clock, clock_synced
        started = time.monotonic()
        self.uptime_ms = uptime_ms or (lambda: int((time.monotonic() - started) * 1000))
        self.on_config = on_config
        self.on_ack = on_ack  # sees each verified ack's (ep, seq, code): the kiosk reports refused sign-ins
        self.connected = threading.Event()
        self.acks_received = 0
        self.rejected_server_messages = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._next_heartbeat = 0.0
        self._thread: threading.Thread | None = None
        self._mine = {topic(device_id, TopicKind.ACK), topic(device_id, TopicKind.CONFIG)}
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=device_id, clean_session=True)
        if username:
            self._client.username_pw_set(username, password)
        self._client.max_inflight_messages_set(100)
        self._client.reconnect_delay_set(1, 30)
        self._client.on_connect = self._handle_connect
        self._client.on_disconnect = self._handle_disconnect
        self._client.on_message = self._handle_message

    def start(self) -> None:
        """Connect in the background and keep sending until stop(); the outbox's epoch must be set."""
        self._client.will_set(topic(self.device_id, TopicKind.STATUS), encode_status(online=False), 1, retain=True)
        self._client.connect_async(self.host, self.port, keepalive=30)
        self._client.loop_start()
        self._thread = threading.Thread(target=self._run, name=f"link-{self.device_id}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(5)
        self._client.disconnect()
        self._client.loop_stop()

    def kill(self) -> None:
        """Vanish without a word (tests of power cuts): no DISCONNECT, so the broker fires the last will."""
        self._stop.set()
        self._wake.set()
        self._client.loop_stop()
        sock = self._client.socket()
        if sock is not None:
            sock.close()
        if self._thread:
            self._thread.join(5)  # the send loop has let go of the outbox: the caller may close it now

    def wake(self) -> None:
        """Send what is due now rather than at the next tick."""
        self._wake.set()

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def device_ts(self) -> int | None:
        """Wall-clock time for an event, only while the clock is synced (protocol §3)."""
        return self.now_ms() if self.clock_synced() else None

    # --- loop --------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.tick_s)
            self._wake.clear()
            if not self.connected.is_set():
                continue
            try:
                # Heartbeat first: after a (re)connect it carries the clock anchor that times the
                # events about to follow (protocol §4).
                if time.monotonic() >= self._next_heartbeat:
                    self._heartbeat()
                self._send_due()
            except Exception:
                log.exception("%s: send loop failed; retrying", self.device_id)

    def _send_due(self) -> None:
        entries = self.outbox.due(self.now_ms(), self.resend_after_ms, SEND_BATCH)
        sent = []
        for entry in entries:
            info = self._client.publish(topic(self.device_id, TopicKind.EVENT), entry.payload, qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                break  # connection gone: the rest stays due
            sent.append(entry)
        if sent:
            self.outbox.mark_sent(sent, self.now_ms())

    def _heartbeat(self) -> None:
        self._next_heartbeat = time.monotonic() + self.heartbeat_s
        payload = encode_heartbeat(self.secret, dev=self.device_id, ep=self.outbox.epoch, seq=self.outbox.last_seq,
                                   up=self.uptime_ms(), ts=self.device_ts(), fw=self.fw, outbox=self.outbox.depth(),
                                   mem=0, dropped=self.outbox.dropped)
        self._client.publish(topic(self.device_id, TopicKind.HEARTBEAT), payload, qos=0)

    # --- paho callbacks (network thread) -------------------------------------------------------

    def _handle_connect(self, client: mqtt.Client, _ud: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            log.warning("%s: broker refused the connection (%s)", self.device_id, reason)
            return
        client.subscribe([(topic(self.device_id, TopicKind.ACK), 1), (topic(self.device_id, TopicKind.CONFIG), 1)])
        client.publish(topic(self.device_id, TopicKind.STATUS),
                       encode_status(online=True, ep=self.outbox.epoch, fw=self.fw), qos=1, retain=True)
        self.outbox.requeue_all()
        self._next_heartbeat = 0.0  # a heartbeat at every (re)connect: the server's clock anchor
        self.connected.set()
        self._wake.set()

    def _handle_disconnect(self, _c: mqtt.Client, _ud: Any, _flags: Any, reason: Any, _props: Any) -> None:
        self.connected.clear()

    def _handle_message(self, _c: mqtt.Client, _ud: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.topic not in self._mine:
            return  # some brokers (amqtt) deliver retained messages of other topics; never act on them
        try:
            self._take(msg)
        except Exception:
            # Never let one message kill paho's thread: the link would look connected and do nothing.
            log.exception("%s: failed on a message on %s", self.device_id, msg.topic)

    def _take(self, msg: mqtt.MQTTMessage) -> None:
        try:
            if not msg.payload:
                # An empty retained config is how the server clears a revoked device's config; it is
                # unsigned, so it changes nothing here (anyone with broker access could send one).
                log.info("%s: the retained config was cleared on the broker", self.device_id)
                return
            verify_payload(self.secret, bytes(msg.payload))
            parsed = validate_server_message(parse_json_strict(bytes(msg.payload)))
        except ProtocolError as exc:
            # A message we cannot authenticate changes nothing: it might be forged.
            self.rejected_server_messages += 1
            log.warning("%s: ignored a server message on %s (%s)", self.device_id, msg.topic, exc)
            return
        if isinstance(parsed, AckMessage):
            entries = [(int(a[0]), int(a[1]), str(a[2])) for a in parsed.acks if len(a) == 3]
            self.acks_received += self.outbox.acked([(ep, seq) for ep, seq, _code in entries])
            if self.on_ack is not None:
                self.on_ack(entries)
        elif isinstance(parsed, ConfigMessage):
            self._take_config(parsed)

    def _take_config(self, cfg: ConfigMessage) -> None:
        if cfg.dev != self.device_id or cfg.rev <= int(self.outbox.get("config_rev", 0)):
            return  # not ours, or an old retained config replayed
        doc = cfg.model_dump(exclude={"sig"})
        if cfg.ep_min is not None and self.outbox.raise_epoch(cfg.ep_min):
            log.warning("%s: the server saw epochs this device no longer remembers: continuing at epoch %d",
                        self.device_id, cfg.ep_min)
            self._next_heartbeat = 0.0  # the new epoch needs its clock anchor
        self.outbox.put("config_rev", cfg.rev)
        self.outbox.put("config", doc)
        self._apply_config(doc)

    def _apply_config(self, doc: dict[str, Any]) -> None:
        if self.on_config is not None:
            self.on_config(doc)
