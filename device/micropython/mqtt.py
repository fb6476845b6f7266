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
import errno
import select
import socket
import struct
import time

from micropython import const

# Packet types (§2.2.1). const() with a leading underscore: folded into the bytecode, no global.
_CONNECT = const(0x10)
_CONNACK = const(0x20)
_PUBLISH = const(0x30)
_PUBACK = const(0x40)
_SUBSCRIBE = const(0x82)  # §3.8.1: reserved flag bits 0010
_SUBACK = const(0x90)
_PINGREQ = const(0xC0)
_PINGRESP = const(0xD0)

# Receive buffer: a v1 message is at most 4096 bytes (docs/protocol.md §8) plus topic and header.
# Larger packets are skipped and counted, never buffered.
RX_SIZE = const(4096 + 128)
# Transmit buffer: a few events in flight at ~250 bytes each; publish() refuses when it is full
# (the supervisor then waits), so memory stays fixed whatever the backlog.
TX_SIZE = const(1024)
# QoS 1 publishes waiting for PUBACK; bounds the work lost when a connection dies mid-burst.
MAX_INFLIGHT = const(8)
# CONNECT to CONNACK, including the TCP handshake.
_CONNECT_TIMEOUT_MS = const(5000)

_AUTH_CODES = (4, 5)  # §3.2.2.3: bad user name or password, not authorized


class MQTTError(Exception):
    """The broker or the connection failed; `code` is a CONNACK return code when there is one."""

    def __init__(self, msg, code=0):
        super().__init__(msg)
        self.code = code

    @property
    def auth(self):
        return self.code in _AUTH_CODES


def _enc_len(buf, at, n):
    # §2.2.3 remaining length: 7 bits per byte, high bit = more bytes follow.
    while True:
        b = n & 0x7F
        n >>= 7
        buf[at] = b | 0x80 if n else b
        at += 1
        if not n:
            return at


def _len_len(n):
    return 1 if n < 128 else 2 if n < 16384 else 3 if n < 2097152 else 4


