"""Ratings attributed to an official, by month."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request

from server import queries
from server.api.auth import Principal, require
from server.api.errors import ApiError
from server.api.schemas import OfficialRatings, RatingOut, ScaleSummary
from server.api.scope import may_read_official

router = APIRouter(prefix="/api/v1/officials", tags=["ratings"])


@router.get("/{code}/ratings", response_model=OfficialRatings,
            summary="An official's ratings in a month, with counts by level (misuse and repeat tickets excluded)")
def official_ratings(code: str, request: Request,
                     period: str = Query(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", examples=["2026-11"]),
                     cursor: str | None = Query(None, description="next_cursor of the previous page"),
                     limit: int = Query(200, ge=1, le=1000),
                     who: Principal = Depends(require("read", "own:read"))) -> OfficialRatings:  # noqa: B008
    settings = request.app.state.settings
    start, end = queries.month_bounds(period, settings.zone)
    after = _cursor(cursor)
    with request.app.state.engine.connect() as conn:
        official = queries.official_by_code(conn, code)
        if official is None:
            raise ApiError(404, "not_found", f"no official {code!r}")
        if not may_read_official(who, official["id"], official["unit_id"]):
            raise ApiError(403, "forbidden", "you may read your own record, or the officials of your units")
        summary = queries.rating_summary(conn, official_id=official["id"], start=start, end=end)
        rows = queries.ratings_page(conn, official_id=official["id"], start=start, end=end, after_id=after,
                                    limit=limit)
    items = [RatingOut(**{k: v for k, v in r.items() if k not in ("misuse", "txn_duplicate")},
                       counts=not (r["misuse"] or r["txn_duplicate"])) for r in rows]
    return OfficialRatings(
        official={"code": official["code"], "name": official["full_name"], "post": official["post"],
                  "unit": official["unit_code"]},
        period=period, summary=[ScaleSummary(**s) for s in summary], items=items,
        next_cursor=str(rows[-1]["id"]) if len(rows) == limit else None)


def _cursor(value: str | None) -> int:
    if value is None:
        return 0
    if not (value.isascii() and value.isdigit() and len(value) <= 18):
        raise ApiError(422, "invalid_request", "cursor: pass back next_cursor exactly as received")
    return int(value)
