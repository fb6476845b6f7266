"""Units and their live state: who serves where, and ratings as they arrive."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Request

from server import queries
from server.api.auth import Principal, require
from server.api.errors import ApiError
from server.api.scope import require_unit, unit_of_code

router = APIRouter(prefix="/api/v1/units", tags=["units"])


@router.get("", summary="The units you may see")
def list_units(request: Request, who: Principal = Depends(require("read"))) -> list[dict[str, Any]]:  # noqa: B008
    with request.app.state.engine.connect() as conn:
        return [{k: v for k, v in u.items() if k != "id"} for u in queries.units(conn, within=who.units)]


@router.get("/{code}/live", summary="Counters, serving officials, device state and today's latest ratings")
def unit_live(code: str, request: Request,
              who: Principal = Depends(require("read"))) -> dict[str, Any]:  # noqa: B008
    zone = request.app.state.settings.zone
    with request.app.state.engine.connect() as conn:
        unit = unit_of_code(conn, code)
        if unit is None:
            raise ApiError(404, "not_found", f"no unit {code!r}")
        require_unit(who, unit)
        live = queries.unit_live(conn, unit_code=code, day=datetime.now(zone).date(), zone=zone)
    assert live is not None
    live["labels"] = request.app.state.settings.devices.scale_labels
    return live
