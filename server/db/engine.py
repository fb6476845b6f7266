"""Engine creation and schema migration (Alembic), for every program and test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

from server import audit

MIGRATIONS = Path(__file__).with_name("migrations")


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine tuned for the backend (SQLite gets WAL, a busy timeout and enforced foreign keys) whose
    transactions chain their audit entries as they commit (server/audit.py)."""
    engine = _engine(url, **kwargs)
    audit.install(engine)
    return engine


def _engine(url: str, **kwargs: Any) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin_immediate)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    if "poolclass" not in kwargs:
        kwargs.setdefault("pool_size", 8)
    return create_engine(url, **kwargs)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets the API read while ingest writes; synchronous=FULL so an ack never precedes durability.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()
    # Let SQLAlchemy, not the sqlite3 module, decide where transactions begin (see below).
    dbapi_conn.isolation_level = None


def _sqlite_begin_immediate(conn: Any) -> None:
    # A deferred transaction that reads then writes can fail at once with "database is locked" when
    # another writer got there first; taking the write lock up front makes it wait its turn instead.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the schema at `url` to `revision` (default: the newest)."""
    command.upgrade(alembic_config(url), revision)


def pending_migrations(engine: Engine) -> list[str]:
    """Revisions not yet applied; empty when the schema is current."""
    script = ScriptDirectory.from_config(alembic_config(engine.url.render_as_string(hide_password=False)))
    with engine.connect() as conn:
        current = set(MigrationContext.configure(conn).get_current_heads())
    heads = set(script.get_heads())
    if current == heads:
        return []
    return [rev.revision for rev in script.walk_revisions() if rev.revision not in current]


class SchemaOutOfDate(RuntimeError):
    """The database schema is older than this program."""


def require_current_schema(engine: Engine) -> None:
    """Refuse to run against an old schema, saying which command fixes it."""
    missing = pending_migrations(engine)
    if missing:
        raise SchemaOutOfDate(
            f"the database at {engine.url.render_as_string(hide_password=True)} needs {len(missing)} migration(s): "
            "run `motcua db upgrade` (with the same MOTCUA_DATABASE_URL) and start again"
        )
