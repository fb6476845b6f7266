# The packets that begin and end an MQTT session (OASIS MQTT 3.1.1 §3.1 CONNECT, §3.8 SUBSCRIBE,
# §3.14 DISCONNECT) for an mqtt.Client. The supervisor (link.py, console.py) loads this module for
# the call and drops it afterwards: a box (re)connects seldom, and this code need not stay in the
# heap in between.
import errno
import select
import socket


def open(c, addr, now, user, password, will):
    """Start connecting c to addr (from socket.getaddrinfo): a non-blocking TCP connect, and CONNECT
    (clean session) queued; will = (topic, payload, retain, qos), user and password bytes or None."""
    c.close()
    c._rxn = c._skip = c._txn = 0
    c.connected = c.subscribed = c._writable = False
    c._ping_at = None
    for i in range(len(c._pids)):
        c._pids[i] = 0
    s = socket.socket()
    s.setblocking(False)
    try:
        s.connect(addr)
    except OSError as e:
        if e.errno not in (errno.EINPROGRESS, errno.EAGAIN):
            s.close()
            raise
    c.sock = s
    c._poll.register(s, select.POLLIN | select.POLLOUT)
    c._last_tx = c._last_rx = now
    # §3.1: variable header "MQTT" level 4, flags, keepalive; payload id, will, user, password.
    cid = c.client_id.encode()
    flags = 0x02  # clean session: the outbox, not the broker, keeps what is unacked (§7)
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
    c.head(0x10, n)
    c.put(b"MQTT")
    c.put(bytes((4, flags, (c.keepalive_ms // 1000) >> 8, (c.keepalive_ms // 1000) & 0xFF)), False)
    c.put(cid)
    for field in (will and will[0], will and will[1], user, password):
        if field is not None:
            c.put(field)


def subscribe(c, topics):
    """One SUBSCRIBE for all topics, each at QoS 1."""
    c.head(0x82, 2 + sum([3 + len(t) for t in topics]))  # §3.8.1: reserved flag bits 0010
    c._pid = c._pid % 65535 + 1
    c.put(bytes((c._pid >> 8, c._pid & 0xFF)), False)
    for t in topics:
        c.put(t)
        c.put(b"\x01", False)


def disconnect(c):
    if c.sock is not None and c.connected:
        try:
            c.sock.write(b"\xe0\x00")
        except OSError:
            pass
    c.close()
