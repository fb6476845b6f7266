"""`motcua month …`, `motcua webhook …` and unit-limited tokens, as an administrator runs them."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from typer.testing import CliRunner

from motcua.cli import app
from server.db.engine import make_engine
from server.db.models import TOKEN_UNITS
from tests.utils.evaluation import make_unit, rate


class Ran:
    """What `motcua ARGS` printed and returned, run in this process (no interpreter start-up per command)."""

    def __init__(self, args: tuple[str, ...], env: dict[str, str]) -> None:
        result = CliRunner().invoke(app, list(args), env=env)
        self.returncode, self.stdout, self.stderr = result.exit_code, result.stdout, result.stderr


def test_month_close_finalize_amend_verify_year_from_the_command_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    env = {"MOTCUA_MODE": "production", "MOTCUA_SECRET_KEY": "x" * 40, "MOTCUA_DATABASE_URL": url}

    def motcua(*args: str) -> Ran:
        return Ran(args, env)

    assert motcua("db", "upgrade").returncode == 0
    engine = make_engine(url)
    unit = make_unit(engine, "P-MK", officials=2)
    with engine.begin() as conn:
        rate(conn, unit, "P-MK-CB001", [0, 1, 9])
    assert "provisional" in motcua("month", "status", "2026-03").stdout
    token = motcua("admin", "token-create", "hr", "--scope", "read:scores", "--unit", "P-MK")
    assert token.returncode == 0 and token.stdout.startswith("mc_")
    with engine.connect() as conn:
        assert conn.execute(select(TOKEN_UNITS.c.unit_id)).scalars().all() == [unit.id]
    assert motcua("admin", "token-create", "hr", "--scope", "read:scores", "--unit", "NOPE").returncode == 2
    hook = motcua("webhook", "add", "hr", "http://127.0.0.1:9/hook", "--event", "month.final")
    assert hook.returncode == 0 and "whsec_" in hook.stdout
    early = motcua("month", "close", "2099-01")
    assert early.returncode == 2 and "not over yet" in early.stderr
    closed = motcua("month", "close", "2026-03")
    assert closed.returncode == 0, closed.stderr
    assert "closed 1 unit(s)" in closed.stdout and "2 officials" in closed.stdout and "aggregating" in closed.stderr
    assert "closed" in motcua("month", "status", "2026-03").stdout
    final = motcua("month", "finalize", "2026-03")
    assert final.returncode == 0 and "final for 1 unit(s): P-MK" in final.stdout
    assert "1 delivery attempt(s)" in final.stdout  # tried at once; the receiver is down, the server retries
    assert "pending" in motcua("webhook", "list").stdout
    verified = motcua("month", "verify", "2026-03")
    assert verified.returncode == 0 and "every stored score matches its digest" in verified.stdout
    nothing = motcua("month", "amend", "2026-03", "--unit", "P-MK", "--reason", "a check that changes nothing")
    assert nothing.returncode == 2 and "nothing to amend" in nothing.stderr
    tasks = tmp_path / "late.csv"
    tasks.write_text("period,official,key,points\n2026-03,P-MK-CB002,T1,3\n", encoding="utf-8")
    imported = motcua("tasks", "import", str(tasks))
    assert imported.returncode == 0 and "already closed or final: P-MK/2026-03" in imported.stdout
    amended = motcua("month", "amend", "2026-03", "--unit", "P-MK", "--reason", "task T1 arrived after the close")
    assert amended.returncode == 0 and "P-MK-CB002: version 2:" in amended.stdout
    year = motcua("month", "year", "2026")
    assert year.returncode == 0 and "P-MK-CB001" in year.stdout and "months=1" in year.stdout
    engine.dispose()
