# A non-blocking SNTP client (RFC 4330). The device keeps its own offset from uptime to Unix time
# instead of setting an RTC: events then carry `ts` = uptime + offset while synced (docs/protocol.md
# §3), and nothing has to happen to the clock when a re-sync moves it.
#
# The App keeps the schedule (app.ntp_at) and the request in flight (app.clock: socket, nonce,
# uptime when sent, deadline), and reads the socket itself; it loads this module (App.load) to send
# a request and to take a reply or the timeout: a pass each, a few times an hour, so the code is
# in the heap only for those passes and never at the same time as another loaded module.
import os
import socket
import struct
import time

from micropython import const

_TIMEOUT_MS = const(3000)  # a reply later than this is not waited for
_RETRY_MS = const(60000)  # after a failed sync; capped by ntp_resync_s


def request(app, now):
    """Send a request to the configured server (app.clock), or schedule a retry if none can be."""
    cfg = app.cfg
    try:
        addr = socket.getaddrinfo(cfg["ntp_host"], cfg["ntp_port"])[0][-1]  # blocks (DNS)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setblocking(False)
        nonce = os.urandom(8)
        # RFC 4330 §4: LI 0, version 4, mode 3 (client); the transmit timestamp is a nonce the
        # server must echo as "originate" (§5), so stale or forged replies are recognised.
        req = bytearray(48)
        req[0] = 0x23
        req[40:48] = nonce
        s.sendto(req, addr)
        app.clock = (s, nonce, app.up, time.ticks_add(now, _TIMEOUT_MS))
    except OSError as e:
        print("ntp: no request sent: %r" % e)
        app.ntp_at = time.ticks_add(now, min(_RETRY_MS, cfg["ntp_resync_s"] * 1000))


def reply(app, now, data):
    """A datagram for the request in app.clock (data), or None at its deadline: app.offset set from
    a valid reply, the next sync scheduled (re-sync every ntp_resync_s, retry after a failure)."""
    sock, nonce, sent_up, _deadline = app.clock
    off = offset(data, nonce, sent_up, app.up) if data else None
    if off is None and data:
        return  # not our reply (stale, forged, or a server that cannot tell the time): wait on
    sock.close()
    app.clock = None
    resync = app.cfg["ntp_resync_s"] * 1000
    if off is None:
        app.ntp_at = time.ticks_add(now, min(_RETRY_MS, resync))
        return
    app.offset = off
    app.ntp_at = time.ticks_add(now, resync)
    app.stats[6] += 1  # NTP syncs (app.py's stats)
    app.board.emit("clock", offset=off)


def offset(data, nonce, sent_up, up):
    """Offset in ms such that Unix time = uptime + offset, from a reply to the request with this
    nonce sent at uptime sent_up and received at uptime up; None if data is not a valid reply."""
    if len(data) < 48 or data[24:32] != nonce:
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
    # The reply left the server about half a round trip ago.
    return server_ms + (up - sent_up) // 2 - up
