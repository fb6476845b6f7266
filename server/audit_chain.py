"""The audit chain: the canonical encoding of an entry, its hash, and the check of the whole chain.

Entry n's hash is SHA-256 over "motcua-audit-v1", the hash of entry n-1 and the canonical JSON of
entry n (position, time, actor, action, target, detail; sorted keys, no spaces, UTF-8; the row id is a
storage detail, the chain position is the entry's identity). Changing,
deleting or inserting an entry breaks the link at that entry or the next one. Someone able to rewrite
the whole table could recompute every hash after the change: for that, note the head
(`motcua audit verify` prints it) somewhere they cannot write, and check against it later with
`--expect SEQ:HASH` (the same idea as a Certificate Transparency signed tree head, without the tree).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from sqlalchemy import Connection, func, select

from server.db.models import AUDIT, AUDIT_CHAIN

GENESIS = "0" * 64  # the "previous hash" of the first entry
DOMAIN = "motcua-audit-v1"
STREAM_ROWS = 2000  # rows fetched per round trip while verifying: memory stays flat on a long log


def canonical(seq: int, row: Any) -> str:
    """The bytes (as text) an entry's hash covers."""
    fields = {"seq": seq, "at": row.at.astimezone(UTC).isoformat(timespec="microseconds"),
              "actor": row.actor, "action": row.action, "target_type": row.target_type,
              "target_id": row.target_id, "detail": row.detail}
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def entry_hash(prev: str, seq: int, row: Any) -> str:
    return hashlib.sha256(f"{DOMAIN}\n{prev}\n{canonical(seq, row)}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class ChainReport:
    entries: int  # entries checked in chain order
    head_seq: int
    head_hash: str
    broken_id: int | None = None  # audit_log.id of the first broken link (None: intact or head problem)
    broken_seq: int | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


def _rows(conn: Connection) -> Iterator[Any]:
    q = (select(AUDIT.c.id, AUDIT.c.at, AUDIT.c.actor, AUDIT.c.action, AUDIT.c.target_type, AUDIT.c.target_id,
                AUDIT.c.detail, AUDIT.c.chain_seq, AUDIT.c.prev_hash, AUDIT.c.hash)
         .where(AUDIT.c.chain_seq.is_not(None)).order_by(AUDIT.c.chain_seq))
    yield from conn.execution_options(stream_results=True, yield_per=STREAM_ROWS).execute(q)


def _link_problem(row: Any, expected_seq: int, prev: str) -> str | None:
    if row.chain_seq != expected_seq:
        return (f"entry at chain position {row.chain_seq} where {expected_seq} was expected: "
                f"{row.chain_seq - expected_seq} entr(ies) before it were deleted")
    if row.prev_hash != prev:
        return "its link to the entry before it does not match: an entry before it was changed, removed or added"
    if row.hash != entry_hash(prev, expected_seq, row):
        return "its content differs from what was written (hash mismatch)"
    return None


def verify(conn: Connection, *, expect: tuple[int, str] | None = None,
           progress: Callable[[int], None] | None = None) -> ChainReport:
    """Walk the chain from the first entry; report the first broken link, if any."""
    prev, seq, seen_expect = GENESIS, 0, expect is None
    for row in _rows(conn):
        problem = _link_problem(row, seq + 1, prev)
        if problem:
            return ChainReport(seq, seq, prev, row.id, row.chain_seq, problem)
        seq, prev = seq + 1, row.hash
        if expect is not None and seq == expect[0]:
            if row.hash != expect[1]:
                return ChainReport(seq, seq, prev, row.id, seq, f"entry {seq} has hash {row.hash}, not the "
                                   f"{expect[1]} recorded earlier: the chain was rewritten from there or before")
            seen_expect = True
        if progress is not None and seq % 50_000 == 0:
            progress(seq)
    return _tail(conn, seq, prev, expect, seen_expect)


def _tail(conn: Connection, seq: int, prev: str, expect: tuple[int, str] | None, seen_expect: bool) -> ChainReport:
    """After the walk: entries outside the chain, the head, and an expected head beyond the end."""
    loose = conn.execute(select(func.min(AUDIT.c.id), func.count()).where(AUDIT.c.chain_seq.is_(None))).one()
    if loose[1]:
        return ChainReport(seq, seq, prev, int(loose[0]), None,
                           f"{loose[1]} entr(ies) are outside the chain (written without the commit hook, or "
                           "inserted by hand); the first is shown")
    head = conn.execute(select(AUDIT_CHAIN.c.seq, AUDIT_CHAIN.c.hash)).first()
    if head is not None and (head.seq, head.hash) != (seq, prev):
        return ChainReport(seq, seq, prev, None, head.seq, f"the chain head says entry {head.seq} ({head.hash[:12]}…) "
                           f"is the last, but the log ends at {seq}: entries at the end were deleted")
    if not seen_expect and expect is not None:
        return ChainReport(seq, seq, prev, None, expect[0], f"the log ends at {seq}, before the expected entry "
                           f"{expect[0]}: entries at the end were deleted")
    return ChainReport(seq, seq, prev)
