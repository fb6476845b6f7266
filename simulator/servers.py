"""The server side of a simulation: ingest worker processes on the simulated clock, and the HTTP API.

The workers are the real `IngestService`, given the simulated clock through its `clock` argument (the
one way the server's ingest reads time), so events are received at simulated times and every check of
docs/protocol.md §4 runs as it does in production. A server restart SIGKILLs them and starts new ones.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
from multiprocessing.process import BaseProcess
from typing import Any

from simulator.clock import SimClock
from simulator.firmware import device_heartbeat_s
from simulator.scenario import Scenario

log = logging.getLogger("motcua.simulator")

# Real seconds of network delay the server's reset detector must tolerate. Every real delay is magnified
# by the compression in simulated time, so this tolerance (ingest.epoch_reuse_gap_ms, 60 s by default)
# is scaled by it; the tolerances about people (misuse window, clock conflicts) are not.
DELAY_TOLERANCE_REAL_S = 5.0


def server_settings(*, database_url: str, broker_url: str, clock: SimClock, workers: int,
                    scenario: Scenario | None = None) -> dict[str, Any]:
    """Settings (as keyword arguments) for every server process of the run."""
    import secrets

    gap = max(60_000, int(DELAY_TOLERANCE_REAL_S * 1000 * clock.max_factor))
    extra: dict[str, Any] = {}
    if scenario is not None and scenario.devices.micropython:
        # The firmware follows the server's signed config (protocol §5): its heartbeat period, on the
        # box's simulated clock, for one every heartbeat_s real seconds in office hours as the CPython
        # devices beat; and the scenario's scale, which sets how many buttons the box takes.
        levels = scenario.scenario.levels
        extra["devices"] = {"heartbeat_s": device_heartbeat_s(scenario.devices.heartbeat_s,
                                                              scenario.scenario.compression),
                            "scale_labels": [f"Mức {i}" for i in range(1, levels + 1)]}
    return {**extra,
        "mode": "production", "secret_key": secrets.token_urlsafe(32), "database_url": database_url,
        "mqtt": {"url": broker_url, "protocol": 5, "client_id": "sim-ingest",
                 "shared_group": "sim-ingest" if workers > 1 else None},
        "ingest": {"epoch_reuse_gap_ms": gap},
        "api": {"host": "127.0.0.1", "port": 0},
    }


def ingest_main(index: int, kwargs: dict[str, Any], clock: SimClock) -> None:
    """One ingest worker process (as `motcua ingest --workers N` runs them), on the simulated clock."""
    logging.basicConfig(level=logging.WARNING, format=f"%(asctime)s %(levelname)-7s [ingest {index}] "
                                                      "%(name)s: %(message)s")
    from prometheus_client import CollectorRegistry

    from server.db.engine import make_engine
    from server.ingest.service import IngestService
    from server.settings import Settings

    mqtt = {**kwargs["mqtt"], "client_id": f"{kwargs['mqtt']['client_id']}-{index}"}
    ingest = {**kwargs["ingest"], "publish_config": index == 0}
    settings = Settings(**{**kwargs, "mqtt": mqtt, "ingest": ingest})
    service = IngestService(settings, make_engine(settings.database_url), registry=CollectorRegistry(),
                            clock=clock.now_s).start()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    parent = os.getppid()
    while not stop.wait(1.0) and os.getppid() == parent:  # an orphaned worker stops by itself
        pass
    service.stop()


class IngestFleet:
    def __init__(self, count: int, kwargs: dict[str, Any], clock: SimClock) -> None:
        self.count, self.kwargs, self.clock = count, kwargs, clock
        self.ctx = multiprocessing.get_context("spawn")
        self.procs: list[BaseProcess] = []

    def start(self) -> IngestFleet:
        self.procs = [self.ctx.Process(target=ingest_main, args=(i, self.kwargs, self.clock),
                                       name=f"sim-ingest-{i}") for i in range(self.count)]
        for p in self.procs:
            p.start()
        return self

    def kill(self) -> None:
        """Crash every worker at once: what was received but not committed is never acknowledged."""
        for p in self.procs:
            if p.pid is not None and p.is_alive():
                p.kill()
        for p in self.procs:
            p.join(10)

    def restart(self) -> None:
        self.kill()
        self.start()

    def stop(self) -> None:
        for p in self.procs:
            if p.is_alive() and p.pid is not None:
                p.terminate()  # SIGTERM: the worker commits and acks what it holds, then leaves
        for p in self.procs:
            p.join(30)
            if p.is_alive():
                p.kill()
