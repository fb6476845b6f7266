"""The server's one MQTT boundary: connection, availability, subscriptions and handler routing.

paho runs callbacks on its network thread, so handlers here must only hand work over (queue.put):
a slow handler would stall keepalives and PUBACKs for every device.
"""

from __future__ import annotations

import logging
import re
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from motcua.protocol.codec import encode_status
from motcua.protocol.topics import SERVER_STATUS_TOPIC
from server.settings import MqttSettings

log = logging.getLogger("motcua.mqtt")

RECONNECT_MIN_S = 1  # first reconnect pause; paho doubles it up to RECONNECT_MAX_S
RECONNECT_MAX_S = 30
SESSION_EXPIRY_S = 3600  # the broker keeps our subscriptions and unacked messages this long while we are away
_AUTH_FAILURES = {"Bad user name or password", "Not authorized", "Bad username or password"}


class BrokerRefused(RuntimeError):
    """The broker refused our credentials: retrying cannot help, the configuration must change."""


@dataclass(frozen=True, slots=True)
class Received:
    """A message as handlers see it, with what is needed to PUBACK it later."""

    topic: str
    payload: bytes
    qos: int
    mid: int
    generation: int  # connection generation: a PUBACK for an older connection must not be sent


Handler = Callable[[Received], None]


def _compile_filter(topic_filter: str) -> re.Pattern[str]:
    """An MQTT topic filter as a regex, compiled once (paho's topic_matches_sub builds a matcher per
    call, which cost a fifth of the network thread at a few thousand messages per second)."""
    parts = []
    for level in topic_filter.split("/"):
        parts.append("[^/]*" if level == "+" else ".*" if level == "#" else re.escape(level))
    return re.compile("/".join(parts).replace("/.*", "(?:/.*)?"))


