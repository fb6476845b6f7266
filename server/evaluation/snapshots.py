"""Score snapshots: written in bulk at close (binary COPY on PostgreSQL), read as current versions."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Text, cast, delete, insert, literal, select, tuple_, update

from server.db.models import OFFICIALS, SCORE_SNAPSHOTS
from server.db.types import decimal_text
from server.evaluation.compute import Scored

COPY_COLUMNS: list[tuple[str, str]] = [
    ("period", "varchar"), ("unit_id", "int4"), ("official_id", "int4"), ("version", "int4"), ("policy_pk", "int4"),
    ("total", "varchar"), ("grade", "varchar"), ("summary", "json"), ("result", "text"), ("digest", "varchar"),
    ("reason", "text"), ("created_at", "timestamptz"), ("created_by", "varchar"),
]


def snapshot_rows(*, period: str, unit_id: int, ids: dict[str, int], scored: Sequence[Scored], version: int,
                  policy_pk: int, now: datetime, actor: str, reason: str | None = None) -> list[dict[str, Any]]:
    """Rows for score_snapshots; `ids` maps official codes to their ids."""
    return [{"period": period, "unit_id": unit_id, "official_id": ids[s.code], "version": version,
             "policy_pk": policy_pk, "total": s.total, "grade": s.grade, "summary": s.summary, "result": s.result,
             "digest": s.digest, "reason": reason, "created_at": now, "created_by": actor} for s in scored]


def insert_snapshots(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Insert many snapshots: one binary COPY on PostgreSQL (50,000 rows of ~3 KB in seconds), executemany elsewhere."""
    if not rows:
        return
    if conn.dialect.name != "postgresql":
        conn.execute(insert(SCORE_SNAPSHOTS), rows)
        return
    from psycopg.types.json import Json

    raw = conn.connection.driver_connection
    assert raw is not None
    names = ", ".join(c for c, _ in COPY_COLUMNS)
    with raw.cursor() as cur, cur.copy(f"COPY score_snapshots ({names}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types([t for _, t in COPY_COLUMNS])
        for r in rows:
            copy.write_row((r["period"], r["unit_id"], r["official_id"], r["version"], r["policy_pk"],
                            decimal_text(r["total"]), r["grade"], Json(r["summary"]), r["result"], r["digest"],
                            r["reason"], r["created_at"], r["created_by"]))


def delete_unfinal(conn: Connection, *, period: str, unit_ids: Sequence[int]) -> None:
    """Drop the version-1 snapshots of closed (not final) unit months before they are closed again."""
    if unit_ids:
        conn.execute(delete(SCORE_SNAPSHOTS).where(SCORE_SNAPSHOTS.c.period == period,
                                                   SCORE_SNAPSHOTS.c.unit_id.in_(list(unit_ids))))


CURRENT = SCORE_SNAPSHOTS.c.superseded_by.is_(None)
LISTED = (SCORE_SNAPSHOTS.c.id, SCORE_SNAPSHOTS.c.unit_id, SCORE_SNAPSHOTS.c.official_id, SCORE_SNAPSHOTS.c.version,
          SCORE_SNAPSHOTS.c.policy_pk, SCORE_SNAPSHOTS.c.total, SCORE_SNAPSHOTS.c.grade, SCORE_SNAPSHOTS.c.summary,
          SCORE_SNAPSHOTS.c.digest, SCORE_SNAPSHOTS.c.created_at)


def current_page(conn: Connection, *, period: str, unit_ids: Sequence[int], after: tuple[int, int],
                 limit: int, amended_only: bool = False, whole_range: bool = False, raw_summary: bool = False,
                 ) -> list[Any]:
    """Current versions in these units (ascending ids), in (unit id, official id) order after `after`.

    `whole_range`: every unit between the first and the last id is wanted, so a BETWEEN replaces the
    IN list (a province's 2,000 bound parameters cost more to send than the page itself).
    `raw_summary`: each row's `summary` is its stored JSON text, not decoded (an HR page splices it
    into the response as is: decoding and re-encoding 500 summaries was a third of the page's time).
    """
    units = (SCORE_SNAPSHOTS.c.unit_id.between(unit_ids[0], unit_ids[-1]) if whole_range
             else SCORE_SNAPSHOTS.c.unit_id.in_(list(unit_ids)))
    columns: list[Any] = [c for c in LISTED if c is not SCORE_SNAPSHOTS.c.summary] if raw_summary else list(LISTED)
    if raw_summary:
        columns.append(cast(SCORE_SNAPSHOTS.c.summary, Text).label("summary"))
    q = (select(*columns, OFFICIALS.c.code, OFFICIALS.c.full_name, OFFICIALS.c.duty_group)
         .join(OFFICIALS, OFFICIALS.c.id == SCORE_SNAPSHOTS.c.official_id)
         .where(SCORE_SNAPSHOTS.c.period == period, CURRENT, SCORE_SNAPSHOTS.c.version > (1 if amended_only else 0),
                units,
                # a row-value comparison: the index (period, unit_id, official_id) is read from the
                # cursor on, and LIMIT stops the scan after one page
                tuple_(SCORE_SNAPSHOTS.c.unit_id, SCORE_SNAPSHOTS.c.official_id) >
                tuple_(literal(after[0]), literal(after[1])))
         .order_by(SCORE_SNAPSHOTS.c.unit_id, SCORE_SNAPSHOTS.c.official_id).limit(limit))
    return list(conn.execute(q).all())


def current_of_unit(conn: Connection, *, period: str, unit_id: int) -> dict[int, Any]:
    """Official id -> current snapshot (with its result) of one unit month."""
    q = select(*LISTED, SCORE_SNAPSHOTS.c.result).where(SCORE_SNAPSHOTS.c.period == period,
                                                        SCORE_SNAPSHOTS.c.unit_id == unit_id, CURRENT)
    return {r.official_id: r for r in conn.execute(q).all()}


def versions(conn: Connection, *, period: str, official_id: int) -> list[Any]:
    """Every version of an official's month, oldest first, with the result JSON."""
    q = (select(*LISTED, SCORE_SNAPSHOTS.c.result, SCORE_SNAPSHOTS.c.reason, SCORE_SNAPSHOTS.c.created_by,
                SCORE_SNAPSHOTS.c.superseded_by)
         .where(SCORE_SNAPSHOTS.c.period == period, SCORE_SNAPSHOTS.c.official_id == official_id)
         .order_by(SCORE_SNAPSHOTS.c.version))
    return list(conn.execute(q).all())


def supersede(conn: Connection, *, old_id: int, new_id: int) -> None:
    """Point an old version at its amendment (the one column the immutability trigger allows to change)."""
    conn.execute(update(SCORE_SNAPSHOTS).where(SCORE_SNAPSHOTS.c.id == old_id).values(superseded_by=new_id))


def verify(conn: Connection, *, period: str, unit_ids: Sequence[int] | None = None) -> list[dict[str, Any]]:
    """Snapshots whose stored result no longer hashes to their digest, or whose fields disagree with it."""
    q = (select(SCORE_SNAPSHOTS.c.id, SCORE_SNAPSHOTS.c.version, SCORE_SNAPSHOTS.c.result, SCORE_SNAPSHOTS.c.digest,
                SCORE_SNAPSHOTS.c.total, SCORE_SNAPSHOTS.c.grade, OFFICIALS.c.code)
         .join(OFFICIALS, OFFICIALS.c.id == SCORE_SNAPSHOTS.c.official_id)
         .where(SCORE_SNAPSHOTS.c.period == period))
    if unit_ids is not None:
        q = q.where(SCORE_SNAPSHOTS.c.unit_id.in_(list(unit_ids)))
    bad = []
    for r in conn.execute(q):
        data = r.result.encode("utf-8")
        parsed = json.loads(data)
        if hashlib.sha256(data).hexdigest() != r.digest:
            bad.append({"official": r.code, "version": r.version, "problem": "result does not hash to its digest"})
        elif (Decimal(parsed["total"]), parsed["grade"], parsed["official_id"]) != (r.total, r.grade, r.code):
            bad.append({"official": r.code, "version": r.version, "problem": "listed total/grade differ from result"})
    return bad
