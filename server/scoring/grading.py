"""Grades: the band of a total, the vetoes that override it, and the quota caps across a scope."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from itertools import groupby
from typing import Literal

from server.scoring.explain import note
from server.scoring.numbers import show
from server.scoring.policy import PolicySpec
from server.scoring.results import Line


def band(spec: PolicySpec, total: Decimal) -> int:
    """Index in spec.grades of the first grade whose min the total reaches (the last catches all)."""
    for i, grade in enumerate(spec.grades):
        if grade.min is None or total >= grade.min:
            return i
    raise AssertionError("policy check guarantees a catch-all last grade")


def vetoed(spec: PolicySpec, measure: str | None) -> bool:
    """Whether a discipline measure forces the veto grade (NĐ 335: reprimand or higher → KHTNV)."""
    d = spec.discipline
    if measure is None or d.veto_from is None:
        return False
    return d.measures.index(measure) >= d.measures.index(d.veto_from)


def individual_grade(
    spec: PolicySpec, total: Decimal, zero_criteria: Sequence[str], discipline: str | None
) -> tuple[str, list[Line]]:
    """The grade before caps, with a line for the band and for each rule that changed it."""
    d = spec.decimals
    i = band(spec, total)
    grade = spec.grades[i]
    reach = f"≥ {grade.min}" if grade.min is not None else f"< {spec.grades[i - 1].min}"
    lines = [
        note("grade", f"grades[{i}]", "total", f"total {total} {reach} → {grade.code} ({grade.label})", d)
    ]
    if i == 0 and spec.general.zero_blocks_top and zero_criteria:
        grade = spec.grades[1]
        text = (
            f"criteria at 0 ({', '.join(zero_criteria)}): điểm liệt bars {spec.grades[0].code} → {grade.code}"
        )
        lines.append(note("grade", "general.zero_blocks_top", "criteria", text, d))
    if vetoed(spec, discipline):
        code = spec.discipline.veto_grade
        text = (
            f"discipline '{discipline}' (from '{spec.discipline.veto_from}' up) → {code} regardless of points"
        )
        lines.append(note("grade", "discipline.veto_from", "input:discipline", text, d))
        return code, lines
    return grade.code, lines


@dataclass(frozen=True, slots=True)
class CapEntry:
    """One graded official as the caps see them."""

    official_id: str
    agency: str
    group: str
    grade: str
    total: Decimal
    components: Mapping[str, Decimal] = field(default_factory=dict)


@dataclass(slots=True)
class _Scope:
    name: str  # "agency 'UBND xã A'"
    basis: int
    allowed: int
    formula: str
    used: int = 0
    closed: bool = False  # a tie at the cut overflowed it: nobody below the tie may pass


def apply_caps(
    spec: PolicySpec,
    entries: Sequence[CapEntry],
    period_kind: Literal["month", "year"],
    outstanding_units: frozenset[str] = frozenset(),
) -> dict[str, tuple[str, list[Line]]]:
    """Apply the caps for this kind of period in policy order: official id -> (final grade, cap lines)."""
    grades = {e.official_id: e.grade for e in entries}
    lines: dict[str, list[Line]] = {e.official_id: [] for e in entries}
    for index, cap in enumerate(spec.caps):
        if period_kind not in cap.applies_to:
            continue
        for official_id, (grade, line) in _apply_cap(spec, index, entries, grades, outstanding_units).items():
            grades[official_id] = grade
            lines[official_id].extend(line)
    return {oid: (grades[oid], lines[oid]) for oid in grades}


ScopeKey = tuple[str, str]  # ("agency" | "group", key)


def _apply_cap(
    spec: PolicySpec,
    index: int,
    entries: Sequence[CapEntry],
    grades: Mapping[str, str],
    outstanding: frozenset[str],
) -> dict[str, tuple[str, list[Line]]]:
    """One cap: candidates best first; each keeps the grade while every scope of theirs has room."""
    cap = spec.caps[index]
    codes = [g.code for g in spec.grades]
    target = cap.demote_to or codes[codes.index(cap.grade) + 1]
    scopes = _scopes(spec, index, entries, grades, outstanding)
    candidates = sorted(
        (e for e in entries if grades[e.official_id] == cap.grade),
        key=lambda e: _rank(spec, index, e),
        reverse=True,
    )
    decided: dict[str, tuple[str, list[Line]]] = {}
    for _, block in groupby(candidates, key=lambda e: _rank(spec, index, e)):
        for entry, kept, reason in _settle_block(spec, index, list(block), scopes):
            limits = [_scope_line(spec, index, scopes[k], k) for k in _keys(spec, index, entry)]
            text = f"{cap.grade} kept: {reason}" if kept else f"{cap.grade} → {target}: {reason}"
            verdict = note("grade", f"caps[{index}]", "rank", text, spec.decimals)
            decided[entry.official_id] = (cap.grade if kept else target, [*limits, verdict])
    return decided


def _settle_block(
    spec: PolicySpec, index: int, block: list[CapEntry], scopes: dict[ScopeKey, _Scope]
) -> list[tuple[CapEntry, bool, str]]:
    """Decide candidates tied on the rank key: (entry, kept, why). Ties at a cut are all demoted."""
    decided: list[tuple[CapEntry, bool, str]] = []
    alive: list[CapEntry] = []
    for entry in block:
        full = [
            scopes[k]
            for k in _keys(spec, index, entry)
            if scopes[k].closed or scopes[k].used >= scopes[k].allowed
        ]
        if not full:
            alive.append(entry)
        elif full[0].closed:
            decided.append((entry, False, f"{full[0].name} was closed by a tie at the cut above"))
        else:
            decided.append((entry, False, f"{full[0].name} already has its {full[0].allowed}"))
    demand = Counter(k for e in alive for k in _keys(spec, index, e))
    over = {k for k, n in demand.items() if scopes[k].used + n > scopes[k].allowed}
    for entry in alive:
        hit = [k for k in _keys(spec, index, entry) if k in over]
        if not hit:
            decided.append((entry, True, "within the cap in every scope"))
            continue
        s, n = scopes[hit[0]], demand[hit[0]]
        why = f"tied at {entry.total} with {n - 1} other(s) in {s.name}: {s.used} + {n} > {s.allowed}"
        decided.append((entry, False, f"{why}, and ties at the cut are all demoted"))
    for entry, kept, _ in decided:
        for k in _keys(spec, index, entry) if kept else ():
            scopes[k].used += 1
    for k in over:
        scopes[k].closed = True
    return decided


def _scopes(
    spec: PolicySpec,
    index: int,
    entries: Sequence[CapEntry],
    grades: Mapping[str, str],
    outstanding: frozenset[str],
) -> dict[ScopeKey, _Scope]:
    """Each scope's basis (graded at basis_from or better, before this cap) and allowed count."""
    cap = spec.caps[index]
    codes = [g.code for g in spec.grades]
    basis_rank = codes.index(cap.basis_from)
    basis = Counter(
        k for e in entries if codes.index(grades[e.official_id]) <= basis_rank for k in _keys(spec, index, e)
    )
    scopes = {}
    for (kind, key), count in basis.items():
        special = cap.outstanding_ratio if kind == "agency" and key in outstanding else None
        allowed, formula = _allowed(cap.reading, special or cap.ratio, count, cap.basis_from, cap.grade)
        if special:
            formula += " (outstanding unit: outstanding_ratio)"
        scopes[(kind, key)] = _Scope(f"{kind} '{key}'", count, allowed, formula)
    return scopes


