"""The kiosk's clips on disk and their upload state, in SQLite (synchronous=FULL, like the outbox).

A clip is deleted only after the server has confirmed its SHA-256, except when the disk quota
leaves no other choice: then the oldest confirmed clips go first, and only then the oldest
unconfirmed ones (counted in `evicted_unconfirmed`, reported in health).
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS clips (
    id TEXT PRIMARY KEY, path TEXT NOT NULL, manifest BLOB NOT NULL, size INTEGER NOT NULL,
    created_ms INTEGER NOT NULL, state TEXT NOT NULL DEFAULT 'ready', note TEXT
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class StoredClip:
    id: str
    path: Path
    manifest: bytes
    size: int


class ClipStore:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(directory / "clips.sqlite3"), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def add(self, clip_id: str, path: Path, manifest: bytes, size: int, now_ms: int) -> None:
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO clips(id, path, manifest, size, created_ms) VALUES (?,?,?,?,?)",
                             (clip_id, str(path), manifest, size, now_ms))

    def next_ready(self, skip: set[str] | frozenset[str] = frozenset()) -> StoredClip | None:
        """The oldest clip the server has not confirmed yet (not in `skip`)."""
        with self._lock:
            rows = self._db.execute("SELECT id, path, manifest, size FROM clips WHERE state = 'ready' "
                                    "ORDER BY created_ms").fetchall()
        for cid, path, manifest, size in rows:
            if cid not in skip:
                return StoredClip(cid, Path(path), bytes(manifest), size)
        return None

    def mark(self, clip_id: str, state: str, note: str | None = None) -> None:
        """`confirmed` (the server verified the hash) or `rejected` (kept for a person to look at)."""
        with self._lock:
            self._db.execute("UPDATE clips SET state = ?, note = ? WHERE id = ?", (state, note, clip_id))

    def state(self, clip_id: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT state FROM clips WHERE id = ?", (clip_id,)).fetchone()
        return row[0] if row else None

    def counts(self) -> dict[str, int]:
        with self._lock:
            out = dict(self._db.execute("SELECT state, COUNT(*) FROM clips GROUP BY state").fetchall())
            out.update(self._db.execute("SELECT name, value FROM counters").fetchall())
        return out

    def enforce_quota(self, quota: int) -> list[str]:
        """Delete clips until the files fit in `quota` bytes: confirmed ones first, oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT id, path, size, state FROM clips ORDER BY state != 'confirmed', "
                                    "created_ms").fetchall()
            total = sum(r[2] for r in rows if r[3] != "evicted")
            gone = []
            for cid, path, size, state in rows:
                if total <= quota or state == "evicted":
                    continue
                Path(path).unlink(missing_ok=True)
                self._db.execute("UPDATE clips SET state = 'evicted' WHERE id = ?", (cid,))
                if state != "confirmed":
                    self._db.execute("INSERT INTO counters VALUES ('evicted_unconfirmed', 1) ON CONFLICT(name) "
                                     "DO UPDATE SET value = value + 1")
                total -= size
                gone.append(cid)
        return gone

    def close(self) -> None:
        with self._lock:
            self._db.close()
