# Connecting and losing the link (app.py's network supervisor, the rare half): Wi-Fi restarts with
# backoff, the packets that begin and end an MQTT session (OASIS MQTT 3.1.1 §3.1 CONNECT with the
# last will, §3.8 SUBSCRIBE, §3.14 DISCONNECT), what is sent on every connect, and the reconnect
# backoff with jitter. Loaded by App.load for the occasion and dropped afterwards: a box (re)connects
# seldom, and this code need not stay in the heap in between.
import errno
import os
import select
import socket
import time

import mqtt



def _jitter(ms):
    # 75-125 %: a fleet that lost the broker together does not come back in lockstep.
    return ms * (75 + os.urandom(1)[0] * 50 // 255) // 100


def wifi_down(app, now):
    """No Wi-Fi: close MQTT (once), restart the association after a growing wait."""
    if app.mq.sock is not None:
        fail(app, now, "Wi-Fi connection lost")
    if time.ticks_diff(now, app.wifi_next) >= 0:
        app.board.wifi_start()
        app.wifi_next = time.ticks_add(now, _jitter(app.wifi_wait))
        # Association itself takes 2-8 s; the wait doubles up to backoff_max_ms.
        app.wifi_wait = min(app.wifi_wait * 2, max(app.cfg["backoff_max_ms"], app.cfg["wifi_retry_ms"]))


def open(app, now):
    """Start connecting (non-blocking); the last will marks the box offline (docs/protocol.md §2)."""
    cfg = app.cfg
    try:
        if app.addr is None:  # a DNS lookup blocks: done once, again only after a failure
            app.addr = socket.getaddrinfo(cfg["mqtt_host"], cfg["mqtt_port"])[0][-1]
        connect(app.mq, app.addr, now, cfg)
    except (OSError, mqtt.MQTTError) as e:
        fail(app, now, e)


def connect(mq, addr, now, cfg):
    """Non-blocking TCP connect of client mq to addr, and its CONNECT queued: clean session, the
    offline status as last will (retained, QoS 1), mqtt_user and mqtt_password of cfg unless None."""
    user, password = cfg["mqtt_user"], cfg["mqtt_password"]
    mq.close()
    mq.buf, mq._rxv = mq._home
    mq._rxn = mq._skip = mq.pos = 0
    mq.connected = mq.subscribed = mq._writable = False
    mq._ping_at = None
    for i in range(len(mq._pids)):
        mq._pids[i] = 0
    s = socket.socket()
    s.setblocking(False)
    try:
        s.connect(addr)
    except OSError as e:
        if e.errno not in (errno.EINPROGRESS, errno.EAGAIN):
            s.close()
            raise
    mq.sock = s
    mq.poller.register(s, select.POLLIN | select.POLLOUT)
    mq._last_tx = mq._last_rx = now
    # §3.1: variable header "MQTT" level 4, flags, keepalive; payload id, will, user, password.
    cid = mq.client_id.encode()
    fields = [f.encode() for f in (user, password) if f is not None]
    # clean session (the outbox, not the broker, keeps what is unacked, §7); will QoS 1, retained
    flags = 0x02 | 0x04 | 0x08 | 0x20 | (0x80 if user is not None else 0) | (0x40 if password is not None else 0)
    will = b'{"online":false}'  # the retained status while the box is away (docs/protocol.md §2)
    mq.head(0x10, 10 + 2 + len(cid) + 2 + len(mq.prefix) + 6 + 2 + len(will) + sum([2 + len(f) for f in fields]))
    mq.put(b"MQTT")
    mq.put(bytes((4, flags, (mq.keepalive_ms // 1000) >> 8, (mq.keepalive_ms // 1000) & 0xFF)), False)
    mq.put(cid)
    mq.put_topic(b"status")
    mq.put(will)
    for f in fields:
        mq.put(f)


def fail(app, now, why):
    """The link is gone or could not be made: close, and schedule the next try with backoff."""
    app.mq.close()
    # A refusal of the credentials (CONNACK codes 4 and 5, MQTT 3.1.1 §3.2.2.3) waits long but is
    # retried forever: an unattended box must come back once someone fixes its account.
    auth = isinstance(why, mqtt.MQTTError) and why.args[-1] in (4, 5)
    delay = _jitter(app.cfg["auth_backoff_ms"] if auth else app.backoff)
    app.mq_next = time.ticks_add(now, delay)
    if not auth:
        app.backoff = min(app.backoff * 2, app.cfg["backoff_max_ms"])
    if isinstance(why, OSError):
        app.addr = None  # the address may have moved
    why = why.args[0] if isinstance(why, mqtt.MQTTError) else str(why)
    print("mqtt: %s; next try in %d ms" % (why, delay))
    app.board.emit("offline", why=why, retry_ms=delay)
    app.ui_dirty = True


def connected(app, now):
    """CONNACK: retained online status, subscriptions, a heartbeat, and the whole outbox again."""
    mq = app.mq
    app.backoff = app.cfg["backoff_min_ms"]
    app.stats[0] += 1  # connects (app.py's stats)
    # docs/protocol.md §2: retained availability; the will (set in CONNECT) replaces it on loss.
    mq.publish(b"status", b'{"online":true,"ep":%d,"fw":"%s"}' % (app.ep, app.version), now, qos=1, retain=True)
    # Clean session: subscribe again on every connect, one SUBSCRIBE (§3.8, QoS 1) for both; a
    # refusal in the SUBACK raises from poll().
    mq.head(0x82, 2 + 2 * (2 + len(mq.prefix) + 3 + 1))  # §3.8.1: reserved flag bits 0010
    mq.id = mq.id % 65535 + 1
    mq.put(bytes((mq.id >> 8, mq.id & 0xFF)), False)
    for t in (b"ack", b"cfg"):
        mq.put_topic(t)
        mq.put(b"\x01", False)
    app.hb_next = now  # §4: a heartbeat at every (re)connect
    app.outbox.rewind()  # §7: everything unacked is sent again after a reconnect
    app.resend_ms = app.cfg["resend_ms"]
    app.progress_at = now
    print("mqtt: connected (%d events waiting)" % app.outbox.pending)
    app.board.emit("online", pending=app.outbox.pending)
    app.ui_dirty = True


def disconnect(mq):
    """Polite DISCONNECT (§3.14): the broker discards the will. Best effort, then close."""
    if mq.sock is not None and mq.connected:
        try:
            mq.sock.write(b"\xe0\x00")
        except OSError:
            pass
    mq.close()
