# Wire protocol v1 (docs/protocol.md), device side: HMAC-SHA256 signatures (§3.3), the exact bytes
# of events and heartbeats (§3, §4), and the checks on what the server sends (acks §7; configs §5
# are checked in servercfg.py, loaded when one arrives). Protocol layer: it raises ProtocolError and
# never retries; the supervisor (app.py) decides what to do.
import binascii
import hashlib
import json

from micropython import const

_BLOCK = const(64)  # SHA-256 block size in bytes (FIPS 180-4 §5.1.2)
# The signature is the last member and has a fixed length: `,"sig":"`, 64 lowercase hex, `"}` (§3.3).
_SIG_TAIL = const(74)
# Same bound as the server (§8 `oversized`): anything larger is refused before it is parsed.
_MAX_PAYLOAD = const(4096)
# Nesting bound of the strict JSON scan: v1 messages nest 3 deep; deeper is refused.
_MAX_DEPTH = const(8)


class ProtocolError(ValueError):
    """A message that does not follow protocol v1: args are (code, detail), the code "malformed",
    "bad_signature" or "schema" (docs/protocol.md §8)."""


# ---- signatures (RFC 2104 HMAC from hashlib.sha256: MicroPython has no hmac module) --------------

def hmac_key(key):
    """The inner and outer padded keys of a secret key (RFC 2104 §2), computed once per key."""
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key += bytes(_BLOCK - len(key))
    return bytes(c ^ 0x36 for c in key), bytes(c ^ 0x5C for c in key)


def sign(key, data):
    """HMAC-SHA256 of data (any buffer) under hmac_key() `key`, as 64 lowercase hex bytes (§3.3)."""
    h = hashlib.sha256(key[0])
    h.update(data)
    inner = h.digest()
    h = hashlib.sha256(key[1])
    h.update(inner)
    return binascii.hexlify(h.digest())


# ---- encoding -------------------------------------------------------------------------------------
# The device only ever encodes the bodies below, from numbers and fixed names: nothing to escape.
# The text is formatted as CPython's json.dumps(separators=(",", ":")) writes it (§3).

def rating(value, levels, flag):
    """The §3.1 body of a button press; `during_thanks` (flag) only when set, as the protocol orders."""
    if flag:
        return '{"value":%d,"levels":%d,"during_thanks":true}' % (value, levels)
    return '{"value":%d,"levels":%d}' % (value, levels)


def heartbeat(version, outbox, synced, mem, dropped, rssi):
    """The §4 heartbeat body; `rssi` is left out when the radio cannot tell (None)."""
    return '{"fw":"%s","outbox":%d,"clock":"%s","mem":%d,"dropped":%d%s}' % (
        version, outbox, "synced" if synced else "unsynced", mem, dropped,
        "" if rssi is None else ',"rssi":%d' % rssi)


def encode(key, dev, ep, seq, up, ts, typ, body):
    """The signed payload of an event or heartbeat (§3: members v,dev,ep,seq,up,[ts],typ,body,sig).

    `dev` is a valid device id (config.py checks it) and `body` the JSON text of the body object,
    so nothing needs escaping. `ts` is None while the clock is not synced: left out, not null."""
    if ts is None:
        signed = b'{"v":1,"dev":"%s","ep":%d,"seq":%d,"up":%d,"typ":"%s","body":%s' % (
            dev, ep, seq, up, typ, body)
    else:
        signed = b'{"v":1,"dev":"%s","ep":%d,"seq":%d,"up":%d,"ts":%d,"typ":"%s","body":%s' % (
            dev, ep, seq, up, ts, typ, body)
    return b'%s,"sig":"%s"}' % (signed, sign(key, signed))


# ---- strict JSON scan (§3.3: RFC 8259 exactly, and a repeated member name makes it malformed) -----
# MicroPython's json.loads accepts missing commas, trailing commas, bad escapes, raw control
# characters and leading zeros, and keeps the last of repeated members; this scan refuses them all.
# One loop with an explicit stack instead of a recursive descent: no C-stack risk, little code. It
# reads any buffer (a memoryview of the receive buffer: nothing is copied).

