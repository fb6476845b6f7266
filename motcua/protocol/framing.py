"""Signature framing: the MAC covers the exact payload bytes before the final `,"sig":"` member.

Why this shape: a MicroPython device cannot canonicalise JSON, but it can append a member to bytes it
has just written. The signed bytes are therefore a byte prefix of what travels, the payload stays
plain JSON for people reading broker traffic, and no implementation ever re-serialises anything.
"""

from __future__ import annotations

import hashlib
import hmac
import re

from motcua.protocol.errors import ProtocolError

SIG_MARKER = b',"sig":"'
SIG_HEX_LEN = 64  # HMAC-SHA256, lowercase hex
# 4 KiB holds the largest v1 message (a config with a long official name and 5 labels) several times
# over while keeping a flood of junk cheap to quarantine.
MAX_PAYLOAD_BYTES = 4096
_SIG_TAIL = re.compile(rb'[0-9a-f]{64}"}\Z')


def sign(secret: bytes, signed_part: bytes) -> str:
    """HMAC-SHA256 of `signed_part` under `secret`, as 64 lowercase hex characters."""
    return hmac.new(secret, signed_part, hashlib.sha256).hexdigest()


def seal(secret: bytes, unsigned_json_prefix: bytes) -> bytes:
    """Append the signature member to a JSON object serialised without its closing brace."""
    if not unsigned_json_prefix.startswith(b"{"):
        raise ValueError("seal() takes the members of a JSON object, without its closing brace")
    return unsigned_json_prefix + SIG_MARKER + sign(secret, unsigned_json_prefix).encode() + b'"}'


def split_signature(payload: bytes) -> tuple[bytes, str]:
    """Return (signed bytes, hex signature); raises ProtocolError("bad_signature") on a bad frame."""
    at = payload.rfind(SIG_MARKER)
    if at <= 0:
        raise ProtocolError("bad_signature", 'no final "sig" member: the payload is unsigned')
    tail = payload[at + len(SIG_MARKER) :]
    if not _SIG_TAIL.match(tail):
        raise ProtocolError(
            "bad_signature", '"sig" must be the last member and hold 64 lowercase hex characters'
        )
    return payload[:at], tail[:SIG_HEX_LEN].decode("ascii")


def verify_payload(secret: bytes, payload: bytes) -> bytes:
    """Check the MAC in constant time; return the signed bytes or raise ProtocolError("bad_signature")."""
    signed, sig = split_signature(payload)
    # hmac.digest is the one-shot C path: ingest verifies every event, so it is worth the second form.
    if not hmac.compare_digest(hmac.digest(secret, signed, "sha256"), bytes.fromhex(sig)):
        raise ProtocolError("bad_signature", "signature does not match the device key")
    return signed
