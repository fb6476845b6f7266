# The server's signed config (docs/protocol.md §5): counter, official, rating scale, timings. It
# arrives seldom (retained: at every connect, and when an admin changes it), so this code is loaded
# when one arrives and leaves the heap afterwards (App.load).
import gc
import json
import time

from wire import ProtocolError, check_head, need, verify


def parse_config(key, dev, data):
    """A verified config for this device (§5), as a dict; shape checked, values not interpreted."""
    text = verify(key, data)
    gc.collect()  # the scan's and the signature's garbage goes before the parsed config comes
    doc = json.loads(text)
    del text
    check_head(doc, "config", dev)
    if need(doc, "rev", int) < 1:
        raise ProtocolError("schema", "rev must be >= 1")
    need(doc, "counter", dict)
    if doc.get("official") is not None:
        need(doc, "official", dict)
    levels = need(need(doc, "scale", dict), "levels", int)
    if not 2 <= levels <= 10:
        raise ProtocolError("schema", "scale.levels must be 2..10")
    if need(doc, "thanks_ms", int) < 0 or need(doc, "hb_s", int) < 5:
        raise ProtocolError("schema", "thanks_ms >= 0 and hb_s >= 5")
    return doc


def apply(app, data):
    """Verify and apply a config (§5) to the running box; True if it was applied (the caller then
    stores the signed bytes in the config slots, verified again at boot), False if it was ignored;
    raises ProtocolError when refused.

    Ignored unless its rev is greater than the applied one (an old retained message replayed
    changes nothing)."""
    if not len(data):
        print("config: retained config cleared (device revoked?); keeping rev %d" % app.cfg_rev)
        return False
    doc = parse_config(app.key, app.dev, data)
    rev, levels, thanks, hb = doc["rev"], doc["scale"]["levels"], doc["thanks_ms"], doc["hb_s"]
    if rev <= app.cfg_rev:
        print("config: rev %d ignored, rev %d applied" % (rev, app.cfg_rev))
        return False
    wired = app.buttons.count
    if levels > wired:
        raise ProtocolError("schema", "a scale of %d levels needs %d buttons; this box has %d"
                            % (levels, levels, wired))
    if app.display is not None:  # only the display needs the names
        app.display.cfg = {"counter": doc["counter"], "official": doc["official"]}
    ep_min = doc.get("ep_min")
    del doc  # the rest of the parsed config is garbage before the slots code may come in
    if type(ep_min) is int and ep_min > app.ep:
        # The server saw this box use epochs it no longer remembers (its flash was reset, §4): move
        # to ep_min at once, on flash before any event of it, so no (ep, seq) is ever used twice.
        app.ep, app.seq = ep_min, 0
        app.save_counters()
        app.hb_next = time.ticks_ms()  # the new epoch needs its clock anchor
        app.board.emit("epoch", ep=ep_min)
    app.buttons.levels = levels
    app.buttons.thanks_ms = thanks
    app.hb_ms = hb * 1000
    app.cfg_rev = rev
    app.ui_dirty = True
    app.board.emit("cfg", rev=rev, levels=levels, thanks_ms=thanks, hb_s=hb)
    return True
