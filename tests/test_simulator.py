"""The simulator: scenario validation, determinism, a short chaos run against the real Mosquitto and
PostgreSQL with every fault, a verify that catches a lost and a misattributed event, and the fairness
report's property."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select, update

from server.db.models import EVENTS, OFFICIALS
from simulator.scenario import FAULTS, ScenarioError, builtin_names, load_scenario, parse_scenario
from simulator.world import build_world
from tests.utils import db

SHIPPED = {"small-ward", "district-day", "province-month", "chaos"}


def _chaos_data() -> dict[str, Any]:
    text = resources.files("simulator").joinpath("scenarios", "chaos.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


# --- scenario files ------------------------------------------------------------------------------


def test_the_four_shipped_scenarios_load_and_province_month_has_500_counters() -> None:
    assert set(builtin_names()) >= SHIPPED
    assert load_scenario("province-month").counters >= 500
    assert set(load_scenario("chaos").faults.on()) == set(FAULTS)


@pytest.mark.parametrize(("patch", "expected"), [
    ({"office": {"counter_per_unit": 3}}, "office.counter_per_unit: unknown key"),
    ({"office": {"shifts": ["13:00-11:00"]}}, "office.shifts: Value error"),
    ({"office": {"counters_per_unit": 6, "officials_per_unit": 3}}, "must be at least counters_per_unit"),
    ({"faults": {"network_drop": {"minutes": [90, 10]}}}, "faults.network_drop.minutes"),
    ({"citizens": {"per_counter_hour": {"25": 3}}}, "keys are hours"),
    ({"scenario": {"name": "Bad Name"}}, "scenario.name"),
    ({"office": {"units": 100, "counters_per_unit": 4, "officials_per_unit": 4}, "devices": {"hosts": 2}},
     "at most 150 fit (paho's select() cannot watch more sockets): set devices.hosts >= 3"),
])
def test_a_bad_scenario_names_the_file_the_key_and_the_fix(patch: dict[str, Any], expected: str) -> None:
    data = _chaos_data()
    for section, values in patch.items():
        data[section] = {**data.get(section, {}), **values}
    with pytest.raises(ScenarioError) as err:
        parse_scenario(data, source="my.toml")
    assert "my.toml: " in str(err.value) and expected.split(": ")[0] in str(err.value)
    assert expected.split(": ")[-1].removeprefix("Value error") in str(err.value)


def test_missing_name_and_broken_toml_are_explained(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"x.toml: scenario.name: required: add it"):
        parse_scenario({"scenario": {}}, source="x.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[scenario\nname = 1\n")
    with pytest.raises(ScenarioError, match=r"bad.toml: not valid TOML .*fix the syntax"):
        load_scenario(bad)
    with pytest.raises(ScenarioError, match=r"no such scenario file, and not a shipped scenario"):
        load_scenario("no-such-scenario")


def test_the_cli_refuses_a_bad_scenario_with_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[scenario]\nname = "x"\ndays = 0\n')
    res = subprocess.run([sys.executable, "-m", "motcua", "simulate", "--scenario", str(bad)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    assert "bad.toml: scenario.days" in res.stderr and "greater than or equal to 1" in res.stderr


def test_the_world_is_the_same_for_the_same_seed_and_differs_for_another() -> None:
    sc = load_scenario("chaos")
    a, b = build_world(sc), build_world(sc)
    assert [(x.at_ms, x.kind, x.counter, x.args) for x in a.actions] == [(x.at_ms, x.kind, x.counter, x.args)
                                                                          for x in b.actions]
    other = parse_scenario({**_chaos_data(), "scenario": {**_chaos_data()["scenario"], "seed": 8}}, source="-")
    assert [x.at_ms for x in build_world(other).actions] != [x.at_ms for x in a.actions]
    kinds = {x.kind for x in a.actions}
    assert {"press", "sign_in", "sign_out", "net_drop", "power_cut", "broker_restart", "server_restart"} <= kinds


# --- a short chaos run, then verify ----------------------------------------------------------------


@pytest.fixture(scope="module")
def chaos_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, Any], Path, str]]:
    why = db.pg_reachable()
    if why:
        from tests.utils.services import unavailable

        unavailable(why)
    from motcua.localbroker import mosquitto_binary

    if mosquitto_binary() is None:
        from tests.utils.services import unavailable

        unavailable("the mosquitto binary is not installed")
    from simulator.run import RunOptions, run_simulation

    data = _chaos_data()
    data["scenario"].update(compression=1500, warmup_s=4, drain_s=40)  # the day in ~25 s
    data["office"].update(units=1, counters_per_unit=5, officials_per_unit=6)
    sc = parse_scenario(data, source="chaos (test)")
    out = tmp_path_factory.mktemp("chaos")
    with db.private_pg_database() as url:
        manifest = run_simulation(sc, RunOptions(out=out, database_url=url, quiet=True))
        yield manifest, out, url


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.broker
def test_chaos_every_fault_fires_and_nothing_is_lost_forged_or_misattributed(
        chaos_run: tuple[dict[str, Any], Path, str]) -> None:
    from simulator.verify import verify

    manifest, out, url = chaos_run
    engine = db.engine_for(url)
    report = verify(engine, out, manifest)
    engine.dispose()
    assert report["faults_not_fired"] == [], report["faults_fired"]
    assert set(report["faults_fired"]) == set(FAULTS)
    assert (report["lost"], report["wrongly_accepted"], report["misattributed"], report["misclassified"]) == \
           (0, 0, 0, 0), report["examples"]
    assert report["ok"] and report["stored"] == report["sent_genuine"] > 50
    q = report["quarantined"]
    assert q["bad_signature"] >= 1 and q["malformed"] >= 1 and q["unknown_device"] >= 1
    assert report["duplicates_suppressed"] >= report["duplicates_injected"] >= 1
    assert manifest["left_in_outboxes"] == 0 and manifest["session_calls_failed"] == 0


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.broker
def test_verify_catches_a_deleted_event_and_a_moved_one(chaos_run: tuple[dict[str, Any], Path, str]) -> None:
    from simulator.verify import verify

    manifest, out, url = chaos_run
    engine = db.engine_for(url)
    with engine.begin() as conn:
        rows = conn.execute(select(EVENTS.c.id, EVENTS.c.official_id).where(
            EVENTS.c.typ == "rating", EVENTS.c.official_id.is_not(None)).order_by(EVENTS.c.id).limit(2)).all()
        other = conn.execute(select(OFFICIALS.c.id).where(OFFICIALS.c.id != rows[1].official_id)).scalar()
        conn.execute(delete(EVENTS).where(EVENTS.c.id == rows[0].id))
        conn.execute(update(EVENTS).where(EVENTS.c.id == rows[1].id).values(official_id=other))
    report = verify(engine, out, manifest)
    engine.dispose()
    assert (report["lost"], report["misattributed"]) == (1, 1)
    assert not report["ok"]
    res = subprocess.run([sys.executable, "-m", "motcua", "simulate", "verify", "--out", str(out)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 1, res.stderr[-2000:]
    last = json.loads(res.stdout.strip().splitlines()[-1])
    assert (last["lost"], last["misattributed"], last["wrongly_accepted"]) == (1, 1, 0)
    assert "VERIFY FAILED" in res.stdout and "<-- must be 0" in res.stdout


# --- fairness ------------------------------------------------------------------------------------


def test_fairness_our_score_misgrades_fewer_than_the_naive_average_at_30_ratings_or_fewer() -> None:
    from simulator.fairness import fairness_report

    report = fairness_report(load_scenario("province-month"), per_bin=1000, seed=2)
    few = [report["bins"][k] for k in ("1-5", "6-10", "11-30")]
    ours = sum(b["ours_misgrade"] * b["officials"] for b in few)
    naive = sum(b["naive_misgrade"] * b["officials"] for b in few)
    assert ours < naive, report["bins"]
    assert report["bins"]["1-5"]["ours_mae"] < report["bins"]["1-5"]["naive_mae"]
    assert all(b["officials"] == 1000 for b in report["bins"].values())


def test_fairness_cli_prints_a_table_a_chart_and_json(tmp_path: Path) -> None:
    chart = tmp_path / "fair.svg"
    res = subprocess.run([sys.executable, "-m", "motcua", "simulate", "fairness", "--scenario", "small-ward",
                          "--per-bin", "40", "--chart", str(chart)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "ours misgraded" in res.stdout and chart.read_text().lstrip().startswith("<?xml")
    assert set(json.loads(res.stdout.strip().splitlines()[-1])["bins"]) == {"1-5", "6-10", "11-30", "31-100",
                                                                            "101-300"}
