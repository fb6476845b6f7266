"""Units by code, the caller's visible units, and the month state rows of units."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, select

from server.db.models import SCORE_MONTHS, UNITS
from server.evaluation.errors import EvaluationError


def unit_ids_for(conn: Connection, codes: Sequence[str] | None) -> dict[int, str] | None:
    """Unit id -> code for these codes (None: every unit); an unknown code is an error naming it."""
    if codes is None:
        return None
    rows = {r[0]: r[1] for r in conn.execute(select(UNITS.c.code, UNITS.c.id).where(UNITS.c.code.in_(list(codes))))}
    missing = [c for c in codes if c not in rows]
    if missing:
        raise EvaluationError("not_found", f"no unit {', '.join(map(repr, missing))} (see `motcua admin list`)")
    return {rows[c]: c for c in codes}


def all_units(conn: Connection, visible: frozenset[int] | None = None) -> dict[int, str]:
    """Unit id -> code, in id order, limited to `visible` when given."""
    q = select(UNITS.c.id, UNITS.c.code).order_by(UNITS.c.id)
    if visible is not None:
        q = q.where(UNITS.c.id.in_(list(visible)))
    return {r[0]: r[1] for r in conn.execute(q).all()}


def month_rows(conn: Connection, *, period: str, unit_ids: Sequence[int] | None = None) -> dict[int, Any]:
    """Unit id -> its score_months row for the period (closed or final units only)."""
    q = select(SCORE_MONTHS).where(SCORE_MONTHS.c.period == period)
    if unit_ids is not None:
        q = q.where(SCORE_MONTHS.c.unit_id.in_(list(unit_ids)))
    return {r.unit_id: r for r in conn.execute(q).all()}


def month_states(conn: Connection, *, period: str) -> dict[int, str]:
    """Unit id -> state of every closed or final unit month of the period (one light query)."""
    q = select(SCORE_MONTHS.c.unit_id, SCORE_MONTHS.c.state).where(SCORE_MONTHS.c.period == period)
    return {r[0]: r[1] for r in conn.execute(q).all()}
