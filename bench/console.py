"""bench/console: what the supervisor console's machinery costs, each figure against a baseline run in the
same process (this machine's speed drifts by up to 2x over minutes, so only ratios are compared across runs).

    python -m bench.console [--batches 30] [--batch 500] [--incidents 0.05] [--audit 600] [--writers 4]
                            [--entries 100000] [--reviews 5000] [--repeat 3] [--json]

On a scratch PostgreSQL database (MOTCUA_BENCH_PG_URL):
  flagging: ingest batches holding a share of incidents, through the real pipeline (Pipeline.process),
            with the review flagging on (a device-health snapshot and a review per incident, one bulk
            statement each per batch) against the same batches with it switched off; alternated;
  audit:    transactions that change a row and write one audit entry (chained at commit under the head
            lock) against the same transactions without the entry, with 1 and with N concurrent writers;
  verify:   `motcua audit verify` over a log of E entries: entries/s and Python memory at peak;
  queue:    the review queue's first page and counts, and one review's detail, over R flagged incidents.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, select, text, update

from motcua.protocol import codec
from server import registry, sessions
from server.audit import record
from server.audit_chain import verify
from server.db.engine import make_engine, upgrade
from server.db.models import AUDIT, DEVICES, REVIEWS, DeviceKind
from server.db.scratch import reachable, scratch_database
from server.db.types import to_ms
from server.ingest import store
from server.ingest.messages import Incoming
from server.ingest.pipeline import Pipeline
from server.ingest.store import IngestRules
from server.review.queue import QueueFilter, queue_counts, queue_page, review_detail
from server.settings import Settings

PG_URL = os.environ.get("MOTCUA_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
SETTINGS = Settings(mode="demo")
BOOT = datetime.now(UTC) - timedelta(days=2)


class SignedDevice:
    """A provisioned device's key and the numbers a real one keeps (epoch 1, next sequence)."""

    def __init__(self, device_id: str, secret: bytes) -> None:
        self.id, self.secret, self.epoch, self.seq = device_id, secret, 1, 0

    def topic(self) -> str:
        return f"motcua/v1/dev/{self.id}/evt"

    def rating(self, value: int, *, up: int, ts: int) -> bytes:
        self.seq += 1
        return codec.encode_event(self.secret, dev=self.id, ep=self.epoch, seq=self.seq, up=up, ts=ts,
                                  typ="rating", body=codec.rating_body(value, 4))

    def incident(self, kind: str, *, up: int, ts: int, ref: tuple[int, int], note: str) -> bytes:
        self.seq += 1
        return codec.encode_event(self.secret, dev=self.id, ep=self.epoch, seq=self.seq, up=up, ts=ts,
                                  typ="incident", body=codec.incident_body(kind, ref=ref, note=note))


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def office(engine: Engine, devices: int) -> list[SignedDevice]:
    """Counters with an official signed in and a device each."""
    out, start = [], datetime.now(UTC) - timedelta(days=1)
    with engine.begin() as conn:
        unit = registry.create_unit(conn, code="BENCH", name="Bench office")
        for n in range(devices):
            cid = registry.create_counter(conn, unit_id=unit, code=f"B{n:04d}", name=f"Counter {n}")
            oid = registry.create_official(conn, unit_id=unit, code=f"O{n:04d}", full_name=f"Official {n}")
            sessions.sign_in(conn, counter_id=cid, official_id=oid, at=start, now=start, actor="bench")
            dev = registry.provision_device(conn, counter_id=cid, kind=DeviceKind.SIMULATED, actor="bench",
                                            device_id=f"bench-{n:04d}")
            out.append(SignedDevice(dev.id, bytes.fromhex(dev.secret_hex)))
    return out


