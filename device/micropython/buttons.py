# Debounced rating buttons and the thank-you state. Pure logic: the board module calls edge() from
# its pin interrupt and settle() from a one-shot timer, so the same code runs on the ESP32 and on the
# unix port. Both run in interrupt context: they touch only preallocated storage and call feedback(),
# which must be as quick (an LED pin, a buzzer PWM): that is how feedback stays within 100 ms of a
# press even when the main loop is busy writing flash.
import time

from micropython import const

# Presses accepted but not yet stored by the main loop. The loop drains it every few ms; 32 covers a
# stall of several seconds of mashing. Overflow is counted, never silent.
_RING = const(32)
_PENDING = const(1)  # per-button state bits: an edge is waiting for the contact to be quiet ...
_DOWN = const(2)  # ... and the button is held down (a press was accepted, no release seen yet)
_THANKS = const(0x80)  # ring entry: button index | this when pressed during the thank-you state


class Buttons:
    """Buttons 0..count-1 rate 1..count (1 the worst); index `count` is the complaint button if wired.

    debounce_ms: contacts of cheap tactile switches bounce for 1-10 ms; the default 30 ms rejects that
    with margin and leaves 70 ms of the 100 ms feedback budget (config.py sets it)."""

    def __init__(self, count, complaint, feedback, debounce_ms=30, levels=None, thanks_ms=3000):
        self.count = count
        self.complaint = count if complaint else -1
        n = self.n = count + (1 if complaint else 0)
        self.debounce_ms = debounce_ms
        self.levels = levels or count  # buttons above the configured scale are not shown: ignored
        self.thanks_ms = thanks_ms
        self.feedback = feedback
        self._edge_at = [0] * n
        self.state = bytearray(n)
        # Single producer (interrupt) / single consumer (main loop): each index has one writer, so
        # no read-modify-write is shared and no interrupt needs disabling. Holds _RING - 1 presses.
        self._q = bytearray(_RING)
        self._q_at = [0] * _RING
        self._qh = self._qt = 0
        self._last_rating = None  # tick of the latest accepted rating: the thank-you state's start
        self.last_press = None  # tick of the latest accepted press of any button (the LED's clock)
        self.overflow = 0  # accepted presses lost because the ring was full
        self.ignored = 0  # presses of buttons outside the configured scale

    def edge(self, i, now):
        """A pin changed level (interrupt context); the caller arms settle() debounce_ms later."""
        self._edge_at[i] = now
        self.state[i] |= _PENDING

    def settle(self, now, read):
        """Timer callback: accept buttons quiet for debounce_ms (read(i): is button i down?); returns
        ms until the next check, or -1."""
        wait = -1
        for i in range(self.n):
            st = self.state[i]
            if not st & _PENDING:
                continue
            left = self.debounce_ms - time.ticks_diff(now, self._edge_at[i])
            if left > 0:
                wait = left if wait < 0 or left < wait else wait
                continue
            if not read(i):
                self.state[i] = 0  # released (after its bounces): the next press counts again
                continue
            self.state[i] = _DOWN
            if not st & _DOWN:
                self.accept(i, now)
        return wait

    def in_thanks(self, now):
        return self._last_rating is not None and time.ticks_diff(now, self._last_rating) < self.thanks_ms

    def accept(self, i, now):
        """A debounced press of button i: feedback, and into the ring (settle(); the desk's bursts)."""
        self.last_press = now
        flagged = 0
        if i != self.complaint:
            if i >= self.levels:
                self.ignored += 1
                return
            flagged = 1 if self.in_thanks(now) else 0
            self._last_rating = now  # mashing keeps the device in (and flagged by) the thank-you state
        k = self._qt
        nxt = (k + 1) % _RING
        if nxt == self._qh:
            self.overflow += 1
        else:
            self._q[k] = i | (_THANKS if flagged else 0)
            self._q_at[k] = now
            self._qt = nxt
        self.feedback(i, flagged)

    def take(self):
        """The oldest accepted press as (button, tick, during_thanks), or None (main loop side)."""
        k = self._qh
        if k == self._qt:
            return None
        b = self._q[k]
        got = (b & ~_THANKS, self._q_at[k], 1 if b & _THANKS else 0)
        self._qh = (k + 1) % _RING
        return got
