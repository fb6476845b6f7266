# Wire protocol v1 (docs/protocol.md), device side: the exact bytes of events and heartbeats (§3, §4)
# and the checks on what the server sends (acks §7, configs §5). Protocol layer: it raises
# ProtocolError and never retries; the supervisor (app.py) decides what to do.
import json

VERSION = 1
SIG_MARKER = b',"sig":"'
SIG_HEX_LEN = 64
# Same bound as the server (§8 `oversized`): anything larger is refused before it is parsed.
MAX_PAYLOAD = 4096
# Nesting bound of the strict JSON scan: v1 messages nest 3 deep; the bound keeps a hostile payload
# from exhausting the small MicroPython C stack through recursion.
MAX_DEPTH = 8
ACK_CODES = ("ok", "dup", "quar")


class ProtocolError(ValueError):
    """A message that does not follow protocol v1; `code` is "malformed", "bad_signature" or "schema"."""

    def __init__(self, code, msg):
        super().__init__(msg)
        self.code = code


# ---- encoding -------------------------------------------------------------------------------------

def jstr(s):
    """A JSON string exactly as CPython's json.dumps(s, ensure_ascii=False) writes it (§3: raw UTF-8).

    MicroPython's json.dumps writes \\u0008 where CPython writes \\b, so strings are quoted here.
    """
    for ch in s:
        if ch < " " or ch == '"' or ch == "\\":
            break
    else:
        return '"' + s + '"'  # the common case: nothing to escape
    out = ['"']
    for ch in s:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch < " ":
            out.append(_SHORT_ESC.get(ch) or "\\u%04x" % ord(ch))
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


_SHORT_ESC = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}


def jvalue(v):
    """JSON text of an int, str, bool, None or list/tuple of them (compact separators)."""
    if v is True:
        return "true"
    if v is False:
        return "false"
    if v is None:
        return "null"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return jstr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ",".join([jvalue(x) for x in v]) + "]"
    raise TypeError("cannot encode %r as JSON" % (v,))


def members(pairs):
    """A JSON object from (name, value) pairs, in the given order (MicroPython dicts keep none)."""
    return "{" + ",".join([jstr(k) + ":" + jvalue(v) for k, v in pairs]) + "}"


def rating_body(value, levels, during_thanks=False):
    """The §3.1 body of a button press; `during_thanks` only when set, as the protocol orders."""
    if during_thanks:
        return '{"value":%d,"levels":%d,"during_thanks":true}' % (value, levels)
    return '{"value":%d,"levels":%d}' % (value, levels)


def incident_body(kind):
    """The §3.2 body of an incident raised on the device (only `kind` is required)."""
    return '{"kind":%s}' % jstr(kind)


def heartbeat_body(fw, outbox, synced, mem, dropped, rssi=None):
    """The §4 heartbeat body; `rssi` is left out when the radio cannot tell."""
    s = '{"fw":%s,"outbox":%d,"clock":"%s","mem":%d,"dropped":%d' % (
        jstr(fw), outbox, "synced" if synced else "unsynced", mem, dropped)
    if rssi is not None:
        s += ',"rssi":%d' % rssi
    return s + "}"


def envelope(dev, ep, seq, up, ts, typ, body):
    """The signed part of an event or heartbeat (§3: member order v,dev,ep,seq,up,[ts],typ,body).

    `dev` must already be a valid device id (config.py checks it), so it needs no escaping; `body`
    is the JSON text of the body object. `ts` is None while the clock is not synced: left out, not null.
    """
    if ts is None:
        s = '{"v":1,"dev":"%s","ep":%d,"seq":%d,"up":%d,"typ":"%s","body":%s' % (
            dev, ep, seq, up, typ, body)
    else:
        s = '{"v":1,"dev":"%s","ep":%d,"seq":%d,"up":%d,"ts":%d,"typ":"%s","body":%s' % (
            dev, ep, seq, up, ts, typ, body)
    return s.encode()


