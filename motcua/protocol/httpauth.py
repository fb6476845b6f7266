"""Device-authenticated HTTP (clip uploads, docs/protocol.md §10): an HMAC over the request, not a password.

The device signs method, path, its id, the time, the upload offset and the SHA-256 of the body with
its own key. The server accepts a request within REPLAY_WINDOW_MS of its clock; a request replayed
inside the window finds an upload offset that has moved on, or an idempotent PUT, and changes nothing.
"""

from __future__ import annotations

import hashlib
import hmac

HEADER_DEVICE = "X-Motcua-Device"
HEADER_TIME = "X-Motcua-Time"
HEADER_BODY_SHA256 = "X-Motcua-Content-Sha256"
HEADER_SIGNATURE = "X-Motcua-Signature"
HEADER_OFFSET = "Upload-Offset"
REPLAY_WINDOW_MS = 300_000  # device clocks on NTP are within seconds; 5 minutes tolerates a slow sync


def request_mac(secret: bytes, *, method: str, path: str, device: str, time_ms: int, offset: int | None,
                body_sha256: str) -> str:
    """The hex HMAC-SHA256 a device puts in X-Motcua-Signature."""
    text = "\n".join(("motcua-http-v1", method.upper(), path, device, str(time_ms),
                      "" if offset is None else str(offset), body_sha256))
    return hmac.new(secret, text.encode("utf-8"), hashlib.sha256).hexdigest()


def signed_headers(secret: bytes, *, method: str, path: str, device: str, time_ms: int, body: bytes,
                   offset: int | None = None) -> dict[str, str]:
    """Every header a device request needs (the offset header only when `offset` is given)."""
    digest = hashlib.sha256(body).hexdigest()
    headers = {HEADER_DEVICE: device, HEADER_TIME: str(time_ms), HEADER_BODY_SHA256: digest,
               HEADER_SIGNATURE: request_mac(secret, method=method, path=path, device=device, time_ms=time_ms,
                                             offset=offset, body_sha256=digest)}
    if offset is not None:
        headers[HEADER_OFFSET] = str(offset)
    return headers
