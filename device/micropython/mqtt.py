# A compact, non-blocking MQTT 3.1.1 client (OASIS MQTT 3.1.1; sections cited as §x.y.z).
#
# Protocol layer only: it raises MQTTError or OSError on anything wrong and never reconnects or
# sleeps; the supervisor (app.py) owns the retry policy. It never blocks either: the socket is
# non-blocking, packets go through a bounded transmit buffer, and poll() does whatever the socket
# allows right now, so button feedback and the watchdog keep running during a network outage.
#
# Scope: QoS 0 and 1 publish, QoS 1 subscribe, keepalive with PINGREQ, last will, clean sessions.
# QoS 1 resends inside a session are not needed: every connection is a clean session and the
# device's end-to-end outbox re-sends anything the server has not acked (docs/protocol.md §7).
# Every topic of a box is its device prefix plus a short name (docs/protocol.md §2: "evt", "ack"...):
# the client writes and matches the prefix itself, so no topic is ever built in RAM.
# This module is the steady state; the packets that begin and end a session (CONNECT, SUBSCRIBE,
# DISCONNECT) are in link.py, which the supervisor loads only while one begins or ends.
#
# Names: attributes and methods reuse names the interpreter has interned already (buf, sock, poll,
# flush, recv...) where they fit, so that the firmware's own names stay under one qstr pool
# (docs/firmware.md §6).
import select
import struct
import time

from micropython import const

# Packet types (§2.2.1). const() with a leading underscore: folded into the bytecode, no global.
_CONNACK = const(0x20)
_PUBLISH = const(0x30)
_PUBACK = const(0x40)
_SUBACK = const(0x90)
_PINGREQ = const(0xC0)
_PINGRESP = const(0xD0)

# Receive buffers. The resident one holds what a box gets all the time: acks for a window of events,
# a usual config (~500 B; docs/firmware.md §6). A packet up to the protocol's largest (a v1 message
# is at most 4096 bytes, docs/protocol.md §8, plus topic and header) gets a buffer of its own size
# while it is received and handled; larger ones are skipped and counted, never buffered. Smaller
# resident saves heap all the time; larger makes the big-message path rarer.
_RX_SIZE = const(1024 + 128)
_RX_MAX = const(4096 + 128)
# Transmit buffer: a few events at ~250 bytes each; publish() refuses when it is full (the
# supervisor then waits for the next pass), so memory stays fixed whatever the backlog. Larger
# sends more per loop pass; 1 KB (4 events) keeps a 10,000-event backlog draining at hundreds a second.
_TX_SIZE = const(1024)
# QoS 1 publishes waiting for PUBACK; bounds the work lost when a connection dies mid-burst.
_MAX_INFLIGHT = const(8)
# CONNECT to CONNACK, including the TCP handshake.
_CONNECT_TIMEOUT_MS = const(5000)
# Client.stats: packets too large for the receive buffer, PINGREQs sent, PINGRESPs and PUBACKs received.
_DISCARDED = const(0)
_PINGS = const(1)
_PONGS = const(2)
_PUBACKS = const(3)


class MQTTError(Exception):
    """The broker or the connection failed; args are (message,), or (message, CONNACK return code)
    when the broker refused the connection (§3.2.2.3)."""


