"""Test databases: a migrated SQLite file and a private PostgreSQL database per test session."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import Engine, text

from server.db import scratch
from server.db.engine import make_engine, upgrade
from server.db.models import Base

PG_ADMIN_URL = os.environ.get("MOTCUA_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
TABLES = [t.name for t in reversed(Base.metadata.sorted_tables)]


def pg_reachable() -> str | None:
    """None when PostgreSQL answers at PG_ADMIN_URL, else why not."""
    why = scratch.reachable(PG_ADMIN_URL)
    return f"{why}; set MOTCUA_TEST_PG_URL" if why else None


def private_pg_database():  # type: ignore[no-untyped-def]
    return scratch.scratch_database(PG_ADMIN_URL, prefix="motcua_test")


def migrated_sqlite(directory: Path) -> str:
    url = f"sqlite:///{directory / 'motcua-test.sqlite3'}"
    upgrade(url)
    return url


def wipe(engine: Engine) -> None:
    """Empty every table (faster than migrating again for each test)."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("TRUNCATE " + ", ".join(TABLES) + " RESTART IDENTITY CASCADE"))
        else:
            for table in TABLES:
                conn.execute(text(f"DELETE FROM {table}"))  # noqa: S608 - names from our own metadata


def engine_for(url: str) -> Engine:
    return make_engine(url)
