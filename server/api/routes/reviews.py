"""Flagged incidents: the review queue, one review, verdicts, contests, and an item's audit trail.

No bulk endpoint on purpose: every verdict names one review and carries its own reason.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection

from server import queries
from server.api.auth import Principal, require
from server.api.errors import ApiError
from server.api.scope import can_see_review, require_unit, unit_of_code
from server.audit_views import entries_for
from server.db.types import from_ms, to_ms, utcnow
from server.review import verdicts
from server.review.months import contest_closes_at, period_of
from server.review.queue import (
    QueueFilter,
    ReviewScope,
    mark_viewed,
    queue_counts,
    queue_page,
    review_detail,
    review_scope,
)
from server.review.score_panel import official_month_panel
from server.review.severities import severities
from server.settings import Settings

router = APIRouter(prefix="/api/v1/reviews", tags=["reviews"])
_CURSOR = re.compile(r"^(\d{1,15})\.(\d{1,12})$")
STATUSES = ("pending", "contested", "confirmed", "dismissed")
_IN = ConfigDict(extra="forbid")


class ConfirmIn(BaseModel):
    model_config = _IN
    severity: str = Field(description="A severity id of the scoring policy ([incidents.deduction])")
    reason: str = Field(min_length=1, max_length=2000, description="Why: kept with the verdict, shown to the official")


class DismissIn(BaseModel):
    model_config = _IN
    reason: str = Field(min_length=1, max_length=2000)
    annul_rating: bool = Field(False, description="Also annul the rating the incident follows (left out of scores)")


class ContestIn(BaseModel):
    model_config = _IN
    reason: str = Field(min_length=1, max_length=2000, description="Why the official disagrees")


class ContestDecisionIn(BaseModel):
    model_config = _IN
    outcome: Literal["uphold", "overturn"]
    reason: str = Field(min_length=1, max_length=2000)
    severity: str | None = Field(None, description="On uphold: a new severity (default: the contested one)")
    annul_rating: bool = Field(False, description="On overturn: also annul the linked rating")


def parse_cursor(value: str | None) -> tuple[datetime, int] | None:
    if value is None:
        return None
    m = _CURSOR.match(value)
    if m is None:
        raise ApiError(422, "invalid_request", "cursor: pass back next_cursor exactly as received")
    return from_ms(int(m[1])), int(m[2])


def queue_filter(who: Principal, conn: Connection, settings: Settings, *, unit: str | None = None,
                 counter: str | None = None, official: str | None = None, status: str | None = None,
                 kind: str | None = None, since: date | None = None, until: date | None = None) -> QueueFilter:
    """The caller's scope and the requested filters; reviewers see their units, an official their own."""
    if unit is not None and unit_of_code(conn, unit) is not None and not who.sees_unit(unit_of_code(conn, unit)):
        raise ApiError(403, "forbidden", f"unit {unit!r} is outside your scope")
    own = None if who.has("review:read") else (who.official_id if who.official_id is not None else -1)
    statuses = None if status == "all" else (tuple(status.split(",")) if status else ("pending", "contested"))
    if statuses and any(s not in STATUSES for s in statuses):
        raise ApiError(422, "invalid_request", f"status: one or more of {', '.join(STATUSES)}, or all")
    zone = settings.zone
    return QueueFilter(units=who.units if own is None else None, official_id=own, unit=unit, counter=counter,
                       official=official, statuses=statuses, kind=kind,
                       since=queries.day_bounds(since, zone)[0] if since else None,
                       until=queries.day_bounds(until, zone)[1] if until else None)


@router.get("", summary="Flagged incidents, oldest first; default status pending,contested")
def list_reviews(request: Request, unit: str | None = None, counter: str | None = None, official: str | None = None,
                 status: str | None = Query(None, description="pending, contested, confirmed, dismissed (comma-"
                                                              "separated) or all"),
                 kind: str | None = None, since: date | None = None, until: date | None = None,
                 cursor: str | None = None, limit: int = Query(50, ge=1, le=200),
                 who: Principal = Depends(require("review:read", "own:read"))) -> dict[str, Any]:  # noqa: B008
    with request.app.state.engine.connect() as conn:
        where = queue_filter(who, conn, request.app.state.settings, unit=unit, counter=counter, official=official,
                             status=status, kind=kind, since=since, until=until)
        items = queue_page(conn, where=where, viewer=who.name, after=parse_cursor(cursor), limit=limit)
        counts = queue_counts(conn, where=where)
    last = items[-1] if len(items) == limit else None
    return {"items": items, "counts": counts,
            "next_cursor": f"{to_ms(last['event_time'])}.{last['id']}" if last else None}


def scope_or_404(conn: Connection, review_id: int) -> ReviewScope:
    scope = review_scope(conn, review_id)
    if scope is None:
        raise ApiError(404, "not_found", f"no review {review_id}")
    return scope


def visible_review(conn: Connection, who: Principal, review_id: int) -> ReviewScope:
    """Whose a review is, if the caller may see it; 404 / 403 otherwise."""
    scope = scope_or_404(conn, review_id)
    if not can_see_review(who, scope.unit_id, scope.official_id):
        raise ApiError(403, "forbidden", "this incident belongs to a unit (or an official) outside your scope")
    return scope


