"""The audit trail over HTTP: filtered pages (per item, per user), a CSV export (itself audited), the chain check."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import AwareDatetime

from server.api.auth import Principal, require
from server.api.routes.officials import _cursor as parse_id_cursor  # the API's id cursor rule
from server.audit_chain import verify
from server.audit_views import AuditFilter, audit_page, export_csv, start_export

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])


def audit_filter(actor: str | None = None, action: str | None = None, target_type: str | None = None,
                 target_id: str | None = None, since: AwareDatetime | None = None,
                 until: AwareDatetime | None = None) -> AuditFilter:
    """Filters shared by the page, the export and the console: per user (`actor`), per item (`target_*`)."""
    return AuditFilter(actor=actor or None, action=action or None, target_type=target_type or None,
                       target_id=target_id or None, since=since, until=until)


@router.get("", summary="Audit entries, newest first; filter per user (actor) or per item (target_type, target_id)")
def list_audit(request: Request, where: AuditFilter = Depends(audit_filter),  # noqa: B008
               cursor: str | None = None, limit: int = Query(100, ge=1, le=1000),
               _who: Principal = Depends(require("audit:read"))) -> dict[str, Any]:  # noqa: B008
    before = parse_id_cursor(cursor) if cursor else None
    with request.app.state.engine.connect() as conn:
        items = audit_page(conn, where=where, before_id=before, limit=limit)
    return {"items": items, "next_cursor": str(items[-1]["id"]) if len(items) == limit else None}


@router.get("/export.csv", summary="The matching entries as CSV, with chain positions and hashes (audited)",
            response_class=StreamingResponse)
def export(request: Request, where: AuditFilter = Depends(audit_filter),  # noqa: B008
           who: Principal = Depends(require("audit:read"))) -> StreamingResponse:  # noqa: B008
    engine = request.app.state.engine
    with engine.begin() as conn:
        upto, _n = start_export(conn, where=where, actor=who.name)

    def lines() -> Any:
        with engine.connect() as conn:
            yield from export_csv(conn, where=where, upto_id=upto)

    name = f"motcua-audit-{datetime.now().strftime('%Y%m%d-%H%M%S')}.csv"
    return StreamingResponse(lines(), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="{name}"',
                                      "Cache-Control": "private, no-store"})


@router.get("/verify", summary="Check the hash chain; names the first broken entry")
def verify_chain(request: Request, _who: Principal = Depends(require("audit:read"))) -> dict[str, Any]:  # noqa: B008
    with request.app.state.engine.connect() as conn:
        report = verify(conn)
    return {"ok": report.ok, "entries": report.entries, "head": f"{report.head_seq}:{report.head_hash}",
            "broken_id": report.broken_id, "broken_seq": report.broken_seq, "problem": report.problem}
