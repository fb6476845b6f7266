"""Officials' kiosk credentials (docs/protocol.md §3.4): a PIN or badge code never travels or rests in clear.

The server keeps, per official and method, a *verifier*: PBKDF2-HMAC-SHA256 of the PIN or badge code,
salted with the method and the official's code. The kiosk derives the same verifier from what the
official typed and sends only a proof: an HMAC under the device key over a fresh nonce and the
verifier. Someone reading broker traffic sees the proof but lacks the device key, so cannot test PIN
guesses against it offline; the server, holding both the device key and the verifier, recomputes it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Literal

# Fixed by the protocol (kiosk and server must agree). ~0.1 s on a Raspberry Pi 4 per sign-in, and it
# makes each guess against a leaked verifier table cost as much.
KDF_ITERATIONS = 100_000
NONCE_HEX_LEN = 32
Method = Literal["pin", "badge"]
METHODS: tuple[Method, ...] = ("pin", "badge")


def credential_verifier(secret: str, *, official: str, method: Method) -> str:
    """The 64-hex verifier of a PIN or badge code for one official (stored by the server)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}")
    if not secret:
        raise ValueError("an empty PIN or badge code cannot be a credential")
    salt = f"motcua-credential-v1:{method}:{official}".encode()
    return hashlib.pbkdf2_hmac("sha256", secret.encode("utf-8"), salt, KDF_ITERATIONS).hex()


def _proof_message(*, dev: str, action: str, official: str, method: str, nonce: str, verifier_hex: str) -> bytes:
    return "|".join(("motcua-session-v1", dev, action, official, method, nonce, verifier_hex)).encode("utf-8")


def session_proof(device_secret: bytes, *, dev: str, action: str, official: str, method: str, nonce: str,
                  verifier_hex: str) -> str:
    """HMAC-SHA256 under the device key binding the verifier to this device, action, official and nonce."""
    message = _proof_message(dev=dev, action=action, official=official, method=method, nonce=nonce,
                             verifier_hex=verifier_hex)
    return hmac.new(device_secret, message, hashlib.sha256).hexdigest()


def proof_matches(device_secret: bytes, proof: str, *, dev: str, action: str, official: str, method: str,
                  nonce: str, verifier_hex: str) -> bool:
    """Constant-time check of a proof received in a `session` event."""
    expected = session_proof(device_secret, dev=dev, action=action, official=official, method=method, nonce=nonce,
                             verifier_hex=verifier_hex)
    return hmac.compare_digest(expected, proof)


def new_nonce() -> str:
    """128 random bits: the same PIN never gives the same proof twice."""
    return secrets.token_hex(NONCE_HEX_LEN // 2)
