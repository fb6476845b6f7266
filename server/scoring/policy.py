"""Scoring policies: versioned TOML files, validated on load, identified by id + version + SHA-256.

A policy holds every number the scoring uses (points, deductions, thresholds, caps, prior weights), so
that a change of rule is a new file with a new hash, never a code change. docs/scoring.md describes
the format; server/scoring/policies/ holds the shipped defaults.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from server.scoring.policy_checks import check_policy

FIX_HINT = "correct the file and load it again; the format is described in docs/scoring.md"
BUILTIN = ("nd335", "hanoi-3814")

Id = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$")]
Points = Annotated[Decimal, Field(ge=0, le=1000)]
Share = Annotated[Decimal, Field(ge=0, le=1)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Criterion(_Model):
    id: Id
    label: str
    max: Annotated[Decimal, Field(gt=0, le=1000)]
    # "entered": points typed by the unit head; "satisfaction": max x the citizens' satisfaction score.
    source: Literal["entered", "satisfaction"] = "entered"


class General(_Model):
    label: str
    points: Points
    # "Điểm liệt" (Hậu Giang, domain.md §1): a criterion at 0 bars the top grade.
    zero_blocks_top: bool = False
    criteria: Annotated[list[Criterion], Field(min_length=1)]


class Difficulty(_Model):
    enabled: bool = True
    # Pseudo-ratings pulling each service type's mean toward the group mean, so that a type rated
    # a handful of times cannot swing everyone who serves it.
    prior_weight: Points = Decimal(20)


class Satisfaction(_Model):
    prior_weight: Points  # m in (n·R + m·C)/(n + m), domain.md §3
    min_ratings: Annotated[int, Field(ge=0)]
    below_min: Literal["shrunk", "group_mean", "full"] = "shrunk"
    fallback_mean: Share  # C when nobody in the group has a valid rating this period
    # Points per level, worst first; a rating's value is its level's points / the best level's points.
    level_points: dict[Annotated[int, Field(ge=2, le=10)], list[Points]]
    difficulty: Difficulty = Difficulty()


class Incidents(_Model):
    criterion: Id  # the criterion confirmed incidents deduct from (never below 0)
    deduction: dict[Id, Points]  # severity -> points per confirmed incident
    # Reviews still undecided when a unit's month is closed (after the review deadline): "ignore"
    # closes it without deducting them (the benefit of the doubt; a later verdict counts by
    # amendment); "block" keeps the month from closing until every review is decided.
    pending_at_close: Literal["ignore", "block"] = "ignore"


class TaskWeights(_Model):
    quantity: Points
    quality: Points
    progress: Points


class Tasks(_Model):
    label: str
    points: Points
    weights: TaskWeights
    quality_failure_deduction: Share
    delay_deduction: Share
    objective_cause_waives: bool = True


class Adjustments(_Model):
    label: str
    bonus_cap: Points
    penalty_cap: Points


class Discipline(_Model):
    measures: Annotated[list[Id], Field(min_length=1)]  # mildest first
    veto_from: Id | None = None  # None: no discipline veto
    veto_grade: str


class Grade(_Model):
    code: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,16}$")]
    label: str
    min: Decimal | None = None  # None only for the last, catch-all grade


class Cap(_Model):
    grade: str
    ratio: Annotated[Decimal, Field(gt=0, le=1)]
    outstanding_ratio: Annotated[Decimal, Field(gt=0, le=1)] | None = None
    basis_from: str  # the basis counts everyone whose grade is this one or better
    reading: Literal["literal", "share_of_basis"]
    scopes: Annotated[list[Literal["agency", "group"]], Field(min_length=1)]
    tie_break: list[Literal["tasks", "general", "adjustments"]] = []
    demote_to: str | None = None  # default: the next grade down
    applies_to: Annotated[list[Literal["month", "year"]], Field(min_length=1)] = ["month", "year"]


class PolicySpec(_Model):
    schema_version: Literal[1] = 1
    id: Id
    version: Annotated[str, Field(min_length=1, max_length=40)]
    title: str
    basis: str
    decimals: Annotated[int, Field(ge=0, le=4)] = 2
    total_min: Decimal = Decimal(0)
    total_max: Decimal = Decimal(100)
    general: General
    satisfaction: Satisfaction
    incidents: Incidents
    tasks: Tasks
    adjustments: Adjustments
    discipline: Discipline
    grades: Annotated[list[Grade], Field(min_length=2)]
    caps: list[Cap] = []


@dataclass(frozen=True, slots=True)
class PolicyRef:
    """What a score records about the policy that produced it."""

    id: str
    version: str
    sha256: str


@dataclass(frozen=True, slots=True)
class Policy:
    """A validated policy and the identity of the exact bytes it came from."""

    spec: PolicySpec
    ref: PolicyRef
    source: str


class PolicyError(ValueError):
    """A policy file that cannot be used; names the file, the key and what to do."""

    def __init__(self, source: str, key: str, problem: str) -> None:
        super().__init__(f"{source}: [{key}] {problem} — {FIX_HINT}")
        self.source, self.key, self.problem = source, key, problem


def parse_policy(data: bytes, *, source: str) -> Policy:
    """Validate policy bytes (TOML) and identify them by SHA-256; raises PolicyError."""
    try:
        raw = tomllib.loads(data.decode("utf-8"), parse_float=Decimal)
    except UnicodeDecodeError as exc:
        raise PolicyError(source, "-", f"not UTF-8 ({exc.reason} at byte {exc.start})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(source, "-", f"not valid TOML: {exc}") from exc
    try:
        spec = PolicySpec.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise PolicyError(source, _key(first["loc"]), first["msg"]) from exc
    problem = check_policy(spec)
    if problem:
        raise PolicyError(source, problem[0], problem[1])
    return Policy(spec, PolicyRef(spec.id, spec.version, hashlib.sha256(data).hexdigest()), source)


def load_policy(name_or_path: str | Path) -> Policy:
    """Load a shipped policy by name ("nd335", "hanoi-3814") or any policy file by path."""
    if isinstance(name_or_path, str) and name_or_path in BUILTIN:
        resource = resources.files("server.scoring").joinpath("policies", f"{name_or_path}.toml")
        return parse_policy(resource.read_bytes(), source=f"policies/{name_or_path}.toml")
    path = Path(name_or_path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PolicyError(str(path), "-", f"cannot read the file ({exc.strerror})") from exc
    return parse_policy(data, source=str(path))


def _key(loc: tuple[int | str, ...]) -> str:
    """A pydantic error location as the TOML key a person would look for: grades[2].min."""
    key = ""
    for part in loc:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
    return key or "-"
