"""Remote clip requests: a supervisor asks a kiosk to keep footage of now; the kiosk collects the request.

Kiosks poll for requests over the same signed HTTP channel as uploads (every few seconds, well
inside the 10 s pre-roll), so no new MQTT topic or broker ACL is needed.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, insert, select, update

from server.audit import record
from server.db.models import CLIP_REQUESTS, DEVICES, DeviceKind
from server.db.types import utcnow
from server.registry import RegistryError


def request_clip(conn: Connection, *, device_id: str, note: str | None, actor: str) -> int:
    """Ask kiosk `device_id` for a clip of now; returns the request id."""
    kind = conn.execute(select(DEVICES.c.kind).where(DEVICES.c.id == device_id)).scalar()
    if kind is None:
        raise RegistryError("not_found", f"no device {device_id!r}")
    if kind != DeviceKind.KIOSK:
        raise RegistryError("invalid", f"{device_id} is a {kind} device without a camera")
    new_id = int(conn.execute(insert(CLIP_REQUESTS).values(device_id=device_id, requested_by=actor,
                                                           requested_at=utcnow(), note=note)
                              .returning(CLIP_REQUESTS.c.id)).scalar_one())
    record(conn, actor=actor, action="clip.request", target_type="device", target_id=device_id,
           detail={"request": new_id, "note": note})
    return new_id


def open_requests(conn: Connection, *, device_id: str) -> list[dict[str, Any]]:
    """Requests the kiosk has not taken yet, oldest first."""
    rows = conn.execute(select(CLIP_REQUESTS.c.id, CLIP_REQUESTS.c.note, CLIP_REQUESTS.c.requested_at)
                        .where(CLIP_REQUESTS.c.device_id == device_id, CLIP_REQUESTS.c.taken_at.is_(None))
                        .order_by(CLIP_REQUESTS.c.id))
    return [{"id": r.id, "note": r.note, "requested_at": r.requested_at.isoformat()} for r in rows]


def take_request(conn: Connection, *, device_id: str, request_id: int) -> bool:
    """The kiosk started the clip; False when the request was not open (taken twice: harmless)."""
    done = conn.execute(update(CLIP_REQUESTS).where(CLIP_REQUESTS.c.id == request_id,
                                                    CLIP_REQUESTS.c.device_id == device_id,
                                                    CLIP_REQUESTS.c.taken_at.is_(None)).values(taken_at=utcnow()))
    return bool(done.rowcount)
