# Wire protocol v1 (docs/protocol.md), device side: the exact bytes of events and heartbeats (§3, §4)
# and the checks on what the server sends (acks §7; configs §5 are checked in servercfg.py, loaded
# when one arrives). Protocol layer: it raises ProtocolError and never retries; the supervisor
# (app.py) decides what to do.
import json

from micropython import const

SIG_MARKER = b',"sig":"'
_SIG_HEX_LEN = const(64)
# Same bound as the server (§8 `oversized`): anything larger is refused before it is parsed.
_MAX_PAYLOAD = const(4096)
# Nesting bound of the strict JSON scan: v1 messages nest 3 deep; deeper is refused.
_MAX_DEPTH = const(8)
ACK_CODES = ("ok", "dup", "quar")


class ProtocolError(ValueError):
    """A message that does not follow protocol v1; `code` is "malformed", "bad_signature" or "schema"."""

    def __init__(self, code, msg):
        super().__init__(msg)
        self.code = code


# ---- encoding -------------------------------------------------------------------------------------
# The device only ever encodes the bodies below, from numbers and fixed names: nothing to escape.
# The text is formatted as CPython's json.dumps(separators=(",", ":")) writes it (§3).

def rating_body(value, levels, during_thanks=False):
    """The §3.1 body of a button press; `during_thanks` only when set, as the protocol orders."""
    if during_thanks:
        return '{"value":%d,"levels":%d,"during_thanks":true}' % (value, levels)
    return '{"value":%d,"levels":%d}' % (value, levels)


def incident_body(kind):
    """The §3.2 body of an incident raised on the device; `kind` is a fixed name ("complaint")."""
    return '{"kind":"%s"}' % kind


def heartbeat_body(fw, outbox, synced, mem, dropped, rssi=None):
    """The §4 heartbeat body; `rssi` is left out when the radio cannot tell."""
    s = '{"fw":"%s","outbox":%d,"clock":"%s","mem":%d,"dropped":%d' % (
        fw, outbox, "synced" if synced else "unsynced", mem, dropped)
    if rssi is not None:
        s += ',"rssi":%d' % rssi
    return s + "}"


def envelope(dev, ep, seq, up, ts, typ, body):
    """The signed part of an event or heartbeat (§3: member order v,dev,ep,seq,up,[ts],typ,body).

    `dev` must already be a valid device id (config.py checks it), so it needs no escaping; `body`
    is the JSON text of the body object. `ts` is None while the clock is not synced: left out, not null.
    """
    if ts is None:
        return b'{"v":1,"dev":"%s","ep":%d,"seq":%d,"up":%d,"typ":"%s","body":%s' % (
            dev, ep, seq, up, typ, body)
    return b'{"v":1,"dev":"%s","ep":%d,"seq":%d,"up":%d,"ts":%d,"typ":"%s","body":%s' % (
        dev, ep, seq, up, ts, typ, body)


def seal(signer, signed):
    """The full payload: the signed bytes, then the signature as the last member (§3.3)."""
    return b"".join((signed, SIG_MARKER, signer.hexmac(signed), b'"}'))


# ---- strict JSON scan (§3.3: RFC 8259 exactly, and a repeated member name makes it malformed) -----
# MicroPython's json.loads accepts missing commas, trailing commas, bad escapes, raw control
# characters and leading zeros, and keeps the last of repeated members; this scan refuses them all.
# One loop with an explicit stack instead of a recursive descent: no C-stack risk, little code.

def _bad(i):
    return ProtocolError("malformed", "bad JSON at byte %d" % i)


