"""bench/scoring: closing a province's month, and serving its scores to HR.

    python -m bench.scoring [--officials 50000] [--ratings 5000000] [--requests 200] [--quick] [--json]

A scratch PostgreSQL database (MOTCUA_BENCH_PG_URL) is filled in SQL (generate_series, no Python
loop per row): units of 25 officials with two typed counters each, ratings spread over March 2026
(~2% misuse, ~1% repeat tickets, ~0.5% quarantined), 0.1% of officials with a reviewed incident
(confirmed, dismissed with the rating annulled, or still pending), three task items and three
general points per official. Then, timed:
  close:     `close_month` for every unit (SQL aggregation, scoring in worker processes, binary COPY of
             the snapshots, commit); baseline: a bare `SELECT count(*)` of the month's ratings;
  HR pages:  GET /api/v1/hr/scores?limit=500, walking the cursor through the final month, in process
             through Starlette's TestClient (no network); baseline: GET /healthz on the same client.
`run(quick=True)` is the small version the test suite and the benchmark suite call.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, text

from server.db.engine import make_engine, upgrade
from server.db.scratch import reachable, scratch_database

PG_URL = os.environ.get("MOTCUA_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
PER_UNIT = 25  # officials per unit (a ward's one-stop section and its back office)
CHUNK_ROWS = 500_000  # ratings inserted per statement: progress every few seconds
PERIOD, CLOSE_AT = "2026-03", datetime(2026, 4, 20, 3, 0, tzinfo=UTC)
# Rating events of March 2026 (Asia/Ho_Chi_Minh), spread over the month's 31 days.
MONTH_START_S = int(datetime(2026, 2, 28, 17, 0, tzinfo=UTC).timestamp())
INDEXES = ("ix_events_official_time", "ix_events_counter_time", "ix_events_device_epoch_up", "ix_events_txn_key")


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def _sql(engine: Engine, statement: str, **params: Any) -> None:
    with engine.begin() as conn:
        conn.execute(text(statement), params)


def generate(engine: Engine, officials: int, ratings: int) -> dict[str, float]:
    """Fill the registry, ratings, reviews and task results; returns seconds per step."""
    units = max(1, officials // PER_UNIT)
    took: dict[str, float] = {}
    t = time.perf_counter()
    _sql(engine, "INSERT INTO units (id, code, name, created_at) SELECT g, 'U' || lpad(g::text, 5, '0'), "
                 "'UBND phường ' || g, now() FROM generate_series(1, :n) g", n=units)
    _sql(engine, "INSERT INTO counters (id, unit_id, code, name, service_type, created_at) SELECT g, (g + 1) / 2, "
                 "'Q' || g, 'Quầy ' || g, CASE WHEN g % 2 = 0 THEN 'dat_dai' ELSE 'ho_tich' END, now() "
                 "FROM generate_series(1, :n) g", n=2 * units)
    _sql(engine, "INSERT INTO devices (id, counter_id, kind, secret_hex, status, created_at, config_rev, "
                 "config_published_rev, online, duplicates) SELECT 'bd-' || g, g, 'simulated', md5(g::text) || "
                 "md5(g::text), 'active', now(), 1, 0, false, 0 FROM generate_series(1, :n) g", n=2 * units)
    _sql(engine, "INSERT INTO officials (id, unit_id, code, full_name, post, duty_group, active, created_at) "
                 "SELECT g, (g - 1) / :per + 1, 'CB' || lpad(g::text, 6, '0'), 'Cán bộ ' || g, 'Chuyên viên', "
                 "CASE WHEN g % 5 = 0 THEN 'dat_dai' ELSE 'tu_phap' END, true, now() "
                 "FROM generate_series(1, :n) g", per=PER_UNIT, n=units * PER_UNIT)
    took["registry"] = time.perf_counter() - t
    t = time.perf_counter()
    for index in INDEXES:  # a bulk load builds secondary indexes once, after the rows
        _sql(engine, f"DROP INDEX {index}")
    n_off = units * PER_UNIT
    for start in range(0, ratings, CHUNK_ROWS):
        stop = min(ratings, start + CHUNK_ROWS)
        _insert_ratings(engine, start + 1, stop, n_off)
        log(f"ratings {stop:,}/{ratings:,} ({time.perf_counter() - t:.0f} s)")
    _reviews_and_tasks(engine, n_off)
    took["ratings"] = time.perf_counter() - t
    t = time.perf_counter()
    log("building the events indexes and analysing")
    _sql(engine, "CREATE INDEX ix_events_official_time ON events (official_id, event_time)")
    _sql(engine, "CREATE INDEX ix_events_counter_time ON events (counter_id, event_time)")
    _sql(engine, "CREATE INDEX ix_events_device_epoch_up ON events (device_id, epoch, uptime_ms)")
    _sql(engine, "CREATE INDEX ix_events_txn_key ON events (txn_key)")
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
    took["indexes"] = time.perf_counter() - t
    return took


def _insert_ratings(engine: Engine, first: int, last: int, officials: int) -> None:
    """Ratings first..last: official g % N, at one of its unit's two counters, a skewed 4-level scale."""
    _sql(engine, """
        INSERT INTO events (device_id, epoch, seq, typ, status, received_at, event_time, time_source, uptime_ms,
                            counter_id, official_id, rating, levels, misuse, txn_duplicate, body, payload)
        SELECT 'bd-' || c, 1, g, 'rating', CASE WHEN g % 200 = 7 THEN 'quarantined' ELSE 'accepted' END,
               to_timestamp(t), to_timestamp(t), 'device', g, c, o,
               CASE WHEN r < 0.05 THEN 1 WHEN r < 0.15 THEN 2 WHEN r < 0.45 THEN 3 ELSE 4 END, 4,
               g % 50 = 3, g % 100 = 11, '{}', '\\x7b7d'
        FROM (SELECT g, (g % :n) + 1 AS o, 2 * ((g % :n) / :per) + 1 + (g / :n) % 2 AS c,
                     :t0 + (g::bigint * 7919) % (31 * 86400) AS t, random() AS r
              FROM generate_series(:a, :b) g) s
    """, n=officials, per=PER_UNIT, t0=MONTH_START_S, a=first, b=last)


