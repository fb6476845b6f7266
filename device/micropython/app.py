# The supervisor: main loop of the button box. It owns every retry policy (Wi-Fi, MQTT reconnect
# with backoff, end-to-end re-sends, NTP re-sync); the modules below it (wire, mqtt, outbox, sntp)
# only raise. Nothing here blocks for long: presses are taken from the interrupt ring and written to
# flash at once, whatever the network is doing.
#
# Only the steady state is here. start.py builds and boots the App (the composition root, freed
# after boot); what happens seldom is in modules loaded for the occasion and dropped afterwards
# (_cold): link.py (connecting, losing the link), servercfg.py (a server config arrives),
# console.py (a command on the desk's console). Their code then leaves the heap.
import gc
import struct
import sys
import time

from micropython import const

import mqtt
import wire
from outbox import F_DURING_THANKS, F_TS, TYP_INCIDENT, TYP_RATING

# Idle sleep of the main loop when nothing is queued. Presses do not wait for it (interrupts), so
# it only delays network work; shorter costs CPU for nothing.
_LOOP_MS = const(20)
# Largest event this firmware makes (a rating with ts and during_thanks, 40-character device id,
# 10-digit ep and seq is ~240 bytes): publish waits until this much transmit buffer is free.
_MAX_EVENT_BYTES = const(256)
# Bytes allocated between garbage collections (gc.threshold). Small keeps the heap's peak close to
# what is live (the 48 KB budget of issue 3); each collection of this small heap takes ~1 ms on an
# ESP32 and comes every few events at full speed (docs/firmware.md, "Memory").
_GC_SLACK = const(2 * 1024)
# The display is redrawn at once for the thank-you state and link changes, and at most this often
# for the outbox counter (an SSD1306 frame is ~25 ms of I2C).
_UI_REFRESH_MS = const(1000)
# The LED lit by a press stays on for the thank-you time, and at least this long when that is 0.
_LED_MIN_MS = const(500)

FW_VERSION = "1.0.0"
INCIDENT_KINDS = ("complaint",)