def batches(devices: list[SignedDevice], n: int, size: int, share: float, start: datetime) -> list[list[Incoming]]:
    """Signed events, `share` of them incidents following a lowest rating, spread over the devices."""
    out, t, every = [], to_ms(start), max(1, round(1 / share)) if share else 0
    for b in range(n):
        batch = []
        for i in range(size):
            dev = devices[(b * size + i) % len(devices)]
            t += 7_000  # seconds apart on each device: none is misuse
            up = t - to_ms(BOOT)
            if every and i % every == 0:
                payload = dev.incident("complaint", up=up, ts=t, ref=(dev.epoch, dev.seq), note="bench")
            else:
                payload = dev.rating(1 + i % 4, up=up, ts=t)
            batch.append(Incoming(dev.topic(), payload, t + 300))
        out.append(batch)
    return out


def flagging(url: str, n: int, size: int, share: float, repeat: int) -> dict[str, Any]:
    """Events/s through the pipeline with and without the review flagging, alternated."""
    upgrade(url)
    engine = make_engine(url)
    devices = office(engine, 200)
    pipeline = Pipeline(engine, IngestRules.from_settings(SETTINGS))
    real, rates = store.flag_stored_incidents, {"on": [], "off": []}
    start = datetime.now(UTC) - timedelta(hours=20)
    for r in range(repeat):
        for mode in ("off", "on") if r % 2 == 0 else ("on", "off"):
            store.flag_stored_incidents = real if mode == "on" else (lambda conn, stored: 0)  # type: ignore[assignment]
            work = batches(devices, n, size, share, start)
            start += timedelta(hours=1)
            t0 = time.perf_counter()
            for batch in work:
                pipeline.process(batch)
            rates[mode].append(n * size / (time.perf_counter() - t0))
    store.flag_stored_incidents = real
    with engine.connect() as conn:
        reviews = conn.execute(select(func.count()).select_from(REVIEWS)).scalar_one()
    engine.dispose()
    on, off = statistics.median(rates["on"]), statistics.median(rates["off"])
    return {"events_per_s_flagging_on": round(on), "events_per_s_flagging_off": round(off),
            "ratio": round(on / off, 3), "reviews_made": int(reviews), "incident_share": share}