class Client:
    """One MQTT connection at a time; on_message(topic, payload) receives memoryviews (copy to keep)."""

    def __init__(self, client_id, on_message, keepalive_s=60, rx_size=RX_SIZE, tx_size=TX_SIZE,
                 max_inflight=MAX_INFLIGHT):
        self.client_id = client_id
        self.on_message = on_message
        self.keepalive_ms = keepalive_s * 1000
        self._rx = bytearray(rx_size)
        self._rxv = memoryview(self._rx)
        self._tx = bytearray(tx_size)
        self._txv = memoryview(self._tx)
        self._pids = [0] * max_inflight  # QoS 1 packet ids waiting for PUBACK (0 = free)
        self._sent_at = [0] * max_inflight
        self._sock = None
        self._poll = select.poll()
        self._reset()
        self.discarded = 0  # received packets too large for the receive buffer
        self.pings = 0
        self.pongs = 0
        self.pubacks = 0

    def _reset(self):
        self._rxn = 0
        self._skip = 0
        self._txn = 0
        self._pid = 0
        self.connected = False  # CONNACK accepted
        self.subscribed = False  # SUBACK granted
        self._writable = False  # TCP connect finished
        self._ping_at = None
        for i in range(len(self._pids)):
            self._pids[i] = 0

    # ---- connection ----

    def open(self, addr, now, user=None, password=None, will=None, clean=True):
        """Start connecting to addr (from socket.getaddrinfo); will = (topic, payload, retain, qos)."""
        self.close()
        self._reset()
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect(addr)
        except OSError as e:
            if e.errno not in (errno.EINPROGRESS, errno.EAGAIN):
                s.close()
                raise
        self._sock = s
        self._poll.register(s, select.POLLIN | select.POLLOUT)
        self._opened = self._last_tx = self._last_rx = now
        self._connect_packet(user, password, will, clean)

    def _connect_packet(self, user, password, will, clean):
        # §3.1: variable header "MQTT" level 4, flags, keepalive; payload id, will, user, password.
        cid = self.client_id.encode()
        flags = 0x02 if clean else 0
        n = 10 + 2 + len(cid)
        if will:
            flags |= 0x04 | ((will[3] & 3) << 3) | (0x20 if will[2] else 0)
            n += 4 + len(will[0]) + len(will[1])
        if user is not None:
            flags |= 0x80
            n += 2 + len(user)
        if password is not None:
            flags |= 0x40
            n += 2 + len(password)
        self._room_or_raise(1 + _len_len(n) + n)
        self._byte(_CONNECT)
        self._txn = _enc_len(self._tx, self._txn, n)
        self._str(b"MQTT")
        self._byte(4)
        self._byte(flags)
        self._u16(self.keepalive_ms // 1000)
        self._str(cid)
        if will:
            self._str(will[0])
            self._str(will[1])
        if user is not None:
            self._str(user)
        if password is not None:
            self._str(password)

    def close(self):
        """Drop the connection without DISCONNECT, so the broker publishes the last will (§3.1.2.5)."""
        if self._sock is not None:
            try:
                self._poll.unregister(self._sock)
            except (OSError, KeyError, ValueError):
                pass
            self._sock.close()
            self._sock = None
        self.connected = False

    def disconnect(self):
        """Polite DISCONNECT (§3.14): the broker discards the will. Best effort, then close."""
        if self._sock is not None and self.connected:
            try:
                self._sock.write(b"\xe0\x00")
            except OSError:
                pass
        self.close()

    @property
    def is_open(self):
        return self._sock is not None

    # ---- transmit buffer ----

    def _room_or_raise(self, n):
        if len(self._tx) - self._txn < n:
            raise MQTTError("transmit buffer full")

    def _byte(self, b):
        self._tx[self._txn] = b
        self._txn += 1

    def _u16(self, v):
        struct.pack_into(">H", self._tx, self._txn, v)
        self._txn += 2

    def _put(self, data):
        n = len(data)
        self._tx[self._txn:self._txn + n] = data
        self._txn += n

    def _str(self, data):
        self._u16(len(data))
        self._put(data)

    def can_publish(self, topic_len, payload_len, qos=1):
        """True when a publish of this size fits the transmit buffer and, for QoS 1, a free slot."""
        if not self.connected:
            return False
        if qos and 0 not in self._pids:
            return False
        n = 2 + topic_len + (2 if qos else 0) + payload_len
        return len(self._tx) - self._txn >= 1 + _len_len(n) + n

    def inflight(self):
        return len(self._pids) - self._pids.count(0)

    def publish(self, topic, payload, now, qos=0, retain=False):
        """Queue a PUBLISH (§3.3); returns its packet id (0 for QoS 0). Check can_publish() first."""
        n = 2 + len(topic) + (2 if qos else 0) + len(payload)
        self._room_or_raise(1 + _len_len(n) + n)
        pid = 0
        if qos:
            try:
                i = self._pids.index(0)
            except ValueError:
                raise MQTTError("too many QoS 1 messages in flight")
            pid = self._next_pid()
            self._pids[i] = pid
            self._sent_at[i] = now
        self._byte(_PUBLISH | (qos << 1) | (1 if retain else 0))
        self._txn = _enc_len(self._tx, self._txn, n)
        self._str(topic)
        if qos:
            self._u16(pid)
        self._put(payload)
        return pid

    def subscribe(self, topics, qos=1):
        """Queue one SUBSCRIBE (§3.8) for all topics; a refusal in the SUBACK raises from poll()."""
        n = 2 + sum([3 + len(t) for t in topics])
        self._room_or_raise(1 + _len_len(n) + n)
        self._byte(_SUBSCRIBE)
        self._txn = _enc_len(self._tx, self._txn, n)
        self._u16(self._next_pid())
        for t in topics:
            self._str(t)
            self._byte(qos)

    def _next_pid(self):
        self._pid = self._pid % 65535 + 1  # §2.3.1: non-zero 16-bit
        return self._pid

    # ---- the pump ----

    def poll(self, now):
        """Move bytes both ways and enforce the timers; raises MQTTError or OSError on failure."""
        if self._sock is None:
            raise MQTTError("not open")
        for _s, ev in self._poll.ipoll(0):  # ipoll: no list allocated per pass
            if ev & (select.POLLERR | select.POLLHUP) and not ev & select.POLLIN:
                raise MQTTError("connection lost")
            if ev & select.POLLOUT:
                self._writable = True
            if ev & select.POLLIN:
                self._receive(now)
        if self._writable and self._txn:
            self._flush(now)
        self._poll.modify(self._sock, select.POLLIN | (select.POLLOUT if self._txn or not self._writable
                                                        else 0))
        self._timers(now)

    def _flush(self, now):
        w = self._sock.write(self._txv[:self._txn])
        if w:
            rest = self._txn - w
            self._tx[:rest] = self._txv[w:self._txn]
            self._txn = rest
            self._last_tx = now

    def _receive(self, now):
        while True:
            want = len(self._rx) - self._rxn
            n = self._sock.readinto(self._rxv[self._rxn:]) if want else None
            if n is None:
                return
            if n == 0:
                raise MQTTError("closed by the broker")
            self._last_rx = now
            self._rxn += n
            self._parse(now)
            if n < want:
                return  # a short read: the socket has nothing more right now

    def _parse(self, now):
        while self._rxn:
            if self._skip:  # the rest of an oversized packet
                k = min(self._skip, self._rxn)
                self._consume(k)
                self._skip -= k
                continue
            # §2.2.3: fixed header, then up to 4 bytes of remaining length.
            size = shift = 0
            i = 1
            while True:
                if i >= self._rxn:
                    return
                b = self._rx[i]
                size |= (b & 0x7F) << shift
                i += 1
                if not b & 0x80:
                    break
                shift += 7
                if shift > 21:
                    raise MQTTError("malformed remaining length")
            total = i + size
            if total > len(self._rx):
                if not self._oversized(i, total, now):
                    return
                continue
            if self._rxn < total:
                return
            self._packet(self._rx[0], i, size, now)
            self._consume(total)

    def _oversized(self, i, total, now):
        # Too large to hold: answer a QoS 1 PUBLISH (so the broker does not resend it forever)
        # and skip it. docs/protocol.md §8 caps messages at 4096 bytes, so this is never valid data.
        # Returns False while the packet id has not arrived yet.
        head = self._rx[0]
        if head & 0xF0 == _PUBLISH and (head >> 1) & 3 == 1:
            if self._rxn < i + 2:
                return False
            tl = (self._rx[i] << 8) | self._rx[i + 1]
            if i + 4 + tl <= len(self._rx):  # else even the packet id does not fit: skip unanswered
                if self._rxn < i + 4 + tl:
                    return False
                self._puback((self._rx[i + 2 + tl] << 8) | self._rx[i + 3 + tl])
        self.discarded += 1
        self._skip = total
        self._flush_if_possible(now)
        return True

    def _flush_if_possible(self, now):
        if self._writable and self._txn:
            self._flush(now)

    def _consume(self, k):
        rest = self._rxn - k
        if rest:
            self._rx[:rest] = self._rxv[k:self._rxn]
        self._rxn = rest

    def _packet(self, head, at, size, now):
        kind = head & 0xF0
        if kind == _PUBLISH:
            qos = (head >> 1) & 3
            tl = (self._rx[at] << 8) | self._rx[at + 1]
            topic = self._rxv[at + 2:at + 2 + tl]
            p = at + 2 + tl
            pid = 0
            if qos:
                pid = (self._rx[p] << 8) | self._rx[p + 1]
                p += 2
            self.on_message(topic, self._rxv[p:at + size])
            if qos == 1:
                self._puback(pid)  # §4.3.2: after the message is handled, so an ack is applied first
        elif kind == _PUBACK:
            pid = (self._rx[at] << 8) | self._rx[at + 1]
            if pid in self._pids:
                self._pids[self._pids.index(pid)] = 0
                self.pubacks += 1
        elif kind == _CONNACK:
            rc = self._rx[at + 1]
            if rc:
                raise MQTTError("connection refused, return code %d" % rc, rc)
            self.connected = True
        elif kind == _SUBACK:
            for k in range(at + 2, at + size):
                if self._rx[k] == 0x80:  # §3.9.3
                    raise MQTTError("subscription refused")
            self.subscribed = True
        elif kind == _PINGRESP:
            self._ping_at = None
            self.pongs += 1

    def _puback(self, pid):
        self._room_or_raise(4)
        self._byte(_PUBACK)
        self._byte(2)
        self._u16(pid)

    def _timers(self, now):
        if not self.connected:
            if time.ticks_diff(now, self._opened) > _CONNECT_TIMEOUT_MS:
                raise MQTTError("no CONNACK within %d ms" % _CONNECT_TIMEOUT_MS)
            return
        ka = self.keepalive_ms
        # §3.1.2.10: the client must send a packet at least every keepalive; we ping at half of it
        # when idle either way, and give the PINGRESP half a keepalive: a dead link is found within
        # one keepalive instead of the broker's 1.5.
        if self._ping_at is not None:
            if time.ticks_diff(now, self._ping_at) > ka // 2:
                raise MQTTError("no PINGRESP within %d ms" % (ka // 2))
        elif (time.ticks_diff(now, self._last_tx) >= ka // 2
              or time.ticks_diff(now, self._last_rx) >= ka // 2):
            if len(self._tx) - self._txn >= 2:
                self._byte(_PINGREQ)
                self._byte(0)
                self._ping_at = now
                self.pings += 1
                self._last_tx = now
        for i in range(len(self._pids)):
            if self._pids[i] and time.ticks_diff(now, self._sent_at[i]) > ka:
                raise MQTTError("no PUBACK within the keepalive")
