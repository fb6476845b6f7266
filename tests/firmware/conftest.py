"""Fixtures of the firmware tests: a device identity, the ack harness, firmware processes."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.firmware.ack_harness import AckHarness
from tests.firmware.firmware_process import FirmwareProcess
from tests.utils.services import Mosquitto

DEVICE = "esp32-test01"
SECRET = hashlib.sha256(b"motcua firmware test device").hexdigest()


@pytest.fixture
def harness(mosquitto: Mosquitto) -> Iterator[AckHarness]:
    """The server's part at the MQTT level: verify, record, then ack (tests/firmware/ack_harness.py)."""
    h = AckHarness("127.0.0.1", mosquitto.port, {DEVICE: SECRET}).start()
    try:
        yield h
    finally:
        h.stop()


BoxFactory = Callable[..., FirmwareProcess]


@pytest.fixture
def make_box(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[BoxFactory]:
    """Firmware processes (not started) on the test's broker; killed at the end of the test."""
    boxes: list[FirmwareProcess] = []

    def make(*, port: int | None = None, name: str = "box", **knobs: Any) -> FirmwareProcess:
        box = FirmwareProcess(device_id=DEVICE, secret_hex=SECRET, mqtt_port=port or mosquitto.port,
                              state_dir=tmp_path / name, knobs=knobs)
        boxes.append(box)
        return box

    yield make
    for box in boxes:
        box.kill()
