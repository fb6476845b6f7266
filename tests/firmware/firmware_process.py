"""The ESP32 firmware as a process on the desk, for tests: `micropython` runs the firmware as it is
deployed: main.py and the .mpy files of device/micropython/tools/build_mpy.py, copied into a state
directory that stands in for the board's flash (with config_local.py and data/).

The board module of the unix port (board_host.py) takes button presses as lines on standard input
and reports what the box does as JSON lines prefixed with "@" on standard output; this class wraps
both. kill() is a power cut (SIGKILL: no DISCONNECT, no flush, the broker publishes the last will).

    fw = FirmwareProcess(device_id="esp32-test01", secret_hex=..., mqtt_port=broker.port,
                         state_dir=tmp_path / "box").start()
    fw.wait_for("subscribed")    # connected, acks and configs can reach it
    ep, seq = fw.press(4)        # returns once the press is on "flash"
    fw.kill(); fw.start()        # power cut and power back: a new epoch, nothing lost
    fw.wait_drained()            # every event acked end to end (outbox empty)
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from device.firmware_config import render_config_local
from tests.firmware.runtime import HEAP, install_firmware, micropython_binary

Event = dict[str, Any]

# Knobs that make a desk run fast and deterministic; any of them can be overridden per instance.
FAST_KNOBS: dict[str, Any] = {
    "ntp_host": "",  # no NTP unless a test serves it (there is no internet here)
    "keepalive_s": 2,  # a silent dead link is noticed within ~2 s instead of a minute
    "resend_ms": 1000,  # docs/protocol.md §7's 15 s, compressed
    "resend_max_ms": 4000,
    "backoff_min_ms": 100,
    "backoff_max_ms": 1000,
    "thanks_ms": 0,  # scripted presses are not flagged as "during the thank-you state"
    "hb_s": 5,
}


class FirmwareError(AssertionError):
    """The firmware did not do what a test waited for; the message ends with its recent output."""


class FirmwareProcess:
    """One button box: start(), press(), complaint(), net(), status(), kill(), restart(), stop()."""

    def __init__(
        self,
        *,
        device_id: str,
        secret_hex: str,
        mqtt_port: int,
        state_dir: Path,
        mqtt_host: str = "127.0.0.1",
        knobs: dict[str, Any] | None = None,
        heap: str = HEAP,
    ) -> None:
        self.device_id = device_id
        self.state_dir = Path(state_dir)
        self.heap = heap
        self.state_dir.mkdir(parents=True, exist_ok=True)
        options = {**FAST_KNOBS, **(knobs or {})}
        ntp_host = options.pop("ntp_host")
        text = render_config_local(device_id=device_id, secret_hex=secret_hex, mqtt_host=mqtt_host,
                                   mqtt_port=mqtt_port, ntp_host=ntp_host, **options)
        (self.state_dir / "config_local.py").write_text(text, encoding="utf-8")
        self.proc: subprocess.Popen[bytes] | None = None
        self.lines: list[str] = []  # everything it printed, across restarts
        self.events: list[Event] = []  # the "@" lines, parsed, across restarts
        self.boots: list[Event] = []
        self._cond = threading.Condition()
        self._reader: threading.Thread | None = None

    # ---- life cycle ----

    def start(self, timeout: float = 10) -> FirmwareProcess:
        """Power on; returns after the boot event (epoch persisted, outbox recovered)."""
        if self.running:
            raise RuntimeError("already running")
        n = len(self.boots)
        install_firmware(self.state_dir)
        self.proc = subprocess.Popen(
            [micropython_binary(), "-X", f"heapsize={self.heap}", "main.py"],
            cwd=self.state_dir, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        assert self.proc.stdout is not None
        self._reader = threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True)
        self._reader.start()
        self._wait(lambda: len(self.boots) > n, timeout, "boot")
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def epoch(self) -> int:
        return int(self.boots[-1]["ep"])

    def kill(self) -> None:
        """Power cut: SIGKILL, nothing gets to run."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
            self._join()
        self.proc = None

    def restart(self, timeout: float = 10) -> FirmwareProcess:
        """Power cut and power back on."""
        self.kill()
        return self.start(timeout)

    def stop(self, timeout: float = 5) -> None:
        """Orderly shutdown ("quit": offline status, DISCONNECT); SIGKILL if it does not exit."""
        if not self.running:
            self.kill()
            return
        self.send("quit")
        assert self.proc is not None
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=timeout)
        self.kill()

    def __enter__(self) -> FirmwareProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()

    # ---- input ----

    def send(self, line: str) -> None:
        """One command line to the board (see device/micropython/board_host.py)."""
        if not self.running:
            raise FirmwareError(f"firmware not running; cannot send {line!r}{self._tail()}")
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def press(self, value: int, *, hold_ms: int | None = None, bounce: bool = False,
              timeout: float = 5) -> tuple[int, int]:
        """Press rating button `value` (1 = worst); returns (ep, seq) once the event is on flash."""
        n = self.count("evt")
        cmd = f"bounce {value}" if bounce else f"press {value}" + (f" {hold_ms}" if hold_ms else "")
        self.send(cmd)
        evt = self.wait_for("evt", timeout=timeout, after=n)
        return int(evt["ep"]), int(evt["seq"])

    def complaint(self, timeout: float = 5) -> tuple[int, int]:
        """Press the complaint button; returns the (ep, seq) of the incident event."""
        n = self.count("evt")
        self.send("complaint")
        evt = self.wait_for("evt", timeout=timeout, after=n)
        return int(evt["ep"]), int(evt["seq"])

    def burst(self, n: int, every_ms: int = 0) -> None:
        """Inject n debounced presses (soak runs); wait_for("burst_done") tells when all are in."""
        self.send(f"burst {n} {every_ms}")

    def net(self, up: bool) -> None:
        """Wi-Fi back / lost, as the board sees it."""
        self.send("net up" if up else "net down")

    def status(self, timeout: float = 5) -> Event:
        n = self.count("status")
        self.send("status")
        return self.wait_for("status", timeout=timeout, after=n)

    def mem(self, timeout: float = 5) -> dict[str, int]:
        """The interpreter's own figures (console `mem`): GC heap used/free, largest free block, and
        the interned names (qstrs: count, pools, bytes), parsed from micropython.mem_info/qstr_info."""
        n = len(self.lines)
        self.send("mem")
        self._wait(lambda: any(line.startswith("qstr pool:") for line in self.lines[n:]), timeout, "mem")
        with self._cond:
            text = "\n".join(self.lines[n:])
        gc_line = re.search(r"GC: total: (\d+), used: (\d+), free: (\d+)", text)
        blocks = re.search(r"max free sz: (\d+)", text)
        qstr = re.search(r"n_pool=(\d+), n_qstr=(\d+), n_str_data_bytes=(\d+), n_total_bytes=(\d+)", text)
        if gc_line is None or blocks is None or qstr is None:
            raise FirmwareError(f"unexpected `mem` output{self._tail()}")
        return {"gc_total": int(gc_line[1]), "gc_used": int(gc_line[2]), "gc_free": int(gc_line[3]),
                "max_free_blocks": int(blocks[1]), "qstr_pools": int(qstr[1]), "qstrs": int(qstr[2]),
                "qstr_bytes": int(qstr[4])}

    def wait_drained(self, timeout: float = 15) -> Event:
        """Poll the status until the outbox is empty (every event acked end to end); returns it."""
        deadline = time.monotonic() + timeout
        while True:
            st = self.status()
            if st["pending"] == 0:
                return st
            if time.monotonic() > deadline:
                raise FirmwareError(f"outbox still holds {st['pending']} event(s) after {timeout}s"
                                    f"{self._tail()}")
            time.sleep(0.1)

    # ---- output ----

    def _read(self, stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self._cond:
                self.lines.append(line)
                if line.startswith("@"):
                    try:
                        evt = json.loads(line[1:])
                    except ValueError:
                        evt = {"t": "unparsable", "line": line}
                    self.events.append(evt)
                    if evt.get("t") == "boot":
                        self.boots.append(evt)
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def _join(self) -> None:
        if self._reader is not None:
            self._reader.join(timeout=5)
            self._reader = None

    def count(self, kind: str) -> int:
        with self._cond:
            return sum(1 for e in self.events if e.get("t") == kind)

    def of(self, kind: str) -> list[Event]:
        with self._cond:
            return [e for e in self.events if e.get("t") == kind]

    def wait_for(self, kind: str, *, timeout: float = 10, after: int = 0,
                 where: Callable[[Event], bool] | None = None) -> Event:
        """The first `kind` event after the first `after` ones (and matching `where`)."""
        found: list[Event] = []

        def check() -> bool:
            seen = [e for e in self.events if e.get("t") == kind][after:]
            found[:] = [e for e in seen if where is None or where(e)][:1]
            return bool(found)

        self._wait(check, timeout, kind)
        return found[0]

    def _wait(self, check: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not check():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise FirmwareError(f"no {what!r} from the firmware within {timeout}s{self._tail()}")
                if self.proc is not None and self.proc.poll() is not None and not self._reader_alive():
                    raise FirmwareError(f"firmware exited ({self.proc.returncode}) waiting for {what!r}"
                                        f"{self._tail()}")
                self._cond.wait(min(left, 0.2))

    def _reader_alive(self) -> bool:
        return self._reader is not None and self._reader.is_alive()

    def _tail(self, n: int = 30) -> str:
        return "\n--- firmware output (last lines) ---\n" + "\n".join(self.lines[-n:])

    def output(self) -> str:
        with self._cond:
            return "\n".join(self.lines)
