"""Append an audit entry in the caller's transaction: a change and its record commit together.

The log is append-only and hash-chained (server/audit_chain.py). `record()` inserts the entry; just
before the transaction commits, a hook installed on every engine (`install`, called by make_engine)
gives the transaction's entries their chain positions and hashes under a lock on the one-row chain
head. Why at commit and not at insert: the head lock is then the last lock a transaction takes and is
held only for the few statements before COMMIT, so two transactions can never wait for each other
through it (no deadlock with ingest's device row locks) and appends serialize only briefly. On SQLite,
writers are serialized anyway (BEGIN IMMEDIATE, server/db/engine.py). A savepoint rolled back takes
its entries with it; the hook chains only those still there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, event, insert, select, update

from server.audit_chain import GENESIS, entry_hash
from server.db.dialect import insert_for
from server.db.models import AUDIT, AUDIT_CHAIN
from server.db.types import utcnow

_PENDING = "motcua_audit_pending"  # key in the DBAPI connection's info: ids written by the open transaction
HEAD_ID = 1


def record(conn: Connection, *, actor: str, action: str, target_type: str, target_id: str | int,
           detail: dict[str, Any] | None = None) -> None:
    """Write who did what to which record (chained when the transaction commits)."""
    new_id = conn.execute(insert(AUDIT).values(at=utcnow(), actor=actor[:100], action=action,
                                               target_type=target_type, target_id=str(target_id)[:64],
                                               detail=detail).returning(AUDIT.c.id)).scalar_one()
    conn.info.setdefault(_PENDING, []).append(int(new_id))


def install(engine: Engine) -> None:
    """Chain the audit entries of every transaction of `engine` as it commits."""
    if not event.contains(engine, "commit", _seal_on_commit):
        event.listen(engine, "commit", _seal_on_commit)
        event.listen(engine, "rollback", _forget)


def _seal_on_commit(conn: Connection) -> None:
    ids = conn.info.pop(_PENDING, None)
    if ids:
        seal(conn, ids)


def _forget(conn: Connection) -> None:
    conn.info.pop(_PENDING, None)


def _lock_head(conn: Connection) -> tuple[int, str]:
    """The chain head (last position and hash), row-locked until commit; rebuilt if it went missing."""
    q = select(AUDIT_CHAIN.c.seq, AUDIT_CHAIN.c.hash).where(AUDIT_CHAIN.c.id == HEAD_ID).with_for_update()
    row = conn.execute(q).first()
    if row is None:
        last = conn.execute(select(AUDIT.c.chain_seq, AUDIT.c.hash).where(AUDIT.c.chain_seq.is_not(None))
                            .order_by(AUDIT.c.chain_seq.desc()).limit(1)).first()
        seq, prev = (int(last.chain_seq), str(last.hash)) if last else (0, GENESIS)
        conn.execute(insert_for(conn, AUDIT_CHAIN).values(id=HEAD_ID, seq=seq, hash=prev, updated_at=utcnow())
                     .on_conflict_do_nothing(index_elements=["id"]))
        row = conn.execute(q).one()
    return int(row.seq), str(row.hash)


def seal(conn: Connection, ids: Sequence[int]) -> int:
    """Give these entries the next chain positions and their hashes; returns the new head position."""
    seq, prev = _lock_head(conn)
    rows = conn.execute(select(AUDIT.c.id, AUDIT.c.at, AUDIT.c.actor, AUDIT.c.action, AUDIT.c.target_type,
                               AUDIT.c.target_id, AUDIT.c.detail)
                        .where(AUDIT.c.id.in_(list(ids)), AUDIT.c.chain_seq.is_(None)).order_by(AUDIT.c.id)).all()
    if not rows:
        return seq
    links = []
    for row in rows:
        seq += 1
        digest = entry_hash(prev, seq, row)
        links.append({"b_id": row.id, "b_seq": seq, "b_prev": prev, "b_hash": digest})
        prev = digest
    conn.execute(update(AUDIT).where(AUDIT.c.id == bindparam("b_id"))
                 .values(chain_seq=bindparam("b_seq"), prev_hash=bindparam("b_prev"), hash=bindparam("b_hash")),
                 links)
    conn.execute(update(AUDIT_CHAIN).where(AUDIT_CHAIN.c.id == HEAD_ID).values(seq=seq, hash=prev,
                                                                             updated_at=utcnow()))
    return seq
