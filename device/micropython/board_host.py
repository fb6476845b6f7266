# The board on the desk: the MicroPython unix port stands in for the ESP32 so that the same firmware
# logic runs, unchanged, under tests. The only fakes are what a PC does not have: button pins (driven
# by lines on standard input), the LED, buzzer and display (reported as JSON lines on standard
# output, prefixed "@"), Wi-Fi (a switch that a "net down" line turns off) and the watchdog (which
# records the longest gap between feeds instead of resetting).
#
# Commands, one per line on stdin:
#   press V [HOLD_MS]   press rating button V (1 = worst) cleanly for HOLD_MS (default 60)
#   bounce V            press it with contact bounce on both edges
#   complaint           press the complaint button
#   burst N [EVERY_MS]  accept N debounced presses, cycling over the scale (soak runs)
#   net down|up         Wi-Fi lost / back
#   status              print the firmware's status line
#   mem                 print the interpreter's heap and interned-name report
#   quit                clean shutdown (retained offline status, MQTT DISCONNECT)
#
# Options after main.py (the simulator's device hosts use them; a test run passes none):
#   --clock FILE   the firmware's time follows a simulated clock instead of the machine's (below)
#   --payloads     every "evt" line also carries the signed payload the firmware will send for it
import json
import select
import sys
import time

from micropython import const


def _option(name, value=True):
    argv = sys.argv
    for i in range(len(argv)):
        if argv[i] == name:
            return argv[i + 1] if value else True
    return None


def _real_ms(ms):
    return ms  # the machine's clock: a sleep of ms is ms


_clock = _option("--clock")
if _clock:
    import simtime  # the desk's simulated clock; not loaded (no heap) without --clock

    with open(_clock) as f:
        _sim = simtime.SimTime(time, json.load(f))
    # Modules imported before this one (start.py) hold the machine's time: point them at the
    # simulated one too, so that every tick the firmware compares comes from one clock. (This
    # module may be among them, and its `time` changes in the loop: compare with a copy.)
    _m, _machine = None, time
    for _m in list(sys.modules.values()):
        if getattr(_m, "time", None) is _machine:
            _m.time = _sim
    sys.modules["time"] = time = _sim
    _real_ms = _sim.real_ms
    del _m, _machine, _sim, f
del _clock

# Commands are interpreted by desk.py, loaded for the line and dropped afterwards, as a board at a
# counter has no such code.
_FINGER = const(2)  # the "level" of a scheduled event that only notes when the finger goes down


