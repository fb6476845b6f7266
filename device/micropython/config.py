# Firmware configuration: the defaults below, overridden by an untracked config_local.py (written by
# `motcua device provision --counter ...`, copied to the board with mpremote). config_local.py sets
# module-level names equal to the keys below; an unknown name or a bad value stops the boot with a
# message that says which one, instead of running a box that cannot deliver what citizens press.
#
# The counter, the official and the rating scale come from the server's signed retained config
# (docs/protocol.md §5) at run time; `levels`, `thanks_ms` and `hb_s` here only apply until one
# arrives (and is then remembered on flash).
import gc

DEFAULTS = {
    # identity (from provisioning; no usable default)
    "device_id": None,
    "secret_hex": None,
    # broker
    "mqtt_host": None,
    "mqtt_port": 1883,
    "mqtt_user": None,
    "mqtt_password": None,
    # Wi-Fi (ignored by the host board)
    "wifi_ssid": None,
    "wifi_password": None,
    # clock: None disables NTP (events then carry uptime only and the server times them, §4)
    "ntp_host": "pool.ntp.org",
    "ntp_port": 123,
    "ntp_resync_s": 3600,  # crystal drift is ~50 ppm: 0.2 s per hour, far below what matters here
    # behaviour until the server's config says otherwise (§5)
    "levels": 4,
    "thanks_ms": 3000,
    "hb_s": 60,
    # pins (ESP32 GPIO numbers); buttons left to right = worst to best, only `levels` of them used
    "button_pins": (32, 33, 25, 26, 27),
    "complaint_pin": 14,  # None: no complaint button
    "led_pin": 2,
    "buzzer_pin": 4,  # None: no buzzer
    "display": False,  # an SSD1306 128x64 on I2C
    "i2c_sda": 21,
    "i2c_scl": 22,
    "display_addr": 0x3C,
    # timing knobs (tests shrink them to compress minutes of outage into seconds)
    "debounce_ms": 30,
    "keepalive_s": 60,
    "resend_ms": 15000,  # docs/protocol.md §7: re-send unacked events after 15 s ...
    "resend_max_ms": 120000,  # ... doubling up to this while the server stays silent
    "backoff_min_ms": 1000,  # reconnect delay after the first failure ...
    "backoff_max_ms": 60000,  # ... doubling (with jitter) up to this
    "auth_backoff_ms": 300000,  # after the broker refuses our credentials: slow, but never give up
    # Wi-Fi association takes 2-8 s: restarting it sooner only delays it; doubles up to backoff_max_ms
    "wifi_retry_ms": 10000,
    "window": 32,  # events sent and not yet acked end to end, at most
    "wdt_ms": 30000,  # watchdog; must exceed the longest blocking call (a DNS lookup)
    # flash
    "data_dir": "data",
    "seg_slots": 120,
    "max_segments": 86,
}


class ConfigError(ValueError):
    pass


def load():
    """DEFAULTS overridden by config_local.py, validated; raises ConfigError naming the bad option."""
    cfg = dict(DEFAULTS)
    try:
        import config_local
    except ImportError as e:
        if "config_local" not in str(e):
            raise
        config_local = None
    if config_local is not None:
        for name in dir(config_local):
            if name.startswith("_"):
                continue
            if name not in DEFAULTS:
                raise ConfigError("config_local.py sets unknown option %r" % name)
            cfg[name] = getattr(config_local, name)
        import sys
        del sys.modules["config_local"]  # its values are copied: free the module
        gc.collect()
    validate(cfg)
    return cfg


def is_device_id(s):
    """docs/protocol.md §2: ^[a-z0-9][a-z0-9-]{2,39}$ (checked by hand: MicroPython's re has no {m,n})."""
    # Bytes, not characters: MicroPython interns every character taken out of a str.
    if not isinstance(s, str) or not 3 <= len(s) <= 40 or s.startswith("-"):
        return False
    for c in s.encode():  # bytes: lower-case letters, digits and "-" only
        if not (0x61 <= c <= 0x7A or 0x30 <= c <= 0x39 or c == 0x2D):
            return False
    return True


def _int(cfg, name, start, stop=None):
    # cfg[name] must be an integer in start..stop (no upper bound if stop is None).
    v = cfg[name]
    if not isinstance(v, int) or isinstance(v, bool) or v < start or (stop is not None and v > stop):
        raise ConfigError("%s must be an integer >= %d, got %r" % (name, start, v) if stop is None else
                          "%s must be an integer from %d to %d, got %r" % (name, start, stop, v))


def _str(cfg, name, value=False):
    # cfg[name] must be a non-empty string, or None unless value (a value is required).
    v = cfg[name]
    if v is None and not value:
        return
    if not isinstance(v, str) or not v:
        raise ConfigError("%s must be a non-empty string, got %r" % (name, v))


def validate(cfg):
    """Raise ConfigError for the first option that cannot work."""
    if not is_device_id(cfg["device_id"]):
        raise ConfigError("device_id must match ^[a-z0-9][a-z0-9-]{2,39}$, got %r (provision the device)"
                          % (cfg["device_id"],))
    sec = cfg["secret_hex"]
    if not isinstance(sec, str) or len(sec) != 64 or any(not (0x30 <= c <= 0x39 or 0x61 <= c <= 0x66)
                                                         for c in sec.encode()):
        raise ConfigError("secret_hex must be 64 lowercase hex characters (provision the device)")
    _str(cfg, "mqtt_host", True)  # required
    for name in ("mqtt_user", "mqtt_password", "wifi_ssid", "wifi_password", "ntp_host"):
        _str(cfg, name)
    _int(cfg, "mqtt_port", 1, 65535)
    _int(cfg, "ntp_port", 1, 65535)
    pins = cfg["button_pins"]
    if not isinstance(pins, (tuple, list)) or not 3 <= len(pins) <= 10:
        raise ConfigError("button_pins must list 3 to 10 pins (5 for the standard box)")
    _int(cfg, "levels", 2, len(pins))
    for name, lo in (("ntp_resync_s", 1), ("thanks_ms", 0), ("hb_s", 1), ("debounce_ms", 1),
                     ("keepalive_s", 1), ("resend_ms", 100), ("resend_max_ms", 100),
                     ("backoff_min_ms", 10), ("backoff_max_ms", 10), ("auth_backoff_ms", 10), ("wifi_retry_ms", 10),
                     ("window", 1), ("wdt_ms", 1000), ("seg_slots", 8), ("max_segments", 2)):
        _int(cfg, name, lo)
    if cfg["seg_slots"] > 1000:
        raise ConfigError("seg_slots must be <= 1000 (one segment's bitmap is kept in RAM)")
    if not isinstance(cfg["data_dir"], str) or not cfg["data_dir"]:
        raise ConfigError("data_dir must be a directory name")
