# Stand-in for the ESP32's `machine` module (the only thing the desk cannot run): records what the
# firmware asks of the pins, timers, PWM and watchdog, and lets a test fire interrupts and timers.
IN, OUT, PULL_UP = 1, 3, 2
IRQ_FALLING, IRQ_RISING = 2, 1

pins = {}
timers = {}


class Pin:
    IN, OUT, PULL_UP = IN, OUT, PULL_UP
    IRQ_FALLING, IRQ_RISING = IRQ_FALLING, IRQ_RISING

    def __init__(self, gpio, mode=None, pull=None, value=None):
        self.gpio, self.mode, self.pull = gpio, mode, pull
        self.level = 1 if pull == PULL_UP else (value or 0)
        self.handler = self.trigger = None
        pins[gpio] = self

    def value(self, v=None):
        if v is None:
            return self.level
        self.level = v

    def irq(self, trigger=None, handler=None):
        self.trigger, self.handler = trigger, handler

    def drive(self, level):
        """Test side: the button changes the line; the interrupt fires as on the chip."""
        self.level = level
        self.handler(self)


class Timer:
    ONE_SHOT = 0

    def __init__(self, n):
        self.n = n
        self.period = self.callback = None
        self.inits = 0
        timers[n] = self

    def init(self, mode=None, period=None, callback=None):
        assert mode == Timer.ONE_SHOT
        self.period, self.callback = period, callback
        self.inits += 1

    def fire(self):
        cb, self.callback = self.callback, None
        cb(self)


class PWM:
    last = None

    def __init__(self, pin, freq=0, duty_u16=0):
        self.pin, self._freq, self._duty = pin, freq, duty_u16
        PWM.last = self

    def freq(self, f=None):
        if f is None:
            return self._freq
        self._freq = f

    def duty_u16(self, d=None):
        if d is None:
            return self._duty
        self._duty = d


class WDT:
    def __init__(self, timeout=0):
        self.timeout = timeout
        self.feeds = 0

    def feed(self):
        self.feeds += 1


class I2C:
    def __init__(self, n, sda=None, scl=None, freq=0):
        self.writes = []

    def writeto(self, addr, buf):
        raise OSError(19)  # ENODEV: no display on this bus


def reset():
    raise SystemExit("reset")