class Board:
    """Same interface as board_esp32.Board."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.app = None  # the App: console lines run through App.load (desk.py)
        self.buttons = None
        self._level = None
        # (due tick, button index, level) of scheduled pin changes, few at a time; level _FINGER is
        # the moment the finger goes down, the start of the feedback latency
        self._events = []
        self._timer_at = None  # the one-shot debounce timer, as on the ESP32
        self._down_at = None  # tick of each button's latest press command, for the latency report
        self._burst = None  # a burst running: [presses left, ms between, tick of the next, presses made]
        self._wifi = True
        self._wdt_ms = 0
        self._wdt_last = None
        self.wdt_max_gap = 0
        self._payloads = _option("--payloads", False)
        self.line = bytearray()  # the command line being read; None once stdin is closed
        self.poller = select.poll()
        self.poller.register(sys.stdin, select.POLLIN)

    # ---- output ----

    def emit(self, event, **fields):
        """One machine-readable line for the test harness (streamed: no copy of the line in RAM)."""
        fields["t"] = event
        if event == "evt" and self._payloads:
            self._payload(fields)
        out = sys.stdout
        out.write("@")
        json.dump(fields, out)
        out.write("\n")

    def _payload(self, fields):
        # The record the App has just appended is still in the outbox's buffer; App.encode makes the
        # same bytes from it that every (re-)send of this event carries (the encoding is
        # deterministic). Host only: the simulator's ground truth needs the exact bytes.
        import outbox

        rec = outbox.unpack(self.app.outbox.buf)
        if rec is not None and rec[4] == fields["ep"] and rec[5] == fields["seq"]:
            fields["payload"] = self.app.encode(rec).decode()

    # ---- buttons, LED, buzzer ----

    def start(self, buttons):
        self.buttons = buttons
        self._level = bytearray(buttons.n)
        self._down_at = [0] * buttons.n
        self._free_at = [time.ticks_ms()] * buttons.n

    def _pressed(self, i):
        return self._level[i] == 1

    def edge(self, i, value, now):
        # What the ESP32's pin interrupt does: note the edge, (re)arm the debounce timer.
        self._level[i] = value
        self.buttons.edge(i, now)
        due = time.ticks_add(now, self.buttons.debounce_ms)
        # One timer serves all buttons: an edge may bring it forward, never push it back (that
        # would delay a button already waiting to settle).
        if self._timer_at is None or time.ticks_diff(due, self._timer_at) < 0:
            self._timer_at = due

    def feedback(self, i, flag):
        now = time.ticks_ms()
        self.emit("fb", b=i, flag=flag, lat=time.ticks_diff(now, self._down_at[i]))

    def thanks_over(self):
        self.emit("led", on=0)

    # ---- the control pipe and the emulated interrupt/timer ----

    def poll(self, now):
        """Deliver due pin changes and timer expiry, run due burst presses, read commands."""
        # What the pin interrupts and the one-shot timer of a board would have done since the last
        # pass, one at a time in the order they happened and each at its own tick: the timer reads
        # the pins as they were when it fired, not as they are now. A pass may come late (a slow
        # machine, or a simulated clock that runs fast); a press still lasts as long as it was held.
        ev = self._events
        while True:
            first = None
            for e in ev:
                if time.ticks_diff(now, e[0]) >= 0 and (first is None or time.ticks_diff(e[0], first[0]) < 0):
                    first = e
            t = self._timer_at
            if t is not None and time.ticks_diff(now, t) >= 0 and (first is None or time.ticks_diff(t, first[0]) < 0):
                self._timer_at = None
                wait = self.buttons.settle(t, self._pressed)
                if wait >= 0:
                    self._timer_at = time.ticks_add(t, wait)
                continue
            if first is None:
                break
            ev.remove(first)
            if first[2] == _FINGER:
                self._down_at[first[1]] = first[0]
            else:
                self.edge(first[1], first[2], first[0])
        bu = self._burst
        if bu and time.ticks_diff(now, bu[2]) >= 0:
            b = self.buttons
            i = bu[3] % b.levels
            bu[3] += 1
            bu[0] -= 1
            self._down_at[i] = now
            b.accept(i, now)
            bu[2] = time.ticks_add(now, bu[1])
            if not bu[0]:
                self._burst = None
                self.emit("burst_done", n=bu[3])
        self.readline(now)

    def readline(self, now):
        """Read what stdin has; run each complete command line (desk.py)."""
        while self.line is not None:
            for _ in self.poller.ipoll(0):  # ipoll: nothing allocated when no line is waiting
                break
            else:
                return
            c = sys.stdin.buffer.read(1)
            if not c:
                self.line = None  # the parent closed the pipe: keep running, as a board would
                return
            if c == b"\n":
                line = self.line.decode().strip()
                self.line = bytearray()
                words = line.split()
                if words and self.app is not None:
                    self.app.load("desk", "command", self, words, now)
            else:
                self.line.extend(c)

    def sleep_ms(self, ms):
        """Idle until ms pass, a command arrives or a pin change / the timer is due."""
        now = time.ticks_ms()
        for e in self._events:
            ms = min(ms, max(0, time.ticks_diff(e[0], now)))
        if self._timer_at is not None:
            ms = min(ms, max(0, time.ticks_diff(self._timer_at, now)))
        if self._burst:
            ms = min(ms, max(0, time.ticks_diff(self._burst[2], now)))
        if ms > 0 and self.line is not None:
            for _ in self.poller.ipoll(_real_ms(ms)):
                break
        elif ms > 0:
            time.sleep_ms(ms)

    # ---- network, watchdog, display ----

    def wifi_start(self):
        self.emit("wifi_start")  # the PC is on the network already: only say when it was asked

    def wifi_up(self):
        return self._wifi

    def rssi(self):
        return None  # no radio: the heartbeat leaves rssi out

    def wdt_start(self, ms):
        self._wdt_ms = ms

    def wdt_feed(self):
        now = time.ticks_ms()
        if self._wdt_last is not None:
            gap = time.ticks_diff(now, self._wdt_last)
            if gap > self.wdt_max_gap:
                self.wdt_max_gap = gap
                if self._wdt_ms and gap > self._wdt_ms:
                    print("watchdog: %d ms without a feed would have reset the board" % gap)
        self._wdt_last = now

    def display(self):
        """The desk's SSD1306: a display.Screen whose lines are reported as JSON when they change."""
        import display

        return display.Screen(lambda lines: self.emit("display", lines=lines))

    def reset(self):
        sys.exit(3)
