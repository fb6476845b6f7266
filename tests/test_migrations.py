"""The Alembic migrations and the SQLAlchemy models describe the same schema, on both backends."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine

from server.db.engine import pending_migrations
from server.db.models import Base


def test_models_match_migrations(engine: Engine) -> None:
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    assert pending_migrations(engine) == []


def test_schema_check_names_the_fix(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import pytest

    from server.db.engine import SchemaOutOfDate, make_engine, require_current_schema

    engine = make_engine(f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    with pytest.raises(SchemaOutOfDate, match="motcua db upgrade"):
        require_current_schema(engine)
