# The simulator's clock for the desk's firmware (board_host.py --clock FILE, docs/simulator.md "Time").
# Desk only, like board_host.py and desk.py: it is not copied to a board, and board_host imports it
# only when asked for a simulated clock.


class SimTime:
    """The `time` functions the firmware uses, on the simulator's clock (simulator/clock.py): simulated
    ms are a piecewise-linear function of the machine's wall clock, given as segments [real_s, sim_ms,
    factor] (a segment starts at wall-clock second real_s, when the simulated clock shows sim_ms, and
    runs `factor` simulated ms per real ms). Ticks count simulated ms from power-on, so uptime, timers,
    debounce and heartbeats all run at the simulated speed, as the server expects of a device; sleeps
    are converted back to real time. Installed as sys.modules["time"] before the firmware's modules
    import it; the board's own calls go through it too."""

    def __init__(self, real, segments):
        self._real = real
        self.seg = [(int(r * 1000000), int(m), float(f)) for r, m, f in segments]
        self._i = 0
        self.ticks_add = real.ticks_add
        self.ticks_diff = real.ticks_diff
        self._boot = self.sim_ms()

    def sim_ms(self):
        """Simulated ms since the epoch now (SimClock.at_real)."""
        now = self._real.time_ns() // 1000
        s, i = self.seg, self._i
        while i + 1 < len(s) and now >= s[i + 1][0]:
            i += 1
        while i > 0 and now < s[i][0]:
            i -= 1
        self._i = i
        r, m, f = s[i]
        return m + int((now - r) / 1000 * f)

    def real_ms(self, ms):
        """Real ms until the simulated clock has advanced `ms`; at least 1 when ms > 0, so that a
        fast clock does not turn the idle loop into a spin."""
        if ms <= 0:
            return 0
        target = self.sim_ms() + ms
        s = self.seg
        k = len(s) - 1
        while k > 0 and s[k][1] > target:
            k -= 1
        r, m, f = s[k]
        wait = (r + (target - m) * 1000 / f) / 1000 - self._real.time_ns() / 1000000
        return max(1, int(wait + 0.999))

    def ticks_ms(self):
        return self.sim_ms() - self._boot

    def ticks_us(self):
        return self.ticks_ms() * 1000

    def time(self):
        return self.sim_ms() / 1000

    def time_ns(self):
        return self.sim_ms() * 1000000

    def sleep_ms(self, ms):
        self._real.sleep_ms(self.real_ms(ms))

    def sleep(self, s):
        self.sleep_ms(int(s * 1000))

    def localtime(self, secs=None):
        return self._real.localtime(self.time() if secs is None else secs)

    gmtime = localtime
