# Start-up: the composition root of the box. Reads the configuration, builds the board and every
# part of the App, recovers the outbox, persists the new boot epoch before any event can be made
# (docs/protocol.md §3), applies the stored server config. main.py drops this module (and config.py)
# once it returns, so none of this code stays in the heap while the box runs.
import gc
import struct
import sys

from micropython import const

# After boot the App reads only these options: the others (pins, identity, flash layout) are used
# here and their values need not stay in RAM.
_RUNTIME_OPTIONS = ("device_id", "wifi_ssid", "wifi_password", "mqtt_host", "mqtt_port", "mqtt_user", "mqtt_password", "ntp_host",
                    "ntp_port", "ntp_resync_s", "keepalive_s", "resend_ms", "resend_max_ms",
                    "backoff_min_ms", "backoff_max_ms", "auth_backoff_ms", "wifi_retry_ms", "window")
_STATE_LEN = const(8)  # (epoch, dropped) as ">II"


def boot():
    """A booted App, ready to run(); a bad configuration stops here (Board.fatal)."""
    cfg, board = _config_and_board()
    gc.collect()
    from app import App
    from buttons import Buttons
    from outbox import Outbox
    from signing import Signer, key_from_hex
    from slots import Slots

    d = cfg["data_dir"]
    try:
        import os

        os.mkdir(d)
    except OSError:
        pass  # exists
    outbox = Outbox(d + "/outbox", cfg["seg_slots"], cfg["max_segments"])
    outbox.recover()
    buttons = Buttons(len(cfg["button_pins"]), cfg["complaint_pin"] is not None, board.feedback,
                      cfg["debounce_ms"], cfg["levels"], cfg["thanks_ms"])
    app = App(cfg, board, Signer(key_from_hex(cfg["secret_hex"])), outbox, Slots(d + "/state"), buttons)
    _new_epoch(app)
    app.cfg_slots = Slots(d + "/config")
    raw = app.cfg_slots.load()
    if raw:
        import servercfg

        try:
            servercfg.apply(app, raw, False)  # verified again: the signature is the integrity check
        except Exception as e:
            board.log("stored config not usable: %r" % e)
        del sys.modules["servercfg"]
    board.start(buttons)
    board.command = app.command
    app.display = board.display()
    if cfg["ntp_host"]:
        import sntp

        app.clock = sntp.Sntp()
    app.cfg = board.cfg = {k: cfg[k] for k in _RUNTIME_OPTIONS}  # the rest has served
    board.wdt_start(cfg["wdt_ms"])
    return app


def _config_and_board():
    import config

    if sys.platform == "esp32":
        import board_esp32 as board
    else:
        import board_host as board
    try:
        cfg = config.load()
    except config.ConfigError as e:
        board.Board(config.DEFAULTS).fatal("configuration: %s" % e)
    del sys.modules["config"]  # validated and copied: its code would only hold RAM
    return cfg, board.Board(cfg)


def _new_epoch(app):
    # The boot epoch is above every epoch on flash (state slots and outbox), so no (ep, seq) is ever
    # reused, even if the state copies were lost; it is on flash before any event of this boot.
    raw = app.state.load()
    ep, dropped = struct.unpack(">II", raw) if raw and len(raw) == _STATE_LEN else (0, 0)
    app.ep = max(ep, app.outbox.max_ep) + 1
    app.dropped = dropped
    app.account()
    try:
        app.state.save(struct.pack(">II", app.ep, app.dropped))
    except OSError:
        # Flash full: make room by the overflow policy and try once more; failing again, the
        # error reaches main.py and the board resets and retries.
        app.outbox.drop_oldest()
        app.account()
        app.state.save(struct.pack(">II", app.ep, app.dropped))
