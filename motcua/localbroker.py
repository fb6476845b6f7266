"""A private Mosquitto process on a free port, for tests, benchmarks and the simulator's broker faults."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import time
from pathlib import Path


class MosquittoMissing(RuntimeError):
    pass


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def mosquitto_binary() -> str | None:
    found = shutil.which("mosquitto")
    return found or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)


class Mosquitto:
    """kill() and start() again on the same port simulate a broker outage; `extra` adds config lines."""

    def __init__(self, workdir: Path, *, max_queued: int = 1000, persistence: bool = False,
                 extra: list[str] | None = None) -> None:
        self.binary = mosquitto_binary()
        self.port = free_port()
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.conf = workdir / "mosquitto.conf"
        # Started as root, Mosquitto switches to the "mosquitto" user and then cannot open its log or
        # password file in a private temporary directory: keep the invoking user.
        lines = [f"user {pwd.getpwuid(os.geteuid()).pw_name}"]
        lines += [f"listener {self.port} 127.0.0.1", "allow_anonymous true", f"max_queued_messages {max_queued}",
                 f"persistence {'true' if persistence else 'false'}", f"persistence_location {workdir}/",
                 f"log_dest file {workdir}/mosquitto.log", "log_type error", "log_type warning", *(extra or [])]
        self.conf.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> Mosquitto:
        if self.binary is None:
            raise MosquittoMissing("the mosquitto binary is not installed (apt-get install mosquitto)")
        self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_for_port(self.port)
        return self

    def kill(self) -> None:
        """SIGKILL the broker: connections drop without DISCONNECT, in-flight messages are lost."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    def restart(self) -> None:
        self.kill()
        self.start()

    def log(self) -> str:
        path = self.workdir / "mosquitto.log"
        return path.read_text(errors="replace") if path.exists() else ""
