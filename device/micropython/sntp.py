# A non-blocking SNTP client (RFC 4330). The device keeps its own offset from uptime to Unix time
# instead of setting an RTC: events then carry `ts` = uptime + offset while synced (docs/protocol.md
# §3), and nothing has to happen to the clock when a re-sync moves it.
import os
import socket
import struct
import time

from micropython import const

_NTP_TO_UNIX_S = 2208988800  # seconds from 1900-01-01 (NTP era 0) to 1970-01-01
# Replies claiming a time before 2024-01-01 are refused: a box that booted without a clock must not
# stamp events from 1970 (the server would quarantine them as implausible_time anyway, §4).
_MIN_UNIX_MS = 1704067200000
_TIMEOUT_MS = const(3000)  # a reply later than this is not waited for
_RETRY_MS = const(60000)  # after a failed sync; capped by ntp_resync_s


class Sntp:
    """One outstanding request at a time: start(), then poll() until it returns an offset.

    tick() is the clock's schedule for app.py (sync, re-sync every ntp_resync_s, retry after a
    failure): it lives here because, like the protocol, it is loaded only when NTP is configured."""

    def __init__(self):
        self._sock = None
        self._nonce = None
        self._sent_up = 0
        self._next = time.ticks_ms()
        self._deadline = None

    def tick(self, app, now):
        """One main-loop pass: sets app.offset when a reply is in; never raises, never blocks long."""
        cfg = app.cfg
        if self._deadline is not None:
            off = self.poll(app.up)
            if off is not None:
                app.offset = off
                self._deadline = None
                self._next = time.ticks_add(now, cfg["ntp_resync_s"] * 1000)
                app.stats["ntp"] += 1
                app.board.emit("clock", offset=off)
            elif time.ticks_diff(now, self._deadline) >= 0:
                self.close()
                self._deadline = None
                self._next = time.ticks_add(now, min(_RETRY_MS, cfg["ntp_resync_s"] * 1000))
            return
        if time.ticks_diff(now, self._next) >= 0:
            try:
                addr = socket.getaddrinfo(cfg["ntp_host"], cfg["ntp_port"])[0][-1]  # blocks (DNS)
                self.start(addr, app.up)
                self._deadline = time.ticks_add(now, _TIMEOUT_MS)
            except OSError as e:
                print("ntp: %r" % e)
                self._next = time.ticks_add(now, min(_RETRY_MS, cfg["ntp_resync_s"] * 1000))

    def start(self, addr, up_ms):
        """Send a request to addr (from getaddrinfo) at uptime up_ms."""
        self.close()
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setblocking(False)
        self._nonce = os.urandom(8)
        # RFC 4330 §4: LI 0, version 4, mode 3 (client); the transmit timestamp is a nonce the
        # server must echo as "originate" (§5), so stale or forged replies are recognised.
        req = bytearray(48)
        req[0] = 0x23
        req[40:48] = self._nonce
        s.sendto(req, addr)
        self._sock = s
        self._sent_up = up_ms

    def poll(self, up_ms):
        """Offset in ms such that Unix time = uptime + offset, or None while no valid reply is in."""
        if self._sock is None:
            return None
        try:
            data = self._sock.recv(64)
        except OSError:
            return None  # EAGAIN: nothing yet
        if len(data) < 48 or data[24:32] != self._nonce:
            return None
        li_mode, stratum = data[0], data[1]
        if li_mode & 7 != 4 or li_mode >> 6 == 3 or stratum == 0:
            return None  # not a server reply, server unsynchronised, or kiss-o'-death
        secs, frac = struct.unpack_from(">II", data, 40)
        if not secs & 0x80000000:
            secs += 1 << 32  # RFC 4330 §3: MSB clear means era 1 (from 2036-02-07)
        server_ms = (secs - _NTP_TO_UNIX_S) * 1000 + ((frac * 1000) >> 32)
        if server_ms < _MIN_UNIX_MS:
            return None
        self.close()
        # The reply left the server about half a round trip ago.
        return server_ms + (up_ms - self._sent_up) // 2 - up_ms

    def close(self):
        if self._sock is not None:
            self._sock.close()
            self._sock = None
