"""The server's garbage-collector settings: start-up objects frozen, young collections rarer (HR p99)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from server.runtime import GC_THRESHOLDS, freeze_startup_heap


@pytest.fixture
def restore_gc() -> Iterator[None]:
    before = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


@pytest.mark.usefixtures("restore_gc")
def test_freezing_hides_the_start_up_heap_and_raises_the_thresholds() -> None:
    start_up = [{"n": i} for i in range(1000)]  # long-lived objects made before serving
    freeze_startup_heap()
    assert gc.get_freeze_count() >= len(start_up)
    assert gc.get_threshold() == GC_THRESHOLDS
    assert GC_THRESHOLDS[0] >= 10_000  # a 500-row page must be able to die young
