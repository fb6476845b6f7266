"""The CPython device outbox: epochs never reused, nothing deleted but by an ack, bounded and counted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from device.outbox import Outbox


def _add(box: Outbox, now: int = 0) -> tuple[int, int]:
    entry = box.add(lambda ep, seq: f"{ep}:{seq}".encode(), now)
    return entry.ep, entry.seq


def test_epoch_grows_every_boot_and_sequence_restarts(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    box = Outbox(path)
    assert box.begin_boot() == 1
    assert [_add(box) for _ in range(3)] == [(1, 1), (1, 2), (1, 3)]
    box.close()
    box = Outbox(path)
    assert box.begin_boot() == 2 and _add(box) == (2, 1)
    assert box.depth() == 4  # unacked events of the previous boot are still there


def test_only_acked_events_leave_and_unacked_are_resent(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3")
    box.begin_boot()
    keys = [_add(box, now=1000) for _ in range(4)]
    due = box.due(now_ms=1000, resend_after_ms=5000)
    assert [(e.ep, e.seq) for e in due] == keys
    box.mark_sent(due, now_ms=1000)
    assert box.due(now_ms=2000, resend_after_ms=5000) == []  # in flight, not yet due again
    assert box.acked([keys[1], (9, 9)]) == 1
    assert [(e.ep, e.seq) for e in box.due(now_ms=7000, resend_after_ms=5000)] == [keys[0], keys[2], keys[3]]
    box.requeue_all()
    assert len(box.due(now_ms=1000, resend_after_ms=5000)) == 3


def test_overflow_drops_the_oldest_and_counts_them(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3", capacity=5)
    box.begin_boot()
    for n in range(8):
        _add(box, now=n)
    assert box.depth() == 5 and box.dropped == 3
    assert [e.seq for e in box.due(now_ms=100, resend_after_ms=0)] == [4, 5, 6, 7, 8]


def test_an_event_survives_a_kill_right_after_add(tmp_path: Path) -> None:
    """SIGKILL the writing process right after add() returns: the event is committed, not pending in
    a transaction. (Durability across a power cut is SQLite's synchronous=FULL, checked below.)"""
    path = tmp_path / "o.sqlite3"
    script = (f"import os, signal; from device.outbox import Outbox; b = Outbox({str(path)!r}); b.begin_boot(); "
              "b.add(lambda ep, seq: b'press', 1); os.kill(os.getpid(), signal.SIGKILL)")
    subprocess.run([sys.executable, "-c", script], check=False)
    box = Outbox(path)
    assert box.depth() == 1 and box.epoch == 1 and box.begin_boot() == 2


def test_the_outbox_asks_sqlite_for_full_durability(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3")
    assert box._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL: fsync before a commit returns
    assert box._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_resends_back_off_until_acked(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3")
    box.begin_boot()
    _add(box)
    base, now, gaps = 1000, 0, []
    for _ in range(7):
        [entry] = box.due(now_ms=now, resend_after_ms=base)
        box.mark_sent([entry], now_ms=now)
        wait = 0
        while not box.due(now_ms=now + wait, resend_after_ms=base):
            wait += 250
        gaps.append(wait)
        now += wait
    assert gaps == [1000, 2000, 4000, 8000, 16000, 16000, 16000]
