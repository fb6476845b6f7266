"""Plain inputs of the scoring, one official and one period each, as the database layer aggregates them.

Numbers are ints and Decimals (never floats). Identifiers are free text chosen by the caller; they are
echoed in the explanation so a reader can find the event, incident or task behind every point.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class RatingCounts:
    """Valid ratings of one service type on one scale: counts[i] is the number rated i + 1 (1 = worst)."""

    service_type: str
    levels: int
    counts: Sequence[int]


@dataclass(frozen=True, slots=True)
class ExcludedRatings:
    """Ratings the database layer left out, shown in the explanation but never scored."""

    misuse: int = 0
    annulled: int = 0
    txn_duplicate: int = 0


@dataclass(frozen=True, slots=True)
class Incident:
    """A confirmed incident: a reviewer upheld it and gave it a severity defined by the policy."""

    id: str
    kind: str  # protocol §3.2: complaint, manual, remote, lowest_rating
    severity: str


@dataclass(frozen=True, slots=True)
class TaskItem:
    """One assigned product/work item from the task system (NĐ 335: quantity, quality, progress)."""

    id: str
    points: Decimal  # its converted weight ("đã quy đổi")
    label: str = ""
    completed: bool = True
    quality_failures: int = 0  # major content errors found, each deducts from its quality points
    delays: int = 0  # missed deadlines, each deducts from its progress points
    objective_cause: bool = False  # confirmed objective cause: the deductions are waived


@dataclass(frozen=True, slots=True)
class Adjustment:
    """A bonus or penalty item (early completion, commendation; violation): points > 0 either way."""

    id: str
    points: Decimal
    label: str = ""


@dataclass(frozen=True, slots=True)
class OfficialPeriod:
    """Everything scored for one official in one period."""

    official_id: str
    agency: str
    group: str  # similar-duty group ("nhóm có nhiệm vụ tương đồng")
    ratings: Sequence[RatingCounts] = ()
    excluded: ExcludedRatings = field(default_factory=ExcludedRatings)
    incidents: Sequence[Incident] = ()  # confirmed only
    dismissed_incidents: int = 0  # never deduct; shown so the official sees they were cleared
    pending_incidents: int = 0  # under review: no deduction yet, the score is provisional
    # still under review when the month was closed under incidents.pending_at_close = "ignore":
    # no deduction, and the closed score is not provisional because of them
    unresolved_incidents: int = 0
    tasks: Sequence[TaskItem] = ()
    bonuses: Sequence[Adjustment] = ()
    penalties: Sequence[Adjustment] = ()
    general: Mapping[str, Decimal] = field(default_factory=dict)  # criterion id -> points entered
    discipline: str | None = None  # a policy discipline measure id, e.g. "khien_trach"


@dataclass(frozen=True, slots=True)
class OfficialYear:
    """The final monthly totals of one official in one year, for the year roll-up."""

    official_id: str
    agency: str
    group: str
    monthly_totals: Mapping[str, Decimal]  # period label ("2026-01") -> final monthly total
    discipline: str | None = None  # the most severe measure taken in the year, if any


class InputError(ValueError):
    """Inputs that contradict the policy or themselves; names the official and the field."""

    def __init__(self, official_id: str, key: str, problem: str) -> None:
        super().__init__(f"official {official_id!r}: {key}: {problem}")
        self.official_id, self.key, self.problem = official_id, key, problem
