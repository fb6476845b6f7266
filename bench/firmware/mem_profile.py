"""Where the firmware's heap goes, for docs/firmware.md "Memory".

    .venv/bin/python -m bench.firmware.mem_profile [--names]

Imports the deployed firmware (.mpy, device/micropython/tools/build_mpy.py) one module at a time
under `micropython -X heapsize=128k`, in the order of a boot, and prints what each one adds to the
heap once loaded: its bytecode, function and class objects, constants and global dict ("code"), and
the names it interns (qstrs: identifiers and strings of up to 10 characters, kept for good in pools
that grow by doubling, so the pools are reported as one line). Modules loaded only for a while
(boot, connecting, a server config, a console command) or only when configured (sntp, display) are
listed after the resident ones: their code leaves the heap, their names stay. The ESP32's board
(board_esp32, imported with the tests' stand-ins for `machine` and `network`) is measured in a
second run. --names lists the names each module adds: every name counts towards the 300 that fit
the qstr pools without a fifth (docs/firmware.md §6). The buffers and state made at boot are
counted by the soak (bench_firmware --soak).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# Resident after a boot on the desk, in import order; then the others.
RESIDENT = ("wire", "outbox", "buttons", "mqtt", "app", "board_host")
TRANSIENT = ("start", "config", "recovery", "slots", "servercfg", "link", "desk", "sntp", "display", "ssd1306")
ESP32 = ("wire", "outbox", "buttons", "mqtt", "app", "board_esp32")

_QSTR = re.compile(r"n_qstr=(\d+), n_str_data_bytes=(\d+), n_total_bytes=(\d+)")


def mpy_names(path: Path) -> list[str]:
    """The names a .mpy file (format 6) carries as strings: those the loader interns. Names of
    mpy-cross's static table are stored as indices and never interned."""
    data = path.read_bytes()
    if data[:2] != b"M\x06":
        raise ValueError(f"{path}: not a version 6 .mpy")

    def varuint(i: int) -> tuple[int, int]:
        v = 0
        while True:
            c = data[i]
            i += 1
            v = (v << 7) | (c & 0x7F)
            if not c & 0x80:
                return v, i

    n, i = varuint(4)
    _objs, i = varuint(i)
    names = []
    for _ in range(n):
        v, i = varuint(i)
        if not v & 1:  # bit 0 set: an index into the static table
            names.append(data[i:i + (v >> 1)].decode())
            i += (v >> 1) + 1
    return names


class Row:
    """One module: the heap it adds once loaded (code, constants, globals), and the names it interns."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.code = 0
        self.qstr_bytes = 0
        self.names: list[str] = []


def profile(modules: tuple[str, ...], esp32: bool = False) -> list[Row]:
    """A Row per module, in import order, from one run of bench/firmware/mp_mem.py."""
    from tests.firmware.runtime import MP_TESTS_DIR, firmware_build, micropython_binary

    build = firmware_build()
    with tempfile.TemporaryDirectory() as tmp:
        for m in modules:
            (Path(tmp) / f"{m}.txt").write_text("".join(n + "\n" for n in mpy_names(build / f"{m}.mpy")))
        cmd = [micropython_binary(), "-X", "heapsize=128k", str(Path(__file__).with_name("mp_mem.py")),
               str(build), tmp, ",".join(modules)] + ([str(MP_TESTS_DIR)] if esp32 else [])
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=60).stdout
    rows: list[Row] = []
    heap = qn = qbytes = 0
    word = ""
    for line in out.splitlines():
        q = _QSTR.search(line)
        if line.startswith("@name "):
            word = line[6:]
            if not rows or rows[-1].name != "":
                rows.append(Row(""))
        elif line.startswith("@ "):
            _, name, h = line.split()
            if name != "-":
                row = rows[-1] if rows and rows[-1].name == "" else Row("")
                if row not in rows:
                    rows.append(row)
                row.name, row.code = name, int(h) - heap
            heap = int(h)
            word = ""
        elif q is not None:
            n, total = int(q[1]), int(q[3])
            if rows and rows[-1].name == "":
                if word and n > qn:
                    rows[-1].names.append(word)
                rows[-1].qstr_bytes += total - qbytes
            elif rows:
                rows[-1].qstr_bytes += total - qbytes
            qn, qbytes = n, total
    for row in rows:
        row.code -= row.qstr_bytes
    return rows


def available(names: tuple[str, ...]) -> tuple[str, ...]:
    from tests.firmware.runtime import firmware_build

    build = firmware_build()
    return tuple(n for n in names if (build / f"{n}.mpy").exists())


def _table(rows: list[Row], resident: tuple[str, ...], show_names: bool) -> None:
    print("| module | code (B) | names interned |")
    print("|---|---:|---:|")
    code = pool = names = 0
    for row in rows:
        if row.name in resident:
            code, pool, names = code + row.code, pool + row.qstr_bytes, names + len(row.names)
            print(f"| `{row.name}` | {row.code} | {len(row.names)} |")
    print(f"| interned names (qstr pools and text) | {pool} | {names} |")
    print(f"| **resident, total** | **{code + pool}** | |")
    for row in rows:
        if row.name not in resident:
            print(f"| `{row.name}` (loaded only for a while, or only when configured) | {row.code} | "
                  f"{len(row.names)} |")
    print(f"| names, all modules | | {sum(len(r.names) for r in rows)} |")
    if show_names:
        for row in rows:
            print(f"\n{row.name}: {' '.join(row.names)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--names", action="store_true", help="list the names each module interns")
    args = ap.parse_args()
    resident, transient = available(RESIDENT), available(TRANSIENT)
    print("The desk (unix port, board_host):\n")
    _table(profile(resident + transient), resident, args.names)
    esp32 = available(ESP32)
    print("\nThe ESP32's modules (board_esp32 with the tests' machine and network stand-ins):\n")
    _table(profile(esp32 + tuple(t for t in transient if t != "desk"), esp32=True), esp32, args.names)


if __name__ == "__main__":
    main()
