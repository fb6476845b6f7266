# The server's signed config (docs/protocol.md §5): counter, official, rating scale, timings. It
# arrives seldom (retained: at every connect, and when an admin changes it), so this code is loaded
# when one arrives and leaves the heap afterwards (app.py, App._cold).
from wire import ProtocolError, check_head, need, verify


def parse_config(signer, dev, payload):
    """A verified config for this device (§5), as a dict; shape checked, values not interpreted."""
    doc = verify(signer, payload)
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
