"""Scoring aggregated unit months with the pure engine: in this process, or over worker processes for a
whole province at close (the engine's exact arithmetic costs ~1 ms per official)."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from decimal import Decimal
from multiprocessing import get_context
from typing import Any

from server.evaluation.aggregate import UnitMonth
from server.evaluation.errors import EvaluationError
from server.scoring import InputError, OfficialPeriod, Policy, ScoreResult, canonical_json, parse_policy, score_period

log = logging.getLogger("motcua.evaluation")
# Below this many officials the scoring runs in the calling process: starting workers (a fresh
# interpreter each, ~0.5 s) costs more than it saves. Above it, units are spread over one worker per core.
PARALLEL_MIN_OFFICIALS = 4000
CHUNK_OFFICIALS = 2500  # officials per task sent to a worker: big enough to amortise the pickling
Chunk = tuple[int, str, Sequence[OfficialPeriod]]  # unit id, unit code, its officials' inputs


@dataclass(frozen=True, slots=True)
class Scored:
    """One official's result in the form that is stored: canonical JSON, its digest, the listed fields."""

    code: str
    total: Decimal
    grade: str
    summary: dict[str, Any]
    result: str
    digest: str


def summary_of(r: ScoreResult) -> dict[str, Any]:
    """What a list of scores shows without reading the whole result (JSON-ready, Decimals as strings)."""
    sat = r.satisfaction
    return {
        "grade_before_caps": r.grade_before_caps,
        "components": {k: str(v) for k, v in r.components.items()},
        "criteria": {k: str(v) for k, v in r.criteria.items()},
        "satisfaction": None if sat is None else {"ratings": sat.ratings, "score": str(sat.score)},
        "notes": list(r.provisional_reasons),
    }


def stored_form(r: ScoreResult) -> Scored:
    data = canonical_json(r)
    digest = hashlib.sha256(data).hexdigest()
    return Scored(r.official_id, r.total, r.grade, summary_of(r), data.decode("utf-8"), digest)


def score_unit(policy: Policy, unit: UnitMonth, *, period: str, outstanding: frozenset[str]) -> list[ScoreResult]:
    """One unit's results in member order; InputError becomes an EvaluationError that says what to fix."""
    try:
        return score_period(policy, unit.inputs, period=period, outstanding_units=outstanding)
    except InputError as exc:
        raise EvaluationError("invalid", f"unit {unit.unit_code}, {period}: {exc}; correct that input "
                                         "(task results, review verdict, or the policy) and try again",
                              [{"unit": unit.unit_code, "official": exc.official_id, "field": exc.key,
                                "problem": exc.problem}]) from None


def score_for_storage(policy: Policy, data: bytes, units: Sequence[UnitMonth], *, period: str,
                      outstanding: frozenset[str]) -> tuple[dict[int, list[Scored]], list[dict[str, Any]]]:
    """Stored forms by unit id, and the problems of units that could not be scored (left out)."""
    total = sum(len(u.inputs) for u in units)
    if total < PARALLEL_MIN_OFFICIALS or (os.cpu_count() or 1) < 2:
        return _score_chunk(data, policy.source, period, outstanding, [(u.unit_id, u.unit_code, u.inputs)
                                                                       for u in units])
    chunks: list[list[Chunk]] = [[]]
    size = 0
    for u in units:
        if size >= CHUNK_OFFICIALS:
            chunks.append([])
            size = 0
        chunks[-1].append((u.unit_id, u.unit_code, u.inputs))
        size += len(u.inputs)
    scored: dict[int, list[Scored]] = {}
    problems: list[dict[str, Any]] = []
    # spawn, not fork: the server calls this from a threaded process, and forking one is unsafe.
    try:
        with ProcessPoolExecutor(max_workers=os.cpu_count(), mp_context=get_context("spawn")) as pool:
            futures = [pool.submit(_score_chunk, data, policy.source, period, outstanding, c) for c in chunks]
            for f in futures:
                done, failed = f.result()
                scored.update(done)
                problems += failed
    except BrokenProcessPool:
        # A worker was killed (out of memory, an operator's kill): finish here, slower but complete.
        log.warning("a scoring worker died; scoring the remaining units in this process")
        failed_units = {p["unit"] for p in problems}
        rest = [c for chunk in chunks for c in chunk if c[0] not in scored and c[1] not in failed_units]
        done, failed = _score_chunk(data, policy.source, period, outstanding, rest)
        scored.update(done)
        problems += failed
    return scored, problems


def _score_chunk(data: bytes, source: str, period: str, outstanding: frozenset[str],
                 units: list[Chunk]) -> tuple[dict[int, list[Scored]], list[dict[str, Any]]]:
    """Score whole units (a worker's task): the policy travels as its bytes and is parsed once per process."""
    policy = _policy(data, source)
    scored: dict[int, list[Scored]] = {}
    problems: list[dict[str, Any]] = []
    for unit_id, unit_code, inputs in units:
        try:
            results = score_period(policy, inputs, period=period, outstanding_units=outstanding)
        except InputError as exc:
            problems.append({"unit": unit_code, "official": exc.official_id, "field": exc.key, "problem": exc.problem})
            continue
        scored[unit_id] = [stored_form(r) for r in results]
    return scored, problems


_POLICIES: dict[str, Policy] = {}


def _policy(data: bytes, source: str) -> Policy:
    key = hashlib.sha256(data).hexdigest()
    if key not in _POLICIES:
        _POLICIES[key] = parse_policy(data, source=source)
    return _POLICIES[key]
