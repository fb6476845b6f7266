"""Batch statements of the ingest hot path, fast on PostgreSQL and portable to SQLite.

Why not plain executemany / IN (...): a 500-row multi-VALUES insert or a 500-item IN list makes a
different, very long SQL text every batch, which psycopg must re-parse (its statement cache skips
long queries) and PostgreSQL must re-plan. Here lookups take one array parameter (`= ANY`, `unnest`)
so their SQL text is constant, and events arrive by binary COPY, whose rows psycopg writes in C.
Together they took the pipeline from ~0.9k to ~5k+ events/s on a 2-core machine (docs/benchmarks.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import itemgetter
from typing import Any

from psycopg.types.json import Json
from sqlalchemy import BigInteger, Column, Connection, Integer, String, and_, bindparam, func, or_, select, tuple_
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql.elements import ColumnElement

from server.db.dialect import insert_for
from server.db.models import EVENTS

# PostgreSQL types of the events columns, in insert order.
EVENT_COLUMNS: list[tuple[str, str]] = [
    ("device_id", "varchar"), ("epoch", "int4"), ("seq", "int8"), ("typ", "varchar"),
    ("received_at", "timestamptz"), ("event_time", "timestamptz"),
    ("device_ts", "int8"), ("uptime_ms", "int8"), ("counter_id", "int4"), ("official_id", "int4"),
    ("session_id", "int4"), ("rating", "int2"), ("levels", "int2"), ("txn_key", "varchar"),
    ("misuse", "bool"), ("txn_duplicate", "bool"),
    ("status", "varchar"), ("time_source", "varchar"), ("body", "json"), ("payload", "bytea"),  # kept last: see COPY
]
_COLUMNS = ", ".join(c for c, _ in EVENT_COLUMNS)
_CONFLICT = "ON CONFLICT (device_id, epoch, seq) DO NOTHING RETURNING id, device_id, epoch, seq"
_PG_NEIGHBOURS = (
    "SELECT e.id, e.device_id, e.epoch, e.seq, e.uptime_ms, e.misuse, e.txn_key FROM events e "
    "JOIN unnest(%(d)b::varchar[], %(ep)b::int[], %(lo)b::bigint[], %(hi)b::bigint[]) AS k(d, ep, lo, hi) "
    "ON e.device_id = k.d AND e.epoch = k.ep AND e.uptime_ms BETWEEN k.lo AND k.hi WHERE e.typ = 'rating'"
)
_ARRAY_TYPES: dict[str, Any] = {"varchar": String(), "int": Integer(), "bigint": BigInteger()}

Key = tuple[str, int, int]


def any_of(conn: Connection, column: Column[Any], values: Sequence[Any], elem: str) -> ColumnElement[bool]:
    """`column IN values`, as `column = ANY(:array)` on PostgreSQL so the SQL text stays constant."""
    if conn.dialect.name == "postgresql":
        param: Any = bindparam(f"any_{column.name}", value=list(values), type_=ARRAY(_ARRAY_TYPES[elem]))
        return column == param.any_()
    return column.in_(list(values))


def pairs_in(conn: Connection, a: Column[Any], b: Column[Any],
             pairs: Sequence[tuple[str, int]]) -> ColumnElement[bool]:
    """`(a, b) IN pairs`; on PostgreSQL from two arrays (two unnest() in one select list zip)."""
    if conn.dialect.name == "postgresql":
        firsts = bindparam(f"pairs_{a.name}", value=[p[0] for p in pairs], type_=ARRAY(String()))
        seconds = bindparam(f"pairs_{b.name}", value=[p[1] for p in pairs], type_=ARRAY(Integer()))
        return tuple_(a, b).in_(select(func.unnest(firsts), func.unnest(seconds)))
    return tuple_(a, b).in_(list(pairs))


def _binary(conn: Connection, sql: str, params: dict[str, Any], *, named: bool = False) -> list[Any]:
    """Run `sql` on the transaction's psycopg connection with binary parameters: arrays are sent
    without the per-element text escaping that dominated the profile."""
    from psycopg.rows import namedtuple_row, tuple_row

    raw = conn.connection.driver_connection
    assert raw is not None
    with raw.cursor(binary=True, row_factory=namedtuple_row if named else tuple_row) as cur:
        cur.execute(sql, params)
        return cur.fetchall() if cur.description else []


_ENUM_COLUMNS = ("status", "time_source")
_PLAIN = itemgetter(*(c for c, _ in EVENT_COLUMNS if c not in (*_ENUM_COLUMNS, "body", "payload")))

# Created per transaction and dropped at commit: safe behind a transaction-pooling PgBouncer.
_STAGE = f"CREATE TEMP TABLE events_in ON COMMIT DROP AS SELECT {_COLUMNS} FROM events WITH NO DATA"  # noqa: S608
_FROM_STAGE = (f"INSERT INTO events ({_COLUMNS}) SELECT {_COLUMNS} FROM events_in "  # noqa: S608 - constants
               f"ORDER BY device_id, epoch, seq {_CONFLICT}")


def _copy_insert(conn: Connection, rows: list[dict[str, Any]]) -> dict[Key, int]:
    """Binary COPY into a per-transaction temp table (psycopg writes rows in C), then one INSERT ... SELECT."""
    raw = conn.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cur:
        cur.execute(_STAGE)
        with cur.copy(f"COPY events_in ({_COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types([t for _, t in EVENT_COLUMNS])
            for r in rows:
                # status and time_source are StrEnums: their str() is the stored value.
                copy.write_row((*_PLAIN(r), str(r["status"]), str(r["time_source"]), Json(r["body"]), r["payload"]))
        cur.execute(_FROM_STAGE)
        return {(r[1], r[2], r[3]): r[0] for r in cur.fetchall()}


def insert_events(conn: Connection, rows: list[dict[str, Any]]) -> dict[Key, int]:
    """Insert rows, skipping keys already stored; returns the ids of those inserted, by key."""
    rows = sorted(rows, key=lambda r: (r["device_id"], r["epoch"], r["seq"]))  # lock order: no deadlocks
    if conn.dialect.name == "postgresql":
        return _copy_insert(conn, rows)
    stmt = insert_for(conn, EVENTS).on_conflict_do_nothing(index_elements=["device_id", "epoch", "seq"])
    stmt = stmt.returning(EVENTS.c.id, EVENTS.c.device_id, EVENTS.c.epoch, EVENTS.c.seq)
    plain = [{c: r[c] for c, _ in EVENT_COLUMNS} for r in rows]
    return {(r.device_id, r.epoch, r.seq): r.id for r in conn.execute(stmt, plain)}


_PG_STORED = (
    "SELECT e.device_id, e.epoch, e.seq, e.payload FROM events e "
    "JOIN unnest(%(d)b::varchar[], %(ep)b::int4[], %(seq)b::int8[]) AS k(d, ep, seq) "
    "ON e.device_id = k.d AND e.epoch = k.ep AND e.seq = k.seq"
)


def stored_payloads(conn: Connection, keys: Sequence[Key]) -> dict[Key, bytes]:
    """The stored bytes of events with these keys (to tell a re-send from a re-used number)."""
    if not keys:
        return {}
    if conn.dialect.name == "postgresql":
        params = {"d": [k[0] for k in keys], "ep": [k[1] for k in keys], "seq": [k[2] for k in keys]}
        rows = _binary(conn, _PG_STORED, params)
    else:
        rows = list(conn.execute(select(EVENTS.c.device_id, EVENTS.c.epoch, EVENTS.c.seq, EVENTS.c.payload)
                                 .where(tuple_(EVENTS.c.device_id, EVENTS.c.epoch, EVENTS.c.seq).in_(list(keys)))))
    return {(r[0], r[1], r[2]): bytes(r[3]) for r in rows}


def rating_neighbours(conn: Connection, windows: Sequence[tuple[str, int, int, int]]) -> list[Any]:
    """Ratings with (device, epoch) = window's and uptime within [lo, hi], for each window."""
    if not windows:
        return []
    if conn.dialect.name == "postgresql":
        params = {"d": [w[0] for w in windows], "ep": [w[1] for w in windows], "lo": [w[2] for w in windows],
                  "hi": [w[3] for w in windows]}
        return _binary(conn, _PG_NEIGHBOURS, params, named=True)
    cond = or_(*[and_(EVENTS.c.device_id == d, EVENTS.c.epoch == ep, EVENTS.c.uptime_ms.between(lo, hi))
                 for d, ep, lo, hi in windows])
    return list(conn.execute(select(EVENTS.c.id, EVENTS.c.device_id, EVENTS.c.epoch, EVENTS.c.seq,
                                    EVENTS.c.uptime_ms, EVENTS.c.misuse, EVENTS.c.txn_key)
                             .where(EVENTS.c.typ == "rating", cond)))

