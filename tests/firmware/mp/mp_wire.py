# Wire protocol v1 under real MicroPython: the byte-exact vectors of tests/vectors/v1.json.
import binascii
import json

import servercfg
import wire

VECTORS = __file__.rsplit("/", 3)[0] + "/vectors/v1.json"


def _vectors():
    with open(VECTORS) as f:
        return json.load(f)


def _key(case):
    return wire.hmac_key(binascii.unhexlify(case["secret_hex"]))


def _pairs(members):
    return [(k, v) for k, v in members]


# A general JSON encoder for the vectors' bodies (the firmware only encodes the few bodies it makes,
# wire.rating and wire.heartbeat): strings exactly as CPython's json.dumps(s, ensure_ascii=False),
# whose \b MicroPython's json.dumps writes as \u0008.
_SHORT_ESC = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}


def jstr(s):
    out = ['"']
    for ch in s:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch < " ":
            out.append(_SHORT_ESC.get(ch) or f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def jvalue(v):
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
    return "[" + ",".join([jvalue(x) for x in v]) + "]"


def members(pairs):
    return "{" + ",".join([jstr(k) + ":" + jvalue(v) for k, v in pairs]) + "}"


def test_event_vectors_encode_byte_exact():
    n = 0
    for case in _vectors()["events"]:
        key = _key(case)
        f = case["fields"]
        body = members(_pairs(case["body_members"]))
        payload = wire.encode(key, f["dev"], f["ep"], f["seq"], f["up"], f.get("ts"), f["typ"], body)
        assert binascii.hexlify(payload).decode() == case["payload_hex"], case["name"]
        # the signed part is everything before the final `,"sig":"<64 hex>"}` (74 bytes)
        signed = payload[:-74]
        assert binascii.hexlify(signed).decode() == case["signed_hex"], case["name"]
        assert payload[-74:] == b',"sig":"' + case["sig"].encode() + b'"}', case["name"]
        assert wire.sign(key, signed).decode() == case["sig"], case["name"]
        n += 1
    # 5 cases of the ESP32's own types (rating, incident, heartbeat) and the kiosk's `session` event:
    # the firmware encodes envelopes generically, so it must reproduce those bytes too.
    assert n == len(_vectors()["events"]) >= 6


def test_specialised_bodies_match_the_vectors():
    # The hot path builds bodies with % formatting; it must give the same bytes as members().
    seen = set()
    for case in _vectors()["events"]:
        f, m = case["fields"], dict(_pairs(case["body_members"]))
        if f["typ"] == "rating" and set(m) <= {"value", "levels", "during_thanks"}:
            body = wire.rating(m["value"], m["levels"], m.get("during_thanks", False))
        elif f["typ"] == "heartbeat":
            assert m["clock"] == ("synced" if f.get("ts") is not None else "unsynced")
            body = wire.heartbeat(m["fw"], m["outbox"], f.get("ts") is not None, m["mem"], m["dropped"],
                                  m.get("rssi"))
        else:
            continue
        assert body == members(_pairs(case["body_members"])), case["name"]
        payload = wire.encode(_key(case), f["dev"], f["ep"], f["seq"], f["up"], f.get("ts"), f["typ"], body)
        assert binascii.hexlify(payload).decode() == case["payload_hex"], case["name"]
        seen.add(f["typ"])
    assert seen == {"rating", "heartbeat"}
    assert wire.rating(3, 5, True) == '{"value":3,"levels":5,"during_thanks":true}'
    assert members([("kind", "complaint")]) == '{"kind":"complaint"}'  # app.py's incident body


def test_raw_utf8_and_cpython_escapes():
    assert jstr("Cán bộ") == '"Cán bộ"'
    assert jstr('a"b\\c\n\r\t\b\f\x01\x7f') == '"a\\"b\\\\c\\n\\r\\t\\b\\f\\u0001\x7f"'
    assert members([("a", [1, "x", True, None]), ("b", False)]) == '{"a":[1,"x",true,null],"b":false}'


def test_server_message_vectors_verify():
    for case in _vectors()["server_messages"]:
        key = _key(case)
        payload = binascii.unhexlify(case["payload_hex"])
        # as the firmware gets it: a memoryview of the receive buffer
        doc = json.loads(wire.verify(key, memoryview(bytearray(payload))))
        assert doc["typ"] == case["name"]
        assert binascii.hexlify(payload[:-74]).decode() == case["signed_hex"]
        assert wire.sign(key, payload[:-74]).decode() == case["sig"]
        dev = doc["dev"]
        if case["name"] == "ack":
            assert wire.parse_ack(key, dev, payload) == [[3, 41, "ok"], [3, 42, "dup"], [3, 43, "quar"]]
        else:
            cfg = servercfg.parse_config(key, dev, payload)
            assert cfg["rev"] == 17 and cfg["scale"]["levels"] == 4
            assert cfg["official"]["name"] == "Nguyễn Thị Lan"


def test_server_messages_for_another_device_are_refused():
    for case in _vectors()["server_messages"]:
        payload = binascii.unhexlify(case["payload_hex"])
        parse = wire.parse_ack if case["name"] == "ack" else servercfg.parse_config
        try:
            parse(_key(case), "esp32-other", payload)
        except wire.ProtocolError as e:
            assert e.args[0] == "schema"
        else:
            raise AssertionError("accepted a message for another device")


def test_invalid_vectors_are_refused_with_their_reason():
    n = 0
    for case in _vectors()["invalid"]:
        try:
            wire.verify(_key(case), memoryview(binascii.unhexlify(case["payload_hex"])))
        except wire.ProtocolError as e:
            assert e.args[0] == case["expect"], (case["name"], e.args)
            n += 1
        else:
            raise AssertionError("accepted: " + case["name"])
    assert n == 10


def test_tampered_server_messages_are_refused():
    case = _vectors()["server_messages"][0]
    key = _key(case)
    good = binascii.unhexlify(case["payload_hex"])
    bad = good.replace(b'"ok"', b'"dup"')
    for payload, code in ((bad, "bad_signature"), (good[:-1], "malformed"), (b"[]", "malformed"),
                          (b'{"a":1,"\\u0061":2}', "malformed"), (b'{"a":01}', "malformed"),
                          (good + b" x", "malformed"), (b"{" * 40 + b"}" * 40, "malformed"),
                          (b'{"a":"\x01"}', "malformed"), (b"x" * 5000, "malformed"),
                          (b'"just a string"', "malformed"), (b"", "malformed"), (b"{}  {}", "malformed"),
                          (b'{"a":[1,]}', "malformed"), (b'{"a" 1}', "malformed"), (b'{"a":1.}', "malformed"),
                          (b'{"a":"\\x"}', "malformed"), (b'{"a":"\\u12G4"}', "malformed"),
                          (b'{"a":"\xff"}', "malformed"), (good[:-3] + b'A"}', "bad_signature"),
                          (good.replace(b',"sig":', b',"sog":'), "bad_signature")):
        try:
            wire.verify(key, memoryview(payload))
        except wire.ProtocolError as e:
            assert e.args[0] == code, (payload[:40], e.args)
        else:
            raise AssertionError(f"accepted {payload[:40]!r}")


def test_hmac_matches_rfc4231_case_2():
    # RFC 4231 test case 2: key "Jefe" (shorter than a block), message "what do ya want for nothing?"
    assert wire.sign(wire.hmac_key(b"Jefe"), b"what do ya want for nothing?") == (
        b"5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    # RFC 4231 test case 6: a 131-byte key is hashed first.
    assert wire.sign(wire.hmac_key(b"\xaa" * 131), b"Test Using Larger Than Block-Size Key - Hash Key First") == (
        b"60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")
