"""Shared fixtures. Service fixtures live in tests/utils/services.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.utils.services import Mosquitto


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A private Mosquitto for one test (MQTT 3.1.1 and 5, anonymous, no persistence)."""
    broker = Mosquitto(tmp_path).start()
    try:
        yield broker
    finally:
        broker.kill()
