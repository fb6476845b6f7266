# board_esp32.py driven through stand-ins of `machine` and `network` (nothing else on a desk can play
# the chip): interrupts, the debounce and beep timers, LED, PWM, Wi-Fi and watchdog calls.
import sys
import time

import fake_machine
import fake_network

sys.modules["machine"] = fake_machine
sys.modules["network"] = fake_network
import board_esp32  # noqa: E402
import buttons  # noqa: E402

CFG = {"led_pin": 2, "buzzer_pin": 4, "button_pins": (32, 33, 25, 26, 27), "complaint_pin": 14,
       "wifi_ssid": "Mot cua", "wifi_password": "pw", "display": True, "i2c_sda": 21, "i2c_scl": 22,
       "display_addr": 0x3C}


def _board():
    b = board_esp32.Board(CFG)
    btn = buttons.Buttons(5, True, b.feedback, debounce_ms=30, levels=4, thanks_ms=3000)
    b.start(btn)
    return b, btn


def test_buttons_are_pulled_up_inputs_with_both_edge_interrupts():
    _b, _btn = _board()
    for gpio in (32, 33, 25, 26, 27, 14):
        p = fake_machine.pins[gpio]
        assert p.mode == fake_machine.IN and p.pull == fake_machine.PULL_UP
        assert p.trigger == fake_machine.IRQ_FALLING | fake_machine.IRQ_RISING and p.handler


def test_a_press_arms_the_timer_and_feedback_starts_in_its_callback():
    b, btn = _board()
    debounce = fake_machine.timers[0]
    beep = fake_machine.timers[1]
    led = fake_machine.pins[2]
    pin = fake_machine.pins[26]  # button 4
    pin.drive(0)  # pressed: active low
    assert debounce.callback is not None and debounce.period == 30
    assert led.level == 0  # nothing before the contact has settled
    time.sleep_ms(31)
    debounce.fire()
    assert led.level == 1 and fake_machine.PWM.last.duty_u16() > 0
    assert fake_machine.PWM.last.freq() == board_esp32.BEEP_HZ
    assert beep.period == board_esp32.BEEP_MS
    beep.fire()
    assert fake_machine.PWM.last.duty_u16() == 0
    assert btn.take()[0] == 3
    pin.drive(1)
    time.sleep_ms(31)
    debounce.fire()
    b.thanks_over()
    assert led.level == 0


def test_an_edge_never_postpones_a_pending_settle():
    _b, btn = _board()
    debounce = fake_machine.timers[0]
    fake_machine.pins[32].drive(0)
    n = debounce.inits
    time.sleep_ms(10)
    fake_machine.pins[33].drive(0)  # a second button 10 ms later
    assert debounce.inits == n  # the timer stays armed for the first one
    time.sleep_ms(21)
    debounce.fire()  # the first settles; the second needs ~10 ms more: re-armed
    assert debounce.callback is not None and debounce.period <= 11
    time.sleep_ms(debounce.period)
    debounce.fire()
    assert sorted([btn.take()[0], btn.take()[0]]) == [0, 1]


def test_wifi_watchdog_and_missing_display():
    b, _btn = _board()
    wlan = fake_network.WLAN.last
    assert not b.wifi_up()
    b.wifi_start()
    assert wlan.active() and wlan.connects == [("Mot cua", "pw")]
    wlan.connected = True
    b.wifi_start()  # already associated: nothing to do
    assert b.wifi_up() and len(wlan.connects) == 1 and b.rssi() == -61
    b.wdt_start(30000)
    b.wdt_feed()
    assert b._wdt.timeout == 30000 and b._wdt.feeds == 1
    assert b.display() is None  # no ACK on the I2C bus: the box runs without its display
