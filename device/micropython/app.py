# The supervisor: composition root and main loop of the button box. It owns every retry policy
# (Wi-Fi, MQTT reconnect with backoff, end-to-end re-sends, NTP re-sync); the modules below it
# (wire, mqtt, outbox, sntp) only raise. Nothing here blocks for long: presses are taken from the
# interrupt ring and written to flash at once, whatever the network is doing.
import gc
import struct
import sys
import time

from micropython import const

import wire

gc.collect()  # between imports: each compile leaves garbage that would fragment the heap

gc.collect()
from signing import Signer, key_from_hex

gc.collect()
from outbox import F_DURING_THANKS, F_TS, TYP_INCIDENT, TYP_RATING, Outbox

gc.collect()
from slots import Slots

gc.collect()
from buttons import Buttons

gc.collect()
import mqtt

gc.collect()

# Idle sleep of the main loop when nothing is queued. Presses do not wait for it (interrupts), so
# it only delays network work; shorter costs CPU for nothing.
_LOOP_MS = const(20)
# Largest event this firmware makes (a rating with ts and during_thanks, 40-character device id,
# 10-digit ep and seq is ~240 bytes): publish waits until this much transmit buffer is free.
_MAX_EVENT_BYTES = const(256)
_NTP_TIMEOUT_MS = const(3000)  # an SNTP reply later than this is not waited for
_NTP_RETRY_MS = const(60000)  # after a failed sync; capped by ntp_resync_s
# Bytes allocated between garbage collections. Small keeps the heap's peak close to what is live
# (the 48 KB budget of issue 3); each collection costs ~1-3 ms on an ESP32.
_GC_SLACK = const(2 * 1024)
# The display is redrawn at once for the thank-you state and link changes, and at most this often
# for the outbox counter (an SSD1306 frame is ~25 ms of I2C).
_UI_REFRESH_MS = const(1000)
# The LED lit by a press stays on for the thank-you time, and at least this long when that is 0.
_LED_MIN_MS = const(500)

FW_VERSION = "1.0.0"
STATUS_OFFLINE = b'{"online":false}'
INCIDENT_KINDS = ("complaint",)


class Uptime:
    """Milliseconds since the firmware started, never wrapping (ticks_ms wraps after 12.4 days)."""

    def __init__(self):
        self._last = time.ticks_ms()
        self._ms = 0

    def ms(self, now):
        self._ms += time.ticks_diff(now, self._last)
        self._last = now
        return self._ms


