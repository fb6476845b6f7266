"""Reading the audit trail: per item, per user, filtered pages, and CSV exports (which are audited too).

Keyword-only, HTTP-agnostic. The CSV carries each entry's chain position and hashes, so an export can
be checked against the chain (and the chain head noted elsewhere) without access to the database.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, and_, func, or_, select

from server.audit import record
from server.db.models import AUDIT

CSV_COLUMNS = ["id", "chain_seq", "at", "actor", "action", "target_type", "target_id", "detail", "prev_hash", "hash"]
EXPORT_ROWS = 5000  # rows fetched per round trip while exporting


@dataclass(frozen=True, slots=True)
class AuditFilter:
    actor: str | None = None  # "user:lan", "token:hr", "cli", "device:kiosk-1", "ingest"
    action: str | None = None  # exact ("review.confirm") or a family ending in "." ("clip.")
    target_type: str | None = None
    target_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def plain(self) -> dict[str, Any]:
        return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in asdict(self).items() if v}


def _where(q: Select[Any], f: AuditFilter) -> Select[Any]:
    if f.actor:
        q = q.where(AUDIT.c.actor == f.actor)
    if f.action:
        q = q.where(AUDIT.c.action.startswith(f.action) if f.action.endswith(".") else AUDIT.c.action == f.action)
    if f.target_type:
        q = q.where(AUDIT.c.target_type == f.target_type)
    if f.target_id:
        q = q.where(AUDIT.c.target_id == f.target_id)
    if f.since:
        q = q.where(AUDIT.c.at >= f.since)
    if f.until:
        q = q.where(AUDIT.c.at < f.until)
    return q


def _columns() -> Select[Any]:
    return select(AUDIT.c.id, AUDIT.c.chain_seq, AUDIT.c.at, AUDIT.c.actor, AUDIT.c.action, AUDIT.c.target_type,
                  AUDIT.c.target_id, AUDIT.c.detail, AUDIT.c.prev_hash, AUDIT.c.hash)


def audit_page(conn: Connection, *, where: AuditFilter, before_id: int | None, limit: int) -> list[dict[str, Any]]:
    """Entries matching `where`, newest first, older than `before_id` (a cursor)."""
    q = _where(_columns(), where)
    if before_id is not None:
        q = q.where(AUDIT.c.id < before_id)
    return [dict(r._mapping) for r in conn.execute(q.order_by(AUDIT.c.id.desc()).limit(limit))]


def entries_for(conn: Connection, *, targets: Sequence[tuple[str, str]], limit: int = 500) -> list[dict[str, Any]]:
    """The trail of some items (e.g. a review and its clip), oldest first."""
    if not targets:
        return []
    cond = or_(*(and_(AUDIT.c.target_type == t, AUDIT.c.target_id == i) for t, i in targets))
    return [dict(r._mapping) for r in conn.execute(_columns().where(cond).order_by(AUDIT.c.id).limit(limit))]


def start_export(conn: Connection, *, where: AuditFilter, actor: str, fmt: str = "csv") -> tuple[int, int]:
    """Record an export (it is itself an audited access) and fix what it holds: (last id, row count)."""
    last = int(conn.execute(select(func.coalesce(func.max(AUDIT.c.id), 0))).scalar_one())
    n = int(conn.execute(_where(select(func.count()).select_from(AUDIT), where).where(AUDIT.c.id <= last))
            .scalar_one())
    record(conn, actor=actor, action="audit.export", target_type="audit", target_id=f"upto-{last}",
           detail={"filter": where.plain(), "rows": n, "format": fmt})
    return last, n


def _csv_line(values: Sequence[Any]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerow(values)  # RFC 4180 line ends
    return buf.getvalue()


def _cell(name: str, value: Any) -> Any:
    if value is None:
        return ""
    if name == "detail":
        return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    if isinstance(value, datetime):
        return value.isoformat(timespec="microseconds")
    return value


def export_csv(conn: Connection, *, where: AuditFilter, upto_id: int) -> Iterator[str]:
    """CSV lines (header first) of the entries matching `where` up to `upto_id`, in id order."""
    yield _csv_line(CSV_COLUMNS)
    q = _where(_columns(), where).where(AUDIT.c.id <= upto_id).order_by(AUDIT.c.id)
    for row in conn.execution_options(stream_results=True, yield_per=EXPORT_ROWS).execute(q):
        yield _csv_line([_cell(c, getattr(row, c)) for c in CSV_COLUMNS])
