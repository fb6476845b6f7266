"""Dashboard figures as JSON: the alerts, the unit overview, a unit's heatmap, an official's trend (scoped)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from server import dashboards, queries
from server.api.auth import Principal, require
from server.api.errors import ApiError
from server.api.routes.console_dashboards import PERIOD, TREND_MONTHS, alerts_for, period_or_now
from server.api.scope import may_read_official, require_unit, unit_of_code
from server.db.types import utcnow

router = APIRouter(prefix="/api/v1", tags=["dashboards"])


@router.get("/alerts", summary="Devices silent in office hours and streaks of lowest ratings today, in your units")
def alerts(request: Request, who: Principal = Depends(require("read"))) -> dict[str, Any]:  # noqa: B008
    return alerts_for(request, who)


@router.get("/dashboards/units", summary="Per unit: counted ratings, satisfaction (0-1), incidents, devices online")
def units_overview(request: Request, period: str | None = Query(None, pattern=PERIOD),
                   who: Principal = Depends(require("read"))) -> dict[str, Any]:  # noqa: B008
    settings = request.app.state.settings
    month = period_or_now(period, settings)
    start, end = queries.month_bounds(month, settings.zone)
    with request.app.state.engine.connect() as conn:
        return {"period": month, "units": dashboards.unit_overview(conn, units=who.units, start=start, end=end)}


@router.get("/dashboards/units/{code}/heatmap", summary="Counter × hour of day: counted ratings and satisfaction")
def unit_heatmap(code: str, request: Request, period: str | None = Query(None, pattern=PERIOD),
                 who: Principal = Depends(require("read"))) -> dict[str, Any]:  # noqa: B008
    settings = request.app.state.settings
    month = period_or_now(period, settings)
    start, end = queries.month_bounds(month, settings.zone)
    with request.app.state.engine.connect() as conn:
        unit = unit_of_code(conn, code)
        if unit is None:
            raise ApiError(404, "not_found", f"no unit {code!r}")
        require_unit(who, unit)
        return {"period": month, **dashboards.heatmap(conn, unit_id=unit, start=start, end=end, settings=settings)}


@router.get("/dashboards/officials/{code}/trend", summary="An official's monthly satisfaction, ratings and verdicts")
def official_trend(code: str, request: Request, months: int = Query(TREND_MONTHS, ge=1, le=36),
                   who: Principal = Depends(require("read", "own:read"))) -> dict[str, Any]:  # noqa: B008
    settings = request.app.state.settings
    with request.app.state.engine.connect() as conn:
        official = queries.official_by_code(conn, code)
        if official is None:
            raise ApiError(404, "not_found", f"no official {code!r}")
        if not may_read_official(who, official["id"], official["unit_id"]):
            raise ApiError(403, "forbidden", "you may read your own record, or the officials of your units")
        periods = dashboards.recent_periods(utcnow(), months, settings)
        return {"official": code, "months": dashboards.official_trend(conn, official_id=official["id"],
                                                                     periods=periods, settings=settings)}
