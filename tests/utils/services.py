"""Real services for tests: a private Mosquitto per test, the machine's PostgreSQL.

On a machine without them tests skip with the reason; with MOTCUA_TEST_REQUIRE_SERVICES=1 (set by
.ci/run) a missing service fails the test instead, so CI always exercises the real ones.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from motcua.localbroker import Mosquitto as _Mosquitto
from motcua.localbroker import MosquittoMissing, free_port, wait_for_port

REQUIRE_ENV = "MOTCUA_TEST_REQUIRE_SERVICES"
__all__ = ["REQUIRE_ENV", "Mosquitto", "free_port", "unavailable", "wait_for_port"]


def unavailable(what: str) -> None:
    """Skip (or, under MOTCUA_TEST_REQUIRE_SERVICES=1, fail) because `what` is not available here."""
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{what} (required: {REQUIRE_ENV}=1)", pytrace=False)
    pytest.skip(what)


class Mosquitto(_Mosquitto):
    """The private broker, skipping (or failing under CI) when mosquitto is not installed."""

    def __init__(self, workdir: Path, **kwargs: object) -> None:
        super().__init__(workdir, **kwargs)  # type: ignore[arg-type]

    def start(self) -> Mosquitto:
        try:
            super().start()
        except MosquittoMissing as exc:
            unavailable(str(exc))
        return self
