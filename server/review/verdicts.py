"""Verdicts on flagged incidents, one at a time (no bulk decisions), each with a reason, each recorded.

    pending ──confirm(severity)──► confirmed ──contest (the official, once, month open)──► contested
       │                               ▲                                                     │
       └──dismiss(annul rating?)──► dismissed ◄──overturn (a second reviewer)────────────────┤
                                       confirmed ◄──uphold (a second reviewer)───────────────┘

Every step goes to `review_steps` and to the audit trail in the caller's transaction. The `reviews` row
always holds the verdict in force; the scoring layer reads only that (server/db/models.py: Review).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, insert, select, update

from server.audit import record
from server.db.models import EVENTS, REVIEW_STEPS, REVIEWS, ReviewStatus

REASON_MIN = 5  # a word or two at least: "unfounded" alone says nothing to the person who reads it later
REASON_MAX = 2000


class ReviewError(Exception):
    """A verdict that cannot be given; `kind` maps to an HTTP status in the API, `code` names the rule
    (the console shows its translated explanation)."""

    def __init__(self, kind: str, message: str, code: str) -> None:
        super().__init__(message)
        self.kind = kind  # "not_found" | "conflict" | "invalid" | "forbidden"
        self.code = code


def _reason(reason: str) -> str:
    text = reason.strip()
    if len(text) < REASON_MIN:
        raise ReviewError("invalid", f"give the reason for the decision ({REASON_MIN} characters or more): "
                                     "it is kept with the verdict and shown to the official", "reason_required")
    return text[:REASON_MAX]


def locked_review(conn: Connection, review_id: int) -> Any:
    """The review row, locked until commit so two reviewers cannot decide it at once."""
    row = conn.execute(select(REVIEWS).where(REVIEWS.c.id == review_id).with_for_update()).first()
    if row is None:
        raise ReviewError("not_found", f"no review {review_id}", "not_found")
    return row


def _require(row: Any, *wanted: ReviewStatus) -> None:
    if row.status not in wanted:
        allowed = " or ".join(w.value for w in wanted)
        raise ReviewError("conflict", f"review {row.id} is {row.status}; this needs it {allowed} "
                                      "(reload the page: someone may have decided it meanwhile)", "wrong_status")


def _linked_rating(conn: Connection, event_id: int) -> int | None:
    """The rating an incident follows (its `ref`, protocol §3.2), if stored."""
    event = conn.execute(select(EVENTS.c.device_id, EVENTS.c.body).where(EVENTS.c.id == event_id)).one()
    ref = event.body.get("ref") if isinstance(event.body, dict) else None
    if not ref:
        return None
    return conn.execute(select(EVENTS.c.id).where(EVENTS.c.device_id == event.device_id, EVENTS.c.epoch == ref[0],
                                                  EVENTS.c.seq == ref[1], EVENTS.c.typ == "rating")).scalar()


def _step(conn: Connection, row: Any, *, action: str, to: ReviewStatus, actor: str, at: datetime, reason: str,
          severity: str | None = None, annulled: int | None = None) -> dict[str, Any]:
    conn.execute(insert(REVIEW_STEPS).values(review_id=row.id, at=at, actor=actor, action=action,
                                             from_status=str(row.status), to_status=to.value, severity=severity,
                                             annulled_event_id=annulled, reason=reason))
    detail = {"event_id": row.event_id, "official_id": row.official_id, "from": str(row.status), "to": to.value,
              "severity": severity, "annulled_event_id": annulled, "reason": reason}
    record(conn, actor=actor, action=f"review.{action}", target_type="review", target_id=row.id, detail=detail)
    return {"review": row.id, "status": to.value, "severity": severity, "annulled_event_id": annulled}


def _severity(severity: str | None, options: Mapping[str, Decimal]) -> str:
    if severity not in options:
        raise ReviewError("invalid", f"choose a severity of the scoring policy: {', '.join(options)}",
                          "bad_severity")
    return str(severity)


def _annulled(conn: Connection, row: Any, annul: bool) -> int | None:
    if not annul:
        return None
    rating = _linked_rating(conn, row.event_id)
    if rating is None:
        raise ReviewError("invalid", "this incident refers to no stored rating; there is nothing to annul",
                          "no_rating")
    return rating


def confirm(conn: Connection, *, review_id: int, severity: str | None, reason: str, actor: str, at: datetime,
            options: Mapping[str, Decimal]) -> dict[str, Any]:
    """The incident counts against the official, with a policy severity."""
    row = locked_review(conn, review_id)
    _require(row, ReviewStatus.PENDING)
    if row.official_id is None:
        raise ReviewError("conflict", "the incident is not attributed to an official: assign it first",
                          "not_attributed")
    chosen, why = _severity(severity, options), _reason(reason)
    conn.execute(update(REVIEWS).where(REVIEWS.c.id == row.id).values(
        status=ReviewStatus.CONFIRMED, severity=chosen, annulled_event_id=None, decided_by=actor, decided_at=at,
        reason=why))
    return _step(conn, row, action="confirm", to=ReviewStatus.CONFIRMED, actor=actor, at=at, reason=why,
                 severity=chosen)


def dismiss(conn: Connection, *, review_id: int, reason: str, annul_rating: bool, actor: str,
            at: datetime) -> dict[str, Any]:
    """The incident is unfounded: no deduction; optionally the rating it follows is annulled."""
    row = locked_review(conn, review_id)
    _require(row, ReviewStatus.PENDING)
    why, annulled = _reason(reason), _annulled(conn, row, annul_rating)
    conn.execute(update(REVIEWS).where(REVIEWS.c.id == row.id).values(
        status=ReviewStatus.DISMISSED, severity=None, annulled_event_id=annulled, decided_by=actor, decided_at=at,
        reason=why))
    return _step(conn, row, action="dismiss", to=ReviewStatus.DISMISSED, actor=actor, at=at, reason=why,
                 annulled=annulled)


def contest(conn: Connection, *, review_id: int, official_id: int, reason: str, actor: str, at: datetime,
            open_until: datetime) -> dict[str, Any]:
    """The official whose incident it is contests the confirmed verdict (once, before the month closes)."""
    row = locked_review(conn, review_id)
    if row.official_id != official_id:
        raise ReviewError("forbidden", "only the official the incident is attributed to may contest it",
                          "not_yours")
    _require(row, ReviewStatus.CONFIRMED)
    if at >= open_until:
        raise ReviewError("conflict", f"the month closed for contests on {open_until.isoformat()}",
                          "month_closed")
    earlier = conn.execute(select(REVIEW_STEPS.c.id).where(REVIEW_STEPS.c.review_id == row.id,
                                                           REVIEW_STEPS.c.action == "contest")).first()
    if earlier is not None:
        raise ReviewError("conflict", "this verdict was contested once already and decided by a second reviewer",
                          "contested_once")
    why = _reason(reason)
    conn.execute(update(REVIEWS).where(REVIEWS.c.id == row.id).values(status=ReviewStatus.CONTESTED))
    return _step(conn, row, action="contest", to=ReviewStatus.CONTESTED, actor=actor, at=at, reason=why,
                 severity=row.severity)


def decide_contest(conn: Connection, *, review_id: int, uphold: bool, reason: str, actor: str, at: datetime,
                   options: Mapping[str, Decimal], severity: str | None = None,
                   annul_rating: bool = False) -> dict[str, Any]:
    """A second reviewer (never the one who confirmed) upholds the verdict or overturns it."""
    row = locked_review(conn, review_id)
    _require(row, ReviewStatus.CONTESTED)
    if row.decided_by == actor:
        raise ReviewError("forbidden", "you gave the verdict being contested: a second reviewer must decide",
                          "same_reviewer")
    why = _reason(reason)
    if uphold:
        chosen = _severity(severity or row.severity, options)
        values: dict[str, Any] = {"status": ReviewStatus.CONFIRMED, "severity": chosen, "annulled_event_id": None}
        to, annulled = ReviewStatus.CONFIRMED, None
    else:
        chosen, annulled = None, _annulled(conn, row, annul_rating)
        values = {"status": ReviewStatus.DISMISSED, "severity": None, "annulled_event_id": annulled}
        to = ReviewStatus.DISMISSED
    conn.execute(update(REVIEWS).where(REVIEWS.c.id == row.id).values(**values, decided_by=actor, decided_at=at,
                                                                      reason=why))
    return _step(conn, row, action="uphold" if uphold else "overturn", to=to, actor=actor, at=at, reason=why,
                 severity=chosen, annulled=annulled)
