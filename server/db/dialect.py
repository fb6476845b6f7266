"""The few statements whose syntax differs between PostgreSQL and SQLite."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Table, func
from sqlalchemy.dialects import postgresql, sqlite


def insert_for(conn: Connection, table: Table) -> Any:
    """An INSERT supporting ON CONFLICT for the connection's backend (both speak the same clause)."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    if conn.dialect.name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"motcua supports PostgreSQL and SQLite, not {conn.dialect.name}")


def json_text(conn: Connection, column: Any, key: str) -> Any:
    """`column ->> key` (a top-level member of a JSON column, as text) in the backend's JSON dialect."""
    if conn.dialect.name == "postgresql":
        return func.json_extract_path_text(column, key)
    return func.json_extract(column, f"$.{key}")
