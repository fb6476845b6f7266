"""Scores as published: totals, grades, components and the explanation lines that add up to them."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, fields, is_dataclass
from decimal import Decimal
from typing import Any

from server.scoring.policy import PolicyRef


@dataclass(frozen=True, slots=True)
class Line:
    """One step of a score: which part, which policy rule, which input, and the points it gave."""

    part: str  # "general.<criterion>", "tasks", "adjustments", "limits", "grade"
    rule: str  # the policy key applied, e.g. "tasks.delay_deduction", "caps[0]"
    subject: str  # the input behind it, e.g. "task:T-7", "incident:412", "ratings:ho_tich"
    text: str
    points: Decimal


@dataclass(frozen=True, slots=True)
class SatisfactionSummary:
    """The satisfaction statistics behind the criterion, rounded to 6 places for display."""

    ratings: int  # valid ratings n
    raw_mean: Decimal | None  # R, None when n = 0
    adjusted_mean: Decimal | None  # R after the service-type difficulty adjustment
    group_mean: Decimal  # C
    score: Decimal  # S in 0..1, what the criterion's max is multiplied by


@dataclass(frozen=True, slots=True)
class ScoreResult:
    """One official's score for one period under one policy."""

    official_id: str
    agency: str
    group: str
    period: str
    policy: PolicyRef
    total: Decimal
    grade: str
    grade_before_caps: str
    components: Mapping[str, Decimal]  # general, tasks, adjustments, limits: they sum to total
    criteria: Mapping[str, Decimal]  # general criterion id -> points: they sum to components["general"]
    satisfaction: SatisfactionSummary | None
    provisional_reasons: tuple[str, ...]
    lines: tuple[Line, ...]

    @property
    def provisional(self) -> bool:
        """Whether anything still open (few ratings, pending incidents, missing input) affects it."""
        return bool(self.provisional_reasons)


@dataclass(frozen=True, slots=True)
class YearResult:
    """One official's year: the mean of the monthly totals and the year grade."""

    official_id: str
    agency: str
    group: str
    year: str
    policy: PolicyRef
    months: int
    total: Decimal
    grade: str
    grade_before_caps: str
    lines: tuple[Line, ...]


def to_plain(value: Any) -> Any:
    """A result as JSON-ready data: Decimals as strings (exact), mappings with string keys."""
    kind = type(value)
    if value is None or kind is str or kind is int or kind is bool:
        return value
    if kind is Decimal:
        return str(value)
    if kind is Line:  # most of a result: its explanation lines
        return {"part": value.part, "rule": value.rule, "subject": value.subject, "text": value.text,
                "points": str(value.points)}
    if isinstance(value, tuple | list):
        return [to_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    if is_dataclass(value) and not isinstance(value, type):
        return {name: to_plain(getattr(value, name)) for name in _field_names(kind)}
    if isinstance(value, Mapping):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, str | int | Decimal):  # subclasses (str enums, …) as their base value
        return str(value) if isinstance(value, Decimal) else value
    raise TypeError(f"cannot serialise {type(value).__name__}")


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(cls: type) -> tuple[str, ...]:
    """A dataclass's field names, looked up once per class (a result holds hundreds of dataclass values)."""
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in fields(cls))
    return names


def canonical_json(result: ScoreResult | YearResult) -> bytes:
    """The one byte form of a result: sorted keys, no spaces, raw UTF-8."""
    text = json.dumps(to_plain(result), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8")


def result_digest(result: ScoreResult | YearResult) -> str:
    """SHA-256 (hex) of the canonical JSON: the content hash of a final snapshot."""
    return hashlib.sha256(canonical_json(result)).hexdigest()
