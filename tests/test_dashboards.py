"""Dashboard figures on both databases: the counter × local-hour heatmap, an official's monthly trend, the
unit overview, device fleet health, and the two alerts (silent in office hours, streaks of lowest ratings)."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, update

from server import dashboards
from server.api import charts
from server.api.app import create_app
from server.db.models import DEVICES, REVIEWS
from server.db.types import to_ms
from server.queries import month_bounds
from server.settings import Settings
from tests.utils.console import BOOT_MS, complaint, ingest, make_user, review_of, sign_in
from tests.utils.factories import Office, make_office
from tests.utils.factories import sign_in as sign_in_official

SETTINGS = Settings(mode="demo", alerts={"negative_streak": 3, "silent_after_min": 10})  # type: ignore[arg-type]
HCM = ZoneInfo("Asia/Ho_Chi_Minh")
DAY = datetime(2026, 10, 14, tzinfo=HCM)  # a Wednesday


@pytest.fixture
def office(engine: Engine) -> Office:
    made = make_office(engine, counters=2, officials=2, code="PD")
    since = datetime(2026, 7, 1, 7, tzinfo=HCM)
    for counter, official in zip(made.counters, made.officials, strict=True):
        sign_in_official(engine, counter, official, since, now=since)
    return made


def _rate(engine: Engine, office: Office, counter: int, at: datetime, *values: int) -> None:
    dev = office.devices[counter]
    msgs = []
    for i, v in enumerate(values):
        t = to_ms(at) + i * 60_000  # a minute apart: none of them is misuse
        msgs.append((dev.topic(), dev.rating(v, up=t - BOOT_MS, ts=t), t + 500))
    ingest(engine, SETTINGS, *msgs)


def test_heatmap_buckets_by_local_hour_and_counter(engine: Engine, office: Office) -> None:
    _rate(engine, office, 0, DAY.replace(hour=8, minute=5), 4, 4, 1)  # 08h local = 01h UTC
    _rate(engine, office, 1, DAY.replace(hour=14, minute=40), 3)
    _rate(engine, office, 1, DAY.replace(hour=23, minute=30), 1)  # after midnight UTC+7 is still the 14th locally
    start, end = month_bounds("2026-10", HCM)
    with engine.connect() as conn:
        grid = dashboards.heatmap(conn, unit_id=office.unit_id, start=start, end=end, settings=SETTINGS)
    hours = grid["hours"]
    assert hours[0] == 7 and 16 in hours and 23 in hours  # office hours, and any hour with ratings
    q1, q2 = ({h: c for h, c in zip(hours, row["cells"], strict=True) if c} for row in grid["counters"])
    assert q1 == {8: {"n": 3, "satisfaction": pytest.approx(2 / 3, abs=1e-3)}}
    assert q2 == {14: {"n": 1, "satisfaction": pytest.approx(2 / 3, abs=1e-3)}, 23: {"n": 1, "satisfaction": 0.0}}


def test_official_trend_and_unit_overview(engine: Engine, office: Office) -> None:
    _rate(engine, office, 0, DAY.replace(month=8, hour=9), 4, 3)
    _rate(engine, office, 0, DAY.replace(hour=9), 1, 2)
    rid = review_of(engine, complaint(engine, SETTINGS, office.devices[0], at=DAY.replace(hour=10))).id
    with engine.begin() as conn:
        conn.execute(update(REVIEWS).where(REVIEWS.c.id == rid).values(status="confirmed", severity="minor"))
        trend = dashboards.official_trend(conn, official_id=office.officials[0],
                                          periods=["2026-08", "2026-09", "2026-10"], settings=SETTINGS)
        start, end = month_bounds("2026-10", HCM)
        [unit] = dashboards.unit_overview(conn, units=frozenset({office.unit_id}), start=start, end=end)
    assert [(m["period"], m["ratings"], m["satisfaction"]) for m in trend] == [
        ("2026-08", 2, pytest.approx(5 / 6, abs=1e-3)), ("2026-09", 0, None),
        ("2026-10", 3, pytest.approx(1 / 9, abs=1e-3))]
    assert trend[2]["incidents"]["confirmed"] == 1 and trend[2]["lowest"] == 2  # the complaint's rating is a 1 too
    assert (unit["ratings"], unit["reviews"]["confirmed"], unit["devices"]) == (3, 1, 2)
    assert unit["lowest_share"] == pytest.approx(2 / 3, abs=1e-3)


def test_negative_streaks_are_runs_of_lowest_ratings_at_one_counter(engine: Engine, office: Office) -> None:
    _rate(engine, office, 0, DAY.replace(hour=9), 1, 1, 4, 1, 1)  # never three in a row
    _rate(engine, office, 1, DAY.replace(hour=9), 3, 1, 1, 1, 4)  # three in a row, then a good one
    _rate(engine, office, 1, DAY.replace(hour=11), 1, 1, 1)  # and three more, still going on
    with engine.connect() as conn:
        streaks = dashboards.negative_streaks(conn, units=None, now=DAY.replace(hour=16), settings=SETTINGS)
        other_day = dashboards.negative_streaks(conn, units=None, now=DAY + timedelta(days=1), settings=SETTINGS)
        not_mine = dashboards.negative_streaks(conn, units=frozenset({-1}), now=DAY.replace(hour=16),
                                               settings=SETTINGS)
    assert [(s.counter, s.length, s.ongoing, s.official) for s in streaks] == [
        ("PD-Q2", 3, False, "PD-CB002"), ("PD-Q2", 3, True, "PD-CB002")]
    assert other_day == [] and not_mine == []


def test_devices_silent_in_office_hours_only(engine: Engine, office: Office) -> None:
    working = DAY.replace(hour=10)
    with engine.begin() as conn:
        conn.execute(update(DEVICES).where(DEVICES.c.id == office.devices[0].id).values(
            last_seen_at=working - timedelta(minutes=30), online=False,
            health={"fw": "1.2.0", "outbox": 7, "clock": "unsynced", "dropped": 0, "mem": 5000}))
        conn.execute(update(DEVICES).where(DEVICES.c.id == office.devices[1].id).values(
            last_seen_at=working - timedelta(minutes=2), online=True,
            health={"fw": "1.2.0", "outbox": 0, "clock": "synced", "clock_offset_ms": 40, "dropped": 0}))
    with engine.connect() as conn:
        fleet = dashboards.fleet(conn, units=None, now=working, settings=SETTINGS)
        evening = dashboards.alerts(conn, units=None, now=DAY.replace(hour=19), settings=SETTINGS)
        sunday = dashboards.alerts(conn, units=None, now=working + timedelta(days=4), settings=SETTINGS)
    assert [(d["id"], d["silent"], d["outbox"], d["clock"]) for d in fleet] == [
        ("pd-dev-1", True, 7, "unsynced"), ("pd-dev-2", False, 0, "synced")]
    assert evening["silent_devices"] == [] and sunday["silent_devices"] == [] and not sunday["office_hours"]


def test_pages_draw_the_figures_as_svg(engine: Engine, office: Office) -> None:
    _rate(engine, office, 0, DAY.replace(hour=8), 4, 2)
    make_user(engine, "head", "unit_head", units=("PD",))
    head = sign_in(create_app(SETTINGS, engine), "head")
    heat = head.client.get("/units/PD/heatmap?period=2026-10").text
    assert heat.count('class="cell"') >= 2 * 10 and 'data-n="2"' in heat
    assert 'id="trend"' in head.client.get("/officials/PD-CB001").text
    overview = head.client.get("/dashboard?period=2026-10").text
    assert 'data-unit="PD"' in overview and "<svg" in overview and "50%" in overview
    devices = head.client.get("/devices").text
    assert 'data-device="pd-dev-1"' in devices


def test_charts_are_escaped_svg_with_a_mark_per_figure() -> None:
    bars = charts.bars([charts.Bar("<b>Quầy 1</b>", 0.75, "(12)", "/units/X"), charts.Bar("Quầy 2", None)],
                       title="Mức hài lòng")
    assert bars.count("<rect") == 2 and "&lt;b&gt;Quầy 1&lt;/b&gt;" in bars and "75%" in bars and "<b>" not in bars
    months = [charts.Month("26-09", 0.5, 10), charts.Month("26-10", None, 0), charts.Month("26-11", 0.9, 4, 2)]
    trend = charts.trend(months, title="t", line_label="hài lòng", count_label="lượt")
    assert trend.count("<circle") == 2 and "<polyline" in trend and "⚑2" in trend
    heat = charts.heatmap([("Quầy 1", [(3, 1.0), None])], [8, 9], title="h")
    assert heat.count('class="cell"') == 2 and 'fill="#1a7f37"' in heat and 'fill="#d0d7de"' in heat
    assert charts.colour(0.0) == "#b42318" and charts.colour(1.0) == "#1a7f37"
