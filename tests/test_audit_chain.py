"""The hash-chained audit trail on both databases: chained at commit, concurrent writers, tampering found."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, delete, select, text, update

from server.audit import record
from server.audit_chain import entry_hash, verify
from server.db.engine import make_engine, upgrade
from server.db.models import AUDIT, AUDIT_CHAIN
from tests.utils.console import run_cli


def _write(engine: Engine, n: int, actor: str = "user:lan") -> None:
    for i in range(n):
        with engine.begin() as conn:
            record(conn, actor=actor, action="test.write", target_type="thing", target_id=i,
                   detail={"i": i, "tên": "Nguyễn Thị Lan", "nested": {"b": [1, 2.5, None]}})


def _chain(engine: Engine) -> list[tuple[int, int]]:
    with engine.connect() as conn:
        return [(r.id, r.chain_seq) for r in conn.execute(select(AUDIT.c.id, AUDIT.c.chain_seq).order_by(AUDIT.c.id))]


def test_entries_are_chained_at_commit_and_a_rollback_leaves_no_trace(engine: Engine) -> None:
    _write(engine, 3)
    with pytest.raises(RuntimeError), engine.begin() as conn:
        record(conn, actor="user:x", action="test.lost", target_type="thing", target_id="x")
        raise RuntimeError("the change failed, so its record must go too")
    with engine.begin() as conn:  # a savepoint rolled back takes its entry with it; the outer one stays
        record(conn, actor="user:y", action="test.kept", target_type="thing", target_id="y")
        with pytest.raises(RuntimeError), conn.begin_nested():
            record(conn, actor="user:y", action="test.undone", target_type="thing", target_id="z")
            raise RuntimeError
    _write(engine, 1)
    assert [seq for _id, seq in _chain(engine)] == [1, 2, 3, 4, 5]
    with engine.connect() as conn:
        actions = list(conn.scalars(select(AUDIT.c.action).order_by(AUDIT.c.chain_seq)))
        report = verify(conn)
        head = conn.execute(select(AUDIT_CHAIN.c.seq, AUDIT_CHAIN.c.hash)).one()
    assert "test.lost" not in actions and "test.undone" not in actions and actions[3] == "test.kept"
    assert report.ok and report.entries == 5 and (head.seq, head.hash) == (5, report.head_hash)


def test_concurrent_writers_get_one_gapless_chain(engine: Engine) -> None:
    errors: list[BaseException] = []

    def writer(k: int) -> None:
        try:
            _write(engine, 15, actor=f"user:w{k}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    seqs = sorted(seq for _id, seq in _chain(engine))
    assert seqs == list(range(1, 61))
    with engine.connect() as conn:
        assert verify(conn).ok


@pytest.mark.parametrize("tamper", ["detail", "actor", "delete_middle", "delete_last", "insert"])
def test_tampering_is_found_at_the_first_broken_entry(engine: Engine, tamper: str) -> None:
    _write(engine, 6)
    ids = [i for i, _seq in _chain(engine)]
    victim = ids[2]
    with engine.connect() as conn:  # the raw statements an intruder with database access would run
        if tamper == "detail":
            conn.execute(text("UPDATE audit_log SET detail = :d WHERE id = :i"), {"d": '{"i": 99}', "i": victim})
        elif tamper == "actor":
            conn.execute(update(AUDIT).where(AUDIT.c.id == victim).values(actor="user:someone-else"))
        elif tamper == "delete_middle":
            conn.execute(delete(AUDIT).where(AUDIT.c.id == victim))
        elif tamper == "delete_last":
            conn.execute(delete(AUDIT).where(AUDIT.c.id == ids[-1]))
        else:
            conn.execute(text("INSERT INTO audit_log (at, actor, action, target_type, target_id) VALUES "
                              "('2026-01-01 00:00:00', 'user:ghost', 'x', 'y', 'z')"))
        conn.commit()
    with engine.connect() as conn:
        report = verify(conn)
    assert not report.ok
    expected = {"detail": victim, "actor": victim, "delete_middle": ids[3], "delete_last": None}.get(tamper)
    if tamper == "insert":
        assert report.broken_id is not None and report.broken_id > ids[-1]
        assert "outside the chain" in str(report.problem)
    else:
        assert report.broken_id == expected, report
    if tamper == "delete_last":
        assert "deleted" in str(report.problem)


def test_rewriting_the_whole_chain_is_caught_by_a_head_noted_earlier(engine: Engine) -> None:
    _write(engine, 4)
    with engine.connect() as conn:
        noted = verify(conn)
    with engine.begin() as conn:  # an intruder changes entry 2 and recomputes every hash after it, and the head
        conn.execute(update(AUDIT).where(AUDIT.c.chain_seq == 2).values(actor="user:forged"))
        prev = conn.execute(select(AUDIT.c.hash).where(AUDIT.c.chain_seq == 1)).scalar_one()
        for row in conn.execute(select(AUDIT).where(AUDIT.c.chain_seq >= 2).order_by(AUDIT.c.chain_seq)).all():
            digest = entry_hash(prev, row.chain_seq, row)
            conn.execute(update(AUDIT).where(AUDIT.c.id == row.id).values(prev_hash=prev, hash=digest))
            prev = digest
        conn.execute(update(AUDIT_CHAIN).values(hash=prev))
    with engine.connect() as conn:
        assert verify(conn).ok  # self-consistent again...
        report = verify(conn, expect=(noted.head_seq, noted.head_hash))
    assert not report.ok and "rewritten" in str(report.problem)  # ...but not the chain that was noted


def test_audit_verify_command_names_the_tampered_row(engine: Engine, db_url: str, tmp_path: Path) -> None:
    _write(engine, 4)
    env = {"MOTCUA_MODE": "production", "MOTCUA_SECRET_KEY": "x" * 40, "MOTCUA_DATABASE_URL": db_url}
    ok = run_cli("audit", "verify", env=env)
    assert ok.exit_code == 0 and "intact: 4 entries" in ok.stdout, ok.output
    head = ok.stdout.strip().rsplit(" ", 1)[1]
    victim = _chain(engine)[1][0]
    with engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET target_id = 'changed' WHERE id = :i"), {"i": victim})
    broken = run_cli("audit", "verify", "--expect", head, env=env)
    assert broken.exit_code == 1 and f"entry id {victim}" in broken.stderr, broken.output
    assert broken.exception is None or isinstance(broken.exception, SystemExit)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_entries_written_before_the_chain_existed_are_chained_by_the_migration(tmp_path: Path, backend: str) -> None:
    from contextlib import ExitStack

    from tests.utils import db

    with ExitStack() as stack:
        if backend == "sqlite":
            url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
        else:
            if db.pg_reachable():
                pytest.skip(str(db.pg_reachable()))
            url = stack.enter_context(db.private_pg_database())
        upgrade(url, "0004")
        engine = make_engine(url)
        with engine.begin() as conn:
            for i in range(3):
                conn.execute(text("INSERT INTO audit_log (at, actor, action, target_type, target_id, detail) VALUES "
                                  "(:at, 'cli', 'user.create', 'user', :i, :d)"),
                             {"at": datetime(2026, 11, i + 1, 8, 0, 0, 123450 + i, tzinfo=UTC), "i": str(i),
                              "d": '{"role": "viewer", "ý": 1.5}'})
        upgrade(url)
        _write(engine, 1)  # and the code goes on from where the migration left the head
        with engine.connect() as conn:
            report = verify(conn)
        engine.dispose()
    assert report.ok and report.entries == 4


def test_an_engine_without_the_commit_hook_is_refused_rather_than_losing_entries(tmp_path: Path) -> None:
    from sqlalchemy import create_engine

    bare = create_engine(f"sqlite:///{tmp_path / 'bare.sqlite3'}")
    with pytest.raises(RuntimeError, match="make_engine"), bare.begin() as conn:
        record(conn, actor="user:x", action="test", target_type="t", target_id=1)
