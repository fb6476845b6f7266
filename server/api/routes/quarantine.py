"""What ingest could not accept as it stood, and a supervisor's way to settle it."""

from __future__ import annotations

import base64

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy import select

from server import queries
from server.api.auth import Principal, require
from server.api.errors import ApiError
from server.api.routes.officials import _cursor
from server.api.schemas import AttributeRequest, QuarantineOut, QuarantinePage
from server.api.scope import require_unit, unit_of_device
from server.db.models import QUARANTINE
from server.ingest.reasons import Reason
from server.resolution import attribute_quarantined

router = APIRouter(prefix="/api/v1/quarantine", tags=["quarantine"])


@router.get("", response_model=QuarantinePage, summary="Quarantine records, oldest first")
def list_quarantine(request: Request, reason: Reason | None = None, device: str | None = None,
                    open_only: bool = Query(True, alias="open"), cursor: str | None = None,
                    limit: int = Query(100, ge=1, le=500),
                    who: Principal = Depends(require("read"))) -> QuarantinePage:  # noqa: B008
    with request.app.state.engine.connect() as conn:
        rows = queries.quarantine_page(conn, reason=reason.value if reason else None, device_id=device,
                                       open_only=open_only, after_id=_cursor(cursor), limit=limit, units=who.units)
        counts = queries.quarantine_counts(conn, units=who.units)
    return QuarantinePage(items=[QuarantineOut(**r) for r in rows], open_by_reason=counts,
                          next_cursor=str(rows[-1]["id"]) if len(rows) == limit else None)


@router.get("/{qid}", summary="One record, with the payload as received (base64 and, if UTF-8, text)")
def get_quarantine(qid: int, request: Request,
                   who: Principal = Depends(require("read"))) -> dict[str, object]:  # noqa: B008
    with request.app.state.engine.connect() as conn:
        row = conn.execute(select(QUARANTINE).where(QUARANTINE.c.id == qid)).first()
        if row is None:
            raise ApiError(404, "not_found", f"no quarantine record {qid}")
        require_unit(who, unit_of_device(conn, row.device_id) if row.device_id else None)
    doc = QuarantineOut(**row._mapping).model_dump(mode="json")
    payload = bytes(row.payload)
    doc["payload_base64"] = base64.b64encode(payload).decode()
    try:
        doc["payload_text"] = payload.decode("utf-8")
    except UnicodeDecodeError:
        doc["payload_text"] = None
    return doc


@router.post("/{qid}/attribute", summary="Attribute the event behind a record to an official (audited)")
def attribute(qid: int, req: AttributeRequest, request: Request,
              who: Principal = Depends(require("events:attribute"))) -> dict[str, object]:  # noqa: B008
    with request.app.state.engine.begin() as conn:
        device = conn.execute(select(QUARANTINE.c.device_id).where(QUARANTINE.c.id == qid)).scalar()
        if device is not None or who.units is not None:
            require_unit(who, unit_of_device(conn, device) if device else None)
        return attribute_quarantined(conn, quarantine_id=qid, official_code=req.official, reason=req.reason,
                                     actor=who.name, zone=request.app.state.settings.zone,
                                     event_time=req.event_time)
