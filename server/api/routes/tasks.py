"""Task results in: a task system's rows (JSON or CSV) and the unit head's sheet per official-month
(scope tasks:write, limited to the caller's units). Every write is audited; nothing is half-written."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Path, Query, Request

from server.api.auth import Principal, require
from server.api.errors import ApiError
from server.api.score_schemas import ImportOut, Sheet, SheetIn, TaskImport
from server.evaluation import task_results
from server.evaluation.periods import PERIOD_PATTERN
from server.evaluation.policies import active_policy
from server.evaluation.task_results import ImportReport, Mode

router = APIRouter(prefix="/api/v1/tasks", tags=["task results"])
writer = require("tasks:write")
PERIOD = Path(pattern=PERIOD_PATTERN, examples=["2026-03"])
MODE = Query("upsert", description="upsert or replace (see POST /api/v1/tasks)")
MAX_CSV = 32 * 1024 * 1024  # ~200,000 rows


def _import(request: Request, who: Principal, rows: list[dict[str, Any]], mode: Mode, source: str,
            first_row: int) -> ImportOut:
    with request.app.state.engine.begin() as conn:
        policy = active_policy(conn, settings=request.app.state.settings).policy
        report: ImportReport = task_results.import_rows(conn, rows=rows, policy=policy, actor=who.name,
                                                        source=source, mode=mode, units=who.units,
                                                        first_row=first_row)
    return ImportOut.model_validate(report, from_attributes=True)


@router.post("", response_model=ImportOut, status_code=200,
             summary="Import task results, bonus/penalty items, general points and discipline measures (JSON rows)")
def import_json(request: Request, body: TaskImport, who: Principal = Depends(writer)) -> ImportOut:  # noqa: B008
    rows = [r.model_dump(exclude_none=True) for r in body.rows]
    return _import(request, who, rows, body.mode, "api", first_row=1)


@router.post("/csv", response_model=ImportOut, summary="Import the same rows as a CSV file (UTF-8, header row)",
             openapi_extra={"requestBody": {"required": True, "content": {"text/csv": {"schema": {"type": "string"},
                            "example": "period,official,kind,key,points,delays\n2026-03,CB-0042,task,T2,2,1\n"}}}})
async def import_csv(request: Request, mode: Mode = MODE,
                     who: Principal = Depends(writer)) -> ImportOut:  # noqa: B008
    data = await request.body()
    if len(data) > MAX_CSV:
        raise ApiError(413, "too_large", f"at most {MAX_CSV // 2**20} MB per import: split the file")
    rows = task_results.parse_csv(data)
    return _import(request, who, rows, mode, "csv", first_row=2)


def _official(request: Request, who: Principal, code: str) -> int:
    from sqlalchemy import select

    from server.db.models import OFFICIALS

    with request.app.state.engine.connect() as conn:
        row = conn.execute(select(OFFICIALS.c.id, OFFICIALS.c.unit_id).where(OFFICIALS.c.code == code)).first()
    if row is None:
        raise ApiError(404, "not_found", f"no official {code!r}")
    if not who.sees_unit(row.unit_id):
        raise ApiError(403, "forbidden", f"official {code!r} is not in your units")
    return int(row.id)


@router.get("/{period}/officials/{code}", response_model=Sheet, summary="An official-month's task results")
def get_sheet(request: Request, code: str, period: str = PERIOD,
              who: Principal = Depends(writer)) -> Sheet:  # noqa: B008
    oid = _official(request, who, code)
    with request.app.state.engine.connect() as conn:
        return Sheet.model_validate({"official": code, "period": period,
                                     **task_results.sheet(conn, official_id=oid, period=period)})


@router.put("/{period}/officials/{code}", response_model=Sheet,
            summary="The unit head's entry: replace an official-month's whole sheet")
def put_sheet(request: Request, code: str, period: str = PERIOD, body: SheetIn = Body(...),  # noqa: B008
              who: Principal = Depends(writer)) -> Sheet:  # noqa: B008
    oid = _official(request, who, code)
    rows = task_results.sheet_rows(official=code, period=period, body=body.model_dump())
    with request.app.state.engine.begin() as conn:
        policy = active_policy(conn, settings=request.app.state.settings).policy
        if rows:
            task_results.import_rows(conn, rows=rows, policy=policy, actor=who.name, source="unit_head",
                                     mode="replace", units=who.units, first_row=1)
        else:
            task_results.clear_sheet(conn, official_id=oid, official=code, period=period, actor=who.name)
        return Sheet.model_validate({"official": code, "period": period,
                                     **task_results.sheet(conn, official_id=oid, period=period)})
