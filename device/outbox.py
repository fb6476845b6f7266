"""Persistent outbox of a CPython device (kiosk, simulated counter), in SQLite.

The same guarantees as the firmware's flash outbox (docs/protocol.md §7): an event is written, with
its boot epoch and sequence number, before anything is sent, and deleted only when the server's
signed ack names it. synchronous=FULL: a power cut after add() returns cannot lose the event.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_CAPACITY = 100_000  # a month of a busy counter with no network; beyond it the oldest go, counted
BACKOFF_DOUBLINGS = 4  # re-send waits 1, 2, 4, 8, then 16x the base (15 s -> 4 min at most)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    ep INTEGER NOT NULL, seq INTEGER NOT NULL, payload BLOB NOT NULL,
    created_ms INTEGER NOT NULL, sent_ms INTEGER, attempts INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (ep, seq)
);
"""


@dataclass(frozen=True, slots=True)
class Entry:
    ep: int
    seq: int
    payload: bytes


class Outbox:
    def __init__(self, path: Path | str, *, capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = capacity
        self._lock = threading.Lock()
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    # --- small persistent state ----------------------------------------------------------------

    def get(self, key: str, default: Any = None) -> Any:
        row = self._db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def _put(self, key: str, value: Any) -> None:
        self._db.execute("INSERT INTO state(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = "
                         "excluded.value", (key, json.dumps(value)))

    def put(self, key: str, value: Any) -> None:
        with self._lock:
            self._put(key, value)

    @property
    def epoch(self) -> int:
        return int(self.get("epoch", 0))

    @property
    def last_seq(self) -> int:
        return int(self.get("seq", 0))

    @property
    def dropped(self) -> int:
        return int(self.get("dropped", 0))

    def begin_boot(self) -> int:
        """A new boot epoch, persisted before any event of this boot exists (protocol §3)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            epoch = int(self.get("epoch", 0)) + 1
            self._put("epoch", epoch)
            self._put("seq", 0)
            self._db.execute("COMMIT")
        return epoch

    def raise_epoch(self, floor: int) -> bool:
        """Move to epoch `floor` now if below it (the server saw this device use epochs it no longer
        remembers: its state was reset), so no (epoch, seq) is used twice. True if it moved."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            moved = int(self.get("epoch", 0)) < floor
            if moved:
                self._put("epoch", floor)
                self._put("seq", 0)
            self._db.execute("COMMIT")
        return moved

    # --- events ------------------------------------------------------------------------------

    def add(self, encode: Callable[[int, int], bytes], now_ms: int) -> Entry:
        """Assign the next (epoch, seq), encode the event with them and store it, atomically."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                ep, seq = int(self.get("epoch", 0)), int(self.get("seq", 0)) + 1
                if ep == 0:
                    raise RuntimeError("begin_boot() must run before the first event")
                payload = encode(ep, seq)
                self._db.execute("INSERT INTO outbox(ep, seq, payload, created_ms) VALUES (?, ?, ?, ?)",
                                 (ep, seq, payload, now_ms))
                self._put("seq", seq)
                self._shed_overflow()
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return Entry(ep, seq, payload)

    def _shed_overflow(self) -> None:
        over = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] - self.capacity
        if over > 0:
            self._db.execute("DELETE FROM outbox WHERE rowid IN (SELECT rowid FROM outbox ORDER BY created_ms, ep, "
                             "seq LIMIT ?)", (over,))
            self._put("dropped", int(self.get("dropped", 0)) + over)

    def due(self, now_ms: int, resend_after_ms: int, limit: int = 100) -> list[Entry]:
        """Events never sent, or unacked for longer than their backoff, oldest first.

        The wait doubles with each attempt up to 16x `resend_after_ms` (protocol §7): a device the
        server cannot acknowledge (revoked, wrong key) keeps its events but stops flooding the broker.
        """
        with self._lock:
            rows = self._db.execute(
                "SELECT ep, seq, payload FROM outbox WHERE sent_ms IS NULL "
                "OR sent_ms + ? * (1 << min(max(attempts - 1, 0), ?)) <= ? ORDER BY ep, seq LIMIT ?",
                (resend_after_ms, BACKOFF_DOUBLINGS, now_ms, limit)).fetchall()
        return [Entry(ep, seq, bytes(p)) for ep, seq, p in rows]

    def mark_sent(self, entries: Iterable[Entry], now_ms: int) -> None:
        with self._lock:
            self._db.executemany("UPDATE outbox SET sent_ms = ?, attempts = attempts + 1 WHERE ep = ? AND seq = ?",
                                 [(now_ms, e.ep, e.seq) for e in entries])

    def acked(self, keys: Iterable[tuple[int, int]]) -> int:
        """Delete acknowledged events; returns how many were still here."""
        with self._lock:
            before = self._db.total_changes
            self._db.executemany("DELETE FROM outbox WHERE ep = ? AND seq = ?", list(keys))
            return self._db.total_changes - before

    def requeue_all(self) -> None:
        """After a reconnect: whatever was in flight may be lost, so everything is due again."""
        with self._lock:
            self._db.execute("UPDATE outbox SET sent_ms = NULL")

    def depth(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