class MqttBus:
    def __init__(self, settings: MqttSettings, *, client_id: str | None = None, manual_ack: bool = True,
                 announce: bool = True) -> None:
        self.settings = settings
        self.client_id = client_id or settings.client_id
        self.manual_ack = manual_ack
        self.announce = announce
        self.connected = threading.Event()
        self.fatal: BrokerRefused | None = None
        self.refused_subscriptions = 0
        self.generation = 0
        self._routes: list[tuple[str, str, int, Handler]] = []  # (filter, subscribe-as, qos, handler)
        self._matchers: list[tuple[re.Pattern[str], Handler]] = []
        self._on_connect_hooks: list[Callable[[], None]] = []
        self._awaiting_subacks: set[int] = set()
        self._client = self._make_client()

    # --- configuration -----------------------------------------------------------------------

    def route(self, topic_filter: str, handler: Handler, *, qos: int = 1, shared: bool = False) -> None:
        """Deliver messages matching `topic_filter` to `handler` (on the network thread: be quick)."""
        group = self.settings.shared_group
        subscribe_as = f"$share/{group}/{topic_filter}" if shared and group else topic_filter
        self._routes.append((topic_filter, subscribe_as, qos, handler))
        self._matchers.append((_compile_filter(topic_filter), handler))

    def on_connect(self, hook: Callable[[], None]) -> None:
        """Run `hook` after every successful (re)connect, off the network thread."""
        self._on_connect_hooks.append(hook)

    def _make_client(self) -> mqtt.Client:
        v5 = self.settings.protocol == 5
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id,
                             protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311, manual_ack=self.manual_ack,
                             clean_session=None if v5 else False)
        if self.settings.username:
            password = self.settings.password.get_secret_value() if self.settings.password else None
            client.username_pw_set(self.settings.username, password)
        if self.settings.tls:
            client.tls_set(ca_certs=str(self.settings.ca_file) if self.settings.ca_file else None,
                           cert_reqs=ssl.CERT_REQUIRED)
        if self.announce:
            client.will_set(SERVER_STATUS_TOPIC, encode_status(online=False), qos=1, retain=True)
        client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
        client.max_inflight_messages_set(1000)  # our own publishes (acks, configs) in flight at once
        client.max_queued_messages_set(0)
        client.on_connect = self._handle_connect
        client.on_subscribe = self._handle_subscribe
        client.on_disconnect = self._handle_disconnect
        client.on_message = self._handle_message
        return client

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Connect in the background; reconnects happen by themselves until stop()."""
        kwargs: dict[str, Any] = {"keepalive": self.settings.keepalive_s}
        if self.settings.protocol == 5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = SESSION_EXPIRY_S
            props.ReceiveMaximum = self.settings.receive_maximum
            kwargs.update(clean_start=False, properties=props)
        self._client.connect_async(self.settings.host, self.settings.port, **kwargs)
        self._client.loop_start()

    def wait_connected(self, timeout: float) -> bool:
        """True once connected *and* subscribed; raises BrokerRefused if the broker refused us."""
        ok = self.connected.wait(timeout)
        if self.fatal:
            raise self.fatal
        return ok

    def stop(self) -> None:
        if self.announce and self.connected.is_set():
            info = self._client.publish(SERVER_STATUS_TOPIC, encode_status(online=False), qos=1, retain=True)
            info.wait_for_publish(timeout=2)
        self._client.disconnect()
        self._client.loop_stop()
        self.connected.clear()

    # --- outgoing ----------------------------------------------------------------------------

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> mqtt.MQTTMessageInfo:
        """Queue a publish; check `.rc` or `.wait_for_publish()` when delivery to the broker matters."""
        return self._client.publish(topic, payload, qos=qos, retain=retain)

    def ack(self, message: Received) -> None:
        """PUBACK `message` now that its fate is committed (MQTT 5 §4.6: in order of receipt)."""
        if not self.manual_ack or message.qos == 0 or message.generation != self.generation:
            return  # a message of an earlier connection is redelivered by the broker with the same id
        rc = self._client.ack(message.mid, message.qos)
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            log.debug("PUBACK for mid %s not sent (%s); the broker will redeliver", message.mid, rc)

    # --- paho callbacks (network thread) -------------------------------------------------------

    def _handle_connect(self, client: mqtt.Client, _ud: Any, _flags: Any, reason: ReasonCode,
                        _props: Any) -> None:
        if reason.is_failure:
            if str(reason) in _AUTH_FAILURES:
                self.fatal = BrokerRefused(
                    f"broker {self.settings.host}:{self.settings.port} refused us ({reason}): check "
                    "MOTCUA_MQTT__USERNAME / MOTCUA_MQTT__PASSWORD and the broker's ACL")
                log.critical("%s", self.fatal)
                client.disconnect()
                self.connected.set()  # wake waiters so they see `fatal`
            else:
                log.warning("broker refused the connection (%s); retrying", reason)
            return
        self.generation += 1
        # Ready means subscribed: a message published before the SUBACK would not reach us.
        mids = (client.subscribe(sub, qos=qos)[1] for _f, sub, qos, _h in self._routes)
        self._awaiting_subacks = {mid for mid in mids if mid is not None}
        if self.announce:
            client.publish(SERVER_STATUS_TOPIC, encode_status(online=True), qos=1, retain=True)
        log.info("connected to %s:%s as %s", self.settings.host, self.settings.port, self.client_id)
        if not self._awaiting_subacks:
            self._ready()

    def _handle_subscribe(self, _client: mqtt.Client, _ud: Any, mid: int, reasons: list[ReasonCode],
                          _props: Any) -> None:
        refused = [str(r) for r in reasons if r.is_failure]
        if refused:
            self.refused_subscriptions += 1
            log.error("the broker refused a subscription (%s): check the ACL of MQTT user %r",
                      ", ".join(refused), self.settings.username)
        self._awaiting_subacks.discard(mid)
        if not self._awaiting_subacks:
            self._ready()

    def _ready(self) -> None:
        self.connected.set()
        for hook in self._on_connect_hooks:
            threading.Thread(target=self._run_hook, args=(hook,), daemon=True, name="mqtt-on-connect").start()

    @staticmethod
    def _run_hook(hook: Callable[[], None]) -> None:
        try:
            hook()
        except Exception:
            log.exception("on-connect hook %s failed", getattr(hook, "__name__", hook))

    def _handle_disconnect(self, _client: mqtt.Client, _ud: Any, _flags: Any, reason: ReasonCode,
                           _props: Any) -> None:
        self.connected.clear()
        if reason.is_failure:
            log.warning("lost the broker (%s); reconnecting", reason)

    def _handle_message(self, _client: mqtt.Client, _ud: Any, msg: mqtt.MQTTMessage) -> None:
        received = Received(msg.topic, bytes(msg.payload), msg.qos, msg.mid, self.generation)
        for pattern, handler in self._matchers:
            if pattern.fullmatch(msg.topic):
                self._dispatch(handler, received)
                return
        log.debug("no route for %s", msg.topic)
        self.ack(received)

    def _dispatch(self, handler: Handler, received: Received) -> None:
        # One bad payload must never kill the network thread (and with it every device's acks).
        try:
            handler(received)
        except Exception:
            log.exception("handler for %s failed on %d bytes starting %r", received.topic, len(received.payload),
                          received.payload[:80])
