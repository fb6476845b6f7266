"""Runs batches through stage 1 and 2 with the two failure policies of ingest:

- the database is unreachable or busy → retry the whole batch with backoff (nothing is acked meanwhile,
  so devices keep their events and the broker keeps its un-PUBACKed messages);
- anything else is a bug on some message → split the batch to isolate it, keep it in quarantine as
  `internal_error`, and carry on with the rest. The loop never dies on a payload.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, OperationalError

from server.db.types import from_ms
from server.ingest.attribution import quarantine_row, upsert_quarantine
from server.ingest.messages import Fate, Incoming, Result
from server.ingest.reasons import Reason
from server.ingest.store import BatchStore, IngestRules

log = logging.getLogger("motcua.ingest")

RETRY_FIRST_S = 0.2  # first pause after a database error; doubles up to RETRY_MAX_S
RETRY_MAX_S = 10.0
# A deadlock or serialization failure is a lost race with a concurrent transaction, not an outage:
# PostgreSQL rolled one side back and the other has gone on, so retry at once (a short random pause
# keeps two losers from meeting again) and keep the long backoff for a database that is really away.
CONFLICT_SQLSTATES = {"40P01", "40001"}  # deadlock_detected, serialization_failure
CONFLICT_PAUSE_S = (0.005, 0.05)
CONFLICT_RETRIES = 5  # after this many in a row, treat it as trouble and back off as for an outage


class Stopping(Exception):
    """Raised out of a retry loop when the service is asked to stop: the batch stays unacked."""


@dataclass(slots=True)
class BatchOutcome:
    results: list[Result]
    secrets: dict[str, bytes] = field(default_factory=dict)  # device keys, to sign the acks with


def _retriable(exc: Exception) -> bool:
    return isinstance(exc, OperationalError) or (isinstance(exc, DBAPIError) and exc.connection_invalidated)


def _conflict(exc: Exception) -> bool:
    """Whether the database aborted this transaction to resolve a conflict with another one."""
    return isinstance(exc, DBAPIError) and getattr(exc.orig, "sqlstate", None) in CONFLICT_SQLSTATES


class Pipeline:
    def __init__(self, engine: Engine, rules: IngestRules, *, stopping: Callable[[], bool] = lambda: False,
                 on_db_retry: Callable[[], None] = lambda: None) -> None:
        self.engine = engine
        self.rules = rules
        self.stopping = stopping
        self.on_db_retry = on_db_retry

    def process(self, batch: list[Incoming]) -> BatchOutcome:
        """Commit the fate of every message in `batch`; returns once it is durable."""
        pause = RETRY_FIRST_S
        conflicts = 0
        while True:
            try:
                return self._commit(batch)
            except Exception as exc:
                if not _retriable(exc):
                    return self._isolate(batch, exc)
                self.on_db_retry()
                if _conflict(exc) and conflicts < CONFLICT_RETRIES:
                    conflicts += 1
                    log.info("batch of %d lost a lock race (%s); retrying", len(batch),
                             type(getattr(exc, "orig", exc)).__name__)
                    self._sleep(random.uniform(*CONFLICT_PAUSE_S))
                    continue
                log.warning("database unavailable (%s); retrying %d message(s) in %.1fs — check that the "
                            "database at MOTCUA_DATABASE_URL is up", type(exc).__name__, len(batch), pause)
                self._sleep(pause)
                pause = min(pause * 2, RETRY_MAX_S)

    def _commit(self, batch: list[Incoming]) -> BatchOutcome:
        with self.engine.begin() as conn:
            store = BatchStore(conn, self.rules)
            results = store.run(batch)
        return BatchOutcome(results, store.secrets)

    def _isolate(self, batch: list[Incoming], exc: Exception) -> BatchOutcome:
        if len(batch) > 1:
            log.warning("batch of %d failed (%s: %s); retrying message by message", len(batch),
                        type(exc).__name__, exc)
            parts = [self.process([m]) for m in batch]
            merged = BatchOutcome([r for p in parts for r in p.results])
            for p in parts:
                merged.secrets.update(p.secrets)
            return merged
        msg = batch[0]
        log.error("ingest failed on one message, kept as internal_error (topic %s, %d bytes, starts %r)",
                  msg.topic, len(msg.payload), msg.payload[:120], exc_info=exc)
        return self._keep_as_internal_error(msg, exc)

    def _keep_as_internal_error(self, msg: Incoming, exc: Exception) -> BatchOutcome:
        row = quarantine_row(reason=Reason.INTERNAL_ERROR, detail=f"{type(exc).__name__}: {exc}", topic=msg.topic,
                             payload=msg.payload, received_at=from_ms(msg.received_ms), device_id=None,
                             limit=self.rules.max_payload)
        pause = RETRY_FIRST_S
        while True:
            try:
                with self.engine.begin() as conn:
                    upsert_quarantine(conn, [row])
                # Not acked: once the bug is fixed, the device's re-send is processed properly.
                return BatchOutcome([Result(Fate.QUARANTINED, Reason.INTERNAL_ERROR.value)])
            except Exception as again:
                log.warning("cannot record internal_error yet (%s); retrying in %.1fs", again, pause)
                self._sleep(pause)
                pause = min(pause * 2, RETRY_MAX_S)

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.stopping():
                raise Stopping
            time.sleep(min(0.05, seconds))
