"""What the incident page shows about the official's month: the hook where the month score plugs in.

The scoring layer (issue 6) provides an official's provisional month score with its explanation; the
integrator points `official_month_panel` at it. Until then the panel holds what this layer knows: the
month's flagged incidents by verdict, which is what moves that score (confirmed ones deduct per the
policy's severity, pending and contested ones keep it provisional).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, func, select

from server.db.models import REVIEWS
from server.queries import month_bounds
from server.review.severities import severities
from server.settings import Settings


def official_month_panel(conn: Connection, *, official_id: int, period: str, settings: Settings) -> dict[str, Any]:
    """The official's month as the incident page shows it: incidents by verdict and the deduction at stake."""
    start, end = month_bounds(period, settings.zone)
    rows = conn.execute(select(REVIEWS.c.status, REVIEWS.c.severity, func.count())
                        .where(REVIEWS.c.official_id == official_id, REVIEWS.c.event_time >= start,
                               REVIEWS.c.event_time < end)
                        .group_by(REVIEWS.c.status, REVIEWS.c.severity)).all()
    counts = {s: 0 for s in ("pending", "contested", "confirmed", "dismissed")}
    points = severities(settings)
    deducted = sum((points.get(sev or "", 0) * n for status, sev, n in rows if status == "confirmed"), start=0)
    for status, _sev, n in rows:
        counts[str(status)] += int(n)
    return {"period": period, "incidents": counts, "confirmed_deduction": deducted,
            "provisional": counts["pending"] + counts["contested"] > 0, "score": None}
