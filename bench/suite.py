"""`motcua bench` / `python -m bench`: every benchmark module in one run, one table, or JSON.

Each module in BENCHES exposes `run(quick: bool = False) -> dict`. A module that is not there or
whose service is missing is shown as "not available" with the reason, and the others still run.
`--write-docs [PATH]` also rewrites the generated block of docs/benchmarks.md (machine, load, command,
figures) and the latency chart next to it (bench/report.py). Progress goes to stderr.
"""

from __future__ import annotations

import importlib
import json
import os
import shlex
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import report

# name shown -> module; order is the order of the table
BENCHES = {
    "ingest": "bench.ingest",  # throughput vs a raw paho subscriber, press-to-ack latency at several rates
    "scoring": "bench.scoring",  # month-close time, HR API latency
    "firmware": "bench.firmware.bench_firmware",  # per-press cost, heap
    "kiosk": "bench.kiosk",  # capture pace, pre-roll memory, upload throughput
}
REPO = Path(__file__).resolve().parents[1]
DEFAULT_DOC = REPO / "docs" / "benchmarks.md"
PG_URL = os.environ.get("MOTCUA_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


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


def run_suite(*, quick: bool = False, only: list[str] | None = None,
              benches: dict[str, str] | None = None) -> dict[str, Any]:
    """Run the chosen modules of `benches` (default BENCHES) one after the other; the result with its rows."""
    chosen = {k: v for k, v in (benches or BENCHES).items() if not only or k in only}
    result: dict[str, Any] = {"quick": quick, "started": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
                              "command": command_line(), "machine": report.machine(PG_URL),
                              "load_start": list(os.getloadavg()), "benches": {}}
    t0 = time.monotonic()
    for i, (name, module) in enumerate(chosen.items(), 1):
        log(f"({i}/{len(chosen)}) {name}: {module}.run(quick={quick})")
        r = result["benches"][name] = run_one(name, module, quick)
        log(f"({i}/{len(chosen)}) {name}: " + (f"done in {r['seconds']} s" if r["status"] == "ok" else
                                                f"not available: {r['reason']}"))
    result["seconds"] = round(time.monotonic() - t0, 1)
    result["load_end"] = list(os.getloadavg())
    result["rows"] = report.rows(result)
    return result


def command_line() -> str:
    """This process's command line as it would be typed in the repository, for the record in the docs."""
    argv = list(sys.orig_argv)
    if len(argv) > 1 and Path(argv[1]).name == "motcua":  # the console script: `motcua bench ...`
        argv = ["motcua", *argv[2:]]
    else:
        exe = Path(argv[0])
        if exe.is_absolute() and exe.is_relative_to(Path.cwd()):
            argv[0] = str(exe.relative_to(Path.cwd()))
    return shlex.join(argv)


def table(result: dict[str, Any]) -> str:
    return report.text_table(result)


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="motcua bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small runs (seconds each), for a smoke test")
    ap.add_argument("--json", action="store_true", help="print JSON instead of the table")
    # extend: both `--only a b` and `--only a --only b` choose a and b
    ap.add_argument("--only", nargs="+", action="extend", choices=list(BENCHES), help="run only these")
    ap.add_argument("--write-docs", nargs="?", const=str(DEFAULT_DOC), metavar="PATH", type=Path,
                    help=f"rewrite the generated block of PATH (default {DEFAULT_DOC.relative_to(REPO)}) "
                         f"and the chart {report.CHART_NAME} next to it")
    args = ap.parse_args(argv)
    if args.write_docs and args.write_docs.exists():
        report.splice(args.write_docs.read_text(), "")  # bad markers: say so before a long run, not after
    result = run_suite(quick=args.quick, only=args.only)
    if args.write_docs:
        chart = report.write_docs(result, args.write_docs)
        log(f"wrote the generated block of {args.write_docs}" + (f" and {chart}" if chart else ""))
    print(json.dumps(result) if args.json else table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
