"""Shared fixtures: a private Mosquitto per test, SQLite and PostgreSQL databases per session."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from tests.utils import db
from tests.utils.services import Mosquitto, unavailable

pytest_plugins = ["tests.utils.browser"]  # the browser_page fixture (real headless Chromium)


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A private Mosquitto for one test (MQTT 3.1.1 and 5, anonymous, no persistence)."""
    broker = Mosquitto(tmp_path).start()
    try:
        yield broker
    finally:
        broker.kill()


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return db.migrated_sqlite(tmp_path_factory.mktemp("sqlite"))


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    why = db.pg_reachable()
    if why:
        unavailable(why)
    with db.private_pg_database() as url:
        from server.db.engine import upgrade

        upgrade(url)
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest) -> str:
    """A migrated, empty database: every test using it runs on SQLite and on PostgreSQL."""
    url: str = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    return url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = db.engine_for(db_url)
    db.wipe(eng)
    try:
        yield eng
    finally:
        eng.dispose()


@pytest.fixture(autouse=True)
def _cheap_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2id with the smallest parameters in tests: the library's defaults cost ~0.7 s per hash on the
    2-core test machine, and many tests sign people in. tests/test_users.py checks the real defaults."""
    from argon2 import PasswordHasher

    from server import users

    monkeypatch.setattr(users, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@pytest.fixture(autouse=True)
def _fail_on_swallowed_errors(caplog: pytest.LogCaptureFixture, request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test in which a handler wrapper logged an unexpected exception instead of raising it.

    The ingest loop must survive every payload; a logged traceback means it survived a *bug*, which a
    test should never let pass silently. Tests that provoke one on purpose mark `allow_logged_errors`.
    """
    caplog.set_level(logging.WARNING, logger="motcua")
    yield
    if request.node.get_closest_marker("allow_logged_errors"):
        return
    bad = [r for r in caplog.get_records("call") if r.name.startswith("motcua") and r.exc_info
           and r.levelno >= logging.ERROR]
    if bad:
        pytest.fail("an exception was swallowed and logged: " + bad[0].getMessage(), pytrace=False)
