"""The close's worker processes give exactly the in-process results, and `python -m motcua` is spawn-safe."""

from __future__ import annotations

import runpy
from decimal import Decimal

import pytest

from server.evaluation import compute
from server.evaluation.aggregate import UnitMonth
from server.evaluation.policies import parse, policy_bytes
from server.scoring import OfficialPeriod, RatingCounts, TaskItem


def _units(n: int) -> list[UnitMonth]:
    return [UnitMonth(u, f"U{u}", [], [OfficialPeriod(f"U{u}-CB{i}", f"U{u}", f"U{u}", ratings=(
        RatingCounts("ho_tich", 4, (i % 3, 1, u % 5, 7)),), tasks=(TaskItem("T1", Decimal(1 + i)),))
        for i in range(6)], []) for u in range(n)]


def test_worker_processes_score_exactly_as_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    data, source = policy_bytes("nd335")
    policy = parse(data, source)
    serial, _ = compute.score_for_storage(policy, data, _units(12), period="2026-03", outstanding=frozenset())
    monkeypatch.setattr(compute, "PARALLEL_MIN_OFFICIALS", 1)
    monkeypatch.setattr(compute, "CHUNK_OFFICIALS", 10)
    parallel, problems = compute.score_for_storage(policy, data, _units(12), period="2026-03", outstanding=frozenset())
    assert problems == [] and sorted(parallel) == list(range(12))
    assert {u: [s.digest for s in v] for u, v in parallel.items()} == {u: [s.digest for s in v]
                                                                         for u, v in serial.items()}


def test_importing_motcua_main_under_another_name_runs_nothing() -> None:
    # what a "spawn" worker does with the parent's __main__ module
    namespace = runpy.run_module("motcua.__main__", run_name="__mp_main__")
    assert callable(namespace["main"])
