"""`motcua demo` as a new user runs it: prints a URL and a login, fills the page, exits with a summary."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.utils.services import free_port, wait_for_port

pytestmark = pytest.mark.slow


def test_demo_runs_serves_and_prints_a_json_summary_last(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "motcua", "demo", "--exit-after", "14", "--port", str(port),
                             "--data-dir", str(tmp_path / "demo"), "--rate", "4"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        wait_for_port(port, timeout=30)
        time.sleep(6)  # let the office work for a while
        base = f"http://127.0.0.1:{port}"
        health = httpx.get(f"{base}/healthz")
        assert health.status_code == 200
        assert (health.json()["database"], health.json()["mqtt"]) == ("ok", "connected")
        assert "motcua_ingest_messages_total" in httpx.get(f"{base}/metrics").text
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err[-2000:]
    login = re.search(r"login\s+demo / (\S+)", out)
    assert login, out
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["events_stored"] > 10 and summary["ratings"] > 10
    assert isinstance(summary["quarantined"], dict) and isinstance(summary["duplicates"], int)
    assert summary["still_in_device_outboxes"] == 0
    assert "Traceback" not in err, err[max(0, err.find("Traceback") - 800):][:4000]
    _assert_the_office_is_small_ward(tmp_path / "demo" / "motcua.sqlite3", out)


def _assert_the_office_is_small_ward(database: Path, out: str) -> None:
    """The demo's office and the small-ward scenario are one definition: same units, counters and people."""
    from sqlalchemy import select

    from server.db.engine import make_engine
    from server.db.models import COUNTERS, DEVICES, OFFICIALS, UNITS
    from simulator.scenario import load_scenario
    from simulator.world import build_world

    world = build_world(load_scenario("small-ward"))
    engine = make_engine(f"sqlite:///{database}")
    with engine.connect() as conn:
        units = set(conn.execute(select(UNITS.c.code, UNITS.c.name)).all())
        counters = set(conn.execute(select(COUNTERS.c.code, COUNTERS.c.name, COUNTERS.c.service_type)).all())
        officials = set(conn.execute(select(OFFICIALS.c.code, OFFICIALS.c.full_name)).all())
        devices = set(conn.execute(select(DEVICES.c.id)).scalars())
    engine.dispose()
    assert units == set(world.units) and ("PHUONG001", "UBND phường Minh Khai (mô phỏng)") in units
    assert counters == {(c.code, c.name, c.service) for c in world.counters.values()}
    assert officials == {(o.code, o.name) for o in world.officials.values()}
    assert devices == {c.device_id for c in world.counters.values()}
    assert f"/units/{world.units[0][0]}" in out


def test_demo_refuses_more_counters_than_its_scenario_has(tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, "-m", "motcua", "demo", "--counters", "9", "--exit-after", "1",
                          "--data-dir", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    assert "small-ward has 4 counters" in res.stderr and "--counters 1..4" in res.stderr


def test_demo_refuses_a_taken_port_with_the_fix(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        res = subprocess.run([sys.executable, "-m", "motcua", "demo", "--port", str(port), "--exit-after", "1",
                              "--data-dir", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    assert "already in use" in res.stderr and "--port" in res.stderr