def seal(signer, signed):
    """The full payload: the signed bytes, then the signature as the last member (§3.3)."""
    return b"".join((signed, SIG_MARKER, signer.hexmac(signed), b'"}'))


# ---- strict JSON scan (§3.3: a repeated member name makes a message malformed) --------------------

def _ws(b, i):
    n = len(b)
    while i < n and b[i] in b" \t\r\n":
        i += 1
    return i


def _string(b, i):
    # b[i] is the opening quote; returns the index after the closing quote.
    n = len(b)
    i += 1
    while i < n:
        c = b[i]
        if c == 0x22:
            return i + 1
        if c < 0x20:
            raise ProtocolError("malformed", "control character inside a string")
        if c == 0x5C:
            i += 1
            if i >= n:
                break
            e = b[i]
            if e == 0x75:  # \uXXXX
                for k in range(i + 1, i + 5):
                    if k >= n or b[k] not in b"0123456789abcdefABCDEF":
                        raise ProtocolError("malformed", "bad \\u escape")
                i += 4
            elif e not in b'"\\/bfnrt':
                raise ProtocolError("malformed", "bad escape in a string")
        i += 1
    raise ProtocolError("malformed", "unterminated string")


def _number(b, i):
    n = len(b)
    s = i
    if i < n and b[i] == 0x2D:
        i += 1
    if i < n and b[i] == 0x30:
        i += 1
    elif i < n and 0x31 <= b[i] <= 0x39:
        while i < n and 0x30 <= b[i] <= 0x39:
            i += 1
    else:
        raise ProtocolError("malformed", "bad number at byte %d" % s)
    if i < n and b[i] == 0x2E:
        i = _digits(b, i + 1)
    if i < n and b[i] in b"eE":
        i += 1
        if i < n and b[i] in b"+-":
            i += 1
        i = _digits(b, i)
    return i


def _digits(b, i):
    s = i
    while i < len(b) and 0x30 <= b[i] <= 0x39:
        i += 1
    if i == s:
        raise ProtocolError("malformed", "digits expected at byte %d" % s)
    return i


def _key_text(raw):
    # Keys are compared decoded, so "a" and "\u0061" count as the same member name.
    return json.loads(raw) if b"\\" in raw else str(raw[1:-1], "utf-8")


def _value(b, i, depth):
    if depth > MAX_DEPTH:
        raise ProtocolError("malformed", "nested too deep")
    i = _ws(b, i)
    if i >= len(b):
        raise ProtocolError("malformed", "unexpected end")
    c = b[i]
    if c == 0x7B:
        return _object(b, i, depth)
    if c == 0x5B:
        i = _ws(b, i + 1)
        if i < len(b) and b[i] == 0x5D:
            return i + 1
        while True:
            i = _ws(b, _value(b, i, depth + 1))
            if i < len(b) and b[i] == 0x2C:
                i += 1
            elif i < len(b) and b[i] == 0x5D:
                return i + 1
            else:
                raise ProtocolError("malformed", "',' or ']' expected at byte %d" % i)
    if c == 0x22:
        return _string(b, i)
    for lit in (b"true", b"false", b"null"):
        if b[i:i + len(lit)] == lit:
            return i + len(lit)
    return _number(b, i)


def _object(b, i, depth):
    seen = []
    i = _ws(b, i + 1)
    if i < len(b) and b[i] == 0x7D:
        return i + 1
    while True:
        if i >= len(b) or b[i] != 0x22:
            raise ProtocolError("malformed", "member name expected at byte %d" % i)
        e = _string(b, i)
        key = _key_text(bytes(b[i:e]))
        if key in seen:
            raise ProtocolError("malformed", "repeated member %s" % key)
        seen.append(key)
        i = _ws(b, e)
        if i >= len(b) or b[i] != 0x3A:
            raise ProtocolError("malformed", "':' expected at byte %d" % i)
        i = _ws(b, _value(b, i + 1, depth + 1))
        if i < len(b) and b[i] == 0x2C:
            i = _ws(b, i + 1)
        elif i < len(b) and b[i] == 0x7D:
            return i + 1
        else:
            raise ProtocolError("malformed", "',' or '}' expected at byte %d" % i)


