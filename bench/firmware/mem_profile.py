"""Where the firmware's heap goes, for docs/firmware.md "Memory".

    .venv/bin/python -m bench.firmware.mem_profile

Imports the deployed firmware (.mpy, device/micropython/tools/build_mpy.py) one module at a time
under `micropython -X heapsize=128k` and prints the heap each one takes once loaded: its bytecode,
function and class objects, global dict and the interned names (qstrs) it adds. Order matters a
little (a name already interned by an earlier module is not counted again), so the order is the
one of a boot. The buffers and state made at boot are counted by the soak (bench_firmware --soak).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# Resident after a boot on the desk, in import order; then what is loaded only for a while or
# only on the other board.
RESIDENT = ("signing", "wire", "outbox", "slots", "buttons", "mqtt", "app", "board_host")
OTHER = ("config", "sntp", "display", "ssd1306")


def profile(names: tuple[str, ...]) -> list[tuple[str, int]]:
    from tests.firmware.runtime import firmware_build, micropython_binary

    cmd = [micropython_binary(), "-X", "heapsize=128k", str(Path(__file__).with_name("mp_mem.py")),
           str(firmware_build()), ",".join(names)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=60).stdout
    return [(k, int(v)) for k, v in (line.split() for line in out.splitlines())]


def main() -> None:
    rows = profile(RESIDENT + OTHER)
    resident = set(RESIDENT)
    print("| module | heap (B) |")
    print("|---|---:|")
    total = 0
    for name, size in rows:
        if name in ("start", "total"):
            continue
        if name in resident:
            total += size
        print(f"| `{name}` | {size} |" if name in resident else f"| `{name}` (not resident) | {size} |")
    print(f"| resident code, total | {total} |")


if __name__ == "__main__":
    main()