def _reviews_and_tasks(engine: Engine, officials: int) -> None:
    """A reviewed incident for one official in a thousand; three tasks and three general points each."""
    _sql(engine, """
        INSERT INTO events (device_id, epoch, seq, typ, status, received_at, event_time, time_source, uptime_ms,
                            counter_id, official_id, misuse, txn_duplicate, body, payload)
        SELECT 'bd-' || (2 * ((o - 1) / :per) + 1), 2, o, 'incident', 'accepted', to_timestamp(:t), to_timestamp(:t),
               'device', o, 2 * ((o - 1) / :per) + 1, o, false, false, '{"kind": "complaint"}', '\\x7b7d'
        FROM generate_series(1, :n, 1000) o
    """, per=PER_UNIT, t=MONTH_START_S + 86400 * 10, n=officials)
    _sql(engine, """
        INSERT INTO reviews (event_id, kind, unit_id, counter_id, official_id, event_time, flagged_at, status,
                             severity, annulled_event_id)
        SELECT e.id, 'complaint', (e.official_id - 1) / :per + 1, e.counter_id, e.official_id, e.event_time,
               e.event_time, (ARRAY['confirmed', 'dismissed', 'pending'])[1 + e.official_id % 3],
               CASE WHEN e.official_id % 3 = 0 THEN 'minor' END, NULL
        FROM events e WHERE e.typ = 'incident'
    """, per=PER_UNIT)
    _sql(engine, """
        INSERT INTO task_results (official_id, period, kind, key, label, points, completed, quality_failures,
                                  delays, objective_cause, source, updated_at, updated_by)
        SELECT o, :p, 'task', 'T' || k, 'Nhiệm vụ ' || k, (k + 1)::text, o % 17 <> 0 OR k <> 3,
               CASE WHEN o % 11 = 0 AND k = 1 THEN 1 ELSE 0 END, CASE WHEN o % 7 = 0 AND k = 2 THEN 1 ELSE 0 END,
               false, 'csv', now(), 'bench'
        FROM generate_series(1, :n) o, generate_series(1, 3) k
    """, p=PERIOD, n=officials)
    _sql(engine, """
        INSERT INTO task_results (official_id, period, kind, key, label, points, completed, quality_failures,
                                  delays, objective_cause, source, updated_at, updated_by)
        SELECT o, :p, 'general', c.id, '', ((c.top * 100 - (o * 37) % 200) / 100.0)::text, true, 0, 0, false,
               'unit_head', now(), 'bench'
        FROM generate_series(1, :n) o,
             (VALUES ('pham_chat', 10), ('trach_nhiem', 5), ('doi_moi', 10)) AS c(id, top)
    """, p=PERIOD, n=officials)


def close_month(engine: Engine) -> dict[str, Any]:
    """Close every unit's March, timed to the commit; the month's baseline count in the same run."""
    from server.evaluation.lifecycle import close_month as close
    from server.settings import Settings

    settings = Settings(mode="demo")
    t = time.perf_counter()
    with engine.connect() as conn:
        counted = conn.execute(text("SELECT count(*) FROM events WHERE typ = 'rating' AND event_time >= "
                                    "'2026-02-28T17:00:00Z' AND event_time < '2026-03-31T17:00:00Z'")).scalar()
    baseline = time.perf_counter() - t
    t = time.perf_counter()
    with engine.begin() as conn:
        report = close(conn, settings=settings, period=PERIOD, units=None, actor="bench", now=CLOSE_AT,
                       progress=log)
        log("committing")
    seconds = time.perf_counter() - t
    assert report.complete and report.officials > 0, report
    with engine.begin() as conn:
        from server.evaluation.lifecycle import finalize_month

        finalize_month(conn, period=PERIOD, units=None, actor="bench", now=CLOSE_AT)
    return {"close_s": round(seconds, 2), "officials": report.officials, "ratings_in_month": int(counted or 0),
            "aggregate_s": round(report.seconds["aggregate"], 2), "score_s": round(report.seconds["score"], 2),
            "store_and_commit_s": round(seconds - report.seconds["aggregate"] - report.seconds["score"], 2),
            "baseline_count_s": round(baseline, 3), "close_vs_count": round(seconds / max(baseline, 1e-9), 1)}


