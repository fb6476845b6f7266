"""`motcua ingest --workers N`: N ingest processes sharing one MQTT 5 shared subscription.

Why processes: one Python process is bound by its interpreter lock at a few thousand events per
second (paho's receive path alone takes about half of it, docs/benchmarks.md). Correctness does not
depend on how many workers there are: the database's unique key and row locks keep every event
stored exactly once (tests/test_ingest_resilience.py runs two).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from multiprocessing.process import BaseProcess
from pathlib import Path

log = logging.getLogger("motcua.ingest.workers")

RESTART_MIN_S = 1.0  # a worker that dies is restarted after this, doubling up to RESTART_MAX_S
RESTART_MAX_S = 30.0
DEFAULT_GROUP = "motcua-ingest"


def _worker(index: int, config_file: str | None, metrics_port: int | None) -> None:
    """One worker process: its own client id, the shared group, configs published by worker 0 only."""
    base = os.environ.get("MOTCUA_MQTT__CLIENT_ID", "motcua-ingest")
    os.environ["MOTCUA_MQTT__CLIENT_ID"] = f"{base}-{index}"
    os.environ.setdefault("MOTCUA_MQTT__SHARED_GROUP", DEFAULT_GROUP)
    os.environ["MOTCUA_INGEST__PUBLISH_CONFIG"] = "true" if index == 0 else "false"
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s %(levelname)-7s [worker {index}] %(name)s: "
                                                   "%(message)s")
    from prometheus_client import CollectorRegistry, start_http_server

    from server.db.engine import make_engine
    from server.ingest.service import IngestService
    from server.settings import load_settings

    settings = load_settings(Path(config_file) if config_file else None)
    registry = CollectorRegistry()
    if metrics_port:
        start_http_server(metrics_port + index, addr="127.0.0.1", registry=registry)
    service = IngestService(settings, make_engine(settings.database_url), registry=registry).start()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    service.stop()


class Supervisor:
    def __init__(self, workers: int, config_file: Path | None, metrics_port: int | None) -> None:
        self.count = workers
        self.config_file = str(config_file) if config_file else None
        self.metrics_port = metrics_port
        self.ctx = multiprocessing.get_context("spawn")
        self.procs: dict[int, BaseProcess] = {}
        self.pause: dict[int, float] = {}
        self.stopping = threading.Event()

    def _start(self, index: int) -> None:
        proc = self.ctx.Process(target=_worker, args=(index, self.config_file, self.metrics_port),
                                name=f"motcua-ingest-{index}", daemon=False)
        proc.start()
        self.procs[index] = proc
        log.info("ingest worker %d started (pid %s)", index, proc.pid)

    def run(self) -> None:
        """Start the workers and keep them running until SIGINT/SIGTERM."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stopping.set())
        for i in range(self.count):
            self._start(i)
        while not self.stopping.wait(0.5):
            for i, proc in list(self.procs.items()):
                if not proc.is_alive():
                    self._revive(i, proc)
        self._stop_all()

    def _revive(self, index: int, proc: BaseProcess) -> None:
        pause = self.pause.get(index, RESTART_MIN_S)
        log.error("ingest worker %d exited with %s; restarting in %.0f s", index, proc.exitcode, pause)
        if self.stopping.wait(pause):
            return
        self.pause[index] = min(pause * 2, RESTART_MAX_S)
        self._start(index)

    def _stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.is_alive() and proc.pid:
                os.kill(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for proc in self.procs.values():
            proc.join(max(0.1, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
