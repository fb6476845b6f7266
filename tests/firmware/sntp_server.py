"""A tiny SNTP server (RFC 4330) on loopback for the firmware's clock tests: it answers with this
machine's time shifted by `offset_s` (so a test can tell the firmware's clock from its own), or
stays silent while `answering` is False."""

from __future__ import annotations

import socket
import struct
import threading
import time

NTP_TO_UNIX_S = 2208988800


class SntpServer:
    def __init__(self, offset_s: float = 3600.0) -> None:
        self.offset_s = offset_s
        self.answering = True
        self.requests = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = int(self.sock.getsockname()[1])
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def now_ms(self) -> int:
        return int((time.time() + self.offset_s) * 1000)

    def _run(self) -> None:
        while not self._stop:
            try:
                req, addr = self.sock.recvfrom(512)
            except TimeoutError:
                continue
            except OSError:
                return
            self.requests += 1
            if not self.answering or len(req) < 48:
                continue
            t = time.time() + self.offset_s + NTP_TO_UNIX_S
            secs, frac = int(t), int((t % 1) * 2**32)
            reply = bytearray(48)
            reply[0] = (4 << 3) | 4  # LI 0, version 4, mode 4 (server)
            reply[1] = 2  # stratum 2
            reply[24:32] = req[40:48]  # originate = the client's transmit timestamp (its nonce)
            struct.pack_into(">IIII", reply, 32, secs, frac, secs, frac)  # receive, transmit
            self.sock.sendto(bytes(reply), addr)

    def close(self) -> None:
        self._stop = True
        self._thread.join(timeout=2)
        self.sock.close()