def hr_pages(engine: Engine, db_url: str, requests: int) -> dict[str, Any]:
    """p50/p99 of 500-score pages walked by cursor, against GET /healthz, in process."""
    from fastapi.testclient import TestClient

    from server import registry
    from server.api.app import create_app
    from server.runtime import freeze_startup_heap
    from server.settings import Settings

    with engine.begin() as conn:
        token = registry.create_api_token(conn, name="hr", scopes=["read:scores"], actor="bench")
    client = TestClient(create_app(Settings(mode="demo", database_url=db_url), engine))
    freeze_startup_heap()  # as `motcua server` does before it serves
    headers = {"Authorization": f"Bearer {token}"}
    pages, health = [], []
    cursor: str | None = None
    rows = 0
    for i in range(requests + 5):  # 5 warm-up requests of each kind are not counted
        params = {"period": PERIOD, "limit": "500", **({"cursor": cursor} if cursor else {})}
        t = time.perf_counter()
        res = client.get("/api/v1/hr/scores", params=params, headers=headers)
        took = time.perf_counter() - t
        assert res.status_code == 200, res.text
        body = res.json()
        rows += len(body["items"])
        cursor = body["next_cursor"]  # wraps to the first page at the end
        t = time.perf_counter()
        assert client.get("/healthz").status_code == 200
        if i >= 5:
            pages.append(took)
            health.append(time.perf_counter() - t)
    return {"requests": len(pages), "rows_served": rows, "page_p50_ms": _ms(statistics.median(pages)),
            "page_p99_ms": _ms(_p99(pages)), "healthz_p50_ms": _ms(statistics.median(health)),
            "healthz_p99_ms": _ms(_p99(health)), "page_vs_healthz_p50": round(statistics.median(pages) /
                                                                               statistics.median(health), 1)}


def _p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[98] if len(values) > 1 else values[0]


def _ms(s: float) -> float:
    return round(s * 1000, 1)


def run(quick: bool = False, officials: int = 50_000, ratings: int = 5_000_000, requests: int = 200) -> dict[str, Any]:
    """The whole benchmark in a scratch database; quick: 2,000 officials, 200,000 ratings, 30 requests."""
    if quick:
        officials, ratings, requests = 2_000, 200_000, 30
    why = reachable(PG_URL)
    if why:
        raise RuntimeError(f"{why}: set MOTCUA_BENCH_PG_URL")
    with scratch_database(PG_URL, prefix="motcua_bench") as url:
        upgrade(url)
        engine = make_engine(url)
        try:
            log(f"generating {officials:,} officials and {ratings:,} ratings")
            generated = generate(engine, officials, ratings)
            log("closing the month")
            closing = close_month(engine)
            log(f"closed in {closing['close_s']} s; HR pages")
            pages = hr_pages(engine, url, requests)
        finally:
            engine.dispose()
    return {"machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
            "officials": officials, "ratings": ratings, "generate_s": {k: round(v, 1) for k, v in generated.items()},
            **closing, **pages}


def table(r: dict[str, Any]) -> str:
    rows = [
        ("officials / ratings generated", f"{r['officials']:,} / {r['ratings']:,}"),
        ("close the month (aggregate, score, store, commit)",
         f"{r['close_s']} s ({r['aggregate_s']} + {r['score_s']} + {r['store_and_commit_s']})"),
        ("baseline: SELECT count(*) of the month's ratings", f"{r['baseline_count_s']} s"),
        ("close / count", f"{r['close_vs_count']}×"),
        ("HR page of 500 scores, p50 / p99", f"{r['page_p50_ms']} / {r['page_p99_ms']} ms over {r['requests']}"),
        ("baseline: GET /healthz, p50 / p99", f"{r['healthz_p50_ms']} / {r['healthz_p99_ms']} ms"),
        ("page / healthz (p50)", f"{r['page_vs_healthz_p50']}×"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join([r["machine"], *(f"{k:<{width}}  {v}" for k, v in rows)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--officials", type=int, default=50_000)
    ap.add_argument("--ratings", type=int, default=5_000_000)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--quick", action="store_true", help="2,000 officials, 200,000 ratings")
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = ap.parse_args()
    result = run(args.quick, args.officials, args.ratings, args.requests)
    print(json.dumps(result) if args.json else table(result))


if __name__ == "__main__":
    main()
