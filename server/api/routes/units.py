"""Units and their live state: who serves where, and ratings as they arrive."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Request

from server import queries
from server.api.auth import Principal, require
from server.api.errors import ApiError

router = APIRouter(prefix="/api/v1/units", tags=["units"])


@router.get("", summary="All units")
def list_units(request: Request, _who: Principal = Depends(require("read"))) -> list[dict[str, Any]]:  # noqa: B008
    with request.app.state.engine.connect() as conn:
        return queries.units(conn)


@router.get("/{code}/live", summary="Counters, serving officials, device state and today's latest ratings")
def unit_live(code: str, request: Request,
              _who: Principal = Depends(require("read"))) -> dict[str, Any]:  # noqa: B008
    zone = request.app.state.settings.zone
    with request.app.state.engine.connect() as conn:
        live = queries.unit_live(conn, unit_code=code, day=datetime.now(zone).date(), zone=zone)
    if live is None:
        raise ApiError(404, "not_found", f"no unit {code!r}")
    live["labels"] = request.app.state.settings.devices.scale_labels
    return live
