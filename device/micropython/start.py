# Start-up: the composition root of the box. Reads the configuration, builds the board and every
# part of the App, recovers the outbox, persists the new boot epoch before any event can be made
# (docs/protocol.md §3), applies the stored server config. main.py drops this module (and the
# boot-only ones it loads: config, slots, recovery, servercfg) once it returns, so none of this code
# stays in the heap while the box runs.
import gc
import struct
import sys
import time

from micropython import const

_STATE_LEN = const(8)  # (epoch, dropped) as ">II"


def boot():
    """A booted App, ready to run(); a bad configuration stops here (_fatal)."""
    import config

    if sys.platform == "esp32":
        import board_esp32 as hw
    else:
        import board_host as hw
    try:
        cfg = config.load()
    except config.ConfigError as e:
        _fatal("configuration: %s" % e, config.DEFAULTS["led_pin"])
    del sys.modules["config"]  # validated and copied: its code would only hold RAM
    board = hw.Board(cfg)
    gc.collect()
    from binascii import unhexlify

    import wire
    from app import App
    from buttons import Buttons
    from outbox import Outbox

    d = cfg["data_dir"]
    try:
        import os

        os.mkdir(d)
    except OSError:
        pass  # exists
    outbox = Outbox(d + "/outbox", cfg["seg_slots"], cfg["max_segments"])
    outbox._rare("recover")
    buttons = Buttons(len(cfg["button_pins"]), cfg["complaint_pin"] is not None, board.feedback,
                      cfg["debounce_ms"], cfg["levels"], cfg["thanks_ms"])
    app = App(cfg, board, wire.hmac_key(unhexlify(cfg["secret_hex"])), outbox, buttons)
    if cfg["display"]:
        app.display = board.display()
    import slots

    _new_epoch(app, slots)
    raw = slots.load(d, "config")
    del sys.modules["slots"]
    if raw:
        import servercfg

        try:
            servercfg.apply(app, raw)  # verified again: the signature is the integrity check
        except Exception as e:
            print("stored config not usable: %r" % e)
        del sys.modules["servercfg"]
    board.start(buttons)
    board.app = app
    if cfg["ntp_host"]:
        app.ntp_at = time.ticks_ms()  # a sync as soon as the network is up (sntp.py)
    # After boot the App and the board read only these options: the others (pins, identity, flash
    # layout) have served, and their values need not stay in RAM.
    app.cfg = board.cfg = {k: cfg[k] for k in (
        "device_id", "wifi_ssid", "wifi_password", "mqtt_host", "mqtt_port", "mqtt_user", "mqtt_password", "ntp_host",
        "ntp_port", "ntp_resync_s", "resend_ms", "resend_max_ms", "backoff_min_ms", "backoff_max_ms",
        "auth_backoff_ms", "wifi_retry_ms", "window")}
    board.wdt_start(cfg["wdt_ms"])
    print("motcua %s: device %s epoch %d, %d event(s) waiting, %d lost at recovery" % (
        app.version, app.dev, app.ep, outbox.pending, outbox.lost))
    return app


def _fatal(text, led_pin):
    # The firmware cannot run: say why (the serial console on a board) and stop; a board blinks its
    # LED forever, so that someone at the counter sees that it needs attention.
    print("FATAL, the box cannot run: " + text)
    if sys.platform != "esp32":
        sys.exit(2)
    import machine

    led = machine.Pin(led_pin, machine.Pin.OUT)
    while True:
        led.value(1 - led.value())
        time.sleep_ms(250)


def _new_epoch(app, slots):
    # The boot epoch is above every epoch on flash (state slots and outbox), so no (ep, seq) is ever
    # reused, even if the state copies were lost; it is on flash before any event of this boot.
    ob = app.outbox
    raw = slots.load(app.dir, "state")
    ep, dropped = struct.unpack(">II", raw) if raw and len(raw) == _STATE_LEN else (0, 0)
    app.ep = max(ep, ob.max_ep) + 1
    app.dropped = dropped + ob.dropped + ob.lost
    app.accounted = ob.dropped + ob.lost
    try:
        slots.save(app.dir, "state", struct.pack(">II", app.ep, app.dropped))
    except OSError:
        # Flash full: make room by the overflow policy and try once more; failing again, the
        # error reaches main.py and the board resets and retries.
        ob._rare("drop_oldest")
        app.dropped += ob.dropped + ob.lost - app.accounted
        app.accounted = ob.dropped + ob.lost
        slots.save(app.dir, "state", struct.pack(">II", app.ep, app.dropped))
