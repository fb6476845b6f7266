"""Append an audit entry in the caller's transaction: a change and its record commit together.

The log is append-only and hash-chained (server/audit_chain.py). `record()` keeps the entry with the
open transaction; just before it commits, a hook installed on every engine (`install`, called by
make_engine) takes the chain head's row lock, gives the entries their positions and hashes and writes
them. Why at commit: the head lock is then the last lock a transaction takes, held only for the three
statements before COMMIT, so two transactions can never wait for each other through it (no deadlock
with ingest's device row locks) and appends serialize only briefly; and an audited transaction costs
three extra statements, whatever it records. On SQLite, writers are serialized anyway (BEGIN
IMMEDIATE, server/db/engine.py). Entries recorded inside a savepoint that is rolled back are dropped
with it (kiosk sign-ins use one).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, event, insert, select, update

from server.audit_chain import GENESIS, entry_hash
from server.db.dialect import insert_for
from server.db.models import AUDIT, AUDIT_CHAIN
from server.db.types import utcnow

_PENDING = "motcua_audit_pending"  # DBAPI connection info: entries of the open transaction
_SAVEPOINTS = "motcua_audit_savepoints"  # per open savepoint (innermost last): entries pending when it began
HEAD_ID = 1


@dataclass(frozen=True, slots=True)
class Entry:
    """An entry as it will be stored (and hashed): detail normalised to what JSON gives back."""

    at: datetime
    actor: str
    action: str
    target_type: str
    target_id: str
    detail: Any


def record(conn: Connection, *, actor: str, action: str, target_type: str, target_id: str | int,
           detail: dict[str, Any] | None = None) -> None:
    """Write who did what to which record (stored and chained when the transaction commits)."""
    if not event.contains(conn.engine, "commit", _seal_on_commit):
        # Without the hook the entry would never be written: refuse loudly rather than lose it.
        raise RuntimeError("audit entries need an engine made by server.db.engine.make_engine, which writes "
                           "and chains them at commit; this engine would drop them")
    normal = None if detail is None else json.loads(json.dumps(detail, default=str))
    conn.info.setdefault(_PENDING, []).append(Entry(utcnow(), actor[:100], action, target_type,
                                                    str(target_id)[:64], normal))


def install(engine: Engine) -> None:
    """Chain the audit entries of every transaction of `engine` as it commits."""
    if event.contains(engine, "commit", _seal_on_commit):
        return
    event.listen(engine, "commit", _seal_on_commit)
    event.listen(engine, "rollback", _forget)
    event.listen(engine, "savepoint", _savepoint)
    event.listen(engine, "rollback_savepoint", _rollback_savepoint)
    event.listen(engine, "release_savepoint", _release_savepoint)


def _seal_on_commit(conn: Connection) -> None:
    conn.info.pop(_SAVEPOINTS, None)
    entries = conn.info.pop(_PENDING, None)
    if entries:
        seal(conn, entries)


def _forget(conn: Connection) -> None:
    conn.info.pop(_PENDING, None)
    conn.info.pop(_SAVEPOINTS, None)


# Savepoints nest (SQLAlchemy's begin_nested ends the innermost first), so a stack of marks is enough;
# the savepoint event does not carry the generated name yet.
def _savepoint(conn: Connection, _name: str | None) -> None:
    conn.info.setdefault(_SAVEPOINTS, []).append(len(conn.info.get(_PENDING, [])))


def _rollback_savepoint(conn: Connection, _name: str, _context: Any) -> None:
    marks = conn.info.get(_SAVEPOINTS)
    if marks:
        del conn.info.get(_PENDING, [])[marks.pop():]


def _release_savepoint(conn: Connection, _name: str, _context: Any) -> None:
    marks = conn.info.get(_SAVEPOINTS)
    if marks:
        marks.pop()


def _claim(conn: Connection, n: int) -> tuple[int, str]:
    """Take `n` chain positions: locks the head row until commit; returns (last position before, its hash)."""
    q = (update(AUDIT_CHAIN).where(AUDIT_CHAIN.c.id == HEAD_ID).values(seq=AUDIT_CHAIN.c.seq + n)
         .returning(AUDIT_CHAIN.c.seq, AUDIT_CHAIN.c.hash))
    row = conn.execute(q).first()
    if row is None:  # the head went missing (a wiped table): rebuild it from the last chained entry
        last = conn.execute(select(AUDIT.c.chain_seq, AUDIT.c.hash).where(AUDIT.c.chain_seq.is_not(None))
                            .order_by(AUDIT.c.chain_seq.desc()).limit(1)).first()
        seq, prev = (int(last.chain_seq), str(last.hash)) if last else (0, GENESIS)
        conn.execute(insert_for(conn, AUDIT_CHAIN).values(id=HEAD_ID, seq=seq, hash=prev, updated_at=utcnow())
                     .on_conflict_do_nothing(index_elements=["id"]))
        row = conn.execute(q).one()
    return int(row.seq) - n, str(row.hash)


def seal(conn: Connection, entries: Sequence[Entry]) -> int:
    """Store these entries at the next chain positions with their hashes; returns the new head position."""
    seq, prev = _claim(conn, len(entries))
    rows = []
    for e in entries:
        seq += 1
        digest = entry_hash(prev, seq, e)
        rows.append({"at": e.at, "actor": e.actor, "action": e.action, "target_type": e.target_type,
                     "target_id": e.target_id, "detail": e.detail, "chain_seq": seq, "prev_hash": prev,
                     "hash": digest})
        prev = digest
    conn.execute(insert(AUDIT), rows)
    conn.execute(update(AUDIT_CHAIN).where(AUDIT_CHAIN.c.id == HEAD_ID).values(hash=prev, updated_at=utcnow()))
    return seq
