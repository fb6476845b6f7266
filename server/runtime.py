"""Starting and stopping the server's parts: ingest and the HTTP API (uvicorn)."""

from __future__ import annotations

import gc
import logging
import socket
import threading
import time

import uvicorn
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from server.api.app import create_app
from server.clips.service import ClipService
from server.evaluation.webhooks import Deliverer
from server.ingest.service import IngestService
from server.review.retention import RetentionTask
from server.settings import Settings

log = logging.getLogger("motcua.server")


class PortTaken(RuntimeError):
    pass


def check_port(host: str, port: int) -> None:
    """Fail early, with the fix, when another program already listens on the HTTP port."""
    if port == 0:
        return
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            raise PortTaken(f"{host}:{port} is already in use: stop the other program or choose another port "
                            "(--port, or MOTCUA_API__PORT)") from None


class HttpServer:
    """uvicorn in a background thread; `url` is known once it listens."""

    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning",
                                                    proxy_headers=True, lifespan="off"))
        self.host = host
        self.thread = threading.Thread(target=self.server.run, name="http", daemon=True)

    def start(self, timeout: float = 15.0) -> HttpServer:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the HTTP server did not start; see the log above")
            time.sleep(0.02)
        return self

    @property
    def port(self) -> int:
        sockets = self.server.servers[0].sockets
        return int(sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


GC_THRESHOLDS = (50_000, 20, 100)  # CPython's are (700, 10, 10)


def freeze_startup_heap() -> None:
    """Hide everything allocated at start-up from the garbage collector (gc.freeze), and collect less often.

    A full collection then scans only what requests allocate: on a 500-score HR page it took the p99
    from ~100 ms to ~60 ms (docs/benchmarks.md, Scoring), the pauses being scans of long-lived objects.
    One page allocates ~35,000 containers; at CPython's default thresholds that is 50 young collections
    per page, each promoting the page being built into older generations, whose collections were the
    rest of the tail. At GC_THRESHOLDS most of a page dies young (freed by reference counting, never
    scanned): p99 ~60 -> ~35 ms. Garbage in cycles waits a little longer for its collection.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def run_server(settings: Settings, engine: Engine, *, with_ingest: bool) -> None:
    """`motcua server`: until SIGINT/SIGTERM (uvicorn handles them in the main thread)."""
    check_port(settings.api.host, settings.api.port)
    registry = CollectorRegistry()
    ingest = IngestService(settings, engine, registry=registry).start() if with_ingest else None
    clips = ClipService.from_settings(settings, engine, with_worker=settings.clips.transcode)
    if clips.worker is not None:
        clips.worker.start()
    retention = RetentionTask(engine, clips.storage, settings).start() if settings.review.purge_every_h else None
    app = create_app(settings, engine, registry=registry, ingest=ingest, clip_service=clips)
    webhooks = Deliverer(engine, settings.webhooks).start() if settings.webhooks.deliver else None
    app.state.webhooks = webhooks  # woken by month close/finalise/amend requests
    freeze_startup_heap()
    try:
        uvicorn.run(app, host=settings.api.host, port=settings.api.port, log_level="info", proxy_headers=True,
                    lifespan="off")
    finally:
        if retention is not None:
            retention.stop()
        if webhooks is not None:
            webhooks.stop()
        if clips.worker is not None:
            clips.worker.stop()
        if ingest is not None:
            ingest.stop()
