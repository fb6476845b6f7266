"""Write tests/vectors/v1.json from the CPython encoder.

Run only when protocol v1 itself changes (it should not): the committed file is the contract that the
server, the kiosk, the simulator and the MicroPython firmware are all tested against.
    python tests/vectors/make_vectors.py
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from motcua.protocol import codec, credentials, topics
from motcua.protocol.framing import SIG_MARKER, sign

KEY_A = hashlib.sha256(b"motcua test vector key A").hexdigest()
KEY_B = hashlib.sha256(b"motcua test vector key B").hexdigest()


def _event_case(name: str, secret: str, **fields: Any) -> dict[str, Any]:
    body_members = fields.pop("body_members")
    payload = codec.encode_event(bytes.fromhex(secret), body=dict(body_members), **fields)
    return _case(name, secret, topics.topic(fields["dev"], topics.TopicKind.EVENT), fields, body_members, payload)


def _case(
    name: str, secret: str, topic: str, fields: dict[str, Any], body_members: Any, payload: bytes
) -> dict[str, Any]:
    signed = payload[: payload.rfind(SIG_MARKER)]
    return {
        "name": name,
        "secret_hex": secret,
        "topic": topic,
        "fields": fields,
        "body_members": body_members,
        "signed_hex": signed.hex(),
        "sig": sign(bytes.fromhex(secret), signed),
        "payload": payload.decode("utf-8"),
        "payload_hex": payload.hex(),
    }


def valid_cases() -> list[dict[str, Any]]:
    a = KEY_A
    cases = [
        _event_case("rating, clock synced", a, dev="esp32-0a1b2c", ep=3, seq=41, up=5_400_123,
                    ts=1_795_000_000_123, typ="rating", body_members=[["value", 4], ["levels", 4]]),
        _event_case("rating, clock not synced (no ts member)", a, dev="esp32-0a1b2c", ep=4, seq=1, up=61_007,
                    ts=None, typ="rating", body_members=[["value", 1], ["levels", 4]]),
        _event_case("rating with ticket, reasons and a press during the thank-you state", a, dev="kiosk-hn-007",
                    ep=12, seq=9007, up=86_400_000, ts=1_795_003_600_000, typ="rating",
                    body_members=[["value", 2], ["levels", 5], ["txn", "A-023"],
                                  ["reasons", ["slow", "rude"]], ["during_thanks", True]]),
        _event_case("incident with Vietnamese note (raw UTF-8, not \\u escapes)", a, dev="kiosk-hn-007", ep=12,
                    seq=9008, up=86_401_500, ts=1_795_003_601_500, typ="incident",
                    body_members=[["kind", "complaint"], ["ref", [12, 9007]],
                                  ["note", "Cán bộ không hướng dẫn hồ sơ"], ["camera", "ok"]]),
    ]
    hb_fields = {"dev": "esp32-0a1b2c", "ep": 3, "seq": 41, "up": 5_460_000, "ts": None}
    hb = codec.encode_heartbeat(bytes.fromhex(a), fw="1.0.0", outbox=2, mem=51_200, dropped=0, rssi=-61, **hb_fields)
    hb_members = [["fw", "1.0.0"], ["outbox", 2], ["clock", "unsynced"], ["mem", 51200], ["dropped", 0], ["rssi", -61]]
    cases.append(_case("heartbeat, clock not synced", a, topics.topic("esp32-0a1b2c", topics.TopicKind.HEARTBEAT),
                       {**hb_fields, "typ": "heartbeat"}, hb_members, hb))
    cases.append(session_case())
    return cases


def session_case() -> dict[str, Any]:
    """A kiosk sign-in with PIN 123456 (§3.4): the proof is reproducible from the listed inputs."""
    verifier = credentials.credential_verifier("123456", official="CB-0042", method="pin")
    nonce = hashlib.sha256(b"motcua test vector nonce").hexdigest()[:32]
    proof = credentials.session_proof(bytes.fromhex(KEY_A), dev="kiosk-hn-007", action="in", official="CB-0042",
                                      method="pin", nonce=nonce, verifier_hex=verifier)
    case = _event_case("kiosk sign-in with a PIN proof", KEY_A, dev="kiosk-hn-007", ep=12, seq=9009,
                       up=86_460_000, ts=1_795_003_660_000, typ="session",
                       body_members=[["action", "in"], ["official", "CB-0042"], ["method", "pin"],
                                     ["nonce", nonce], ["proof", proof]])
    case["credential"] = {"pin": "123456", "verifier_hex": verifier, "kdf_iterations": credentials.KDF_ITERATIONS}
    return case


def manifest_cases() -> list[dict[str, Any]]:
    """A signed clip manifest (§10), as a kiosk sends it before the clip's bytes."""
    fields: dict[str, Any] = {
        "dev": "kiosk-hn-007", "clip": "3f1c2a9e8b7d6c5f4e3d2c1b0a998877", "ep": 12, "up0": 86_391_500,
        "up1": 86_421_500, "ts0": 1_795_003_591_500, "ts1": 1_795_003_621_500, "frames": 450, "width": 640,
        "height": 480, "size": 1_843_200, "sha256": hashlib.sha256(b"motcua test vector clip").hexdigest(),
        "events": [[12, 9007], [12, 9008]], "privacy": "faces",
    }
    payload = codec.encode_clip_manifest(bytes.fromhex(KEY_A), **fields)
    signed = payload[: payload.rfind(SIG_MARKER)]
    return [{"name": "clip manifest", "secret_hex": KEY_A, "fields": fields, "payload": payload.decode(),
             "payload_hex": payload.hex(), "signed_hex": signed.hex(), "sig": sign(bytes.fromhex(KEY_A), signed)}]


