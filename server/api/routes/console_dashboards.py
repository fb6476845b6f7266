"""Console dashboards: unit overview, counter × hour heatmap, an official's monthly trend, device fleet
health with its alerts, and an official's own record. Charts are server-rendered SVG (server/api/charts.py)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select

from server import dashboards, queries
from server.api import charts
from server.api.auth import Principal
from server.api.pages import PageError, page_user, render, tr
from server.api.scope import may_read_official, unit_of_code
from server.db.models import OFFICIALS
from server.db.types import utcnow
from server.review.queue import QueueFilter, queue_page
from server.settings import Settings

router = APIRouter(include_in_schema=False)
PERIOD = r"^\d{4}-(0[1-9]|1[0-2])$"
TREND_MONTHS = 12


def period_or_now(period: str | None, settings: Settings) -> str:
    return period or dashboards.recent_periods(utcnow(), 1, settings)[0]


def alerts_for(request: Request, who: Principal) -> dict[str, Any]:
    with request.app.state.engine.connect() as conn:
        return dashboards.alerts(conn, units=who.units, now=utcnow(), settings=request.app.state.settings)


@router.get("/dashboard", response_class=HTMLResponse)
def overview(request: Request, period: str | None = Query(None, pattern=PERIOD)) -> Response:
    who = page_user(request, "read")
    settings = request.app.state.settings
    month = period_or_now(period, settings)
    start, end = queries.month_bounds(month, settings.zone)
    with request.app.state.engine.connect() as conn:
        units = dashboards.unit_overview(conn, units=who.units, start=start, end=end)
        totals = dashboards.count_in(conn, who.units)
    chart = charts.bars([charts.Bar(u["name"], u["satisfaction"], f"({u['ratings']})", f"/units/{u['code']}/heatmap"
                                    f"?period={month}") for u in units], title=tr(request, "Satisfaction by unit"))
    months = dashboards.recent_periods(utcnow(), TREND_MONTHS, settings)[::-1]
    return render(request, "dashboard.html", {"who": who, "units": units, "chart": chart, "period": month,
                                              "months": months, "totals": totals, "alerts": alerts_for(request, who)})


def _unit(request: Request, who: Principal, code: str) -> int:
    with request.app.state.engine.connect() as conn:
        unit = unit_of_code(conn, code)
    if unit is None:
        raise PageError(404, "No such unit.")
    if not who.sees_unit(unit):
        raise PageError(403, "This unit is outside your scope.")
    return unit


def _official_bars(request: Request, unit_id: int, start: Any, end: Any) -> list[charts.Bar]:
    with request.app.state.engine.connect() as conn:
        rows = dashboards.officials_satisfaction(conn, unit_id=unit_id, start=start, end=end)
    return [charts.Bar(f"{r['name']} ({r['code']})", r["satisfaction"], f"({r['ratings']})", f"/officials/{r['code']}")
            for r in rows]


@router.get("/units/{code}/heatmap", response_class=HTMLResponse)
def heatmap_page(code: str, request: Request, period: str | None = Query(None, pattern=PERIOD)) -> Response:
    who = page_user(request, "read")
    unit = _unit(request, who, code)
    settings = request.app.state.settings
    month = period_or_now(period, settings)
    start, end = queries.month_bounds(month, settings.zone)
    with request.app.state.engine.connect() as conn:
        grid = dashboards.heatmap(conn, unit_id=unit, start=start, end=end, settings=settings)
    rows = [(f"{c['code']} · {c['name']}", [(cell["n"], cell["satisfaction"]) if cell else None
                                           for cell in c["cells"]]) for c in grid["counters"]]
    svg = charts.heatmap(rows, grid["hours"], title=tr(request, "Satisfaction by counter and hour of day"))
    people = charts.bars(_official_bars(request, unit, start, end), title=tr(request, "Satisfaction by official"))
    months = dashboards.recent_periods(utcnow(), TREND_MONTHS, settings)[::-1]
    return render(request, "heatmap.html", {"who": who, "code": code, "grid": grid, "svg": svg, "people": people,
                                            "period": month, "months": months})


def trend_chart(request: Request, trend: list[dict[str, Any]]) -> Any:
    return charts.trend([charts.Month(m["period"][2:], m["satisfaction"], m["ratings"], m["incidents"]["confirmed"])
                         for m in trend], title=tr(request, "Monthly satisfaction"),
                        line_label=tr(request, "Satisfaction"), count_label=tr(request, "ratings"))


def official_page_data(request: Request, who: Principal, code: str) -> dict[str, Any]:
    settings = request.app.state.settings
    with request.app.state.engine.connect() as conn:
        official = queries.official_by_code(conn, code)
        if official is None:
            raise PageError(404, "No such official.")
        if not may_read_official(who, official["id"], official["unit_id"]):
            raise PageError(403, "You may read your own record, or the officials of your units.")
        periods = dashboards.recent_periods(utcnow(), TREND_MONTHS, settings)
        trend = dashboards.official_trend(conn, official_id=official["id"], periods=periods, settings=settings)
        sees_incidents = who.has("review:read") or who.official_id == official["id"]
        incidents = queue_page(conn, where=QueueFilter(official_id=official["id"], statuses=None), viewer=who.name,
                               after=None, limit=200) if sees_incidents else []
    return {"official": official, "trend": trend, "chart": trend_chart(request, trend), "incidents": incidents[::-1]}


@router.get("/officials/{code}", response_class=HTMLResponse)
def official_page(code: str, request: Request) -> Response:
    who = page_user(request, "read", "own:read")
    return render(request, "official.html", {"who": who, **official_page_data(request, who, code)})


@router.get("/me", response_class=HTMLResponse)
def me(request: Request) -> Response:
    who = page_user(request, "own:read")
    if who.official_id is None:
        raise PageError(404, "Your account is not linked to an official's record.")
    with request.app.state.engine.connect() as conn:
        code = conn.execute(select(OFFICIALS.c.code).where(OFFICIALS.c.id == who.official_id)).scalar_one()
    return render(request, "official.html", {"who": who, "mine": True, **official_page_data(request, who, code)})


@router.get("/devices", response_class=HTMLResponse)
def devices_page(request: Request) -> Response:
    who = page_user(request, "read")
    with request.app.state.engine.connect() as conn:
        fleet = dashboards.fleet(conn, units=who.units, now=utcnow(), settings=request.app.state.settings)
    return render(request, "devices.html", {"who": who, "fleet": fleet, "alerts": alerts_for(request, who),
                                            "now": utcnow()})
