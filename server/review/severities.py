"""The severities a confirming reviewer chooses from: the ids of the active policy's [incidents.deduction]."""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache

from server.scoring import load_policy
from server.settings import Settings


@lru_cache(maxsize=8)
def _deductions(policy: str) -> tuple[tuple[str, Decimal], ...]:
    spec = load_policy(policy).spec
    return tuple(sorted(spec.incidents.deduction.items(), key=lambda kv: (kv[1], kv[0])))


def severities(settings: Settings) -> dict[str, Decimal]:
    """Severity id -> points deducted per confirmed incident, mildest first (policy `scoring.policy`)."""
    return dict(_deductions(settings.scoring.policy))
