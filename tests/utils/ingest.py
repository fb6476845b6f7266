"""Running the real ingest service (in-process or as a `motcua ingest` process) for tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select

from server.db.models import EVENTS
from server.ingest.service import IngestService
from server.settings import Settings
from tests.utils.services import Mosquitto


def ingest_settings(db_url: str, broker: Mosquitto, **sections: Any) -> Settings:
    ingest = {"batch_wait_ms": 5, **sections.pop("ingest", {})}
    mqtt = {"url": broker.url, "client_id": f"ingest-{uuid.uuid4().hex[:6]}", **sections.pop("mqtt", {})}
    return Settings(mode="demo", database_url=db_url, mqtt=mqtt, ingest=ingest, **sections)  # type: ignore[arg-type]


@contextmanager
def running_ingest(settings: Settings, engine: Engine) -> Iterator[IngestService]:
    service = IngestService(settings, engine).start()
    try:
        assert service.bus.wait_connected(10), "ingest did not connect to the broker"
        yield service
    finally:
        service.stop()


def wait_until(check: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    """Poll `check` until it returns something truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def count_events(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(EVENTS)).scalar_one())


def ingest_process(settings_env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """`motcua ingest` as a separate process (so tests can SIGKILL it)."""
    env = {**os.environ, **settings_env}
    with log_path.open("ab") as log:
        return subprocess.Popen([sys.executable, "-m", "motcua", "ingest"], env=env, stdout=log,
                                stderr=subprocess.STDOUT)
