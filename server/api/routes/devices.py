"""Devices: provisioning (the key is shown once), fleet view, revocation."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, status
from sqlalchemy import select

from server import registry
from server.api.auth import Principal, require
from server.api.schemas import ProvisionOut, ProvisionRequest, RevokeRequest
from server.api.scope import require_unit, unit_of_counter, unit_of_device
from server.db.models import COUNTERS, DEVICES, DeviceKind

router = APIRouter(prefix="/api/v1/devices", tags=["devices"])


@router.get("", summary="Every device with its counter, status and last heartbeat")
def list_devices(request: Request, who: Principal = Depends(require("read"))) -> list[dict[str, Any]]:  # noqa: B008
    q = (select(DEVICES.c.id, COUNTERS.c.code.label("counter"), DEVICES.c.kind, DEVICES.c.status, DEVICES.c.online,
                DEVICES.c.last_seen_at, DEVICES.c.health, DEVICES.c.duplicates)
         .join(COUNTERS, COUNTERS.c.id == DEVICES.c.counter_id).order_by(DEVICES.c.id))
    if who.units is not None:
        q = q.where(COUNTERS.c.unit_id.in_(sorted(who.units)))
    with request.app.state.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(q)]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ProvisionOut,
             summary="Provision a device at a counter; the response holds its key, shown only once")
def provision(req: ProvisionRequest, request: Request,
              who: Principal = Depends(require("admin"))) -> ProvisionOut:  # noqa: B008
    with request.app.state.engine.begin() as conn:
        if unit_of_counter(conn, req.counter) is not None:
            require_unit(who, unit_of_counter(conn, req.counter))
        made = registry.provision_device(conn, counter_id=registry.counter_id(conn, req.counter),
                                         kind=DeviceKind(req.kind), actor=who.name, device_id=req.id)
    return ProvisionOut(id=made.id, counter=req.counter, kind=made.kind.value, secret_hex=made.secret_hex)


@router.post("/{device_id}/revoke", summary="Refuse the device's events from now on")
def revoke(device_id: str, req: RevokeRequest, request: Request,
           who: Principal = Depends(require("admin"))) -> dict[str, str]:  # noqa: B008
    with request.app.state.engine.begin() as conn:
        if unit_of_device(conn, device_id) is not None:
            require_unit(who, unit_of_device(conn, device_id))
        registry.revoke_device(conn, device_id=device_id, reason=req.reason, actor=who.name)
    ingest = request.app.state.ingest
    if ingest is not None and ingest.configs is not None:
        ingest.configs.wake()
    return {"id": device_id, "status": "revoked"}