class App:
    """The running box. start.boot() makes one, recovers the flash and persists the epoch into it."""

    def __init__(self, cfg, board, signer, outbox, state, buttons):
        self.cfg = cfg
        self.board = board
        self.dev = cfg["device_id"]
        self.signer = signer
        self.outbox = outbox
        self.state = state  # slots.Slots of (epoch, dropped), saved when `dropped` changes
        self.buttons = buttons
        base = "motcua/v1/dev/%s/" % self.dev
        self.t_evt = (base + "evt").encode()
        self.t_hb = (base + "hb").encode()
        self.t_status = (base + "status").encode()
        self.t_ack = (base + "ack").encode()
        self.t_cfg = (base + "cfg").encode()
        self.mq = mqtt.Client(self.dev, self._on_message, cfg["keepalive_s"])
        self.clock = None  # sntp.Sntp when an NTP server is configured
        self.display = None
        self._ticks = time.ticks_ms()
        self.up = 0  # ms since start-up, never wrapping (ticks_ms wraps after 12.4 days)
        self.ep = 0
        self.seq = 0  # last sequence number assigned in this epoch
        self.dropped = 0  # events lost for good, ever (overflow, flash failure, damaged records)
        self.accounted = 0  # of the outbox's drops and losses, those already in `dropped`
        self.offset = None  # Unix ms = uptime + offset, once NTP answered
        self.server_cfg = None
        self.cfg_rev = 0
        self.hb_ms = cfg["hb_s"] * 1000
        self.stats = {"connects": 0, "sent": 0, "acked": 0, "resends": 0, "bad_msgs": 0, "hb": 0, "ntp": 0}
        self._thanks = self._lit = False
        self._sub_told = False  # "subscribed" reported for the current connection
        self.ui_dirty = True
        self._ui_at = 0
        self._online_shown = None
        self.base_alloc = self.peak_alloc = self.peak_live = self._gc_at = 0
        self.backoff = cfg["backoff_min_ms"]
        self.wifi_wait = cfg["wifi_retry_ms"]
        self.resend_ms = cfg["resend_ms"]
        self.mq_next = self.wifi_next = self.hb_next = self.progress_at = self._ticks
        self.addr = None  # the broker's address, looked up once (DNS blocks)

    # ---- main loop ----

    def run(self):
        """The main loop, forever; a bug resets the board (the outbox keeps every press)."""
        gc.collect()
        gc.threshold(_GC_SLACK)
        self.base_alloc = self.peak_live = gc.mem_alloc()
        self._gc_at = self.base_alloc + _GC_SLACK
        b, ob = self.board, self.outbox
        b.log("motcua %s: device %s epoch %d, %d event(s) waiting, %d lost at recovery" % (
            FW_VERSION, self.dev, self.ep, ob.pending, ob.lost))
        b.emit("boot", ep=self.ep, pending=ob.pending, lost=ob.lost, heap=self.base_alloc,
               levels=self.buttons.levels, cfg_rev=self.cfg_rev)
        try:
            while True:
                b.sleep_ms(1 if self.step() else _LOOP_MS)
        except Exception as e:
            sys.print_exception(e)
            b.log("unexpected error: resetting")
            time.sleep_ms(1000)
            b.reset()

    def step(self):
        """One pass over everything; True when work is left that should not wait for LOOP_MS."""
        now = time.ticks_ms()
        self.up += time.ticks_diff(now, self._ticks)
        self._ticks = now
        self.board.wdt_feed()
        self.board.poll(now)
        self._presses(now)
        busy = self._net(now)
        self._ui(now)
        self._memory()
        return busy

    def _presses(self, now):
        while True:
            p = self.buttons.take()
            if p is None:
                return
            btn, at, flagged = p
            up_at = self.up - time.ticks_diff(now, at)  # the event's time is the press, not now
            self.seq += 1
            flags = F_DURING_THANKS if flagged else 0
            ts = 0
            if self.offset is not None:
                ts = up_at + self.offset
                flags |= F_TS
            if btn == self.buttons.complaint:
                typ, a, lv = TYP_INCIDENT, 0, 0  # kind 0 of INCIDENT_KINDS
            else:
                typ, a, lv = TYP_RATING, btn + 1, self.buttons.levels
            try:
                self.outbox.append(typ, a, lv, flags, self.ep, self.seq, max(up_at, 0), ts)
            except OSError as e:
                self.dropped += 1
                self.board.log("press %d/%d lost: flash refused it twice (%r)" % (self.ep, self.seq, e))
                self.save_counters()
                continue
            if self.account():
                self.save_counters()
            self.board.emit("evt", ep=self.ep, seq=self.seq, typ=typ, v=a, flag=flagged)
            self.ui_dirty = True

    def _cold(self, name, fn, *args):
        # Run fn(self, *args) of a module needed only now and then; it leaves the heap afterwards.
        # The heap peak is sampled while it is loaded, so the figures include it.
        gc.collect()
        mod = __import__(name)
        try:
            return getattr(mod, fn)(self, *args)
        finally:
            del sys.modules[name]
            a = gc.mem_alloc()
            if a > self.peak_alloc:
                self.peak_alloc = a

    # ---- network supervisor ----

    def _net(self, now):
        mq = self.mq
        if not self.board.wifi_up():
            if mq.sock is not None or time.ticks_diff(now, self.wifi_next) >= 0:
                self._cold("link", "wifi_down", now)
            return False
        self.wifi_wait = self.cfg["wifi_retry_ms"]
        if self.clock is not None:
            self.clock.tick(self, now)  # sntp.py
        if mq.sock is None:
            if time.ticks_diff(now, self.mq_next) >= 0:
                self._cold("link", "open", now)
            return False
        try:
            was = mq.connected
            mq.poll(now)
            if not mq.connected:
                self._sub_told = False
                return False
            if not was:
                self._sub_told = False
                self._cold("link", "connected", now)
            # Remembered per connection, not compared around one poll: the SUBACK may arrive in the
            # second poll at the end of this pass, and the transition must not be missed.
            if mq.subscribed and not self._sub_told:
                self._sub_told = True
                self.board.emit("subscribed")  # acks and configs can reach us from now on
            busy = self._pump(now)
            mq.poll(now)  # send what the pump queued without waiting a loop
            return busy
        except (OSError, mqtt.MQTTError) as e:
            self._cold("link", "fail", now, e)
            return False

    def _pump(self, now):
        ob, mq = self.outbox, self.mq
        if ob.outstanding and time.ticks_diff(now, self.progress_at) >= self.resend_ms:
            # §7: no ack for a while: send the unacked events again, waiting longer each time.
            ob.rewind()
            self.resend_ms = min(self.resend_ms * 2, self.cfg["resend_max_ms"])
            self.progress_at = now
            self.stats["resends"] += 1
        if time.ticks_diff(now, self.hb_next) >= 0 and mq.can_publish(len(self.t_hb), _MAX_EVENT_BYTES, 0):
            self._heartbeat(now)
        window = self.cfg["window"]
        while ob.outstanding < window and mq.can_publish(len(self.t_evt), _MAX_EVENT_BYTES):
            rec = ob.next_unsent()
            if rec is None:
                return False
            if ob.outstanding == 1:
                self.progress_at = now  # the resend clock starts with the first event of a round
            mq.publish(self.t_evt, self._encode(rec), now, qos=1)
            self.stats["sent"] += 1
        return ob.outstanding < window and ob.pending > ob.outstanding

    def _encode(self, rec):
        # Re-encoded from the flash record at every send: the encoding is deterministic, so a
        # re-send carries the same bytes (§7 "dup").
        typ, a, b, flags, ep, seq, up, ts = rec
        if typ == TYP_RATING:
            body, name = wire.rating_body(a, b, flags & F_DURING_THANKS), "rating"
        else:
            body, name = wire.incident_body(INCIDENT_KINDS[a]), "incident"
        return wire.seal(self.signer, wire.envelope(self.dev, ep, seq, up, ts if flags & F_TS else None,
                                                    name, body))

    def _heartbeat(self, now):
        synced = self.offset is not None
        body = wire.heartbeat_body(FW_VERSION, self.outbox.pending, synced, gc.mem_free(),
                                   self.dropped, self.board.rssi())
        signed = wire.envelope(self.dev, self.ep, self.seq, self.up, self.up + self.offset if synced else None,
                               "heartbeat", body)
        self.mq.publish(self.t_hb, wire.seal(self.signer, signed), now, qos=0)
        self.hb_next = time.ticks_add(now, self.hb_ms)
        self.stats["hb"] += 1

    # ---- messages from the server ----

    def _on_message(self, topic, payload):
        # One bad message is logged and counted; it never stops the loop or the connection.
        t = bytes(topic)
        try:
            if t == self.t_ack:
                self._on_ack(payload)
            elif t == self.t_cfg:
                self._cold("servercfg", "apply", payload)
        except Exception as e:
            self.stats["bad_msgs"] += 1
            code = getattr(e, "code", "error")
            self.board.log("refused message on %s: %s %s" % (t.decode(), code, e))
            self.board.emit("refused", topic=t.decode(), code=code)

    def _on_ack(self, payload):
        n = 0
        for ep, seq, _code in wire.parse_ack(self.signer, self.dev, payload):
            if self.outbox.ack(ep, seq):  # ok, dup and quar all mean: delete (§7)
                n += 1
        if n:
            self.stats["acked"] += n
            self.resend_ms = self.cfg["resend_ms"]
            self.progress_at = time.ticks_ms()
            self.ui_dirty = self.ui_dirty or self.display is not None

    # ---- display, memory, counters, commands ----

    def _ui(self, now):
        bt = self.buttons
        th = bt.in_thanks(now)
        if th != self._thanks:
            self._thanks = th
            self.ui_dirty = True
        lit = bt.last_press is not None and time.ticks_diff(now, bt.last_press) < max(bt.thanks_ms, _LED_MIN_MS)
        if self._lit and not lit:
            self.board.thanks_over()  # the feedback LED, lit in the interrupt, goes off here
        self._lit = lit
        online = self.mq.connected
        if online != self._online_shown:
            self._online_shown = online
            self.ui_dirty = True
        if self.display is None or not self.ui_dirty:
            return
        if not th and time.ticks_diff(now, self._ui_at) < _UI_REFRESH_MS and self._ui_at:
            return
        import display

        self.display.show(display.screen(self.server_cfg, online, self.outbox.pending, th))
        self.ui_dirty = False
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

    def account(self):
        """Fold the outbox's overflow drops and damaged records into `dropped` (§4); True if it grew."""
        n = self.outbox.dropped + self.outbox.lost
        if n != self.accounted:
            self.dropped += n - self.accounted
            self.accounted = n
            return True
        return False

    def save_counters(self):
        """Persist (epoch, dropped) as start.py does at boot. After boot only `dropped` changes, so a
        failed write loses a count, not an event: it is logged."""
        try:
            self.state.save(struct.pack(">II", self.ep, self.dropped))
        except OSError as e:
            self.board.log("state not saved: %r" % e)

    def command(self, words):
        """A console command (status, quit); the desk's board passes those it does not handle."""
        self._cold("console", "command", words)
