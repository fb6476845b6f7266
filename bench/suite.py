"""`motcua bench` / `python -m bench`: every benchmark module in one run, one table, or JSON.

Each module in BENCHES exposes `run(quick: bool = False) -> dict`. A module that is not there (the
scoring benchmark comes from another branch) or whose service is missing is shown as "not available"
with the reason, and the others still run.
"""

from __future__ import annotations

import importlib
import json
import platform
import sys
import time
from typing import Any

# name shown -> module; order is the order of the table
BENCHES = {
    "ingest": "bench.ingest",  # throughput vs a raw paho subscriber, press-to-ack latency
    "scoring": "bench.scoring",  # month-close time (bench/scoring.py, when present)
    "firmware": "bench.firmware.bench_firmware",  # per-press cost, heap
    "kiosk": "bench.kiosk",  # capture pace, pre-roll memory, upload throughput
}


def run_one(name: str, module: str, quick: bool) -> dict[str, Any]:
    started = time.monotonic()
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        return {"status": "not available", "reason": f"module {exc.name} is not installed or not written yet"}
    try:
        figures = mod.run(quick=quick)
    except (SystemExit, Exception) as exc:  # a missing service is a reason to show, not a crash of the suite
        return {"status": "not available", "reason": f"{type(exc).__name__}: {exc}"[:300]}
    return {"status": "ok", "seconds": round(time.monotonic() - started, 1), "figures": figures}


def run_suite(*, quick: bool = False, only: list[str] | None = None) -> dict[str, Any]:
    chosen = {k: v for k, v in BENCHES.items() if not only or k in only}
    return {"machine": f"{platform.machine()}, Python {platform.python_version()}", "quick": quick,
            "benches": {name: run_one(name, module, quick) for name, module in chosen.items()}}


def _headline(name: str, figures: dict[str, Any]) -> str:
    """One line of the most compared figures of a bench."""
    if name == "ingest":
        t = figures["throughput"][0]
        lat = figures["latency"]
        return (f"{t['ingest_events_per_s']:,} ev/s = {t['ratio']:.2f} x raw paho; p50 {lat['p50_ms']} ms, "
                f"p99 {lat['p99_ms']} ms at {lat['rate']:g}/s")
    if name == "firmware":
        m = figures["micro"]
        return f"sign+enqueue {m['sign_enqueue_us']:.0f} us/press ({m['ratio']:.1f}x bare HMAC)"
    if name == "kiosk":
        c = figures["capture_one_core"]
        return f"capture {c.get('fps', '?')} fps; upload {figures['upload'].get('mb_per_s', '?')} MB/s"
    return json.dumps(figures)[:100]


def table(result: dict[str, Any]) -> str:
    lines = [f"motcua bench ({'quick' if result['quick'] else 'full'}) on {result['machine']}",
             f"{'bench':<10} {'status':<14} {'seconds':>8}  figures"]
    for name, r in result["benches"].items():
        if r["status"] == "ok":
            try:
                text = _headline(name, r["figures"])
            except (KeyError, IndexError, TypeError):
                text = json.dumps(r["figures"])[:100]
            lines.append(f"{name:<10} {'ok':<14} {r['seconds']:>8}  {text}")
        else:
            lines.append(f"{name:<10} {'not available':<14} {'-':>8}  {r['reason']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small runs (seconds each), for a smoke test")
    ap.add_argument("--json", action="store_true", help="print JSON instead of the table")
    ap.add_argument("--only", nargs="+", choices=list(BENCHES), help="run only these")
    args = ap.parse_args(argv)
    result = run_suite(quick=args.quick, only=args.only)
    print(json.dumps(result) if args.json else table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
