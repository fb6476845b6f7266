# The real board: ESP32 pins, Wi-Fi, watchdog, SSD1306. Everything else is shared with the desk
# (board_host.py implements the same methods). Pin numbers come from config.py / config_local.py;
# the wiring table is in docs/firmware.md.
import time

import machine
import network

# Beep lengths and pitches: a clear short beep confirms a press; a lower, shorter one says "pressed
# during the thank-you state" (counted, but flagged). Longer beeps are more noticeable and more
# annoying at a busy counter.
BEEP_MS = 80
BEEP_HZ = 2700  # near the resonance of common passive piezo buzzers: loudest for the current
FLAG_BEEP_MS = 40
FLAG_BEEP_HZ = 1500
_DUTY_ON = 32768  # 50 %: the loudest square wave


class Board:
    def __init__(self, cfg):
        self.cfg = cfg
        self.app = None  # unused: a box has no console commands
        self.buttons = None
        self._pins = []
        self.led = machine.Pin(cfg["led_pin"], machine.Pin.OUT, value=0)
        self._pwm = None
        if cfg["buzzer_pin"] is not None:
            self._pwm = machine.PWM(machine.Pin(cfg["buzzer_pin"]), freq=BEEP_HZ, duty_u16=0)
        # Timer 0: button debounce; timer 1: end of a beep. Both one-shot, re-armed as needed.
        self._debounce = machine.Timer(0)
        self._armed = False
        self._due = 0
        self._beep = machine.Timer(1)
        self._wlan = network.WLAN(network.STA_IF)
        self._wdt = None
        self.wdt_max_gap = 0
        self._settle_cb = self._on_settle  # bound once: no allocation inside interrupts
        self._quiet_cb = self._on_quiet

    def emit(self, event, **fields):
        pass  # the desk's test channel; nothing listens on a real box

    # ---- buttons, LED, buzzer ----

    def start(self, buttons):
        self.buttons = buttons
        pins = list(self.cfg["button_pins"])
        if self.cfg["complaint_pin"] is not None:
            pins.append(self.cfg["complaint_pin"])
        for i in range(buttons.n):
            # Buttons switch to ground; the internal pull-up (~45 kOhm) holds the line high.
            p = machine.Pin(pins[i], machine.Pin.IN, machine.Pin.PULL_UP)
            p.irq(trigger=machine.Pin.IRQ_FALLING | machine.Pin.IRQ_RISING, handler=self._irq(i))
            self._pins.append(p)

    def _irq(self, i):
        buttons = self.buttons

        def on_edge(_pin):
            now = time.ticks_ms()
            buttons.edge(i, now)
            self._arm(now, buttons.debounce_ms)

        return on_edge

    def _arm(self, now, ms):
        # One timer serves all buttons: an edge may bring it forward, never push it back (that
        # would delay a button already waiting to settle, and its feedback with it).
        due = time.ticks_add(now, ms)
        if self._armed and time.ticks_diff(due, self._due) >= 0:
            return
        self._armed = True
        self._due = due
        self._debounce.init(mode=machine.Timer.ONE_SHOT, period=ms, callback=self._settle_cb)

    def _on_settle(self, _t):
        self._armed = False
        now = time.ticks_ms()
        wait = self.buttons.settle(now, self._pressed)
        if wait >= 0:
            self._arm(now, wait + 1)

    def _pressed(self, i):
        return self._pins[i].value() == 0

    def feedback(self, i, flag):
        # Runs in the debounce timer's callback: the LED lights and the beep starts at once,
        # whatever the main loop is doing.
        self.led.value(1)
        if self._pwm is not None:
            self._pwm.freq(FLAG_BEEP_HZ if flag else BEEP_HZ)
            self._pwm.duty_u16(_DUTY_ON)
            self._beep.init(mode=machine.Timer.ONE_SHOT, period=FLAG_BEEP_MS if flag else BEEP_MS,
                            callback=self._quiet_cb)

    def _on_quiet(self, _t):
        self._pwm.duty_u16(0)

    def thanks_over(self):
        self.led.value(0)

    def poll(self, now):
        pass  # interrupts do the work

    def sleep_ms(self, ms):
        if ms > 0:
            time.sleep_ms(ms)  # pin and timer callbacks still run while sleeping

    # ---- Wi-Fi ----

    def wifi_start(self):
        """Start (or restart) associating; the app polls wifi_up() and calls this again with backoff."""
        ssid = self.cfg["wifi_ssid"]
        if ssid is None:
            return
        self._wlan.active(True)
        if self._wlan.isconnected():
            return
        try:
            self._wlan.disconnect()
        except OSError:
            pass
        self._wlan.connect(ssid, self.cfg["wifi_password"] or "")

    def wifi_up(self):
        return self._wlan.isconnected()

    def rssi(self):
        try:
            return self._wlan.status("rssi")
        except (OSError, ValueError):
            return None

    # ---- watchdog, display, reset ----

    def wdt_start(self, ms):
        self._wdt = machine.WDT(timeout=ms)

    def wdt_feed(self):
        if self._wdt is not None:
            self._wdt.feed()

    def display(self):
        """The SSD1306 on I2C as a display.Screen, or None if it does not answer (called at boot)."""
        import display
        import ssd1306

        i2c = machine.I2C(0, sda=machine.Pin(self.cfg["i2c_sda"]), scl=machine.Pin(self.cfg["i2c_scl"]),
                          freq=400000)
        try:
            return display.Screen(display.oled(ssd1306.SSD1306(i2c, self.cfg["display_addr"])))
        except OSError as e:  # no ACK on the bus: run without the display rather than not at all
            print("display not found at 0x%02x: %s" % (self.cfg["display_addr"], e))
            return None

    def reset(self):
        machine.reset()
