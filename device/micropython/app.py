# The supervisor: main loop of the button box. It owns every retry policy (Wi-Fi, MQTT reconnect
# with backoff, end-to-end re-sends, NTP re-sync); the modules below it (wire, mqtt, outbox, sntp)
# only raise. Nothing here blocks for long: presses are taken from the interrupt ring and written to
# flash at once, whatever the network is doing.
#
# Only the steady state is here. start.py builds and boots the App (the composition root, freed
# after boot); what happens seldom is in modules loaded for the occasion and dropped afterwards
# (App.load): link.py (connecting, losing the link), servercfg.py (a server config arrives),
# slots.py (a counter to persist), desk.py (a command on the desk's console).
import gc
import struct
import sys
import time

from micropython import const

import mqtt
import wire

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
# The LED lit by a press stays on for the thank-you time, and at least this long when that is 0.
_LED_MIN_MS = const(500)
# Outbox record fields (outbox.py, docs/firmware.md §2): type, and the flag bits.
_RATING = const(1)
_INCIDENT = const(2)
_F_THANKS = const(1)  # pressed during the thank-you state
_F_TS = const(2)  # ts is meaningful (the clock was synced when the event happened)
# App.stats: connects, events sent, events acked, re-send rounds, refused server messages,
# heartbeats, NTP syncs (link.py and sntp.py count theirs by index; desk.py prints them in order).
_CONNECTS = const(0)
_SENT = const(1)
_ACKED = const(2)
_RESENDS = const(3)
_BAD_MSGS = const(4)
_HB = const(5)
_NTP = const(6)
# App.mem: heap in use after start-up, its peak, its peak after collections, the next collection.
_BASE = const(0)
_PEAK = const(1)
_LIVE = const(2)
_GC_AT = const(3)


