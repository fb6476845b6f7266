"""Monthly evaluation scores from ratings, incidents and task results: pure functions over plain data.

Nothing here touches a database, MQTT or HTTP. The database layer aggregates each official's period
into an OfficialPeriod, calls score_period() once per agency or similar-duty group, and stores the
ScoreResults (with result_digest() for final snapshots). docs/scoring.md explains every formula.
"""

from server.scoring.engine import score_period, score_year
from server.scoring.grading import band
from server.scoring.inputs import (
    Adjustment,
    ExcludedRatings,
    Incident,
    InputError,
    OfficialPeriod,
    OfficialYear,
    RatingCounts,
    TaskItem,
)
from server.scoring.policy import BUILTIN, Policy, PolicyError, PolicyRef, load_policy, parse_policy
from server.scoring.results import (
    Line,
    SatisfactionSummary,
    ScoreResult,
    YearResult,
    canonical_json,
    result_digest,
    to_plain,
)
from server.scoring.satisfaction import GroupContext, Tally, group_contexts

__all__ = [
    "BUILTIN",
    "Adjustment",
    "ExcludedRatings",
    "GroupContext",
    "Incident",
    "InputError",
    "Line",
    "OfficialPeriod",
    "OfficialYear",
    "Policy",
    "PolicyError",
    "PolicyRef",
    "RatingCounts",
    "SatisfactionSummary",
    "ScoreResult",
    "Tally",
    "TaskItem",
    "YearResult",
    "band",
    "canonical_json",
    "group_contexts",
    "load_policy",
    "parse_policy",
    "result_digest",
    "score_period",
    "score_year",
    "to_plain",
]