def _tx_rate(engine: Engine, writers: int, per_writer: int, audited: bool) -> float:
    """Transactions/s: each bumps a device row (its own, so writers never wait on each other's row)
    and, when `audited`, writes one audit entry."""
    def work(k: int) -> None:
        for i in range(per_writer):
            with engine.begin() as conn:
                conn.execute(update(DEVICES).where(DEVICES.c.id == f"bench-{k:04d}")
                             .values(duplicates=DEVICES.c.duplicates + 1))
                if audited:
                    record(conn, actor=f"user:w{k}", action="bench.write", target_type="device",
                           target_id=f"bench-{k:04d}", detail={"i": i})
    threads = [threading.Thread(target=work, args=(k,)) for k in range(writers)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return writers * per_writer / (time.perf_counter() - t0)


def audit_appends(url: str, total: int, writers: int, repeat: int) -> dict[str, Any]:
    upgrade(url)
    engine = make_engine(url, pool_size=writers + 2)
    office(engine, writers)
    out: dict[str, Any] = {}
    for w in (1, writers):
        with_log, without = [], []
        for r in range(repeat):
            for audited in (False, True) if r % 2 == 0 else (True, False):
                rate = _tx_rate(engine, w, total // w, audited)
                (with_log if audited else without).append(rate)
        out[f"writers_{w}"] = {"tx_per_s_audited": round(statistics.median(with_log)),
                               "tx_per_s_plain": round(statistics.median(without)),
                               "ratio": round(statistics.median(with_log) / statistics.median(without), 3)}
    with engine.connect() as conn:
        report = verify(conn)
    out["chain_ok"] = report.ok and report.entries >= total * repeat
    engine.dispose()
    return out


def verify_speed(url: str, entries: int) -> dict[str, Any]:
    upgrade(url)
    engine = make_engine(url)
    per_tx = 1000
    t0 = time.perf_counter()
    for b in range(entries // per_tx):
        with engine.begin() as conn:
            for i in range(per_tx):
                record(conn, actor="user:bench", action="clip.view", target_type="clip", target_id=f"c{b}-{i}",
                       detail={"media": "video", "bytes": 123456})
    write_s = time.perf_counter() - t0
    tracemalloc.start()
    t0 = time.perf_counter()
    with engine.connect() as conn:
        report = verify(conn)
    took = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    engine.dispose()
    return {"entries": report.entries, "ok": report.ok, "verify_entries_per_s": round(report.entries / took),
            "verify_s": round(took, 2), "python_peak_mib": round(peak / 2**20, 1),
            "append_entries_per_s_in_1000_entry_transactions": round(entries / write_s)}


def _percentiles(fn: Callable[[], Any], n: int) -> dict[str, float]:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return {"p50_ms": round(times[n // 2], 2), "p95_ms": round(times[int(n * 0.95)], 2), "max_ms": round(times[-1], 2)}


def queue_speed(url: str, reviews: int) -> dict[str, Any]:
    upgrade(url)
    engine = make_engine(url)
    devices = office(engine, 200)
    pipeline = Pipeline(engine, IngestRules.from_settings(SETTINGS))
    for batch in batches(devices, reviews * 2 // 500, 500, 0.5, datetime.now(UTC) - timedelta(days=1)):
        pipeline.process(batch)
    with engine.connect() as conn:
        n = conn.execute(select(func.count()).select_from(REVIEWS)).scalar_one()
        rid = conn.execute(select(REVIEWS.c.id).limit(1).offset(n // 2)).scalar_one()
        conn.execute(text("ANALYZE"))
        where = QueueFilter(units=frozenset({1}))
        page = _percentiles(lambda: queue_page(conn, where=where, viewer="user:gs", after=None, limit=50), 100)
        counts = _percentiles(lambda: queue_counts(conn, where=where), 100)
        detail = _percentiles(lambda: review_detail(conn, review_id=rid, viewer="user:gs"), 100)
        entries = conn.execute(select(func.count()).select_from(AUDIT)).scalar_one()
    engine.dispose()
    return {"reviews": int(n), "audit_entries": int(entries), "queue_first_page": page, "queue_counts": counts,
            "review_detail": detail}


def run(args: argparse.Namespace) -> dict[str, Any]:
    why = reachable(PG_URL)
    if why:
        raise SystemExit(f"{why}: set MOTCUA_BENCH_PG_URL")
    result: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "when": datetime.now(UTC).isoformat(timespec="seconds")}
    for name, fn in (("flagging", lambda u: flagging(u, args.batches, args.batch, args.incidents, args.repeat)),
                     ("audit", lambda u: audit_appends(u, args.audit, args.writers, args.repeat)),
                     ("verify", lambda u: verify_speed(u, args.entries)),
                     ("queue", lambda u: queue_speed(u, args.reviews))):
        log(f"{name}…")
        with scratch_database(PG_URL, prefix="motcua_bench") as url:
            result[name] = fn(url)
        log(json.dumps(result[name]))
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", type=int, default=30, help="ingest batches per measurement")
    ap.add_argument("--batch", type=int, default=500, help="events per batch (ingest.batch_max)")
    ap.add_argument("--incidents", type=float, default=0.05, help="share of incidents among the events")
    ap.add_argument("--audit", type=int, default=600, help="audited transactions per measurement")
    ap.add_argument("--writers", type=int, default=4, help="concurrent writers in the second audit measurement")
    ap.add_argument("--entries", type=int, default=100_000, help="audit entries for the verify measurement")
    ap.add_argument("--reviews", type=int, default=5000, help="flagged incidents for the queue measurement")
    ap.add_argument("--repeat", type=int, default=3, help="alternated repetitions (medians are reported)")
    ap.add_argument("--json", action="store_true", help="print JSON (default: indented JSON)")
    args = ap.parse_args()
    result = run(args)
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
