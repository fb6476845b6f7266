"""`motcua bench`: one table or JSON over the bench modules, a missing one "not available", and
`--write-docs`: the generated block of docs/benchmarks.md and the latency chart."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from bench import report, suite
from bench.ingest import QUICK_RATES
from motcua.localbroker import mosquitto_binary
from tests.utils import db
from tests.utils.services import unavailable

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
SVG = "{http://www.w3.org/2000/svg}"


def _bench(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MOTCUA_BENCH_PG_URL": os.environ.get("MOTCUA_BENCH_PG_URL", db.PG_ADMIN_URL)}
    res = subprocess.run([sys.executable, "-m", "motcua", "bench", *args], capture_output=True, text=True,
                         timeout=300, cwd=cwd, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    return res


def _lines(text: str, marker: str) -> list[int]:
    return [i for i, line in enumerate(text.splitlines()) if line == marker]


def _outside(text: str) -> str:
    """The hand-written part of a document: every line but those of the generated block."""
    lines = text.splitlines()
    begins, ends = _lines(text, report.BEGIN), _lines(text, report.END)
    assert len(begins) == 1 and len(ends) == 1, "one generated block expected"
    return "\n".join(lines[:begins[0]] + lines[ends[0] + 1:])


def _block(text: str) -> str:
    lines = text.splitlines()
    return "\n".join(lines[_lines(text, report.BEGIN)[0]:_lines(text, report.END)[0]])


@pytest.mark.slow
def test_bench_quick_json_has_month_close_hr_latency_and_firmware_heap() -> None:
    res = _bench("--quick", "--json", "--only", "firmware", "--only", "scoring")
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["quick"] is True and set(out["benches"]) == {"firmware", "scoring"}
    fw = out["benches"]["firmware"]
    assert fw["status"] == "ok" and fw["figures"]["micro"]["sign_enqueue_us"] > fw["figures"]["micro"]["hmac_us"] > 0
    assert 0 < fw["figures"]["soak"]["base_alloc"] <= fw["figures"]["soak"]["peak_alloc"]
    assert out["machine"]["cores"] == os.cpu_count() and len(out["load_start"]) == 3
    figures = {r["figure"].split(",")[0]: r for r in out["rows"]}
    assert "heap in use after start-up / at the peak" in figures
    if out["benches"]["scoring"]["status"] == "ok":  # needs PostgreSQL
        sc = out["benches"]["scoring"]["figures"]
        assert "month close" in figures and figures["month close"]["value"].startswith(f"{sc['close_s']} s")
        hr = figures["HR API: page of 500 scores"]
        assert hr["value"] == f"{sc['page_p50_ms']} / {sc['page_p99_ms']} ms" and "GET /healthz" in hr["baseline"]
    assert "[bench] (1/2)" in res.stderr  # progress goes to stderr, not into the JSON


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.broker
def test_write_docs_keeps_the_hand_written_text_and_replaces_its_block(tmp_path: Path) -> None:
    for why in (db.pg_reachable(), None if mosquitto_binary() else "mosquitto is not installed"):
        if why:
            unavailable(why)
    doc = tmp_path / "benchmarks.md"
    shutil.copy(DOC, doc)
    hand_written = _outside(DOC.read_text())

    res = _bench("--quick", "--only", "ingest", "--write-docs", str(doc))
    first = doc.read_text()
    assert _outside(first) == hand_written
    block = _block(first)
    assert f"{os.cpu_count()} cores" in block and "Load average" in block and "Mosquitto 2." in block
    assert f"--write-docs {doc}" in block  # the command as typed
    for rate in QUICK_RATES:
        assert f"p50 / p99 at {rate:g} ev/s offered" in block and f"p50 / p99 at {rate:g} ev/s offered" in res.stdout
    assert "raw paho echo" in block and "raw paho subscriber" in block
    assert f"]({report.CHART_NAME})" in block

    svg = ET.parse(tmp_path / report.CHART_NAME).getroot()  # noqa: S314 - our own file
    assert svg.tag == f"{SVG}svg"
    groups = {g.get("id"): g for g in svg.iter(f"{SVG}g")}
    for gid, *_ in report.SERIES:
        markers = list(groups[gid].iter(f"{SVG}use"))
        assert len(markers) == len(QUICK_RATES), gid
        xs = [float(m.get("x", "nan")) for m in markers]
        assert xs == sorted(xs) and len(set(xs)) == len(xs), "one point per offered rate, left to right"

    _bench("--quick", "--only", "firmware", "--write-docs", str(doc))  # the second run replaces the block
    second = doc.read_text()
    assert _outside(second) == hand_written
    assert "ev/s offered" not in second and "per press: sign + enqueue" in _block(second)


def test_write_docs_shows_a_missing_module_as_not_available(tmp_path: Path) -> None:
    result = suite.run_suite(quick=True, benches={"ghost": "bench.no_such_module"})
    assert "not available" in suite.table(result) and "bench.no_such_module" in suite.table(result)
    doc = tmp_path / "b.md"
    doc.write_text("# Benchmarks\n\nWritten by hand.\n")
    assert report.write_docs(result, doc) is None  # no ingest, no chart
    text = doc.read_text()
    assert text.startswith("# Benchmarks\n\nWritten by hand.\n\n" + report.BEGIN)  # appended: there were no markers
    assert "| ghost | not available | module bench.no_such_module is not installed" in text
    assert f"{os.cpu_count()} cores" in text and not (tmp_path / report.CHART_NAME).exists()


def test_splice_refuses_broken_markers_and_names_the_fix() -> None:
    new = f"{report.BEGIN}\nnew\n{report.END}\n"
    assert report.splice(f"a\n{report.BEGIN}\nold\n{report.END}\nb\n", new) == f"a\n{new}b\n"
    mention = f"prose naming `{report.BEGIN}` is no marker\n"
    assert report.splice(mention, new) == f"{mention}\n{new}"
    for broken in (f"a\n{report.BEGIN}\nold\n", f"{report.END}\n{report.BEGIN}\n", f"{new}{new}"):
        with pytest.raises(ValueError, match="fix the markers by hand"):
            report.splice(broken, new)


def test_a_busy_machine_is_said_so_in_the_block() -> None:
    result = {"quick": True, "started": "2026-12-03 09:00 UTC", "seconds": 1.0, "command": "motcua bench",
              "machine": {"cpu": "c", "cores": 2, "arch": "x", "ram_gib": 1.0, "os": "o", "kernel": "k",
                          "python": "3", "postgresql": "15", "mosquitto": "2"},
              "load_start": [0.2, 0.1, 0.1], "load_end": [0.3, 0.2, 0.1], "rows": [], "benches": {}}
    assert "busy machine" not in report.block(result, None)
    result["load_end"] = [report.BUSY_LOAD, 0.5, 0.2]
    assert "**Taken on a busy machine**" in report.block(result, None)
