"""The HR API: monthly scores, their explanations, month states and the year roll-up (scope read:scores).

A token limited to units (token_units) sees only those units: a unit filter outside them and an
official of another unit are 403. Every GET carries an ETag and answers If-None-Match with 304.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from server.api.auth import Principal, require
from server.api.conditional import conditional
from server.api.errors import ApiError
from server.api.score_schemas import MonthUnit, ScoreDetail, ScorePage, YearPage
from server.db.types import utcnow
from server.evaluation import exports, reads
from server.evaluation.lifecycle import month_status
from server.evaluation.periods import PERIOD_PATTERN, YEAR_PATTERN, check_year

router = APIRouter(prefix="/api/v1/hr", tags=["hr"])
PERIOD = Query(pattern=PERIOD_PATTERN, description="The month, YYYY-MM", examples=["2026-03"])
PATH_PERIOD = Path(pattern=PERIOD_PATTERN, description="The month, YYYY-MM", examples=["2026-03"])
UNIT = Query(None, max_length=32, description="Only this unit (code)", examples=["P-MK"])
STATUS = Query(None, description="final (final and amended), amended, closed or provisional",
               pattern=r"^(provisional|closed|final|amended)$")
YEAR = Path(pattern=YEAR_PATTERN, examples=["2026"])
CURSOR = Query(None, max_length=200, description="next_cursor of the previous page, exactly as received")
MAX_PAGE = 500
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    304: {"description": "Not modified: If-None-Match matched the ETag"},
    401: {"description": "No or unknown token"},
    403: {"description": "Missing scope read:scores, or a unit outside the token's units"},
    404: {"description": "Unknown official, unit or version"},
    422: {"description": "Invalid parameter or cursor"},
}
reader = require("read:scores")


def _json(request: Request, model: Any) -> Response:
    return conditional(request, model.model_dump_json().encode("utf-8"), "application/json")


def _now() -> datetime:
    return utcnow()


@router.get("/scores", response_model=ScorePage, responses=ERROR_RESPONSES,
            summary="Scores of a month, page by page: final snapshots where the month is final, live elsewhere")
def list_scores(request: Request, period: str = PERIOD, unit: str | None = UNIT, status: str | None = STATUS,
                cursor: str | None = CURSOR, limit: int = Query(100, ge=1, le=MAX_PAGE),
                who: Principal = Depends(reader)) -> Response:  # noqa: B008
    query = f"scores|{period}|{unit}|{status}"
    with request.app.state.engine.connect() as conn:
        units = reads.visible_units(conn, visible=who.units, unit=unit)
        rows, nxt = reads.scores_page(conn, settings=request.app.state.settings, period=period, units=units,
                                      status=status, after=reads.decode_cursor(cursor, query), limit=limit, now=_now(),
                                      everything=who.units is None and unit is None, encoded=True)
    # The rows come as JSON texts built field by field to ScoreRow's schema (the schemathesis test holds
    # them to it): no validate-then-dump round trip, and stored summaries are not decoded to be re-encoded.
    after = json.dumps(reads.encode_cursor(nxt, query) if nxt else None)
    body = '{"items":[' + ",".join(rows) + '],"next_cursor":' + after + "}"
    return conditional(request, body.encode("utf-8"), "application/json")


@router.get("/scores/export", responses={**ERROR_RESPONSES, 200: {
    "description": "CSV (UTF-8 with BOM, so that Excel shows Vietnamese names) or XLSX",
    "content": {"text/csv": {}, exports.XLSX: {}}}},
    summary="Every score of a month (filters as for the list) as a CSV or XLSX file")
def export_scores(request: Request, period: str = PERIOD, unit: str | None = UNIT, status: str | None = STATUS,
                  format: str = Query("csv", pattern="^(csv|xlsx)$"),
                  who: Principal = Depends(reader)) -> Response:  # noqa: B008
    with request.app.state.engine.connect() as conn:
        units = reads.visible_units(conn, visible=who.units, unit=unit)
        rows = exports.all_rows(conn, settings=request.app.state.settings, period=period, units=units,
                                status=status, now=_now(), everything=who.units is None and unit is None)
    name = f"diem-danh-gia-{period}{'-' + unit if unit else ''}.{format}"
    body, media = (exports.to_csv(rows), "text/csv; charset=utf-8") if format == "csv" else \
        (exports.to_xlsx(rows, period), exports.XLSX)
    return conditional(request, body, media, {"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/scores/{official}", response_model=ScoreDetail, responses=ERROR_RESPONSES,
            summary="One official's month with its explanation: every input and policy line, with points")
def score_detail(request: Request, official: str, period: str = PERIOD,
                 version: int | None = Query(None, ge=1, le=10_000, description="An earlier version (default current)"),
                 who: Principal = Depends(reader)) -> Response:  # noqa: B008
    with request.app.state.engine.connect() as conn:
        found = reads.month_score(conn, settings=request.app.state.settings, official_code=official, period=period,
                                  now=_now(), version=version)
    if found is None:
        raise ApiError(404, "not_found", f"no official {official!r}")
    if not who.sees_unit(found.pop("unit_id")):
        raise ApiError(403, "forbidden", f"official {official!r} is not in this token's units")
    return _json(request, ScoreDetail.model_validate(found))


@router.get("/months/{period}", response_model=list[MonthUnit], responses=ERROR_RESPONSES,
            summary="Each unit's phase for the month: open, provisional, closed or final")
def months(request: Request, period: str = PATH_PERIOD, who: Principal = Depends(reader)) -> Response:  # noqa: B008
    with request.app.state.engine.connect() as conn:
        units = reads.visible_units(conn, visible=who.units, unit=None)
        rows = month_status(conn, settings=request.app.state.settings, period=period, unit_ids=list(units),
                            now=_now())
    body = json.dumps([MonthUnit.model_validate(r).model_dump(mode="json") for r in rows], ensure_ascii=False)
    return conditional(request, body.encode("utf-8"), "application/json")


@router.get("/years/{year}", response_model=YearPage, responses=ERROR_RESPONSES,
            summary="The year roll-up: each official's mean of final monthly totals and the year grade (NĐ 335)")
def year(request: Request, year: str = YEAR, unit: str | None = UNIT, cursor: str | None = CURSOR,
         limit: int = Query(100, ge=1, le=MAX_PAGE), who: Principal = Depends(reader)) -> Response:  # noqa: B008
    check_year(year)
    query = f"year|{year}|{unit}"
    with request.app.state.engine.connect() as conn:
        units = reads.visible_units(conn, visible=who.units, unit=unit)
        rows, nxt = reads.year_page(conn, settings=request.app.state.settings, year=year, units=units,
                                    after=reads.decode_cursor(cursor, query), limit=limit)
    return _json(request, YearPage.model_validate({"items": rows,
                                                   "next_cursor": reads.encode_cursor(nxt, query) if nxt else None}))
