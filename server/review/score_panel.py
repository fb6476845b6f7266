"""What the incident page shows about the official's month: incidents by verdict and the month score.

The flagged incidents by verdict are what a verdict moves (confirmed ones deduct per the policy's
severity, pending and contested ones keep the month provisional); the score itself comes from the
scoring layer (server/evaluation: live while the month is open, the snapshot once it is closed), so
the reviewer sees the effect of a verdict on the official's month as soon as it is recorded.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, func, select

from server.db.models import OFFICIALS, REVIEWS
from server.db.types import utcnow
from server.evaluation.reads import month_score
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
            "provisional": counts["pending"] + counts["contested"] > 0,
            "score": _score(conn, official_id=official_id, period=period, settings=settings)}


def _score(conn: Connection, *, official_id: int, period: str, settings: Settings) -> dict[str, Any] | None:
    """Total, grade and status of the official's month (None when nothing can be scored yet)."""
    code = conn.execute(select(OFFICIALS.c.code).where(OFFICIALS.c.id == official_id)).scalar_one()
    month = month_score(conn, settings=settings, official_code=code, period=period, now=utcnow())
    if month is None or not month.get("result"):
        return None
    result = month["result"]
    return {"total": result["total"], "grade": result["grade"], "status": month["status"],
            "version": month["version"]}
