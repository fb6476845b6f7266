"""Where the firmware's heap goes, for docs/firmware.md "Memory".

    .venv/bin/python -m bench.firmware.mem_profile

Imports the deployed firmware (.mpy, device/micropython/tools/build_mpy.py) one module at a time
under `micropython -X heapsize=128k`, in the order of a boot, and prints what each one adds to the
heap once loaded: its bytecode, function and class objects, constants and global dict ("code"), and
the names it interns (qstrs: identifiers and short strings, kept for good in pools that grow by
doubling, so the pools are reported as one line). Modules loaded only for a while (boot, connecting,
a server config, a console command) or only on the other board are listed after the resident ones.
The buffers and state made at boot are counted by the soak (bench_firmware --soak).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# Resident after a boot on the desk, in import order; then the others.
RESIDENT = ("wire", "outbox", "buttons", "mqtt", "app", "board_host")
TRANSIENT = ("start", "config", "recovery", "slots", "servercfg", "link", "desk", "sntp",
             "display",
             "ssd1306")

_QSTR = re.compile(r"n_qstr=(\d+), n_str_data_bytes=(\d+), n_total_bytes=(\d+)")


def profile(names: tuple[str, ...]) -> list[tuple[str, int, int, int]]:
    """(module, code bytes, qstrs added, qstr pool bytes added) in import order."""
    from tests.firmware.runtime import firmware_build, micropython_binary

    cmd = [micropython_binary(), "-X", "heapsize=128k", str(Path(__file__).with_name("mp_mem.py")),
           str(firmware_build()), ",".join(n for n in names)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=60).stdout
    rows, name, heap = [], "", 0
    prev: tuple[int, int, int] | None = None
    for line in out.splitlines():
        if line.startswith("@ "):
            _, name, h = line.split()
            heap_now = int(h)
        elif (m := _QSTR.search(line)) is not None:
            n, total = int(m[1]), int(m[3])
            if prev is not None:
                rows.append((name, heap_now - prev[0] - (total - prev[2]), n - prev[1], total - prev[2]))
            prev = (heap_now, n, total)
            heap = heap_now
    del heap
    return rows


def available(names: tuple[str, ...]) -> tuple[str, ...]:
    from tests.firmware.runtime import firmware_build

    build = firmware_build()
    return tuple(n for n in names if (build / f"{n}.mpy").exists())


def main() -> None:
    resident, transient = available(RESIDENT), available(TRANSIENT)
    rows = profile(resident + transient)
    print("| module | code (B) | names interned |")
    print("|---|---:|---:|")
    code = qstrs = pool = 0
    for name, size, nq, qb in rows:
        if name in resident:
            code, qstrs, pool = code + size, qstrs + nq, pool + qb
            print(f"| `{name}` | {size} | {nq} |")
    print(f"| interned names (qstr pools) | {pool} | {qstrs} |")
    print(f"| **resident, total** | **{code + pool}** | |")
    for name, size, nq, _qb in rows:
        if name in transient:
            print(f"| `{name}` (loaded only for a while, or on the ESP32) | {size} | {nq} |")


if __name__ == "__main__":
    main()
