"""Devices calling the HTTP API (clip uploads, clip requests) authenticate each request with their key.

See motcua/protocol/httpauth.py for the signed string. Failures are refused with a message that says
which header or clock to fix; they never reveal whether a device id exists.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from fastapi import Request
from sqlalchemy import select

from motcua.protocol.httpauth import (
    HEADER_BODY_SHA256,
    HEADER_DEVICE,
    HEADER_OFFSET,
    HEADER_SIGNATURE,
    HEADER_TIME,
    request_mac,
)
from server.api.errors import ApiError
from server.clips.uploads import UploadingDevice
from server.db.models import DEVICES, DeviceStatus


def _header(request: Request, name: str) -> str:
    value = request.headers.get(name)
    if not value:
        raise ApiError(401, "unauthenticated", f"missing {name} header: devices sign every request "
                                               "(docs/protocol.md §10)")
    return value


def _fresh(request: Request) -> int:
    raw = _header(request, HEADER_TIME)
    window_ms = request.app.state.settings.clips.auth_window_s * 1000
    if not raw.isdigit() or abs(int(raw) - time.time() * 1000) > window_ms:
        raise ApiError(401, "stale_request", f"{HEADER_TIME} is more than {window_ms // 1000} s from the "
                                             "server's clock: check the device's NTP sync")
    return int(raw)


def offset_header(request: Request) -> int | None:
    raw = request.headers.get(HEADER_OFFSET)
    if raw is None:
        return None
    if not raw.isdigit():
        raise ApiError(400, "bad_request", f"{HEADER_OFFSET} must be a byte count")
    return int(raw)


def authenticate_device(request: Request, body: bytes) -> UploadingDevice:
    """The active device whose key signed this request (method, path, time, offset, body hash)."""
    device_id, at = _header(request, HEADER_DEVICE), _fresh(request)
    digest = hashlib.sha256(body).hexdigest()
    if not hmac.compare_digest(digest, _header(request, HEADER_BODY_SHA256).lower()):
        raise ApiError(400, "body_mismatch", f"{HEADER_BODY_SHA256} does not match the body (cut in transit?); "
                                             "send the request again")
    with request.app.state.engine.connect() as conn:
        row = conn.execute(select(DEVICES.c.secret_hex, DEVICES.c.counter_id, DEVICES.c.status)
                           .where(DEVICES.c.id == device_id)).first()
    secret = bytes.fromhex(row.secret_hex) if row is not None else b"\0" * 32  # same work for unknown ids
    expected = request_mac(secret, method=request.method, path=request.url.path, device=device_id, time_ms=at,
                           offset=offset_header(request), body_sha256=digest)
    if not hmac.compare_digest(expected, _header(request, HEADER_SIGNATURE).lower()) or row is None:
        raise ApiError(401, "bad_signature", "the request signature does not match: check the device id and "
                                             "key in the kiosk's configuration file")
    if row.status != DeviceStatus.ACTIVE:
        raise ApiError(403, "revoked_device", "this device was revoked; provision it again")
    return UploadingDevice(device_id, secret, row.counter_id)
