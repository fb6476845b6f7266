"""Keeps every device's retained config (docs/protocol.md §5) in step with the database.

The API and the CLI only bump `devices.config_rev` (or, for who serves, `counters.config_rev`) in
their own transaction; this publisher notices and publishes. So a sign-in is shown on the counter's
device even if it was made while the broker was down, and no code path has to remember to publish.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from sqlalchemy import Engine, and_, bindparam, select, update

from motcua.protocol import TopicKind, encode_config, topic
from server.db.models import COUNTERS, DEVICES, OFFICIALS, SESSIONS, DeviceStatus
from server.ingest.metrics import IngestMetrics
from server.mqtt import MqttBus
from server.settings import Settings

log = logging.getLogger("motcua.ingest.configs")

POLL_S = 0.5  # how soon a change made by another process reaches the devices
CHUNK = 500  # configs per round: bounds memory and the time one round holds the database
PUBLISH_TIMEOUT_S = 10.0


class ConfigPublisher:
    def __init__(self, engine: Engine, bus: MqttBus, settings: Settings, metrics: IngestMetrics) -> None:
        self.engine = engine
        self.bus = bus
        self.settings = settings
        self.metrics = metrics
        self._wake = threading.Event()
        self._everything = threading.Event()
        self._last_rev = 0

    def wake(self) -> None:
        """Publish pending changes now rather than at the next poll."""
        self._wake.set()

    def republish_all(self) -> None:
        """After a (re)connect: the broker may have lost retained messages, publish every config."""
        self._everything.set()
        self._wake.set()

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self._wake.wait(POLL_S)
            self._wake.clear()
            if not self.bus.connected.is_set():
                continue
            try:
                self.publish_round(everything=self._everything.is_set())
            except Exception:
                log.exception("config round failed; retrying at the next poll")
                stop.wait(POLL_S)

    def publish_round(self, *, everything: bool = False) -> int:
        """Publish the configs that changed (or all); returns how many were published."""
        if everything:
            self._everything.clear()
        done = 0
        after = ""
        while True:
            rows = self._load(everything=everything, after=after)
            if not rows:
                return done
            done += self._publish(rows)
            after = rows[-1]["id"]

    def _load(self, *, everything: bool, after: str) -> list[dict[str, Any]]:
        d, c, s, o = DEVICES, COUNTERS, SESSIONS, OFFICIALS
        rev = (d.c.config_rev + c.c.config_rev).label("config_rev")  # the device's own changes and its counter's
        q = (select(d.c.id, d.c.secret_hex, d.c.status, rev, d.c.epoch_floor, c.c.code.label("counter_code"),
                    c.c.name.label("counter_name"), o.c.code.label("official_code"), o.c.full_name, o.c.post,
                    o.c.photo_url)
             .join(c, c.c.id == d.c.counter_id)
             .outerjoin(s, and_(s.c.counter_id == d.c.counter_id, s.c.ended_at.is_(None)))
             .outerjoin(o, o.c.id == s.c.official_id)
             .where(d.c.id > after).order_by(d.c.id).limit(CHUNK))
        if not everything:
            q = q.where(d.c.config_rev + c.c.config_rev > d.c.config_published_rev)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def _next_rev(self) -> int:
        # Revisions are server milliseconds, so they keep growing across database resets and restarts;
        # a device ignores any config whose rev is not above the one it applied.
        self._last_rev = max(int(time.time() * 1000), self._last_rev + 1)
        return self._last_rev

    def _payload(self, row: dict[str, Any]) -> bytes:
        if row["status"] != DeviceStatus.ACTIVE:
            return b""  # an empty retained message deletes the config of a revoked device
        dev = self.settings.devices
        official = None
        if row["official_code"]:
            official = {"code": row["official_code"], "name": row["full_name"], "post": row["post"] or "",
                        "photo": row["photo_url"] or ""}
        return encode_config(
            bytes.fromhex(row["secret_hex"]), dev=row["id"], ts=int(time.time() * 1000), rev=self._next_rev(),
            counter={"code": row["counter_code"], "name": row["counter_name"]}, official=official,
            scale={"levels": len(dev.scale_labels), "labels": dev.scale_labels}, thanks_ms=dev.thanks_ms,
            hb_s=dev.heartbeat_s, ep_min=row["epoch_floor"])

    def _publish(self, rows: list[dict[str, Any]]) -> int:
        infos = [(row, self.bus.publish(topic(row["id"], TopicKind.CONFIG), self._payload(row), qos=1, retain=True))
                 for row in rows]
        published = []
        for row, info in infos:
            try:
                info.wait_for_publish(timeout=PUBLISH_TIMEOUT_S)
            except (RuntimeError, ValueError):
                continue
            if info.is_published():
                published.append({"b_id": row["id"], "b_rev": row["config_rev"]})
        if published:
            with self.engine.begin() as conn:
                conn.execute(update(DEVICES).where(DEVICES.c.id == bindparam("b_id"),
                                                   DEVICES.c.config_published_rev < bindparam("b_rev"))
                             .values(config_published_rev=bindparam("b_rev")), published)
            self.metrics.configs_published.inc(len(published))
        return len(published)