class App:
    """The running box. start.boot() makes one, recovers the flash and persists the epoch into it."""

    version = "1.0.0"  # of the firmware: in every heartbeat and the retained online status

    def __init__(self, cfg, board, key, outbox, buttons):
        self.cfg = cfg  # start.py keeps only the options read after boot
        self.board = board
        self.dev = cfg["device_id"]
        self.key = key  # wire.hmac_key of the device secret
        self.outbox = outbox
        self.buttons = buttons
        self.dir = cfg["data_dir"]  # the state slots (epoch, dropped) and the config slots are here
        # docs/protocol.md §2: every topic of the box is motcua/v1/dev/<id>/ + evt, hb, status, ack, cfg
        self.mq = mqtt.Client(self.dev, b"motcua/v1/dev/%s/" % self.dev, self.on_message, cfg["keepalive_s"] * 1000)
        self.ntp_at = None  # tick of the next NTP sync; None: no NTP server configured
        self.clock = None  # the NTP request waiting for its reply (sntp.py)
        self.display = None  # display.Screen when a display is configured
        self.ticks = time.ticks_ms()
        self.up = 0  # ms since start-up, never wrapping (ticks_ms wraps after 12.4 days)
        self.ep = 0
        self.seq = 0  # last sequence number assigned in this epoch
        self.dropped = 0  # events lost for good, ever (overflow, flash failure, damaged records)
        self.accounted = 0  # of the outbox's drops and losses, those already in `dropped`
        self.offset = None  # Unix ms = uptime + offset, once NTP answered
        self.cfg_rev = 0
        self.hb_ms = cfg["hb_s"] * 1000
        self.stats = [0] * 7  # _CONNECTS ... _NTP
        self._lit = False
        self._sub_told = False  # "subscribed" reported for the current connection
        self.ui_dirty = True
        self.mem = [0] * 4
        self.backoff = cfg["backoff_min_ms"]
        self.wifi_wait = cfg["wifi_retry_ms"]
        self.resend_ms = cfg["resend_ms"]
        self.mq_next = self.wifi_next = self.hb_next = self.progress_at = self.ticks
        self.addr = None  # the broker's address, looked up once (DNS blocks)

    # ---- main loop ----

    def run(self):
        """The main loop, forever; a bug resets the board (the outbox keeps every press)."""
        gc.collect()
        gc.threshold(_GC_SLACK)
        mem = self.mem
        mem[_BASE] = mem[_PEAK] = mem[_LIVE] = gc.mem_alloc()
        mem[_GC_AT] = mem[_BASE] + _GC_SLACK
        b = self.board
        b.emit("boot", ep=self.ep, pending=self.outbox.pending, lost=self.outbox.lost, heap=mem[_BASE],
               levels=self.buttons.levels, cfg_rev=self.cfg_rev)
        try:
            while True:
                b.sleep_ms(1 if self.step() else _LOOP_MS)
        except Exception as e:
            sys.print_exception(e)
            print("unexpected error: resetting")
            time.sleep_ms(1000)
            b.reset()

    def step(self):
        """One pass over everything; True when work is left that should not wait for _LOOP_MS."""
        now = time.ticks_ms()
        self.up += time.ticks_diff(now, self.ticks)
        self.ticks = now
        b, bt = self.board, self.buttons
        b.wdt_feed()
        b.poll(now)
        self._presses(now)
        busy = self.net(now)
        lit = bt.last_press is not None and time.ticks_diff(now, bt.last_press) < max(bt.thanks_ms, _LED_MIN_MS)
        if self._lit and not lit:
            b.thanks_over()  # the feedback LED, lit in the interrupt, goes off here
        self._lit = lit
        if self.display is not None:
            self.display.update(self, now)
        # Memory: the peak is sampled every pass (and in load()); a collection whenever the heap
        # grew _GC_SLACK since the last one, on top of gc.threshold's.
        mem = self.mem
        a = self.peak()
        if a > mem[_GC_AT]:
            gc.collect()
            a = gc.mem_alloc()
            if a > mem[_LIVE]:
                mem[_LIVE] = a
            mem[_GC_AT] = a + _GC_SLACK
        return busy

    def load(self, name, function, *args):
        """name.function(*args) of a module needed only now and then, which leaves the heap
        afterwards. The heap peak is sampled while it is loaded, so the figures include it."""
        gc.collect()
        mod = __import__(name)
        self.peak()
        gc.collect()  # the loader's garbage (a third of the module's size) goes before the call makes its own
        try:
            return getattr(mod, function)(*args)
        finally:
            del sys.modules[name]
            self.peak()

    def peak(self):
        """Sample the heap in use for its peak (every pass, and around every load())."""
        a = gc.mem_alloc()
        if a > self.mem[_PEAK]:
            self.mem[_PEAK] = a
        return a

    def _presses(self, now):
        ob = self.outbox
        while True:
            p = self.buttons.take()
            if p is None:
                return
            btn, at, flagged = p
            up_at = self.up - time.ticks_diff(now, at)  # the event's time is the press, not now
            self.seq += 1
            flags = _F_THANKS if flagged else 0
            ts = 0
            if self.offset is not None:
                ts = up_at + self.offset
                flags |= _F_TS
            if btn == self.buttons.complaint:
                typ, a, lv = _INCIDENT, 0, 0  # kind 0: "complaint", the only one a box raises
            else:
                typ, a, lv = _RATING, btn + 1, self.buttons.levels
            try:
                ob.append(typ, a, lv, flags, self.ep, self.seq, max(up_at, 0), ts)
            except OSError as e:
                self.dropped += 1
                print("press %d/%d lost: flash refused it twice (%r)" % (self.ep, self.seq, e))
                self.save_counters()
                continue
            if ob.dropped + ob.lost != self.accounted:
                self.save_counters()
            self.board.emit("evt", ep=self.ep, seq=self.seq, typ=typ, v=a, flag=flagged)
            self.ui_dirty = True

    # ---- network supervisor ----

    def net(self, now):
        """The network supervisor's pass: Wi-Fi, MQTT, NTP; True when sending should go on at once."""
        mq = self.mq
        if not self.board.wifi_up():
            if mq.sock is not None or time.ticks_diff(now, self.wifi_next) >= 0:
                self.load("link", "wifi_down", self, now)
            return False
        self.wifi_wait = self.cfg["wifi_retry_ms"]
        self._ntp(now)
        if mq.sock is None:
            if time.ticks_diff(now, self.mq_next) >= 0:
                self.load("link", "open", self, now)
            return False
        try:
            was = mq.connected
            mq.poll(now)
            if not mq.connected:
                self._sub_told = False
                return False
            if not was:
                self._sub_told = False
                self.load("link", "connected", self, now)
            # Remembered per connection, not compared around one poll: the SUBACK may arrive in the
            # second poll at the end of this pass, and the transition must not be missed.
            if mq.subscribed and not self._sub_told:
                self._sub_told = True
                self.board.emit("subscribed")  # acks and configs can reach us from now on
            busy = self.send(now)
            mq.poll(now)  # send what the pump queued without waiting a loop
            return busy
        except (OSError, mqtt.MQTTError) as e:
            self.load("link", "fail", self, now, e)
            return False

    def _ntp(self, now):
        # The clock: sntp.py sends a request when a sync is due, and takes its reply or its timeout;
        # the socket is read here, so the module is loaded for one pass each, not while waiting.
        c = self.clock
        if c is not None:
            try:
                data = c[0].recv(64)
            except OSError:
                data = None  # nothing yet (EAGAIN), or refused: waited for until the deadline
            if data or time.ticks_diff(now, c[3]) >= 0:
                self.load("sntp", "reply", self, now, data)
        elif self.ntp_at is not None and time.ticks_diff(now, self.ntp_at) >= 0:
            self.load("sntp", "request", self, now)

    def send(self, now):
        """Re-send rounds, the heartbeat, and unacked events within the window (§7)."""
        ob, mq = self.outbox, self.mq
        if ob.outstanding and time.ticks_diff(now, self.progress_at) >= self.resend_ms:
            # §7: no ack for a while: send the unacked events again, waiting longer each time.
            ob.rewind()
            self.resend_ms = min(self.resend_ms * 2, self.cfg["resend_max_ms"])
            self.progress_at = now
            self.stats[_RESENDS] += 1
        if time.ticks_diff(now, self.hb_next) >= 0 and mq.can_publish(_MAX_EVENT_BYTES, 0):
            self.heartbeat(now)
        window = self.cfg["window"]
        while ob.outstanding < window and mq.can_publish(_MAX_EVENT_BYTES):
            rec = ob.next_unsent()
            if rec is None:
                return False
            if ob.outstanding == 1:
                self.progress_at = now  # the resend clock starts with the first event of a round
            mq.publish(b"evt", self.encode(rec), now, qos=1)
            self.stats[_SENT] += 1
        return ob.outstanding < window and ob.pending > ob.outstanding

    def encode(self, rec):
        """The signed event of an outbox record. Re-encoded from the flash record at every send: the
        encoding is deterministic, so a re-send carries the same bytes (§7 "dup")."""
        typ, a, b, flags, ep, seq, up, ts = rec
        if typ == _RATING:
            body, name = wire.rating(a, b, flags & _F_THANKS), "rating"
        else:
            body, name = '{"kind":"complaint"}', "incident"
        return wire.encode(self.key, self.dev, ep, seq, up, ts if flags & _F_TS else None, name, body)

    def heartbeat(self, now):
        """Publish the §4 heartbeat (QoS 0), and schedule the next."""
        synced = self.offset is not None
        body = wire.heartbeat(self.version, self.outbox.pending, synced, gc.mem_free(), self.dropped,
                              self.board.rssi())
        self.mq.publish(b"hb", wire.encode(self.key, self.dev, self.ep, self.seq, self.up,
                                               self.up + self.offset if synced else None, "heartbeat", body),
                        now, qos=0)
        self.hb_next = time.ticks_add(now, self.hb_ms)
        self.stats[_HB] += 1

    # ---- messages from the server ----

    def on_message(self, topic, data):
        """A message from the server; topic (after the device prefix) and payload are memoryviews of
        the receive buffer. One bad message is logged and counted; it never stops the loop."""
        try:
            if topic == b"ack":
                n = 0
                for a in wire.parse_ack(self.key, self.dev, data):
                    if self.outbox.ack(a[0], a[1]):  # ok, dup and quar all mean: delete (§7)
                        n += 1
                if n:
                    self.stats[_ACKED] += n
                    self.resend_ms = self.cfg["resend_ms"]
                    self.progress_at = time.ticks_ms()
                    self.ui_dirty = True
            elif topic == b"cfg" and self.load("servercfg", "apply", self, data):
                try:  # stored as signed: after a reboot without network the display is right
                    self.load("slots", "save", self.dir, "config", data)
                except OSError as e:
                    print("config applied, not stored: %r" % e)
        except Exception as e:
            self.stats[_BAD_MSGS] += 1
            code = e.args[0] if isinstance(e, wire.ProtocolError) else type(e).__name__
            t = str(topic, "utf-8")
            print("refused message on %s: %r" % (t, e))
            self.board.emit("refused", topic=t, code=code)

    # ---- counters ----

    def save_counters(self):
        """Fold the outbox's overflow drops and damaged records into `dropped` (§4) and persist
        (epoch, dropped), as start.py does at boot. After boot only `dropped` changes, so a failed
        write loses a count, not an event: it is logged."""
        n = self.outbox.dropped + self.outbox.lost
        self.dropped += n - self.accounted
        self.accounted = n
        try:
            self.load("slots", "save", self.dir, "state", struct.pack(">II", self.ep, self.dropped))
        except OSError as e:
            print("state not saved: %r" % e)
