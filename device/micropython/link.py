# Connecting and losing the link (app.py's network supervisor, the rare half): Wi-Fi restarts with
# backoff, the MQTT connect with its last will, what is sent on every connect, and the reconnect
# backoff with jitter. Loaded by App.load for the occasion and dropped afterwards; it loads
# mqtt_session.py (the packets that begin a session) the same way.
import os
import sys
import time

import mqtt
from app import FW_VERSION

OFFLINE = b'{"online":false}'  # the retained status while the box is away (docs/protocol.md §2)


def _jitter(ms):
    # 75-125 %: a fleet that lost the broker together does not come back in lockstep.
    return ms * (75 + os.urandom(1)[0] * 50 // 255) // 100


def session(fn, *args):
    """mqtt_session.fn(*args), the module loaded for the call only."""
    import mqtt_session

    try:
        return getattr(mqtt_session, fn)(*args)
    finally:
        del sys.modules["mqtt_session"]


def wifi_down(app, now):
    """No Wi-Fi: close MQTT (once), restart the association after a growing wait."""
    if app.mq.sock is not None:
        fail(app, now, "Wi-Fi lost")
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
            import socket

            app.addr = socket.getaddrinfo(cfg["mqtt_host"], cfg["mqtt_port"])[0][-1]
        user, pw = cfg["mqtt_user"], cfg["mqtt_password"]
        session("open", app.mq, app.addr, now, user.encode() if user else None, pw.encode() if pw else None,
                (app.t_status, OFFLINE, True, 1))
    except (OSError, mqtt.MQTTError) as e:
        fail(app, now, e)


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
    app.stats["connects"] += 1
    # docs/protocol.md §2: retained availability; the will (set in CONNECT) replaces it on loss.
    online = b'{"online":true,"ep":%d,"fw":"%s"}' % (app.ep, FW_VERSION)
    mq.publish(app.t_status, online, now, qos=1, retain=True)
    session("subscribe", mq, (app.t_ack, app.t_cfg))  # clean session: subscribe again on every connect
    app.hb_next = now  # §4: a heartbeat at every (re)connect
    app.outbox.rewind()  # §7: everything unacked is sent again after a reconnect
    app.resend_ms = app.cfg["resend_ms"]
    app.progress_at = now
    print("mqtt: connected (%d events waiting)" % app.outbox.pending)
    app.board.emit("online", pending=app.outbox.pending)
    app.ui_dirty = True
