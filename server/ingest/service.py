"""The ingest service: MQTT in, batched commits, end-to-end acks out (docs/architecture.md).

Threads: paho's network thread only enqueues; one worker collects batches, commits them through the
pipeline, then publishes acks and PUBACKs; one thread keeps retained configs current.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable

from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from motcua.protocol import TopicKind, encode_ack, topic
from motcua.protocol.topics import subscription
from server.db.engine import require_current_schema
from server.ingest.configs import ConfigPublisher
from server.ingest.messages import Fate, Incoming
from server.ingest.metrics import IngestMetrics
from server.ingest.pipeline import BatchOutcome, Pipeline, Stopping
from server.ingest.store import IngestRules
from server.mqtt import MqttBus, Received
from server.settings import Settings

log = logging.getLogger("motcua.ingest")

ACKS_PER_MESSAGE = 100  # entries per ack message: ~1.6 KB, well under every device's receive buffer
QUEUE_SLACK = 2000  # room beyond the broker's inflight window, for QoS 0 heartbeats and statuses


class IngestService:
    def __init__(self, settings: Settings, engine: Engine, *, registry: CollectorRegistry | None = None,
                 bus: MqttBus | None = None, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.engine = engine
        self.clock = clock
        self.metrics_registry = registry or CollectorRegistry()
        self.metrics = IngestMetrics(self.metrics_registry)
        self.bus = bus or MqttBus(settings.mqtt)
        self.queue: queue.Queue[Incoming] = queue.Queue(maxsize=settings.mqtt.receive_maximum + QUEUE_SLACK)
        self._stop = threading.Event()
        self.pipeline = Pipeline(engine, IngestRules.from_settings(settings), stopping=self._stop.is_set,
                                 on_db_retry=self.metrics.db_retries.inc)
        self.configs = ConfigPublisher(engine, self.bus, settings, self.metrics) if settings.ingest.publish_config \
            else None
        self._threads: list[threading.Thread] = []
        self.committed = 0  # messages whose fate is committed, for tests and the demo summary

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> IngestService:
        """Check the schema, subscribe, and start the worker threads; returns at once."""
        require_current_schema(self.engine)
        self.bus.route(subscription(TopicKind.EVENT), self._enqueue, qos=1, shared=True)
        self.bus.route(subscription(TopicKind.HEARTBEAT), self._enqueue, qos=0, shared=True)
        self.bus.route(subscription(TopicKind.STATUS), self._enqueue, qos=1, shared=True)
        self._spawn(self._work, "ingest-worker")
        if self.configs is not None:
            self.bus.on_connect(self.configs.republish_all)
            self._spawn(lambda: self.configs.run(self._stop) if self.configs else None, "ingest-configs")
        self.bus.start()
        return self

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self, timeout: float = 15.0) -> None:
        """Finish what is queued (commit and ack it), then disconnect."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        self.bus.stop()

    def problems(self) -> list[str]:
        """What keeps ingest from doing its job right now (empty when healthy), for /healthz."""
        found = []
        if self.bus.fatal is not None:
            found.append(str(self.bus.fatal))
        if self.bus.refused_subscriptions:
            found.append("the broker refused a subscription: check the server account's ACL")
        if not self.bus.connected.is_set():
            found.append("not connected to the broker")
        dead = [t.name for t in self._threads if not t.is_alive()]
        if dead and not self._stop.is_set():
            found.append(f"stopped thread(s): {', '.join(dead)}")
        return found

    def wait_idle(self, timeout: float) -> bool:
        """True once nothing is queued or being committed (tests, demo)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.queue.unfinished_tasks == 0:
                return True
            time.sleep(0.02)
        return False

    # --- network thread ----------------------------------------------------------------------

    def _enqueue(self, msg: Received) -> None:
        item = Incoming(msg.topic, msg.payload, int(self.clock() * 1000), time.monotonic(), msg)
        if msg.qos == 0:
            try:
                self.queue.put_nowait(item)
            except queue.Full:
                self.metrics.dropped_heartbeats.inc()  # the next heartbeat says the same, newer
            return
        # QoS 1 cannot overflow: the broker stops at our Receive Maximum until we PUBACK after the commit.
        self.queue.put(item)

    # --- worker ------------------------------------------------------------------------------

    def _collect(self) -> list[Incoming]:
        try:
            first = self.queue.get(timeout=0.2)
        except queue.Empty:
            return []
        batch = [first]
        limit = self.settings.ingest.batch_max
        deadline = time.monotonic() + self.settings.ingest.batch_wait_ms / 1000
        while len(batch) < limit:
            try:
                batch.append(self.queue.get_nowait())
                continue
            except queue.Empty:
                pass
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                batch.append(self.queue.get(timeout=left))
            except queue.Empty:
                break
        return batch

    def _work(self) -> None:
        # One worker thread: a second stage overlapping classification with the commit was measured
        # and gave nothing, the interpreter lock being the limit (docs/benchmarks.md); scale with
        # --workers instead.
        while not (self._stop.is_set() and self.queue.empty()):
            batch = self._collect()
            if not batch:
                continue
            self.metrics.queue_depth.set(self.queue.qsize())
            try:
                outcome = self.pipeline.process(batch)
            except Stopping:
                log.warning("stopping with %d message(s) uncommitted; devices will re-send them", len(batch))
                self._done(batch)
                return
            except Exception:
                # The pipeline isolates bad messages itself; reaching here is a bug in that machinery.
                log.exception("batch of %d left uncommitted; devices will re-send", len(batch))
                self._done(batch)
                continue
            self._acknowledge(batch, outcome)
            self._done(batch)

    def _done(self, batch: list[Incoming]) -> None:
        for _ in batch:
            self.queue.task_done()

    def _acknowledge(self, batch: list[Incoming], outcome: BatchOutcome) -> None:
        """After the commit: end-to-end acks to devices, then PUBACKs to the broker, then metrics."""
        per_device: defaultdict[str, list[tuple[int, int, str]]] = defaultdict(list)
        for result in outcome.results:
            if result.ack is not None and result.device_id in outcome.secrets:
                per_device[result.device_id].append(result.ack)
        now_ms = int(self.clock() * 1000)
        for device_id, acks in per_device.items():
            for at in range(0, len(acks), ACKS_PER_MESSAGE):
                payload = encode_ack(outcome.secrets[device_id], dev=device_id, ts=now_ms,
                                     acks=acks[at:at + ACKS_PER_MESSAGE])
                # QoS 0: an ack is idempotent and cheap to lose (the device re-sends, and is acked "dup"),
                # while QoS 1 would add a broker PUBACK per ack to parse on this busy connection.
                self.bus.publish(topic(device_id, TopicKind.ACK), payload, qos=0)
        for msg in batch:
            if isinstance(msg.token, Received):
                self.bus.ack(msg.token)
        self._count(batch, outcome)

    def _count(self, batch: list[Incoming], outcome: BatchOutcome) -> None:
        # Counted per batch on the worker, not per message on the network thread: label lookups add up.
        m = self.metrics
        m.batch_size.observe(len(batch))
        now = time.monotonic()
        kinds: Counter[str] = Counter(msg.topic[msg.topic.rfind("/") + 1:] for msg in batch)
        fates: Counter[str] = Counter(r.fate.value for r in outcome.results)
        reasons: Counter[str] = Counter(r.reason for r in outcome.results if r.fate is Fate.QUARANTINED and r.reason)
        for labels, counts in ((m.received, kinds), (m.fates, fates), (m.quarantined, reasons)):
            for label, n in counts.items():
                labels.labels(label).inc(n)
        for msg, result in zip(batch, outcome.results, strict=True):
            if result.ack is not None:
                m.ack_latency.observe(now - msg.arrived_monotonic)
        self.committed += len(batch)
