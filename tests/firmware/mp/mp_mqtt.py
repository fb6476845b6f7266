# mqtt.py's receive path under real MicroPython, through a socket stand-in: packets larger than the
# resident receive buffer get a buffer of their own, and a heap that cannot give one costs only that
# packet.
import mqtt

PREFIX = b"motcua/v1/dev/esp32-test01/"


class Sock:
    """Gives the bytes queued in `incoming`, at most `chunk` per read, as a non-blocking socket."""

    def __init__(self, data, chunk=700):
        self.incoming = bytearray(data)
        self.chunk = chunk
        self.written = bytearray()

    def readinto(self, buf):
        n = min(len(buf), self.chunk, len(self.incoming))
        if not n:
            return None  # EAGAIN
        buf[:n] = self.incoming[:n]
        self.incoming = self.incoming[n:]
        return n

    def write(self, data):
        self.written.extend(data)
        return len(data)


def _publish(topic, payload, pid):
    # A QoS 1 PUBLISH (MQTT 3.1.1 §3.3) from the broker.
    t = PREFIX + topic
    body = bytes((len(t) >> 8, len(t) & 0xFF)) + t + bytes((pid >> 8, pid & 0xFF)) + payload
    n, head = len(body), bytearray([0x32])
    while True:
        b, n = n & 0x7F, n >> 7
        head.append(b | 0x80 if n else b)
        if not n:
            return bytes(head) + body


def _client(data):
    got = []
    c = mqtt.Client("esp32-test01", PREFIX, lambda t, p: got.append((bytes(t), bytes(p))), 60000)
    c.sock = Sock(data)
    c.connected = c._writable = True
    return c, got


def test_a_packet_larger_than_the_resident_buffer_gets_its_own():
    big = bytes(range(256)) * 15  # 3840 bytes: more than the resident buffer, within 4096
    c, got = _client(_publish(b"cfg", big, 7) + _publish(b"ack", b"small", 8))
    home = c.buf
    assert len(home) < len(big)
    for _ in range(20):
        c.recv(0)
    assert got == [(b"cfg", big), (b"ack", b"small")]
    assert c.buf is home and c._rxn == 0 and c.stats[0] == 0
    c.flush(0)
    assert bytes(c.sock.written) == b"\x40\x02\x00\x07\x40\x02\x00\x08"  # both PUBACKed


def test_a_heap_that_cannot_give_the_buffer_costs_only_that_packet():
    c, got = _client(_publish(b"cfg", b"x" * 3000, 9) + _publish(b"ack", b"next", 10))

    def no_heap(n):
        raise MemoryError

    mqtt.bytearray = no_heap  # the module's allocation of a large packet's buffer fails
    try:
        for _ in range(20):
            c.recv(0)
    finally:
        del mqtt.bytearray
    assert got == [(b"ack", b"next")] and c.stats[0] == 1  # skipped and counted as discarded
    c.flush(0)
    assert bytes(c.sock.written) == b"\x40\x02\x00\x09\x40\x02\x00\x0a"  # still acked: no resend loop


def test_a_packet_beyond_the_protocol_limit_is_skipped():
    c, got = _client(_publish(b"ack", b"y" * 6000, 11) + _publish(b"ack", b"after", 12))
    for _ in range(30):
        c.recv(0)
    assert got == [(b"ack", b"after")] and c.stats[0] == 1 and len(c.buf) < 2000
