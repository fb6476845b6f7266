"""Firmware benchmarks on the real MicroPython unix port, for docs/firmware.md "Benchmarks".

    .venv/bin/python -m bench.firmware.bench_firmware [--presses 10000] [--soak 10000 [--display]]

Per press (micropython -X heapsize=128k, bench/firmware/mp_bench.py): bare HMAC-SHA256 of one event
(the baseline, measured in the same run), encode + sign, enqueue (the flash append), and both, with
the ratio to the baseline. --soak runs the whole firmware against a private Mosquitto and the ack
harness of tests/firmware, configured as a box at a counter is by default (NTP on, from a local SNTP
server; the retained config of a staffed counter, docs/protocol.md §5), and reports the heap in use
after start-up and at its peak, and the interned names at the end; --display adds an SSD1306.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
MICROPYTHON = Path(sys.executable).parent / "micropython"
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def micro(presses: int) -> dict[str, float]:
    from tests.firmware.runtime import firmware_build

    with tempfile.TemporaryDirectory() as work:
        cmd = [str(MICROPYTHON), "-X", "heapsize=128k", str(Path(__file__).with_name("mp_bench.py")),
               str(firmware_build()), work, str(presses)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=600).stdout
    return {k: float(v) for k, v in (line.split() for line in out.splitlines())}


def soak(presses: int, display: bool = False) -> dict[str, int | float]:
    """The whole firmware configured as a box at a counter is by default (NTP on, here a local SNTP
    server; the retained config of a staffed counter), `display` with an SSD1306 too."""
    import hashlib

    from tests.firmware.ack_harness import AckHarness
    from tests.firmware.firmware_process import FirmwareProcess
    from tests.firmware.sntp_server import SntpServer
    from tests.utils.services import Mosquitto

    dev, secret = "esp32-bench1", hashlib.sha256(b"bench").hexdigest()
    with tempfile.TemporaryDirectory() as tmp:
        broker = Mosquitto(Path(tmp)).start()
        harness = AckHarness("127.0.0.1", broker.port, {dev: secret}).start()
        ntp = SntpServer()
        fw = FirmwareProcess(device_id=dev, secret_hex=secret, mqtt_port=broker.port,
                             state_dir=Path(tmp) / "box",
                             knobs={"ntp_host": "127.0.0.1", "ntp_port": ntp.port, "ntp_resync_s": 5,
                                    "display": display})
        try:
            harness.publish_staffed_config(dev)  # retained: what a box gets at every connect (§5)
            fw.start()
            fw.wait_for("cfg")
            fw.wait_for("clock")
            t0 = time.monotonic()
            fw.burst(presses)
            harness.wait_until(lambda: len(harness.stored) >= presses, timeout=600)
            st = fw.wait_drained(timeout=120)
            took = time.monotonic() - t0
            mem = fw.mem()
        finally:
            fw.kill()
            ntp.close()
            harness.stop()
            broker.kill()
    return {"presses": presses, "seconds": round(took, 1), "base_alloc": st["base_alloc"],
            "peak_alloc": st["peak_alloc"], "peak_live": st["peak_live"], "mem_free": st["mem_free"],
            "loop_gap_ms": st["wdt_max_gap"], "qstrs": mem["qstrs"], "qstr_pools": mem["qstr_pools"],
            "qstr_bytes": mem["qstr_bytes"], "max_free_blocks": mem["max_free_blocks"], "ntp_syncs": st["ntp"]}


def run(quick: bool = False) -> dict[str, Any]:
    """The suite's entry (bench/suite.py): per-press costs and the heap over a soak (10,000 presses, quick 1,000)."""
    return {"micro": micro(500 if quick else 10_000), "soak": soak(1_000 if quick else 10_000)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presses", type=int, default=10_000)
    ap.add_argument("--soak", type=int, default=0, help="also run the whole firmware for N presses")
    ap.add_argument("--display", action="store_true", help="the soak with an SSD1306 configured")
    args = ap.parse_args()
    m = micro(args.presses)
    print(f"micropython -X heapsize=128k, {args.presses} presses, event of {m['payload_bytes']:.0f} bytes")
    print(f"  bare HMAC-SHA256 (baseline)   {m['hmac_us']:8.1f} us")
    print(f"  encode + sign                 {m['encode_sign_us']:8.1f} us")
    print(f"  enqueue (flash append)        {m['enqueue_us']:8.1f} us")
    print(f"  sign + enqueue per press      {m['sign_enqueue_us']:8.1f} us  "
          f"({m['ratio']:.1f}x the bare HMAC)")
    if args.soak:
        s = soak(args.soak, args.display)
        print(f"soak: {s['presses']} presses end to end in {s['seconds']} s "
              f"(NTP on: {s['ntp_syncs']} syncs{', display on' if args.display else ''})")
        print(f"  heap in use after start-up    {s['base_alloc']:8d} B")
        growth = int(s["peak_alloc"]) - int(s["base_alloc"])
        print(f"  peak heap in use              {s['peak_alloc']:8d} B  (+{growth} B)")
        print(f"  live peak after collections   {s['peak_live']:8d} B")
        print(f"  longest main-loop pass        {s['loop_gap_ms']:8d} ms")
        print(f"  interned names (qstrs)        {s['qstrs']:8d}  in {s['qstr_pools']} pools, "
              f"{s['qstr_bytes']} B")
        print(f"  largest free block at the end {s['max_free_blocks']:8d} blocks")


if __name__ == "__main__":
    main()
