"""Soak (issue 3): 10,000 presses through the whole firmware under `micropython -X heapsize=128k`,
over a real Mosquitto to the ack harness: no MemoryError, every press stored once, and the heap's
peak below issue 3's 48 KB. The box is configured as one at a counter is by default: NTP on (a
local SNTP server, re-syncs every 5 s here), the retained config of a staffed counter.

The presses are injected at the debounced-press ring (board_host `burst`), one per main-loop pass:
the pin/timer layer is covered by the button tests, and a human cannot press 10,000 times quickly.
The figures are printed (run with -s) and reported in docs/firmware.md "Benchmarks";
bench/firmware/bench_firmware.py --soak prints the same."""

from __future__ import annotations

import pytest

from tests.firmware.ack_harness import AckHarness
from tests.firmware.conftest import DEVICE, BoxFactory
from tests.firmware.firmware_process import FirmwareProcess
from tests.firmware.sntp_server import SntpServer

PRESSES = 10_000
# Issue 3's target, on this 64-bit port (an ESP32's 32-bit heap needs less: docs/firmware.md §6):
# the peak heap in use, start-up included, below 48 KB.
TARGET_PEAK = 48 * 1024
# The firmware's names fit four qstr pools (20 + 40 + 80 + 160 entries); the 301st allocates a fifth
# of 320 entries, 3.6 KB (docs/firmware.md §6). The unix port starts with a few of its own.
MAX_NAMES = 300


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_soak_10000_presses_in_a_128k_heap(harness: AckHarness, make_box: BoxFactory) -> None:
    harness.publish_staffed_config(DEVICE)  # retained: what a box gets at every connect (§5)
    ntp = SntpServer()
    try:
        _soak(harness, make_box(ntp_host="127.0.0.1", ntp_port=ntp.port, ntp_resync_s=5))
    finally:
        ntp.close()


def _soak(harness: AckHarness, box: FirmwareProcess) -> None:
    fw = box.start()
    fw.wait_for("cfg")
    fw.wait_for("clock")
    fw.burst(PRESSES)
    fw.wait_for("burst_done", timeout=180)
    harness.wait_until(lambda: len(harness.stored) >= PRESSES, timeout=120, what="10,000 events stored")
    st = fw.wait_drained(timeout=60)
    assert "MemoryError" not in fw.output() and fw.running
    assert st["seq"] == PRESSES and st["overflow"] == 0 and st["dropped"] == 0
    assert sorted(harness.stored) == [(DEVICE, fw.epoch, s) for s in range(1, PRESSES + 1)]
    assert harness.conflicts == [] and harness.refused == []
    assert all("ts" in doc for doc in harness.docs.values())  # every press timed by NTP
    base, peak = st["base_alloc"], st["peak_alloc"]
    mem = fw.mem()
    print(f"\nsoak: {PRESSES} presses; heap in use after start-up {base} B, peak {peak} B "
          f"(+{peak - base} B), live peak after collections {st['peak_live']} B, "
          f"longest main-loop gap {st['wdt_max_gap']} ms, {mem['qstrs']} names interned")
    assert peak < TARGET_PEAK
    assert mem["qstrs"] <= MAX_NAMES and mem["qstr_pools"] == 4