class Client:
    """One MQTT connection at a time to the topics prefix + name. on_message(name, payload) receives
    memoryviews of the receive buffer (copy to keep).

    `sock` is None while closed; `connected` once the CONNACK accepted, `subscribed` once the SUBACK
    granted. link.py starts a session (CONNECT, SUBSCRIBE) and ends it (DISCONNECT)."""

    def __init__(self, client_id, prefix, on_message, keepalive_ms):
        self.client_id = client_id
        self.prefix = prefix
        self.on_message = on_message
        self.keepalive_ms = keepalive_ms
        self.buf = bytearray(_RX_SIZE)  # received bytes not yet handled
        self._rxv = memoryview(self.buf)
        self._home = (self.buf, self._rxv)  # the resident buffer, while a large packet has its own
        self.out_buf = bytearray(_TX_SIZE)  # queued bytes not yet written
        self._pids = [0] * _MAX_INFLIGHT  # QoS 1 packet ids waiting for PUBACK (0 = free)
        self._sent_at = [0] * _MAX_INFLIGHT
        self.sock = None
        self.poller = select.poll()
        self._rxn = self._skip = self.pos = self.id = 0  # bytes in buf, to skip, in out_buf; last packet id
        self.connected = self.subscribed = self._writable = False
        self._ping_at = None
        self._last_tx = self._last_rx = 0  # ticks; _last_tx also times the CONNACK
        self.stats = [0, 0, 0, 0]  # _DISCARDED, _PINGS, _PONGS, _PUBACKS

    def close(self):
        """Drop the connection without DISCONNECT, so the broker publishes the last will (§3.1.2.5)."""
        if self.sock is not None:
            try:
                self.poller.unregister(self.sock)
            except (OSError, KeyError, ValueError):
                pass
            self.sock.close()
            self.sock = None
        self.connected = False

    # ---- transmit buffer ----

    def head(self, code, n):
        """Queue a fixed header (§2.2): packet type and flags, remaining length n; raises if the whole
        packet does not fit the transmit buffer. The caller queues the n bytes that follow."""
        buf, at = self.out_buf, self.pos
        if len(buf) - at < 1 + (1 if n < 128 else 2 if n < 16384 else 3) + n:
            raise MQTTError("transmit buffer full")
        buf[at] = code
        at += 1
        while True:  # §2.2.3 remaining length: 7 bits per byte, high bit = more bytes follow
            b = n & 0x7F
            n >>= 7
            buf[at] = b | 0x80 if n else b
            at += 1
            if not n:
                break
        self.pos = at

    def put(self, data, length=True):
        """Queue bytes, after their 16-bit length if `length` (§1.5.3 strings); head() made room."""
        n = len(data)
        at = self.pos
        if length:
            struct.pack_into(">H", self.out_buf, at, n)
            at += 2
        self.out_buf[at:at + n] = data
        self.pos = at + n

    def put_topic(self, topic):
        """Queue the topic prefix + topic as one MQTT string (§3.3.2.1)."""
        struct.pack_into(">H", self.out_buf, self.pos, len(self.prefix) + len(topic))
        self.pos += 2
        self.put(self.prefix, False)
        self.put(topic, False)

    def can_publish(self, n, qos=1):
        """True when a publish of topic + payload of n bytes fits the transmit buffer and, for QoS 1,
        a packet id is free."""
        if not self.connected or (qos and 0 not in self._pids):
            return False
        n += 2 + len(self.prefix) + (2 if qos else 0)
        return len(self.out_buf) - self.pos >= 1 + (1 if n < 128 else 2 if n < 16384 else 3) + n

    def publish(self, topic, data, now, qos=0, retain=False):
        """Queue a PUBLISH (§3.3) of data to prefix + topic; returns its packet id (0 for QoS 0).
        Check can_publish() first."""
        self.head(_PUBLISH | (qos << 1) | (1 if retain else 0),
                  2 + len(self.prefix) + len(topic) + (2 if qos else 0) + len(data))
        self.put_topic(topic)
        pid = 0
        if qos:
            if 0 not in self._pids:
                raise MQTTError("too many QoS 1 messages in flight")
            i = self._pids.index(0)
            self.id = pid = self.id % 65535 + 1  # §2.3.1: non-zero 16-bit
            self._pids[i] = pid
            self._sent_at[i] = now
            struct.pack_into(">H", self.out_buf, self.pos, pid)
            self.pos += 2
        self.put(data, False)
        return pid

    # ---- the pump ----

    def poll(self, now):
        """Move bytes both ways and enforce the timers; raises MQTTError or OSError on failure."""
        if self.sock is None:
            raise MQTTError("no connection open")
        for _s, ev in self.poller.ipoll(0):  # ipoll: no list allocated per pass
            if ev & (select.POLLERR | select.POLLHUP) and not ev & select.POLLIN:
                raise MQTTError("connection lost")
            if ev & select.POLLOUT:
                self._writable = True
            if ev & select.POLLIN:
                self.recv(now)
        self.flush(now)
        self.poller.modify(self.sock, select.POLLIN | (select.POLLOUT if self.pos or not self._writable else 0))
        self.tick(now)

    def flush(self, now):
        """Write what the socket takes of the transmit buffer now."""
        if not (self._writable and self.pos):
            return
        view = memoryview(self.out_buf)
        w = self.sock.write(view[:self.pos])
        if w:
            rest = self.pos - w
            self.out_buf[:rest] = view[w:self.pos]
            self.pos = rest
            self._last_tx = now

    def recv(self, now):
        """Read what the socket has and handle every complete packet."""
        while True:
            want = len(self.buf) - self._rxn
            n = self.sock.readinto(self._rxv[self._rxn:]) if want else None
            if n is None:
                return
            if n == 0:
                raise MQTTError("closed by the broker")
            self._last_rx = now
            self._rxn += n
            self.parse(now)
            if n < want:
                return  # a short read: the socket has nothing more right now

    def parse(self, now):
        """Handle the complete packets at the start of the receive buffer."""
        while self._rxn:
            rx = self.buf
            if self._skip:  # the rest of an oversized packet
                k = min(self._skip, self._rxn)
                self.pop(k)
                self._skip -= k
                continue
            # §2.2.3: fixed header, then up to 4 bytes of remaining length.
            size = shift = 0
            i = 1
            while True:
                if i >= self._rxn:
                    return
                b = rx[i]
                size |= (b & 0x7F) << shift
                i += 1
                if not b & 0x80:
                    break
                shift += 7
                if shift > 21:
                    raise MQTTError("malformed remaining length")
            total = i + size
            if len(rx) < total <= _RX_MAX and self._grow(total):
                continue
            if total > len(rx):
                # Too large to hold (docs/protocol.md §8 caps messages at 4096 bytes, so never valid
                # data): answer a QoS 1 PUBLISH, so the broker does not resend it forever, and skip it.
                if rx[0] & 0xF6 == _PUBLISH | 2:
                    if self._rxn < i + 2:
                        return  # its packet id has not arrived yet
                    tl = (rx[i] << 8) | rx[i + 1]
                    if i + 4 + tl <= len(rx):  # else even the packet id does not fit: unanswered
                        if self._rxn < i + 4 + tl:
                            return
                        self.ack((rx[i + 2 + tl] << 8) | rx[i + 3 + tl])
                self.stats[_DISCARDED] += 1
                self._skip = total
                self.flush(now)
                continue
            if self._rxn < total:
                return
            self._packet(rx[0], i, size)
            self.pop(total)

    def pop(self, n):
        """Drop the first n bytes of the receive buffer (and a large packet's own buffer with them)."""
        rest = self._rxn - n
        if rest:
            self.buf[:rest] = self._rxv[n:self._rxn]
        self._rxn = rest
        home = self._home
        if self.buf is not home[0] and rest <= len(home[0]):
            home[0][:rest] = self._rxv[:rest]
            self.buf, self._rxv = home

    def _grow(self, n):
        # A buffer of n bytes for the large packet at the start of the receive buffer; False if the
        # heap cannot give one (the packet is then skipped and counted, as an oversized one is, and
        # the server's next ack or the retained config at the next connect brings it again).
        try:
            big = bytearray(n)
        except MemoryError:
            return False
        big[:self._rxn] = self._rxv[:self._rxn]
        self.buf, self._rxv = big, memoryview(big)
        return True

    def _packet(self, code, pos, n):
        rx = self.buf
        kind = code & 0xF0
        if kind == _PUBLISH:
            qos = (code >> 1) & 3
            tl = (rx[pos] << 8) | rx[pos + 1]
            p = pos + 2 + tl
            pid = 0
            if qos:
                pid = (rx[p] << 8) | rx[p + 1]
                p += 2
            k = len(self.prefix)
            if tl > k and self._rxv[pos + 2:pos + 2 + k] == self.prefix:  # else not one of ours: ignored
                self.on_message(self._rxv[pos + 2 + k:pos + 2 + tl], self._rxv[p:pos + n])
            if qos == 1:
                self.ack(pid)  # §4.3.2: after the message is handled, so an ack is applied first
        elif kind == _PUBACK:
            pid = (rx[pos] << 8) | rx[pos + 1]
            if pid in self._pids:
                self._pids[self._pids.index(pid)] = 0
                self.stats[_PUBACKS] += 1
        elif kind == _CONNACK:
            if rx[pos + 1]:
                raise MQTTError("connection refused, return code %d" % rx[pos + 1], rx[pos + 1])
            self.connected = True
        elif kind == _SUBACK:
            for k in range(pos + 2, pos + n):
                if rx[k] == 0x80:  # §3.9.3: a refused topic
                    raise MQTTError("subscription refused")
            self.subscribed = True
        elif kind == _PINGRESP:
            self._ping_at = None
            self.stats[_PONGS] += 1

    def ack(self, id):
        """Queue the PUBACK of packet id (§3.4)."""
        self.head(_PUBACK, 2)
        struct.pack_into(">H", self.out_buf, self.pos, id)
        self.pos += 2

    def tick(self, now):
        """Enforce the CONNACK, keepalive and PUBACK timers (poll() does it)."""
        if not self.connected:
            if time.ticks_diff(now, self._last_tx) > _CONNECT_TIMEOUT_MS:
                raise MQTTError("no CONNACK in time")
            return
        ka = self.keepalive_ms
        # §3.1.2.10: the client must send a packet at least every keepalive; we ping at half of it
        # when idle either way, and give the PINGRESP half a keepalive: a dead link is found within
        # one keepalive instead of the broker's 1.5.
        if self._ping_at is not None:
            if time.ticks_diff(now, self._ping_at) > ka // 2:
                raise MQTTError("no PINGRESP in time")
        elif (time.ticks_diff(now, self._last_tx) >= ka // 2
              or time.ticks_diff(now, self._last_rx) >= ka // 2):
            if len(self.out_buf) - self.pos >= 2:
                self.head(_PINGREQ, 0)
                self._ping_at = now
                self.stats[_PINGS] += 1
                self._last_tx = now
        for i in range(len(self._pids)):
            if self._pids[i] and time.ticks_diff(now, self._sent_at[i]) > ka:
                raise MQTTError("no PUBACK in time")
