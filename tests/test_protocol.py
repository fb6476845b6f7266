"""Wire protocol v1: the CPython implementation against the committed byte-exact vectors."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from motcua.protocol import ProtocolError, codec, parse_topic, topics, verify_payload
from motcua.protocol.framing import seal, sign, split_signature
from motcua.protocol.messages import (
    parse_json_strict,
    validate_event,
    validate_heartbeat,
    validate_server_message,
)

VECTORS = json.loads(Path(__file__).with_name("vectors").joinpath("v1.json").read_text(encoding="utf-8"))


def _hmac_by_hand(key: bytes, msg: bytes) -> str:
    """RFC 2104 from hashlib.sha256 alone, as the MicroPython firmware must compose it."""
    block = key.ljust(64, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in block) + msg).digest()
    return hashlib.sha256(bytes(b ^ 0x5C for b in block) + inner).hexdigest()


@pytest.mark.parametrize("case", VECTORS["events"], ids=lambda c: c["name"])
def test_encoder_reproduces_vector_bytes(case: dict) -> None:
    secret = bytes.fromhex(case["secret_hex"])
    fields = dict(case["fields"])
    body = dict(case["body_members"])
    if fields["typ"] == "heartbeat":
        assert body.pop("clock") == ("synced" if fields["ts"] is not None else "unsynced")
        payload = codec.encode_heartbeat(secret, **{k: v for k, v in fields.items() if k != "typ"}, **body)
    else:
        payload = codec.encode_event(secret, body=body, **fields)
    assert payload.hex() == case["payload_hex"]
    assert payload.decode("utf-8") == case["payload"]


@pytest.mark.parametrize("case", VECTORS["events"] + VECTORS["server_messages"], ids=lambda c: c["name"])
def test_vector_signatures_verify_and_match_hand_composed_hmac(case: dict) -> None:
    secret, payload = bytes.fromhex(case["secret_hex"]), bytes.fromhex(case["payload_hex"])
    signed = verify_payload(secret, payload)
    assert signed.hex() == case["signed_hex"]
    assert _hmac_by_hand(secret, signed) == case["sig"] == sign(secret, signed)
    assert parse_topic(case["topic"]).device_id == parse_json_strict(payload)["dev"]


@pytest.mark.parametrize("case", VECTORS["invalid"], ids=lambda c: c["name"])
def test_invalid_vectors_are_refused_with_their_reason(case: dict) -> None:
    payload = bytes.fromhex(case["payload_hex"])
    with pytest.raises(ProtocolError) as err:
        parse_json_strict(payload)
        verify_payload(bytes.fromhex(case["secret_hex"]), payload)
    assert err.value.code == case["expect"]


def test_vector_events_pass_schema_validation() -> None:
    for case in VECTORS["events"]:
        doc = parse_json_strict(bytes.fromhex(case["payload_hex"]))
        model = validate_heartbeat(doc) if doc["typ"] == "heartbeat" else validate_event(doc)
        assert (model.ep, model.seq, model.up) == (case["fields"]["ep"], case["fields"]["seq"], case["fields"]["up"])
    for case in VECTORS["server_messages"]:
        assert validate_server_message(parse_json_strict(bytes.fromhex(case["payload_hex"]))).typ == case["name"]


def test_non_ascii_travels_as_raw_utf8() -> None:
    note = next(c for c in VECTORS["events"] if c["fields"]["typ"] == "incident")
    assert "Cán bộ".encode() in bytes.fromhex(note["payload_hex"])
    assert b"\\u" not in bytes.fromhex(note["payload_hex"])


def test_server_accepts_members_in_any_order_as_long_as_sig_is_last() -> None:
    secret = b"k" * 32
    prefix = b'{"typ":"rating","body":{"levels":3,"value":2},"seq":5,"ep":1,"up":10,"dev":"dev-001","v":1'
    event = validate_event(parse_json_strict(seal(secret, prefix)))
    assert (event.seq, event.body.value) == (5, 2)
    verify_payload(secret, seal(secret, prefix))


SCHEMA_BREAKERS = {
    "string instead of int": {"seq": "5"},
    "bool instead of int": {"ep": True},
    "value above scale": {"body": {"value": 5, "levels": 4}},
    "zero epoch": {"ep": 0},
    "unknown member": {"extra": 1},
    "unknown type": {"typ": "vote"},
    "unknown body member": {"body": {"value": 1, "levels": 3, "colour": "red"}},
    "bad device id": {"dev": "Dev/1"},
    "negative uptime": {"up": -1},
    "float value": {"body": {"value": 2.0, "levels": 4}},
}


@pytest.mark.parametrize("change", SCHEMA_BREAKERS.values(), ids=SCHEMA_BREAKERS.keys())
def test_schema_is_strict(change: dict) -> None:
    doc = {"v": 1, "dev": "dev-001", "ep": 1, "seq": 1, "up": 0, "typ": "rating",
           "body": {"value": 1, "levels": 3}, "sig": "0" * 64}
    doc.update(change)
    with pytest.raises(ProtocolError) as err:
        validate_event(doc)
    assert err.value.code == "schema"


def test_encoder_omits_ts_when_clock_unsynced() -> None:
    payload = codec.encode_event(b"s" * 32, dev="dev-001", ep=1, seq=1, up=5, ts=None, typ="rating",
                                 body=codec.rating_body(1, 3))
    assert b'"ts"' not in payload


@pytest.mark.parametrize(
    "name",
    ["motcua/v1/dev/ab/evt", "motcua/v1/dev/dev-001/xyz", "motcua/v2/dev/dev-001/evt", "motcua/v1/dev/dev-001",
     "motcua/v1/dev/DEV-001/evt", "motcua/v1/x/dev-001/evt"],
)
def test_bad_topics_are_refused(name: str) -> None:
    with pytest.raises(ProtocolError) as err:
        parse_topic(name)
    assert err.value.code == "bad_topic"


def test_topic_round_trip() -> None:
    name = topics.topic("esp32-0a1b2c", topics.TopicKind.ACK)
    assert name == "motcua/v1/dev/esp32-0a1b2c/ack"
    assert parse_topic(name) == ("esp32-0a1b2c", topics.TopicKind.ACK)


def test_split_signature_rejects_trailing_garbage() -> None:
    good = seal(b"k" * 32, b'{"a":1')
    with pytest.raises(ProtocolError):
        split_signature(good + b" ")
    with pytest.raises(ProtocolError):
        split_signature(good + b"\n")


def test_status_is_compact_json() -> None:
    assert codec.encode_status(online=True, ep=7, fw="1.0.0") == b'{"online":true,"ep":7,"fw":"1.0.0"}'
    assert json.loads(codec.encode_status(online=False)) == {"online": False}


def test_clip_manifest_vector_verifies_and_reencodes_byte_exact() -> None:
    from motcua.protocol import encode_clip_manifest
    from motcua.protocol.messages import validate_clip_manifest

    [case] = VECTORS["clip_manifests"]
    secret, payload = bytes.fromhex(case["secret_hex"]), bytes.fromhex(case["payload_hex"])
    assert verify_payload(secret, payload).hex() == case["signed_hex"]
    fields = dict(case["fields"], events=[tuple(e) for e in case["fields"]["events"]])
    assert encode_clip_manifest(secret, **fields) == payload
    manifest = validate_clip_manifest(parse_json_strict(payload))
    assert (manifest.frames, manifest.events, manifest.privacy) == (450, [[12, 9007], [12, 9008]], "faces")


def test_session_vector_proof_follows_from_the_pin_and_the_device_key() -> None:
    from motcua.protocol.credentials import credential_verifier, proof_matches

    case = next(c for c in VECTORS["events"] if c["fields"]["typ"] == "session")
    body = dict(case["body_members"])
    verifier = credential_verifier(case["credential"]["pin"], official=body["official"], method=body["method"])
    assert verifier == case["credential"]["verifier_hex"]
    args = {k: body[k] for k in ("action", "official", "method", "nonce")}
    secret = bytes.fromhex(case["secret_hex"])
    assert proof_matches(secret, body["proof"], dev=case["fields"]["dev"], verifier_hex=verifier, **args)
    wrong = credential_verifier("654321", official=body["official"], method=body["method"])
    assert not proof_matches(secret, body["proof"], dev=case["fields"]["dev"], verifier_hex=wrong, **args)
    other_key = bytes(32)
    assert not proof_matches(other_key, body["proof"], dev=case["fields"]["dev"], verifier_hex=verifier, **args)
    assert case["credential"]["pin"] not in case["payload"]
