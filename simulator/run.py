"""`motcua simulate --scenario FILE`: the composition root of a simulation run.

Steps: build the world from the scenario; a private Mosquitto; a fresh database, migrated and
provisioned; the simulated clock; ingest workers and the HTTP API; device hosts; the queue systems and
installation-wide faults; progress while it runs; then drain, stop, and write the run manifest that
`motcua simulate verify` reads together with the ground-truth files.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select

from motcua.localbroker import Mosquitto, free_port
from server.db.engine import make_engine, upgrade
from server.db.models import EVENTS
from simulator.clock import SimClock, build_clock
from simulator.firmware import build_firmware
from simulator.fleet import STATUS_FIELDS, HostConfig, host_main
from simulator.provision import Provisioned, provision, require_empty
from simulator.queue_system import QueueSystem
from simulator.scenario import Scenario
from simulator.servers import IngestFleet, server_settings
from simulator.world import ZONE, World, build_world

log = logging.getLogger("motcua.simulator")

SPAWN_MARGIN_S = 4.0  # processes start (imports, 500 MQTT connections) before the warm-up begins
PROGRESS_EVERY_S = 2.0
SETTLE_S = 3.0  # after the outboxes are empty: heartbeats re-time what waited for an anchor (protocol §4)
MANIFEST = "run.json"


@dataclass
class RunOptions:
    out: Path
    database_url: str | None = None
    broker: str | None = None  # an external broker (no broker restarts then)
    state_dir: Path | None = None
    quiet: bool = False


@dataclass
class Progress:
    stream: Any = sys.stderr
    started: float = field(default_factory=time.monotonic)
    last: float = 0.0

    def show(self, text: str, *, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self.last >= PROGRESS_EVERY_S:
            self.last = now
            print(f"[{now - self.started:6.1f} s] {text}", file=self.stream, flush=True)


def _database(opts: RunOptions) -> str:
    if opts.database_url:
        return opts.database_url
    path = opts.out / "motcua-sim.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return f"sqlite:///{path}"


def _state_dir(opts: RunOptions) -> Path:
    # Outboxes fsync every press (synchronous=FULL); on tmpfs that costs nothing, and power cuts here are
    # process kills, which the outbox survives either way.
    if opts.state_dir:
        shutil.rmtree(opts.state_dir, ignore_errors=True)
        opts.state_dir.mkdir(parents=True)
        return opts.state_dir
    shm = Path("/dev/shm")  # noqa: S108 - mkdtemp makes a private 0700 folder inside it
    return Path(tempfile.mkdtemp(prefix="motcua-sim-", dir=shm if shm.is_dir() else None))


class Simulation:
    def __init__(self, scenario: Scenario, opts: RunOptions) -> None:
        self.sc, self.opts = scenario, opts
        self.progress = Progress(stream=open("/dev/null", "w") if opts.quiet else sys.stderr)  # noqa: SIM115
        self.world: World = build_world(scenario)
        if any(c.kind == "kiosk" for c in self.world.counters.values()):
            _require_kiosk_libraries()  # before the database and the broker are touched
        self.broker: Mosquitto | None = None
        self.ingest: IngestFleet | None = None
        self.http: Any = None
        self.queue: QueueSystem | None = None
        self.hosts: list[tuple[BaseProcess, Any]] = []
        self.ctx = multiprocessing.get_context("spawn")
        self.stop_evt = self.ctx.Event()
        self.shutdown_evt = self.ctx.Event()
        self.timings: dict[str, float] = {}

    # --- composition ---------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        started = time.monotonic()
        self.opts.out.mkdir(parents=True, exist_ok=True)
        for old in self.opts.out.glob("truth-*.jsonl"):
            old.unlink()
        try:
            url, engine, made = self._setup()
            clock = self._clock()
            self._start_servers(url, clock, engine)
            self._start_hosts(made, clock)
            self._start_queue(made, clock)
            self._watch(engine, clock)
            self._drain(engine)
        finally:
            self._teardown()
        self.timings["total_s"] = round(time.monotonic() - started, 1)
        return self._manifest(url)

    def _setup(self) -> tuple[str, Engine, Provisioned]:
        t = time.monotonic()
        url = _database(self.opts)
        upgrade(url)
        engine = make_engine(url)
        require_empty(engine)
        c = self.world
        self.progress.show(f"scenario {self.sc.name}: {len(c.units)} units, {len(c.counters)} counters, "
                           f"{len(c.officials)} officials, {sum(a.kind == 'press' for a in c.actions)} presses "
                           f"planned over {self.sc.scenario.days} day(s); provisioning", force=True)
        made = provision(engine, self.world)
        if self.opts.broker is None:
            self.broker = Mosquitto(self.opts.out / "broker", max_queued=100_000).start()
        self.timings["setup_s"] = round(time.monotonic() - t, 1)
        return url, engine, made

    @property
    def broker_url(self) -> str:
        return self.broker.url if self.broker is not None else (self.opts.broker or "")

    def _clock(self) -> SimClock:
        warm = self.sc.scenario.warmup_s
        return build_clock(real_start=time.time() + SPAWN_MARGIN_S, warm_from_ms=self.world.start_ms - int(warm * 1000),
                           busy=self.world.busy, end_ms=self.world.end_ms, warmup_s=warm,
                           factor=self.sc.scenario.compression)

    def _start_servers(self, url: str, clock: SimClock, engine: Engine) -> None:
        from prometheus_client import CollectorRegistry

        from server.api.app import create_app
        from server.runtime import HttpServer
        from server.settings import Settings

        workers = self.sc.ingest.workers if not url.startswith("sqlite") else 1  # SQLite has one writer
        kwargs = server_settings(database_url=url, broker_url=self.broker_url, clock=clock, workers=workers,
                                 scenario=self.sc)
        kwargs["api"]["port"] = free_port()
        kwargs["data_dir"] = str(self.opts.out / "server")  # the run's clip store, which verify reads
        self.server_kwargs = kwargs
        self.ingest = IngestFleet(workers, kwargs, clock).start()
        settings = Settings(**kwargs)
        self.clip_store = settings.clips_dir / "store"
        self.http = HttpServer(create_app(settings, engine, registry=CollectorRegistry(), ingest=None),
                               "127.0.0.1", kwargs["api"]["port"]).start()

    def _start_hosts(self, made: Provisioned, clock: SimClock) -> None:
        host, port = "127.0.0.1", int(self.broker_url.rsplit(":", 1)[1])
        state = _state_dir(self.opts)
        self.state_dir = state
        d = self.sc.devices
        # Built once here, not in each host: the hosts copy it into every counter's flash directory.
        build = build_firmware() if any(c.firmware for c in self.world.counters.values()) else None
        for i in range(d.hosts):
            counters = [c for c in self.world.counters.values() if c.host == i]
            cfg = HostConfig(index=i, clock=clock, broker=(host, port), counters=counters,
                             secrets={c.device_id: made.secrets[c.device_id] for c in counters},
                             actions=self.world.for_host(i), levels=self.sc.scenario.levels, state_dir=state,
                             truth_path=self.opts.out / f"truth-host-{i}.jsonl", heartbeat_s=d.heartbeat_s,
                             # On the device's clock: at the fastest compression (nights), so re-sends never
                             # come faster than every resend_after_s of real time.
                             resend_after_s=d.resend_after_s * clock.max_factor, tick_s=d.tick_s,
                             verifiers=made.verifiers, api_url=self.http.url, kiosk=self.sc.kiosk,
                             firmware_build=build, office_factor=self.sc.scenario.compression)
            status = self.ctx.Array("d", len(STATUS_FIELDS), lock=False)
            proc = self.ctx.Process(target=host_main, args=(cfg, self.stop_evt, self.shutdown_evt, status),
                                    name=f"sim-host-{i}")
            proc.start()
            self.hosts.append((proc, status))

    def _start_queue(self, made: Provisioned, clock: SimClock) -> None:
        assert self.http is not None and self.ingest is not None
        restart_broker = self.broker.restart if self.broker is not None else None
        self.queue = QueueSystem(api_url=self.http.url, token=made.token, clock=clock,
                                 truth_path=self.opts.out / "truth-queue.jsonl", restart_broker=restart_broker,
                                 restart_server=self.ingest.restart)
        self.queue.start(self.world.orchestrated(), {c.code: c.unit for c in self.world.counters.values()})

    # --- while it runs -------------------------------------------------------------------------

    def _status(self) -> dict[str, float]:
        totals = dict.fromkeys(STATUS_FIELDS, 0.0)
        for _proc, status in self.hosts:
            for i, name in enumerate(STATUS_FIELDS):
                totals[name] = max(totals[name], status[i]) if name == "lag_s" else totals[name] + status[i]
        return totals

    def _line(self, engine: Engine, clock: SimClock | None, phase: str) -> str:
        with engine.connect() as conn:
            stored = conn.execute(select(func.count()).select_from(EVENTS)).scalar_one()
        s = self._status()
        when = ""
        if clock is not None:
            now = min(clock.now_ms(), self.world.end_ms)
            done = (now - self.world.start_ms) / max(1, self.world.end_ms - self.world.start_ms)
            when = f"{datetime.fromtimestamp(now / 1000, ZONE):%Y-%m-%d %H:%M} ({max(0.0, done):4.0%}) "
        return (f"{phase} {when}sent {int(s['sent']):,}  stored {stored:,}  in outboxes {int(s['pending']):,}  "
                f"faults {int(s['faults'])}  host lag {s['lag_s']:.1f} s"
                + (f"  queue lag {self.queue.lag_s():.1f} s" if self.queue is not None else ""))

    def _watch(self, engine: Engine, clock: SimClock) -> None:
        t = time.monotonic()
        while True:
            dead = [p.name for p, _ in self.hosts if not p.is_alive()]
            if dead:
                raise RuntimeError(f"device host(s) {', '.join(dead)} died; see the log above")
            if all(s[3] for _, s in self.hosts) and self.queue is not None and self.queue.finished():
                break
            self.progress.show(self._line(engine, clock, "running"))
            time.sleep(0.5)
        self.timings["simulated_s"] = round(time.monotonic() - t, 1)

    def _drain(self, engine: Engine) -> None:
        t = time.monotonic()
        deadline = t + self.sc.scenario.drain_s
        while time.monotonic() < deadline and self._status()["pending"] > 0:
            self.progress.show(self._line(engine, None, "draining"))
            time.sleep(0.5)
        time.sleep(SETTLE_S + self.sc.devices.heartbeat_s)
        self.progress.show(self._line(engine, None, "drained"), force=True)
        self.left_in_outboxes = int(self._status()["pending"])
        self.timings["drain_s"] = round(time.monotonic() - t, 1)

    # --- the end -------------------------------------------------------------------------------

    def _teardown(self) -> None:
        self.stop_evt.set()
        if self.queue is not None:
            self.queue.stop()
        self.shutdown_evt.set()
        for proc, _ in self.hosts:
            proc.join(60)
            if proc.is_alive():
                proc.kill()
        if self.ingest is not None:
            self.ingest.stop()
        if self.http is not None:
            self.http.stop()
        if self.broker is not None:
            self.broker.kill()
        if getattr(self, "state_dir", None) and self.opts.state_dir is None:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def _manifest(self, url: str) -> dict[str, Any]:
        doc = {
            "scenario": self.sc.name, "database_url": url, "seed": self.sc.scenario.seed,
            "start": datetime.fromtimestamp(self.world.start_ms / 1000, UTC).isoformat(),
            "end": datetime.fromtimestamp(self.world.end_ms / 1000, UTC).isoformat(),
            "counters": len(self.world.counters), "officials": len(self.world.officials),
            "compression": self.sc.scenario.compression, "faults_enabled": self.sc.faults.on(),
            "left_in_outboxes": getattr(self, "left_in_outboxes", None),
            "session_calls_failed": self.queue.failed if self.queue else None, "timings": self.timings,
            "officials_quality": {o.code: round(o.quality, 4) for o in self.world.officials.values()},
            "broker_restartable": self.broker is not None,
            "clip_store": str(getattr(self, "clip_store", "")) or None,
        }
        (self.opts.out / MANIFEST).write_text(json.dumps(doc, indent=1, ensure_ascii=False), encoding="utf-8")
        return doc


class MissingLibrary(RuntimeError):
    pass


def _require_kiosk_libraries() -> None:
    try:
        import simulator.evidence  # noqa: F401  (OpenCV, PyAV: the kiosk's camera path)
    except ImportError as exc:
        raise MissingLibrary(f"kiosk counters run the real kiosk camera code, which needs {exc.name}: install "
                             "it with `pip install 'motcua[kiosk]'`, or set devices.kiosk_share = 0") from None


def run_simulation(scenario: Scenario, opts: RunOptions) -> dict[str, Any]:
    return Simulation(scenario, opts).run()