def server_cases() -> list[dict[str, Any]]:
    a = KEY_A
    ack = codec.encode_ack(bytes.fromhex(a), dev="esp32-0a1b2c", ts=1_795_000_000_500,
                           acks=[(3, 41, "ok"), (3, 42, "dup"), (3, 43, "quar")])
    cfg = codec.encode_config(
        bytes.fromhex(a), dev="esp32-0a1b2c", ts=1_795_000_000_900, rev=17,
        counter={"code": "PX-01", "name": "Quầy 1 - Tư pháp"},
        official={"code": "CB-0042", "name": "Nguyễn Thị Lan", "post": "Công chức Tư pháp - Hộ tịch",
                  "photo": "https://motcua.example/photos/CB-0042.jpg"},
        scale={"levels": 4, "labels": ["Rất không hài lòng", "Không hài lòng", "Hài lòng", "Rất hài lòng"]},
        thanks_ms=3000, hb_s=60,
    )
    out = []
    for name, kind, payload in (("ack", topics.TopicKind.ACK, ack), ("config", topics.TopicKind.CONFIG, cfg)):
        signed = payload[: payload.rfind(SIG_MARKER)]
        out.append({"name": name, "secret_hex": a, "topic": topics.topic("esp32-0a1b2c", kind),
                    "payload": payload.decode(), "payload_hex": payload.hex(), "signed_hex": signed.hex(),
                    "sig": sign(bytes.fromhex(a), signed)})
    return out


def invalid_cases(valid: list[dict[str, Any]]) -> list[dict[str, Any]]:
    good = bytes.fromhex(valid[0]["payload_hex"])
    at = good.rfind(SIG_MARKER)
    sig = good[at + len(SIG_MARKER): -2]
    flipped = good.replace(b'"value":4', b'"value":3')
    cases = [
        ("one byte of the body changed", KEY_A, flipped, "bad_signature"),
        ("signed with another device's key", KEY_B, good, "bad_signature"),
        ("signature in upper case", KEY_A, good[:at] + SIG_MARKER + sig.upper() + b'"}', "bad_signature"),
        ("signature not the last member", KEY_A, good[:-1] + b',"x":1}', "bad_signature"),
        ("no signature member", KEY_A, good[:at] + b"}", "bad_signature"),
        ("space before the signature member", KEY_A, good[:at] + b', "sig":"' + sig + b'"}', "bad_signature"),
        ("signature one character short", KEY_A, good[:at] + SIG_MARKER + sig[:-1] + b'"}', "bad_signature"),
        ("truncated in transit", KEY_A, good[:-7], "malformed"),
        ("not UTF-8", KEY_A, b"\xff\xfe" + good[2:], "malformed"),
        ("duplicate member", KEY_A, good.replace(b'"seq":41,', b'"seq":41,"seq":42,'), "malformed"),
    ]
    return [{"name": n, "secret_hex": k, "payload_hex": p.hex(), "expect": e} for n, k, p, e in cases]


def main() -> None:
    valid = valid_cases()
    doc = {
        "protocol": 1,
        "about": "docs/protocol.md §6. MAC = HMAC-SHA256(key = bytes.fromhex(secret_hex), message = the payload "
                 'bytes before the final ,"sig":" member); sig = the MAC in lowercase hex. body_members lists the '
                 "body in protocol order, as pairs, for implementations whose dicts do not keep order.",
        "events": valid,
        "server_messages": server_cases(),
        "clip_manifests": manifest_cases(),
        "invalid": invalid_cases(valid),
    }
    path = Path(__file__).with_name("v1.json")
    path.write_text(json.dumps(doc, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