def check_json(buf):
    """Raise ProtocolError("malformed") unless buf holds one JSON object with no repeated member."""
    n = len(buf)
    i = 0
    while i < n and buf[i] in b" \t\r\n":
        i += 1
    stack = []  # per open container: its member names (object) or None (array)
    # want: 0 a value, 1 a name or "}", 2 a name, 3 ":", 4 "," or the container's end, 5 a value or "]"
    want = 0
    while i < n and (stack or not want and buf[i] == 0x7B):  # the top level: one object, nothing after
        c = buf[i]
        if want == 4:
            obj = stack[-1] is not None
            if c == 0x2C:
                want = 2 if obj else 0
            elif c == (0x7D if obj else 0x5D):
                stack.pop()
            else:
                break
            i += 1
        elif want == 3:
            if c != 0x3A:
                break
            want = 0
            i += 1
        elif c == 0x22:
            s = i
            esc = False
            i += 1
            while i < n and buf[i] != 0x22:  # no raw control characters, only RFC 8259 §7 escapes
                c = buf[i]
                if c < 0x20:
                    break
                if c == 0x5C:
                    esc = True
                    i += 1
                    if i < n and buf[i] == 0x75:
                        for k in range(i + 1, i + 5):
                            if k >= n or buf[k] not in b"0123456789abcdefABCDEF":
                                i = n
                        i += 4
                    elif i >= n or buf[i] not in b'"\\/bfnrt':
                        break
                i += 1
            if i >= n or buf[i] != 0x22:
                break
            i += 1
            if want in (1, 2):
                # Names are compared as their UTF-8 bytes, decoded: "a" and "\u0061" are the same
                # member. A name without escapes is its bytes: a view, nothing copied.
                key = json.loads(bytes(buf[s:i])).encode() if esc else buf[s + 1:i - 1]
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
            break  # a member name must be a string
        elif c == 0x7B or c == 0x5B:
            if len(stack) >= _MAX_DEPTH:
                break
            stack.append([] if c == 0x7B else None)
            want = 1 if c == 0x7B else 5
            i += 1
        else:
            end = _scalar(buf, i, n)
            if end < 0:
                break
            i = end
            want = 4
        while i < n and buf[i] in b" \t\r\n":
            i += 1
    if i < n or stack or not want:
        raise ProtocolError("malformed", "bad JSON at byte %d" % i)


def _scalar(buf, i, n):
    # true, false, null or a number (RFC 8259 §6: no leading zeros, no bare "." or "e") at i: where
    # it ends, or -1 if it is none of them.
    for lit in (b"true", b"false", b"null"):
        if buf[i:i + len(lit)] == lit:
            return i + len(lit)
    if buf[i] == 0x2D:
        i += 1
    s = i
    while i < n and 0x30 <= buf[i] <= 0x39:
        i += 1
    if i == s or (buf[s] == 0x30 and i > s + 1):
        return -1
    if i < n and buf[i] == 0x2E:
        i += 1
        s = i
        while i < n and 0x30 <= buf[i] <= 0x39:
            i += 1
        if i == s:
            return -1
    if i < n and buf[i] in b"eE":
        i += 1
        if i < n and buf[i] in b"+-":
            i += 1
        s = i
        while i < n and 0x30 <= buf[i] <= 0x39:
            i += 1
        if i == s:
            return -1
    return i


# ---- verification of server messages -------------------------------------------------------------

def verify(key, data):
    """The text of a signed server message, checked as §3.3 orders: malformed first (size, UTF-8,
    strict JSON holding one object), then the signature, the last member, in constant time; the
    caller parses it (json.loads) once the scan's garbage may be collected.

    `data` may be a memoryview of the receive buffer: the only copy made is the decoded text."""
    n = len(data)
    if n > _MAX_PAYLOAD:
        raise ProtocolError("malformed", "larger than 4096 bytes")
    try:
        text = str(data, "utf-8")
    except UnicodeError:
        raise ProtocolError("malformed", "not UTF-8 text")
    check_json(data)
    at = n - _SIG_TAIL
    if at <= 0 or data[at:at + 8] != b',"sig":"' or data[n - 2:] != b'"}':
        raise ProtocolError("bad_signature", "no 64-character sig as the last member")
    want = sign(key, data[:at])
    diff = 0
    for k in range(64):  # no early exit: the timing must not reveal the first wrong byte
        c = data[at + 8 + k]
        if not (0x30 <= c <= 0x39 or 0x61 <= c <= 0x66):
            raise ProtocolError("bad_signature", "sig is not lowercase hex")
        diff |= want[k] ^ c
    if diff:
        raise ProtocolError("bad_signature", "signed with another key")
    return text


def need(doc, name, t):
    """doc[name] if it is exactly of type t (so an int is not a bool); ProtocolError("schema")."""
    v = doc.get(name)
    if type(v) is not t:
        raise ProtocolError("schema", name)
    return v


def check_head(doc, typ, dev):
    """ProtocolError("schema") unless doc is a v1 message of type typ for device dev."""
    if doc.get("v") != 1 or doc.get("typ") != typ or doc.get("dev") != dev:
        raise ProtocolError("schema", "not a v1 %s for this device" % typ)


def parse_ack(key, dev, data):
    """The verified acks of a message addressed to this device (§7): a list of [ep, seq, code]."""
    doc = json.loads(verify(key, data))
    check_head(doc, "ack", dev)
    acks = need(doc, "acks", list)
    for a in acks:
        if type(a) is not list or len(a) != 3 or type(a[0]) is not int or type(a[1]) is not int or (
                a[2] not in ("ok", "dup", "quar")):
            raise ProtocolError("schema", "acks: [ep, seq, ok|dup|quar]")
    return acks
