# A non-blocking SNTP client (RFC 4330). The device keeps its own offset from uptime to Unix time
# instead of setting an RTC: events then carry `ts` = uptime + offset while synced (docs/protocol.md
# §3), and nothing has to happen to the clock when a re-sync moves it.
import os
import socket
import struct
import time

from micropython import const

_TIMEOUT_MS = const(3000)  # a reply later than this is not waited for
_RETRY_MS = const(60000)  # after a failed sync; capped by ntp_resync_s


class Sntp:
    """One outstanding request at a time: start(), then poll() until it returns an offset.

    tick() is the clock's schedule for app.py (sync, re-sync every ntp_resync_s, retry after a
    failure): it lives here because, like the protocol, it is loaded only when NTP is configured."""

    def __init__(self):
        self.sock = None
        self._nonce = None
        self._sent_up = 0
        self.next = time.ticks_ms()
        self.timeout = None

    def tick(self, app, now):
        """One main-loop pass: sets app.offset when a reply is in; never raises, never blocks long."""
        cfg = app.cfg
        if self.timeout is not None:
            off = self.poll(app.up)
            if off is not None:
                app.offset = off
                self.timeout = None
                self.next = time.ticks_add(now, cfg["ntp_resync_s"] * 1000)
                app.stats[6] += 1  # NTP syncs (app.py's stats)
                app.board.emit("clock", offset=off)
            elif time.ticks_diff(now, self.timeout) >= 0:
                self.close()
                self.timeout = None
                self.next = time.ticks_add(now, min(_RETRY_MS, cfg["ntp_resync_s"] * 1000))
            return
        if time.ticks_diff(now, self.next) >= 0:
            try:
                addr = socket.getaddrinfo(cfg["ntp_host"], cfg["ntp_port"])[0][-1]  # blocks (DNS)
                self.start(addr, app.up)
                self.timeout = time.ticks_add(now, _TIMEOUT_MS)
            except OSError as e:
                print("ntp: no request sent: %r" % e)
                self.next = time.ticks_add(now, min(_RETRY_MS, cfg["ntp_resync_s"] * 1000))

    def start(self, addr, up):
        """Send a request to addr (from getaddrinfo) at uptime up."""
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
        self.sock = s
        self._sent_up = up

    def poll(self, up):
        """Offset in ms such that Unix time = uptime + offset, or None while no valid reply is in."""
        if self.sock is None:
            return None
        try:
            data = self.sock.recv(64)
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
        # 2208988800 s from 1900-01-01 (NTP era 0) to 1970-01-01 (Unix time)
        server_ms = (secs - 2208988800) * 1000 + ((frac * 1000) >> 32)
        # Replies claiming a time before 2024-01-01 are refused: a box that booted without a clock must
        # not stamp events from 1970 (the server would quarantine them as implausible_time anyway, §4).
        if server_ms < 1704067200000:
            return None
        self.close()
        # The reply left the server about half a round trip ago.
        return server_ms + (up - self._sent_up) // 2 - up

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None
