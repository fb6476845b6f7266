"""Console pages of the review workflow: the queue, one incident with its clip and verdict forms, the
official's contest, the second reviewer's decision, and the queue of unattributed events.

Forms post here (CSRF token in a hidden field), call the same data-layer functions as the JSON API and
redirect back (POST/redirect/GET). One review per form: there is no bulk action, on purpose.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import Connection, select

from server.api.auth import Principal
from server.api.errors import ApiError
from server.api.pages import N_, PageError, back, check_form, page_user, render
from server.api.routes import reviews as api
from server.api.routes.reviews import parse_cursor
from server.api.scope import require_unit
from server.db.models import COUNTERS, OFFICIALS, UNITS
from server.db.types import to_ms, utcnow
from server.registry import RegistryError
from server.resolution import attribute_quarantined
from server.review import verdicts
from server.review.queue import mark_viewed, queue_counts, queue_page
from server.review.severities import severities
from server.review.unattributed import in_scope, unattributed_page

router = APIRouter(include_in_schema=False)
PAGE = 50


@contextmanager
def as_page() -> Iterator[None]:
    """API errors (scope, not found, bad filter) shown as an error page instead of JSON."""
    try:
        yield
    except ApiError as exc:
        raise PageError(exc.status, {403: N_("This belongs to a unit (or an official) outside your scope."),
                                     404: N_("Not found.")}.get(exc.status, exc.message)) from None


def _choices(conn: Connection, who: Principal) -> dict[str, list[Any]]:
    """Units, counters and officials the reader may filter by."""
    def scoped(q: Any, column: Any) -> Any:
        return q if who.units is None else q.where(column.in_(sorted(who.units)))
    return {"units": list(conn.execute(scoped(select(UNITS.c.code, UNITS.c.name), UNITS.c.id).order_by(UNITS.c.code))),
            "counters": list(conn.execute(scoped(select(COUNTERS.c.code, COUNTERS.c.name), COUNTERS.c.unit_id)
                                          .order_by(COUNTERS.c.code))),
            "officials": list(conn.execute(scoped(select(OFFICIALS.c.code, OFFICIALS.c.full_name), OFFICIALS.c.unit_id)
                                           .order_by(OFFICIALS.c.code)))}


@router.get("/reviews", response_class=HTMLResponse)
def queue(request: Request, unit: str | None = None, counter: str | None = None, official: str | None = None,
          status: str | None = None, kind: str | None = None, since: date | None = None, until: date | None = None,
          cursor: str | None = None) -> Response:
    who = page_user(request, "review:read")
    filters: dict[str, Any] = {"unit": unit or None, "counter": counter or None, "official": official or None,
                               "status": status or None, "kind": kind or None, "since": since, "until": until}
    with as_page(), request.app.state.engine.connect() as conn:
        where = api.queue_filter(who, conn, request.app.state.settings, **filters)
        items = queue_page(conn, where=where, viewer=who.name, after=parse_cursor(cursor), limit=PAGE)
        counts = queue_counts(conn, where=where)
        choices = _choices(conn, who)
    last = items[-1] if len(items) == PAGE else None
    next_cursor = f"{to_ms(last['event_time'])}.{last['id']}" if last else None
    return render(request, "reviews.html", {"who": who, "items": items, "counts": counts, "filters": filters,
                                            "next_cursor": next_cursor, **choices})


def _contest_state(conn: Connection, doc: dict[str, Any], who: Principal) -> dict[str, bool]:
    review = doc["review"]
    contested_before = any(s["action"] == "contest" for s in doc["steps"])
    mine = who.official_id is not None and who.official_id == review["official_id"]
    return {
        # The same rule as the media route: reviewers of the unit, or the official a verdict is against.
        "can_watch": (who.has("clips:view") and who.sees_unit(review["unit_id"]))
        or (mine and review["status"] in ("confirmed", "contested")),
        "can_decide": who.has("review:decide") and review["status"] == "pending" and review["official_id"] is not None,
        "can_decide_contest": who.has("review:decide") and review["status"] == "contested"
        and review["decided_by"] != who.name,
        "same_reviewer": review["status"] == "contested" and review["decided_by"] == who.name,
        "can_contest": who.has("review:contest") and mine and review["status"] == "confirmed"
        and not contested_before and utcnow() < doc["month"]["contest_until"],
    }


@router.get("/reviews/{review_id}", response_class=HTMLResponse)
def review_page(review_id: int, request: Request, done: str | None = None, error: str | None = None) -> Response:
    who = page_user(request, "review:read", "own:read")
    settings = request.app.state.settings
    engine = request.app.state.engine
    with as_page(), engine.begin() as conn:
        api.visible_review(conn, who, review_id)
        mark_viewed(conn, review_id=review_id, viewer=who.name)  # per-user "viewed", apart from the verdict
    with as_page(), engine.connect() as conn:
        doc = api.detail(conn, who, review_id, settings)
        trail = api.item_trail(conn, review_id, [c["id"] for c in doc["clips"]]) if who.has("review:read") else []
        state = _contest_state(conn, doc, who)
    return render(request, "review.html", {"who": who, "doc": doc, "trail": trail, "done": done, "error": error,
                                           "labels": settings.devices.scale_labels, **state},
                  status=200 if error is None else 409)


def _decide(request: Request, review_id: int, csrf: str, action: Any, *scopes: str) -> Response:
    """Run one verdict function for one review in a transaction; back to the page with what happened."""
    check_form(request, csrf)
    who = page_user(request, *scopes)
    try:
        with as_page(), request.app.state.engine.begin() as conn:
            scope = api.scope_or_404(conn, review_id)
            if "review:decide" in scopes:
                require_unit(who, scope.unit_id)  # (a contest is checked against the official instead)
            outcome = action(conn, who)
    except verdicts.ReviewError as exc:  # rolled back; the page explains the rule in the reader's language
        return back(f"/reviews/{review_id}", error=exc.code)
    return back(f"/reviews/{review_id}", done=outcome["status"])


@router.post("/reviews/{review_id}/confirm")
def confirm_form(review_id: int, request: Request, csrf: str = Form(""), severity: str = Form(""),
                 reason: str = Form("")) -> Response:
    options = severities(request.app.state.settings)
    return _decide(request, review_id, csrf, lambda conn, who: verdicts.confirm(
        conn, review_id=review_id, severity=severity, reason=reason, actor=who.name, at=utcnow(), options=options),
        "review:decide")


@router.post("/reviews/{review_id}/dismiss")
def dismiss_form(review_id: int, request: Request, csrf: str = Form(""), reason: str = Form(""),
                 annul: bool = Form(False)) -> Response:
    return _decide(request, review_id, csrf, lambda conn, who: verdicts.dismiss(
        conn, review_id=review_id, reason=reason, annul_rating=annul, actor=who.name, at=utcnow()), "review:decide")


@router.post("/reviews/{review_id}/contest")
def contest_form(review_id: int, request: Request, csrf: str = Form(""), reason: str = Form("")) -> Response:
    settings = request.app.state.settings
    return _decide(request, review_id, csrf,
                   lambda conn, who: api.contest_review(conn, who, review_id, reason, settings), "review:contest")


@router.post("/reviews/{review_id}/contest-decision")
def contest_decision_form(review_id: int, request: Request, csrf: str = Form(""), outcome: str = Form(""),
                          reason: str = Form(""), severity: str = Form(""), annul: bool = Form(False)) -> Response:
    if outcome not in ("uphold", "overturn"):
        return back(f"/reviews/{review_id}", error="choose_outcome")
    options = severities(request.app.state.settings)
    return _decide(request, review_id, csrf, lambda conn, who: verdicts.decide_contest(
        conn, review_id=review_id, uphold=outcome == "uphold", reason=reason, actor=who.name, at=utcnow(),
        options=options, severity=severity or None, annul_rating=annul), "review:decide")


# --- events waiting for an official ------------------------------------------------------------


@router.get("/unattributed", response_class=HTMLResponse)
def unattributed(request: Request, done: int | None = None, error: str | None = None,
                 after: int = Query(0, ge=0)) -> Response:
    who = page_user(request, "events:attribute")
    with request.app.state.engine.connect() as conn:
        items = unattributed_page(conn, units=who.units, after_id=after, limit=PAGE)
    return render(request, "unattributed.html", {"who": who, "items": items, "done": done, "error": error,
                                                 "next_after": items[-1]["id"] if len(items) == PAGE else None},
                  status=200 if error is None else 422)


@router.post("/unattributed/{qid}")
def attribute_form(qid: int, request: Request, csrf: str = Form(""), official: str = Form(""),
                   reason: str = Form(""), event_time: str = Form("")) -> Response:
    check_form(request, csrf)
    who = page_user(request, "events:attribute")
    settings = request.app.state.settings
    when = None
    if event_time:
        try:
            when = datetime.fromisoformat(event_time).replace(tzinfo=settings.zone)
        except ValueError:
            return back("/unattributed", error="bad_time")
    if len(reason.strip()) < verdicts.REASON_MIN:
        return back("/unattributed", error="reason_required")
    try:
        with request.app.state.engine.begin() as conn:
            if not in_scope(conn, quarantine_id=qid, units=None):
                raise PageError(404, "Not found.")
            if not in_scope(conn, quarantine_id=qid, units=who.units):
                raise PageError(403, "This belongs to a unit (or an official) outside your scope.")
            attribute_quarantined(conn, quarantine_id=qid, official_code=official, reason=reason.strip(),
                                  actor=who.name, zone=settings.zone, event_time=when)
    except RegistryError as exc:
        return back("/unattributed", error={"not_found": "no_official"}.get(exc.kind, "cannot_attribute"))
    return back("/unattributed", done=qid)
