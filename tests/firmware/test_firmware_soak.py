"""Soak (issue 3): 10,000 presses through the whole firmware under `micropython -X heapsize=128k`,
over a real Mosquitto to the ack harness: no MemoryError, every press stored once, heap measured.

The presses are injected at the debounced-press ring (board_host `burst`), one per main-loop pass:
the pin/timer layer is covered by the button tests, and a human cannot press 10,000 times quickly.
The figures are printed (run with -s) and reported in docs/firmware.md "Benchmarks";
bench/firmware/bench_firmware.py --soak prints the same."""

from __future__ import annotations

import pytest

from tests.firmware.ack_harness import AckHarness
from tests.firmware.conftest import DEVICE, BoxFactory

PRESSES = 10_000
# Regression guards, not the targets: the heap in use may grow this much over its start-up level,
# and must leave this much of the 128 KB free at its peak (figures in docs/firmware.md).
MAX_GROWTH = 16 * 1024
MIN_FREE_AT_PEAK = 32 * 1024


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_soak_10000_presses_in_a_128k_heap(harness: AckHarness, make_box: BoxFactory) -> None:
    harness.publish_staffed_config(DEVICE)  # retained: what a box gets at every connect (§5)
    fw = make_box().start()
    fw.wait_for("cfg")
    fw.burst(PRESSES)
    fw.wait_for("burst_done", timeout=180)
    harness.wait_until(lambda: len(harness.stored) >= PRESSES, timeout=120, what="10,000 events stored")
    st = fw.wait_drained(timeout=60)
    assert "MemoryError" not in fw.output() and fw.running
    assert st["seq"] == PRESSES and st["overflow"] == 0 and st["dropped"] == 0
    assert sorted(harness.stored) == [(DEVICE, fw.epoch, s) for s in range(1, PRESSES + 1)]
    assert harness.conflicts == [] and harness.refused == []
    base, peak = st["base_alloc"], st["peak_alloc"]
    print(f"\nsoak: {PRESSES} presses; heap in use after start-up {base} B, peak {peak} B "
          f"(+{peak - base} B), live peak after collections {st['peak_live']} B, "
          f"longest main-loop gap {st['wdt_max_gap']} ms")
    assert peak - base < MAX_GROWTH
    assert 128 * 1024 - peak > MIN_FREE_AT_PEAK