def _allowed(reading: str, ratio: Decimal, basis: int, basis_code: str, grade: str) -> tuple[int, str]:
    """The most officials the capped grade may hold in a scope, and the formula as text."""
    r = Fraction(ratio)
    if reading == "literal":
        # "≤ r of those graded <basis>", the capped ones not counted among them: x ≤ r·(T − x).
        allowed = math.floor(r * basis / (1 + r))
        return allowed, (
            f"x ≤ {show(ratio)}·(T − x), T = {basis} graded {basis_code} or better, "
            f"so x ≤ ⌊{basis}·{show(ratio)}/{show(1 + ratio)}⌋ = {allowed} (reading: literal)"
        )
    allowed = math.floor(r * basis)
    return allowed, (
        f"x ≤ ⌊{show(ratio)} × {basis}⌋ = {allowed}, {basis} graded {basis_code} or better, "
        f"{grade} included (reading: share_of_basis)"
    )


def _scope_line(spec: PolicySpec, index: int, scope: _Scope, key: ScopeKey) -> Line:
    text = f"{spec.caps[index].grade} cap in {scope.name}: {scope.formula}"
    return note("grade", f"caps[{index}]", f"{key[0]}:{key[1]}", text, spec.decimals)


def _keys(spec: PolicySpec, index: int, entry: CapEntry) -> list[ScopeKey]:
    return [(kind, entry.agency if kind == "agency" else entry.group) for kind in spec.caps[index].scopes]


def _rank(spec: PolicySpec, index: int, entry: CapEntry) -> tuple[Decimal, ...]:
    """Total first, then the policy's tie_break components (absent ones count as 0)."""
    extra = (entry.components.get(k, Decimal(0)) for k in spec.caps[index].tie_break)
    return (entry.total, *extra)