def check_json(b):
    """Raise ProtocolError("malformed") unless b is UTF-8 JSON holding one object, no repeated member."""
    try:
        str(b, "utf-8")
    except UnicodeError:
        raise ProtocolError("malformed", "not UTF-8")
    n = len(b)
    i = 0
    while i < n and b[i] in b" \t\r\n":
        i += 1
    if i >= n or b[i] != 0x7B:
        raise ProtocolError("malformed", "not a JSON object")
    stack = []  # per open container: its member names (object) or None (array)
    # want: 0 a value, 1 a name or "}", 2 a name, 3 ":", 4 "," or the container's end, 5 a value or "]"
    want = 0
    while True:
        while i < n and b[i] in b" \t\r\n":
            i += 1
        if i >= n:
            if want == 4 and not stack:
                return
            raise _bad(i)
        c = b[i]
        if want == 4:
            if not stack:
                raise _bad(i)  # trailing bytes after the object
            obj = stack[-1] is not None
            if c == 0x2C:
                want = 2 if obj else 0
            elif c == (0x7D if obj else 0x5D):
                stack.pop()
            else:
                raise _bad(i)
            i += 1
        elif want == 3:
            if c != 0x3A:
                raise _bad(i)
            want = 0
            i += 1
        elif c == 0x22:
            s = i
            i += 1
            while True:  # the string: no raw control characters, only the escapes of RFC 8259 §7
                if i >= n:
                    raise _bad(i)
                c = b[i]
                if c == 0x22:
                    break
                if c < 0x20:
                    raise _bad(i)
                if c == 0x5C:
                    i += 1
                    if i < n and b[i] == 0x75:
                        for k in range(i + 1, i + 5):
                            if k >= n or b[k] not in b"0123456789abcdefABCDEF":
                                raise _bad(k)
                        i += 4
                    elif i >= n or b[i] not in b'"\\/bfnrt':
                        raise _bad(i)
                i += 1
            i += 1
            if want in (1, 2):
                # Names are compared decoded: "a" and "\u0061" are the same member.
                key = json.loads(b[s:i]) if b"\\" in b[s:i] else str(b[s + 1:i - 1], "utf-8")
                if key in stack[-1]:
                    raise ProtocolError("malformed", "repeated member")
                stack[-1].append(key)
                want = 3
            else:
                want = 4
        elif want == 1 and c == 0x7D or want == 5 and c == 0x5D:
            stack.pop()
            want = 4
            i += 1
        elif want in (1, 2):
            raise _bad(i)  # a member name must be a string
        elif c == 0x7B or c == 0x5B:
            if len(stack) >= _MAX_DEPTH:
                raise _bad(i)
            stack.append([] if c == 0x7B else None)
            want = 1 if c == 0x7B else 5
            i += 1
        else:
            i = _scalar(b, i, n)
            want = 4


def _scalar(b, i, n):
    # true, false, null or a number (RFC 8259 §6: no leading zeros, no bare "." or "e"); the end.
    for lit in (b"true", b"false", b"null"):
        if b[i:i + len(lit)] == lit:
            return i + len(lit)
    if b[i] == 0x2D:
        i += 1
    s = i
    while i < n and 0x30 <= b[i] <= 0x39:
        i += 1
    if i == s or (b[s] == 0x30 and i > s + 1):
        raise _bad(s)
    if i < n and b[i] == 0x2E:
        i += 1
        s = i
        while i < n and 0x30 <= b[i] <= 0x39:
            i += 1
        if i == s:
            raise _bad(i)
    if i < n and b[i] in b"eE":
        i += 1
        if i < n and b[i] in b"+-":
            i += 1
        s = i
        while i < n and 0x30 <= b[i] <= 0x39:
            i += 1
        if i == s:
            raise _bad(i)
    return i


# ---- verification of server messages -------------------------------------------------------------

def split_signature(b):
    """(signed bytes, 64 hex bytes); ProtocolError("bad_signature") unless sig is the well-formed last member."""
    at = b.rfind(SIG_MARKER)
    if at <= 0:
        raise ProtocolError("bad_signature", "no final sig member")
    tail = b[at + len(SIG_MARKER):]
    if len(tail) != _SIG_HEX_LEN + 2 or tail[_SIG_HEX_LEN:] != b'"}':
        raise ProtocolError("bad_signature", "sig: not last, or not 64 characters")
    for c in tail[:_SIG_HEX_LEN]:
        if not (0x30 <= c <= 0x39 or 0x61 <= c <= 0x66):
            raise ProtocolError("bad_signature", "sig: not lowercase hex")
    return b[:at], tail[:_SIG_HEX_LEN]


def verify(signer, payload):
    """Check a signed payload (malformed first, then the MAC, §3.3); return the parsed object (a dict)."""
    b = bytes(payload)
    if len(b) > _MAX_PAYLOAD:
        raise ProtocolError("malformed", "too large")
    check_json(b)
    signed, sig = split_signature(b)
    if not signer.check(signed, sig):
        raise ProtocolError("bad_signature", "wrong key")
    return json.loads(b)


def need(doc, name, kind):
    """doc[name] if it is a `kind` (an int that is not a bool); ProtocolError("schema") otherwise."""
    v = doc.get(name)
    if not isinstance(v, kind) or (kind is int and isinstance(v, bool)):
        raise ProtocolError("schema", name)
    return v


def check_head(doc, typ, dev):
    """ProtocolError("schema") unless doc is a v1 message of type typ for device dev."""
    if doc.get("v") != 1 or doc.get("typ") != typ or doc.get("dev") != dev:
        raise ProtocolError("schema", "not a v1 %s for this device" % typ)


def parse_ack(signer, dev, payload):
    """Verified (ep, seq, code) triples of an ack addressed to this device (§7)."""
    doc = verify(signer, payload)
    check_head(doc, "ack", dev)
    out = []
    for a in need(doc, "acks", list):
        if (not isinstance(a, list) or len(a) != 3 or not isinstance(a[0], int) or not isinstance(a[1], int)
                or a[2] not in ACK_CODES):
            raise ProtocolError("schema", "acks: [ep, seq, ok|dup|quar]")
        out.append((a[0], a[1], a[2]))
    return out