def _jitter(ms):
    # 75-125 %: a fleet that lost the broker together does not come back in lockstep.
    import os

    return ms * (75 + os.urandom(1)[0] * 50 // 255) // 100


class App:
    def __init__(self, cfg, board):
        self.cfg = cfg
        self.board = board
        self.dev = cfg["device_id"]
        self.signer = Signer(key_from_hex(cfg["secret_hex"]))
        base = "motcua/v1/dev/%s/" % self.dev
        self.t_evt = (base + "evt").encode()
        self.t_hb = (base + "hb").encode()
        self.t_status = (base + "status").encode()
        self.t_ack = (base + "ack").encode()
        self.t_cfg = (base + "cfg").encode()
        self.uptime = Uptime()
        self.ep = 0
        self.seq = 0  # last sequence number assigned in this epoch
        self.dropped = 0  # events lost for good, ever (overflow, flash failure, damaged records)
        self._accounted = 0
        self.offset = None  # Unix ms = uptime + offset, once NTP answered
        self.server_cfg = None
        self.cfg_rev = 0
        self.hb_ms = cfg["hb_s"] * 1000
        self.stats = {"connects": 0, "sent": 0, "acked": 0, "resends": 0, "bad_msgs": 0, "hb": 0,
                      "ntp": 0}
        self.display = None
        self._thanks = False
        self._lit = False
        self._ui_dirty = True
        self._ui_at = 0
        self._online_shown = None
        self._base_alloc = 0
        self.peak_alloc = 0
        self.peak_live = 0
        self._gc_at = 0

    # ---- boot ----

    def boot(self):
        """Recover the flash, take a new epoch (persisted before any event, §3), start the hardware."""
        cfg, b = self.cfg, self.board
        d = cfg["data_dir"]
        _mkdir(d)
        self.outbox = Outbox(d + "/outbox", cfg["seg_slots"], cfg["max_segments"])
        pending = self.outbox.recover()
        self._state = Slots(d + "/state")
        raw = self._state.load()
        ep, dropped = struct.unpack(">II", raw) if raw and len(raw) == 8 else (0, 0)
        # The outbox's epochs count too: if the state copies were ever lost, no (ep, seq) is reused.
        self.ep = max(ep, self.outbox.max_ep) + 1
        self.dropped = dropped
        self._account()
        try:
            self._save_state()
        except OSError:
            # Flash full: the epoch must be on flash before any event (§3), so make room by the
            # overflow policy and try once more; failing again, the reset in main() retries.
            self.outbox.drop_oldest()
            self._account()
            self._save_state()
        self._cfg_slots = Slots(d + "/config")
        raw = self._cfg_slots.load()
        self.buttons = Buttons(len(cfg["button_pins"]), cfg["complaint_pin"] is not None, b.feedback,
                               cfg["debounce_ms"], cfg["levels"], cfg["thanks_ms"])
        if raw:
            try:
                self._on_config(raw, persist=False)  # re-verified: the signature is the integrity check
            except Exception as e:
                b.log("stored config not usable: %r" % e)
        b.start(self.buttons)
        b.command = self._command
        self.display = b.display()
        if self.display is not None:
            import display  # noqa: F401  (optional code, imported only with a display)
        self.mq = mqtt.Client(self.dev, self._on_message, cfg["keepalive_s"])
        self.sntp = None
        if cfg["ntp_host"]:
            import sntp

            self.sntp = sntp.Sntp()
        self._backoff = cfg["backoff_min_ms"]
        self._wifi_wait = cfg["wifi_retry_ms"]
        self._resend_ms = cfg["resend_ms"]
        now = time.ticks_ms()
        self._mq_next = self._wifi_next = self._ntp_next = self._hb_next = self._progress_at = now
        self._ntp_deadline = None
        self._addr = None
        gc.collect()
        gc.threshold(_GC_SLACK)
        self._base_alloc = self.peak_live = gc.mem_alloc()
        self._gc_at = self._base_alloc + _GC_SLACK
        b.wdt_start(cfg["wdt_ms"])
        b.log("motcua %s: device %s epoch %d, %d event(s) waiting, %d lost at recovery" % (
            FW_VERSION, self.dev, self.ep, pending, self.outbox.lost))
        b.emit("boot", ep=self.ep, pending=pending, lost=self.outbox.lost, heap=self._base_alloc,
               levels=self.buttons.levels, cfg_rev=self.cfg_rev)

    def _save_state(self):
        self._state.save(struct.pack(">II", self.ep, self.dropped))

    def _save_counters(self):
        # After boot only the drop counter changes: losing this write loses a count, not an event.
        try:
            self._save_state()
        except OSError as e:
            self.board.log("state not saved: %r" % e)

    def _account(self):
        # Fold the outbox's overflow drops and damaged records into the persisted `dropped` (§4).
        n = self.outbox.dropped + self.outbox.lost
        if n != self._accounted:
            self.dropped += n - self._accounted
            self._accounted = n
            return True
        return False

    # ---- main loop ----

    def run(self):
        while True:
            busy = self.step()
            self.board.sleep_ms(1 if busy else _LOOP_MS)

    def step(self):
        """One pass over everything; True when work is left that should not wait for LOOP_MS."""
        now = time.ticks_ms()
        up = self.uptime.ms(now)
        self.board.wdt_feed()
        self.board.poll(now)
        self._presses(now, up)
        busy = self._net(now, up)
        self._ui(now)
        self._memory()
        return busy

    def _presses(self, now, up):
        while True:
            p = self.buttons.take()
            if p is None:
                return
            btn, at, flagged = p
            up_at = up - time.ticks_diff(now, at)  # the event's time is the press, not now
            self.seq += 1
            flags = F_DURING_THANKS if flagged else 0
            ts = 0
            if self.offset is not None:
                ts = up_at + self.offset
                flags |= F_TS
            if btn == self.buttons.complaint:
                typ, a, lv = TYP_INCIDENT, 0, 0
            else:
                typ, a, lv = TYP_RATING, btn + 1, self.buttons.levels
            try:
                self.outbox.append(typ, a, lv, flags, self.ep, self.seq, max(up_at, 0), ts)
            except OSError as e:
                self.dropped += 1
                self.board.log("press %d/%d lost: flash refused it twice (%r)" % (self.ep, self.seq, e))
                self._save_counters()
                continue
            if self._account():
                self._save_counters()
            self.board.emit("evt", ep=self.ep, seq=self.seq, typ=typ, v=a, flag=flagged)
            self._ui_dirty = True

    # ---- network supervisor ----

    def _net(self, now, up):
        b, mq = self.board, self.mq
        if not b.wifi_up():
            if mq.is_open:
                self._fail(now, "Wi-Fi lost")
            if time.ticks_diff(now, self._wifi_next) >= 0:
                b.wifi_start()
                self._wifi_next = time.ticks_add(now, _jitter(self._wifi_wait))
                self._wifi_wait = min(self._wifi_wait * 2, max(self.cfg["backoff_max_ms"],
                                                               self.cfg["wifi_retry_ms"]))
            return False
        self._wifi_wait = self.cfg["wifi_retry_ms"]
        if self.sntp is not None:
            self._clock(now, up)
        if not mq.is_open:
            if time.ticks_diff(now, self._mq_next) < 0:
                return False
            try:
                self._open(now)
            except (OSError, mqtt.MQTTError) as e:
                self._fail(now, e)
                return False
        try:
            was, was_sub = mq.connected, mq.subscribed
            mq.poll(now)
            if not mq.connected:
                return False
            if not was:
                self._on_connect(now, up)
            if mq.subscribed and not was_sub:
                self.board.emit("subscribed")  # acks and configs can reach us from now on
            busy = self._pump(now, up)
            mq.poll(now)  # send what the pump queued without waiting a loop
            return busy
        except (OSError, mqtt.MQTTError) as e:
            self._fail(now, e)
            return False

    def _open(self, now):
        cfg = self.cfg
        if self._addr is None:  # a DNS lookup blocks: done once, again only after a failure
            import socket

            self._addr = socket.getaddrinfo(cfg["mqtt_host"], cfg["mqtt_port"])[0][-1]
        user, pw = cfg["mqtt_user"], cfg["mqtt_password"]
        self.mq.open(self._addr, now, user.encode() if user else None, pw.encode() if pw else None,
                     (self.t_status, STATUS_OFFLINE, True, 1))

    def _fail(self, now, why):
        self.mq.close()
        auth = isinstance(why, mqtt.MQTTError) and why.auth
        delay = self.cfg["auth_backoff_ms"] if auth else self._backoff
        delay = _jitter(delay)
        self._mq_next = time.ticks_add(now, delay)
        if not auth:
            self._backoff = min(self._backoff * 2, self.cfg["backoff_max_ms"])
        if isinstance(why, OSError):
            self._addr = None  # the address may have moved
        self.board.log("mqtt: %s; next try in %d ms" % (why, delay))
        self.board.emit("offline", why=str(why), retry_ms=delay)
        self._ui_dirty = True

    def _on_connect(self, now, up):
        cfg, mq = self.cfg, self.mq
        self._backoff = cfg["backoff_min_ms"]
        self.stats["connects"] += 1
        # docs/protocol.md §2: retained availability; the will (set in CONNECT) replaces it on loss.
        online = '{"online":true,"ep":%d,"fw":"%s"}' % (self.ep, FW_VERSION)
        mq.publish(self.t_status, online.encode(), now, qos=1, retain=True)
        mq.subscribe((self.t_ack, self.t_cfg))  # clean session: subscribe again on every connect
        self._hb_next = now  # §4: a heartbeat at every (re)connect
        self.outbox.rewind()  # §7: everything unacked is sent again after a reconnect
        self._resend_ms = cfg["resend_ms"]
        self._progress_at = now
        self.board.log("mqtt: connected (%d events waiting)" % self.outbox.pending)
        self.board.emit("online", pending=self.outbox.pending)
        self._ui_dirty = True

    def _pump(self, now, up):
        ob, mq = self.outbox, self.mq
        if ob.outstanding and time.ticks_diff(now, self._progress_at) >= self._resend_ms:
            # §7: no ack for a while: send the unacked events again, waiting longer each time.
            ob.rewind()
            self._resend_ms = min(self._resend_ms * 2, self.cfg["resend_max_ms"])
            self._progress_at = now
            self.stats["resends"] += 1
        if time.ticks_diff(now, self._hb_next) >= 0 and mq.can_publish(len(self.t_hb), _MAX_EVENT_BYTES, 0):
            self._heartbeat(now, up)
        window = self.cfg["window"]
        while ob.outstanding < window and mq.can_publish(len(self.t_evt), _MAX_EVENT_BYTES):
            rec = ob.next_unsent()
            if rec is None:
                return False
            if ob.outstanding == 1:
                self._progress_at = now  # the resend clock starts with the first event of a round
            mq.publish(self.t_evt, self._encode(rec), now, qos=1)
            self.stats["sent"] += 1
        return ob.outstanding < window and ob.pending > ob.outstanding

    def _encode(self, rec):
        typ, a, b, flags, ep, seq, up, ts = rec
        if typ == TYP_RATING:
            body, name = wire.rating_body(a, b, flags & F_DURING_THANKS), "rating"
        else:
            body, name = wire.incident_body(INCIDENT_KINDS[a]), "incident"
        return wire.seal(self.signer, wire.envelope(self.dev, ep, seq, up, ts if flags & F_TS else None,
                                                    name, body))

    def _heartbeat(self, now, up):
        synced = self.offset is not None
        body = wire.heartbeat_body(FW_VERSION, self.outbox.pending, synced, gc.mem_free(),
                                   self.dropped, self.board.rssi())
        signed = wire.envelope(self.dev, self.ep, self.seq, up, up + self.offset if synced else None,
                               "heartbeat", body)
        self.mq.publish(self.t_hb, wire.seal(self.signer, signed), now, qos=0)
        self._hb_next = time.ticks_add(now, self.hb_ms)
        self.stats["hb"] += 1

    def _clock(self, now, up):
        s = self.sntp
        if self._ntp_deadline is not None:
            off = s.poll(up)
            if off is not None:
                self.offset = off
                self._ntp_deadline = None
                self._ntp_next = time.ticks_add(now, self.cfg["ntp_resync_s"] * 1000)
                self.stats["ntp"] += 1
                self.board.emit("clock", offset=off)
            elif time.ticks_diff(now, self._ntp_deadline) >= 0:
                s.close()
                self._ntp_deadline = None
                self._ntp_next = time.ticks_add(now, min(_NTP_RETRY_MS, self.cfg["ntp_resync_s"] * 1000))
            return
        if time.ticks_diff(now, self._ntp_next) >= 0:
            try:
                import socket

                addr = socket.getaddrinfo(self.cfg["ntp_host"], self.cfg["ntp_port"])[0][-1]
                s.start(addr, up)
                self._ntp_deadline = time.ticks_add(now, _NTP_TIMEOUT_MS)
            except OSError as e:
                self.board.log("ntp: %r" % e)
                self._ntp_next = time.ticks_add(now, min(_NTP_RETRY_MS, self.cfg["ntp_resync_s"] * 1000))

    # ---- messages from the server ----

    def _on_message(self, topic, payload):
        # One bad message is logged and counted; it never stops the loop or the connection.
        t = bytes(topic)
        try:
            if t == self.t_ack:
                self._on_ack(payload)
            elif t == self.t_cfg:
                self._on_config(payload)
        except Exception as e:
            self.stats["bad_msgs"] += 1
            self.board.log("refused message on %s: %s %s" % (t.decode(), getattr(e, "code", type(e).__name__),
                                                              e))
            self.board.emit("refused", topic=t.decode(), code=getattr(e, "code", "error"))

    def _on_ack(self, payload):
        n = 0
        for ep, seq, _code in wire.parse_ack(self.signer, self.dev, payload):
            if self.outbox.ack(ep, seq):  # ok, dup and quar all mean: delete (§7)
                n += 1
        if n:
            self.stats["acked"] += n
            self._resend_ms = self.cfg["resend_ms"]
            self._progress_at = time.ticks_ms()
            self._ui_dirty = self._ui_dirty or self.display is not None

    def _on_config(self, payload, persist=True):
        if not len(payload):
            self.board.log("config: retained config cleared (device revoked?); keeping rev %d" % self.cfg_rev)
            return
        import servercfg

        doc = servercfg.parse_config(self.signer, self.dev, payload)
        rev = doc["rev"]
        if rev <= self.cfg_rev:  # §5: an old retained message replayed changes nothing
            self.board.log("config: rev %d ignored, rev %d applied" % (rev, self.cfg_rev))
            return
        levels = doc["scale"]["levels"]
        wired = len(self.cfg["button_pins"])
        if levels > wired:
            raise wire.ProtocolError("schema", "a scale of %d levels needs %d buttons; this box has %d"
                                     % (levels, levels, wired))
        if persist:
            self._cfg_slots.save(bytes(payload))  # so the display is right after a reboot offline
        self.buttons.levels = levels
        self.buttons.thanks_ms = doc["thanks_ms"]
        self.hb_ms = doc["hb_s"] * 1000
        self.cfg_rev = rev
        self.server_cfg = {"counter": doc["counter"], "official": doc["official"]}
        self._ui_dirty = True
        self.board.emit("cfg", rev=rev, levels=levels, thanks_ms=doc["thanks_ms"], hb_s=doc["hb_s"])

    # ---- display, memory, commands ----

    def _ui(self, now):
        bt = self.buttons
        th = bt.in_thanks(now)
        if th != self._thanks:
            self._thanks = th
            self._ui_dirty = True
        lit = bt.last_press is not None and time.ticks_diff(now, bt.last_press) < max(bt.thanks_ms,
                                                                                       _LED_MIN_MS)
        if self._lit and not lit:
            self.board.thanks_over()  # the feedback LED, lit in the interrupt, goes off here
        self._lit = lit
        online = self.mq.connected
        if online != self._online_shown:
            self._online_shown = online
            self._ui_dirty = True
        if self.display is None or not self._ui_dirty:
            return
        if not th and time.ticks_diff(now, self._ui_at) < _UI_REFRESH_MS and self._ui_at:
            return
        import display

        self.display.show(display.screen(self.server_cfg, online, self.outbox.pending, th))
        self._ui_dirty = False
        self._ui_at = now

    def _memory(self):
        a = gc.mem_alloc()
        if a > self.peak_alloc:
            self.peak_alloc = a
        if a > self._gc_at:
            gc.collect()
            a = gc.mem_alloc()
            if a > self.peak_live:
                self.peak_live = a
            self._gc_at = a + _GC_SLACK

    def status(self):
        ob, mq = self.outbox, self.mq
        st = {"ep": self.ep, "seq": self.seq, "pending": ob.pending, "outstanding": ob.outstanding,
              "segments": ob.segments(), "dropped": self.dropped, "lost": ob.lost,
              "online": mq.connected, "synced": self.offset is not None, "up": self.uptime.ms(time.ticks_ms()),
              "mem_free": gc.mem_free(), "mem_alloc": gc.mem_alloc(), "base_alloc": self._base_alloc,
              "peak_alloc": self.peak_alloc, "peak_live": self.peak_live, "cfg_rev": self.cfg_rev,
              "levels": self.buttons.levels, "thanks_ms": self.buttons.thanks_ms, "hb_ms": self.hb_ms,
              "overflow": self.buttons.overflow, "ignored": self.buttons.ignored, "pings": mq.pings,
              "pongs": mq.pongs, "pubacks": mq.pubacks, "discarded": mq.discarded,
              "wdt_max_gap": self.board.wdt_max_gap}
        st.update(self.stats)
        return st

    def _command(self, words):
        if words[0] == "status":
            self.board.emit("status", **self.status())
        elif words[0] == "quit":
            self.shutdown()
        else:
            self.board.log("unknown command %r" % words[0])

    def shutdown(self):
        """Orderly stop: retained offline status, DISCONNECT (so no last will), files closed."""
        mq = self.mq
        if mq.connected:
            try:
                mq.publish(self.t_status, STATUS_OFFLINE, time.ticks_ms(), qos=1, retain=True)
                deadline = time.ticks_add(time.ticks_ms(), 1000)
                while mq.inflight() and time.ticks_diff(deadline, time.ticks_ms()) > 0:
                    mq.poll(time.ticks_ms())
                    time.sleep_ms(5)
            except (OSError, mqtt.MQTTError):
                pass
        mq.disconnect()
        self.outbox.close()
        self.board.emit("bye")
        sys.exit(0)


def _mkdir(path):
    import os

    try:
        os.mkdir(path)
    except OSError:
        pass  # exists


def main():
    """Entry point (main.py): configuration, board, boot, run; reset on anything unexpected."""
    import config

    if sys.platform == "esp32":
        import board_esp32 as board
    else:
        import board_host as board

    try:
        cfg = config.load()
    except config.ConfigError as e:
        board.Board(config.DEFAULTS).fatal("configuration: %s" % e)
        return
    del sys.modules["config"]  # validated and copied: its code would only hold RAM
    del config
    gc.collect()
    b = board.Board(cfg)
    gc.collect()
    app = App(cfg, b)
    app.boot()
    try:
        app.run()
    except Exception as e:  # a bug: the outbox keeps every press, so a reset loses nothing
        sys.print_exception(e)
        b.log("unexpected error: resetting")
        time.sleep_ms(1000)
        b.reset()
