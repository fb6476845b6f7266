"""The firmware's core heap on a 64-bit and a 32-bit MicroPython, for docs/firmware.md "Memory".

    .venv/bin/python -m bench.firmware.bench_ports [--presses 10000]

The ESP32 is a 32-bit port (16-byte heap blocks, 4-byte pointers); the unix port the tests run is
64-bit (32-byte blocks, 8-byte pointers). MicroPython's webassembly port is 32-bit too and runs
under node (npm @micropython/micropython-webassembly-pyscript, installed on first use into a cache
directory): this runs the same firmware core (bench/firmware/mp_core.py: the App, outbox, buttons,
wire and the MQTT client's buffers; a config and one ack per press through App.on_message; no
network) on both, with a 128 KB heap, and prints the heap in use after the boot and at its peak.
It is evidence for the ESP32 figure, not a measurement on a board.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
HERE = Path(__file__).resolve().parent
HEAP = 128 * 1024
WASM_PACKAGE = "@micropython/micropython-webassembly-pyscript@1.29.0-6"  # MicroPython 1.29.0
DEV = "esp32-bench1"
SECRET = hashlib.sha256(b"bench").digest()


def _inputs(work: Path, presses: int) -> dict[str, object]:
    """The signed staffed config and one signed ack per press, as the server would send them."""
    from motcua.protocol import encode_ack, encode_config
    from tests.firmware.ack_harness import STAFFED

    ts = int(time.time() * 1000)
    config = encode_config(SECRET, dev=DEV, ts=ts, rev=1, counter={"code": "PX-01", "name": "Quầy 1 - Tư pháp"},
                           official=STAFFED, thanks_ms=0, hb_s=60,
                           scale={"levels": 4, "labels": ["Rất không hài lòng", "Không hài lòng", "Hài lòng",
                                                          "Rất hài lòng"]})
    (work / "config").write_bytes(config)
    with (work / "acks").open("wb") as f:
        for seq in range(1, presses + 1):
            ack = encode_ack(SECRET, dev=DEV, ts=ts + seq, acks=[(1, seq, "ok")])
            f.write(len(ack).to_bytes(2, "big") + ack)
    return {"secret_hex": SECRET.hex(), "presses": presses, "config": str(work / "config"),
            "acks": str(work / "acks")}


def _result(out: str) -> dict[str, float]:
    got = json.loads(next(line[2:] for line in out.splitlines() if line.startswith("@ ")))
    q = re.search(r"n_qstr=(\d+), n_str_data_bytes=(\d+), n_total_bytes=(\d+)", out)
    if q is None:
        raise RuntimeError("no qstr_info in the output:\n" + out)
    return {**got, "qstrs": int(q[1]), "qstr_bytes": int(q[3])}


def unix_port(fw: Path, params: dict[str, object], work: Path) -> dict[str, float]:
    from tests.firmware.runtime import micropython_binary

    run = work / "unix"
    run.mkdir()
    (work / "unix.json").write_text(json.dumps({**params, "fw": str(fw), "work": str(run)}), encoding="utf-8")
    done = subprocess.run([micropython_binary(), "-X", f"heapsize={HEAP}", str(HERE / "mp_core.py"),
                           str(work / "unix.json")], capture_output=True, text=True, timeout=600, check=True)
    return _result(done.stdout)


def _wasm_modules() -> Path:
    cache = Path(tempfile.gettempdir()) / ("motcua-" + re.sub(r"[^\w.-]", "_", WASM_PACKAGE))
    modules = cache / "node_modules"
    if not (modules / "@micropython" / "micropython-webassembly-pyscript" / "micropython.mjs").exists():
        npm = shutil.which("npm")
        if npm is None:
            raise SystemExit("the webassembly port needs node and npm (apt-get install nodejs npm)")
        cache.mkdir(parents=True, exist_ok=True)
        print(f"installing {WASM_PACKAGE} into {cache} ...", file=sys.stderr)
        subprocess.run([npm, "install", "--prefix", str(cache), "--no-audit", "--no-fund", WASM_PACKAGE],
                       check=True, capture_output=True, timeout=300)
    return modules


def wasm_port(fw: Path, params: dict[str, object], work: Path) -> dict[str, float]:
    node = shutil.which("node")
    if node is None:
        raise SystemExit("the webassembly port needs node (apt-get install nodejs)")
    (work / "wasm.json").write_text(json.dumps(params), encoding="utf-8")
    done = subprocess.run([node, str(HERE / "wasm_run.mjs"), str(_wasm_modules()), str(HEAP), str(fw),
                           str(HERE / "mp_core.py"), str(work / "wasm.json")],
                          capture_output=True, text=True, timeout=600, check=True)
    return _result(done.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presses", type=int, default=10_000)
    args = ap.parse_args()
    from tests.firmware.runtime import firmware_build

    fw = firmware_build()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        params = _inputs(work, args.presses)
        ports = {"unix (64-bit)": unix_port(fw, params, work), "webassembly (32-bit)": wasm_port(fw, params, work)}
    u, w = ports["unix (64-bit)"], ports["webassembly (32-bit)"]
    print(f"firmware core, -X heapsize=128k, {args.presses} presses, each signed, stored and acked")
    print(f"{'':34s} {'unix (64-bit)':>14s} {'webassembly (32-bit)':>21s} {'32/64':>6s}")
    for key, label in (("start", "interpreter and its modules"), ("code", "firmware code and names"),
                       ("base", "heap in use after the boot"), ("peak", "peak heap in use"),
                       ("live", "live peak after collections"), ("qstrs", "interned names"),
                       ("encode_sign_us", "encode + sign per press (us)")):
        print(f"  {label:32s} {u[key]:14.0f} {w[key]:21.0f} {w[key] / u[key]:6.2f}")
    core = (w["peak"] - w["start"]) / (u["peak"] - u["start"])
    print(f"  firmware's own peak (peak - interpreter): {u['peak'] - u['start']:.0f} B vs "
          f"{w['peak'] - w['start']:.0f} B, 32/64 = {core:.2f}")


if __name__ == "__main__":
    main()
