# HMAC-SHA256 composed from hashlib.sha256 (RFC 2104), as docs/protocol.md §3.3 asks of MicroPython:
# the port has no hmac module. The padded keys are computed once per key, so signing a message costs
# two sha256 objects and no other allocation than the 32-byte digests.
import binascii
import hashlib

_BLOCK = 64  # SHA-256 block size in bytes (FIPS 180-4 §5.1.2)


class Signer:
    """Signs and verifies with one device key (32 bytes, given as 64 hex characters)."""

    def __init__(self, key):
        if len(key) > _BLOCK:  # RFC 2104 §2: longer keys are hashed first
            key = hashlib.sha256(key).digest()
        ipad = bytearray(_BLOCK)
        opad = bytearray(_BLOCK)
        for i in range(_BLOCK):
            b = key[i] if i < len(key) else 0
            ipad[i] = b ^ 0x36
            opad[i] = b ^ 0x5C
        self._ipad = bytes(ipad)
        self._opad = bytes(opad)

    def mac(self, msg):
        """Raw 32-byte HMAC-SHA256 of msg (bytes, bytearray or memoryview)."""
        h = hashlib.sha256(self._ipad)
        h.update(msg)
        inner = h.digest()
        h = hashlib.sha256(self._opad)
        h.update(inner)
        return h.digest()

    def hexmac(self, msg):
        """The MAC as 64 lowercase hex characters (bytes), the form of the `sig` member."""
        return binascii.hexlify(self.mac(msg))

    def check(self, msg, sig_hex):
        """True if sig_hex (64 lowercase hex bytes) is the MAC of msg; constant time in the content."""
        want = self.hexmac(msg)
        if len(sig_hex) != len(want):
            return False
        diff = 0
        for i in range(len(want)):  # no early exit: timing must not reveal the first wrong byte
            diff |= want[i] ^ sig_hex[i]
        return diff == 0


def key_from_hex(secret_hex):
    """The device key from its 64 lowercase hex characters; ValueError with a clear message otherwise."""
    if not isinstance(secret_hex, str) or len(secret_hex) != 64:
        raise ValueError("secret_hex must be 64 hex characters (32 bytes)")
    try:
        return binascii.unhexlify(secret_hex)
    except Exception:
        raise ValueError("secret_hex is not hexadecimal")