def check_json(b):
    """Raise ProtocolError("malformed") unless b is UTF-8 JSON holding one object, no repeated member."""
    try:
        str(b, "utf-8")
    except UnicodeError:
        raise ProtocolError("malformed", "not UTF-8")
    i = _ws(b, 0)
    if i >= len(b) or b[i] != 0x7B:
        raise ProtocolError("malformed", "the payload must be a JSON object")
    if _ws(b, _object(b, i, 0)) != len(b):
        raise ProtocolError("malformed", "trailing bytes after the object")


# ---- verification of server messages -------------------------------------------------------------

def split_signature(b):
    """(signed bytes, 64 hex bytes); ProtocolError("bad_signature") unless sig is the well-formed last member."""
    at = b.rfind(SIG_MARKER)
    if at <= 0:
        raise ProtocolError("bad_signature", "no final sig member")
    tail = b[at + len(SIG_MARKER):]
    if len(tail) != SIG_HEX_LEN + 2 or tail[SIG_HEX_LEN:] != b'"}':
        raise ProtocolError("bad_signature", "sig must be the last member, 64 hex characters")
    for c in tail[:SIG_HEX_LEN]:
        if not (0x30 <= c <= 0x39 or 0x61 <= c <= 0x66):
            raise ProtocolError("bad_signature", "sig must be lowercase hex")
    return b[:at], tail[:SIG_HEX_LEN]


def verify(signer, payload):
    """Check a signed payload (malformed first, then the MAC, §3.3); return the parsed object (a dict)."""
    b = bytes(payload)
    if len(b) > MAX_PAYLOAD:
        raise ProtocolError("malformed", "payload larger than %d bytes" % MAX_PAYLOAD)
    check_json(b)
    signed, sig = split_signature(b)
    if not signer.check(signed, sig):
        raise ProtocolError("bad_signature", "signature does not match the device key")
    return json.loads(b)


def _need(doc, name, kind):
    v = doc.get(name)
    if not isinstance(v, kind) or (kind is int and isinstance(v, bool)):
        raise ProtocolError("schema", "%s must be %s" % (name, kind.__name__))
    return v


def parse_ack(signer, dev, payload):
    """Verified (ep, seq, code) triples of an ack addressed to this device (§7)."""
    doc = verify(signer, payload)
    if doc.get("v") != VERSION or doc.get("typ") != "ack" or doc.get("dev") != dev:
        raise ProtocolError("schema", "not a v1 ack for this device")
    acks = _need(doc, "acks", list)
    out = []
    for a in acks:
        if (not isinstance(a, list) or len(a) != 3 or not isinstance(a[0], int) or not isinstance(a[1], int)
                or a[2] not in ACK_CODES):
            raise ProtocolError("schema", "ack entries are [ep, seq, ok|dup|quar]")
        out.append((a[0], a[1], a[2]))
    return out


def parse_config(signer, dev, payload):
    """A verified config for this device (§5), as a dict; shape checked, values not interpreted."""
    doc = verify(signer, payload)
    if doc.get("v") != VERSION or doc.get("typ") != "config" or doc.get("dev") != dev:
        raise ProtocolError("schema", "not a v1 config for this device")
    if _need(doc, "rev", int) < 1:
        raise ProtocolError("schema", "rev must be >= 1")
    _need(doc, "counter", dict)
    if doc.get("official") is not None:
        _need(doc, "official", dict)
    levels = _need(_need(doc, "scale", dict), "levels", int)
    if not 2 <= levels <= 10:
        raise ProtocolError("schema", "scale.levels must be 2..10")
    if _need(doc, "thanks_ms", int) < 0 or _need(doc, "hb_s", int) < 5:
        raise ProtocolError("schema", "thanks_ms >= 0 and hb_s >= 5")
    return doc
