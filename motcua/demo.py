"""`motcua demo`: the whole pipeline on one machine in one process, with a simulated office.

Embedded broker (or --broker), a fresh SQLite database in the data folder, ingest, the HTTP API and
console, and simulated counters. Everything a real deployment runs, minus the hardware. The office is
the one the `small-ward` scenario describes (simulator/scenarios/small-ward.toml), on the real clock.
"""

from __future__ import annotations

import logging
import secrets
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from motcua.embedded_broker import EmbeddedBroker
from server import queries, registry
from server.api.app import create_app
from server.db.engine import make_engine, upgrade
from server.ingest.service import IngestService
from server.runtime import HttpServer, check_port
from server.settings import Settings
from simulator.office import SimulatedOffice, first_counters
from simulator.scenario import load_scenario
from simulator.world import World, build_world

log = logging.getLogger("motcua.demo")

SCENARIO = "small-ward"  # the demo's office: its units, counters, services and officials


def _settings(data_dir: Path, broker_url: str, port: int, embedded: bool) -> Settings:
    return Settings(
        mode="demo",
        database_url=f"sqlite:///{data_dir / 'motcua.sqlite3'}",
        data_dir=data_dir,
        # amqtt speaks MQTT 3.1.1 only; an external broker (Mosquitto) gets MQTT 5.
        mqtt={"url": broker_url, "protocol": 311 if embedded else 5, "client_id": "motcua-demo-ingest"},
        api={"host": "127.0.0.1", "port": port},
        devices={"heartbeat_s": 15},
    )


def _fresh(data_dir: Path) -> None:
    # The demo owns this folder: a new run starts from an empty office so its summary means something.
    for name in ("motcua.sqlite3", "motcua.sqlite3-wal", "motcua.sqlite3-shm"):
        (data_dir / name).unlink(missing_ok=True)
    shutil.rmtree(data_dir / "devices", ignore_errors=True)
    data_dir.mkdir(parents=True, exist_ok=True)


def office_world(scenario: str = SCENARIO, counters: int | None = None) -> World:
    """The office the demo runs; ValueError (ScenarioError) for a bad scenario or more counters than it has."""
    return first_counters(build_world(load_scenario(scenario)), counters)


def run_demo(*, broker: str | None, port: int, data_dir: Path, exit_after: float | None, world: World,
             rate: float, stop: threading.Event | None = None) -> dict[str, Any]:
    """Run until Ctrl-C (or `exit_after` seconds); return the summary of what was stored."""
    check_port("127.0.0.1", port)
    _fresh(data_dir)
    embedded = EmbeddedBroker().start() if broker is None else None
    settings = _settings(data_dir, embedded.url if embedded else broker or "", port, embedded is not None)
    upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    password = secrets.token_urlsafe(9)
    with engine.begin() as conn:
        registry.create_user(conn, username="demo", password=password, role="admin", actor="demo")
    metrics = CollectorRegistry()
    ingest = IngestService(settings, engine, registry=metrics).start()
    http = HttpServer(create_app(settings, engine, registry=metrics, ingest=ingest), "127.0.0.1", port).start()
    office = SimulatedOffice(engine=engine, broker_host=settings.mqtt.host, broker_port=settings.mqtt.port,
                             api_url=http.url, state_dir=data_dir / "devices", world=world, rate=rate)
    try:
        office.provision()
        office.start()
        _announce(http.url, office.unit_code, password, settings.mqtt.url, exit_after)
        _wait(stop or threading.Event(), exit_after)
    finally:
        log.info("stopping: letting the simulated devices deliver what they hold")
        left = office.stop()
        ingest.wait_idle(10)
        http.stop()
        ingest.stop()
        if embedded:
            embedded.stop()
    with engine.connect() as conn:
        summary = queries.ingest_summary(conn)
    summary["still_in_device_outboxes"] = left
    engine.dispose()
    return summary


def _announce(url: str, unit: str, password: str, broker_url: str, exit_after: float | None) -> None:
    lines = [
        "",
        "  motcua demo is running",
        f"  open      {url}/units/{unit}   (live page of the simulated ward office)",
        f"  login     demo / {password}   (a new password every run; demo only)",
        f"  API docs  {url}/docs      metrics {url}/metrics      broker {broker_url}",
        "  stop      Ctrl-C" + (f" (or wait {exit_after:g} s)" if exit_after else ""),
        "",
    ]
    print("\n".join(lines), flush=True)


def _wait(stop: threading.Event, exit_after: float | None) -> None:
    from motcua.cli import wait_for_signal

    if exit_after is not None:
        timer = threading.Timer(exit_after, stop.set)
        timer.daemon = True
        timer.start()
    started = time.monotonic()
    wait_for_signal(stop)
    log.info("demo ran for %.0f s", time.monotonic() - started)
