"""A small run of bench/scoring (the full one is a documented command: docs/benchmarks.md, Scoring)."""

from __future__ import annotations

import pytest

from bench import scoring
from tests.utils import db
from tests.utils.services import unavailable


@pytest.mark.postgres
@pytest.mark.slow
def test_bench_scoring_small_run(monkeypatch: pytest.MonkeyPatch) -> None:
    why = db.pg_reachable()
    if why:
        unavailable(why)
    monkeypatch.setattr(scoring, "PG_URL", db.PG_ADMIN_URL)
    result = scoring.run(officials=500, ratings=50_000, requests=10)
    assert result["officials"] == 500 and result["ratings_in_month"] == 50_000
    assert result["close_s"] > 0 and result["requests"] == 10 and result["rows_served"] >= 500
    assert result["page_p99_ms"] >= result["page_p50_ms"] > 0
    assert "close / count" in scoring.table(result)