def detail(conn: Connection, who: Principal, review_id: int, settings: Settings) -> dict[str, Any]:
    """A review as the API and the console page show it, with the month panel and the verdict options."""
    visible_review(conn, who, review_id)
    doc = review_detail(conn, review_id=review_id, viewer=who.name)
    assert doc is not None
    review = doc["review"]
    period = period_of(review["event_time"], settings)
    doc["month"] = {"period": period, "contest_until": contest_closes_at(conn, period=period, settings=settings,
                                                                          unit_id=review["unit_id"])}
    doc["severities"] = severities(settings)
    doc["score_panel"] = None if review["official_id"] is None else official_month_panel(
        conn, official_id=review["official_id"], period=period, settings=settings)
    return doc


@router.get("/{review_id}", summary="One flagged incident with its clip, rating, session, device health and steps")
def get_review(review_id: int, request: Request,
               who: Principal = Depends(require("review:read", "own:read"))) -> dict[str, Any]:  # noqa: B008
    with request.app.state.engine.connect() as conn:
        return detail(conn, who, review_id, request.app.state.settings)


@router.post("/{review_id}/viewed", summary="Mark the review as opened by you (kept apart from the verdict)")
def viewed(review_id: int, request: Request,
           who: Principal = Depends(require("review:read", "own:read"))) -> dict[str, Any]:  # noqa: B008
    with request.app.state.engine.begin() as conn:
        visible_review(conn, who, review_id)
        mark_viewed(conn, review_id=review_id, viewer=who.name)
    return {"review": review_id, "viewed": True}


def _decidable(conn: Connection, who: Principal, review_id: int) -> None:
    require_unit(who, scope_or_404(conn, review_id).unit_id)


@router.post("/{review_id}/confirm", summary="Confirm: the incident counts against the official (reason required)")
def confirm(review_id: int, req: ConfirmIn, request: Request,
            who: Principal = Depends(require("review:decide"))) -> dict[str, Any]:  # noqa: B008
    with request.app.state.engine.begin() as conn:
        _decidable(conn, who, review_id)
        return verdicts.confirm(conn, review_id=review_id, severity=req.severity, reason=req.reason,
                                actor=who.name, at=utcnow(), options=severities(request.app.state.settings))


@router.post("/{review_id}/dismiss", summary="Dismiss: unfounded, no deduction; optionally annul the linked rating")
def dismiss(review_id: int, req: DismissIn, request: Request,
            who: Principal = Depends(require("review:decide"))) -> dict[str, Any]:  # noqa: B008
    with request.app.state.engine.begin() as conn:
        _decidable(conn, who, review_id)
        return verdicts.dismiss(conn, review_id=review_id, reason=req.reason, annul_rating=req.annul_rating,
                                actor=who.name, at=utcnow())


def contest_review(conn: Connection, who: Principal, review_id: int, reason: str, settings: Settings) -> dict[str, Any]:
    """The official contests a confirmed verdict on their own incident, while its month is open."""
    scope = scope_or_404(conn, review_id)
    if who.official_id is None or scope.official_id != who.official_id:
        raise ApiError(403, "forbidden", "only the official the incident is attributed to may contest it")
    closes = contest_closes_at(conn, period=period_of(scope.event_time, settings), settings=settings,
                               unit_id=scope.unit_id)
    return verdicts.contest(conn, review_id=review_id, official_id=who.official_id, reason=reason, actor=who.name,
                            at=utcnow(), open_until=closes)


@router.post("/{review_id}/contest", summary="The official contests a confirmed verdict (until the month closes)")
def contest(review_id: int, req: ContestIn, request: Request,
            who: Principal = Depends(require("review:contest"))) -> dict[str, Any]:  # noqa: B008
    with request.app.state.engine.begin() as conn:
        return contest_review(conn, who, review_id, req.reason, request.app.state.settings)


@router.post("/{review_id}/contest-decision", summary="A second reviewer upholds or overturns a contested verdict")
def contest_decision(review_id: int, req: ContestDecisionIn, request: Request,
                     who: Principal = Depends(require("review:decide"))) -> dict[str, Any]:  # noqa: B008
    with request.app.state.engine.begin() as conn:
        _decidable(conn, who, review_id)
        return verdicts.decide_contest(conn, review_id=review_id, uphold=req.outcome == "uphold", reason=req.reason,
                                       actor=who.name, at=utcnow(), options=severities(request.app.state.settings),
                                       severity=req.severity, annul_rating=req.annul_rating)


def item_trail(conn: Connection, review_id: int, clip_ids: list[str]) -> list[dict[str, Any]]:
    """The audit entries of a review and of the clips that show it, oldest first."""
    return entries_for(conn, targets=[("review", str(review_id)), *(("clip", c) for c in clip_ids)])


@router.get("/{review_id}/audit", summary="The audit trail of this review and its clips (views, verdicts, purges)")
def review_audit(review_id: int, request: Request,
                 who: Principal = Depends(require("review:read"))) -> list[dict[str, Any]]:  # noqa: B008
    with request.app.state.engine.connect() as conn:
        visible_review(conn, who, review_id)
        doc = review_detail(conn, review_id=review_id, viewer=who.name)
        assert doc is not None
        return item_trail(conn, review_id, [c["id"] for c in doc["clips"]])
