"""Officials sign in and out of counters (the queue system, an admin, later the kiosk)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Request, status
from sqlalchemy import Connection, select

from server import sessions
from server.api.auth import Principal, require
from server.api.errors import STATUS_FOR_KIND, ApiError
from server.api.schemas import (
    SessionBatchOut,
    SessionBatchRequest,
    SessionChange,
    SessionOut,
    SignInRequest,
    SignOutRequest,
)
from server.api.scope import require_unit, unit_of_counter
from server.db.models import COUNTERS, OFFICIALS, SESSIONS
from server.db.types import utcnow
from server.registry import RegistryError, counter_id
from server.sessions import SessionError

router = APIRouter(prefix="/api/v1/counters", tags=["sessions"])
batch_router = APIRouter(prefix="/api/v1/sessions", tags=["sessions"])


def _out(conn: Connection, view: sessions.SessionView) -> SessionOut:
    row = conn.execute(select(COUNTERS.c.code, OFFICIALS.c.code.label("official"))
                       .select_from(SESSIONS).join(COUNTERS, COUNTERS.c.id == SESSIONS.c.counter_id)
                       .join(OFFICIALS, OFFICIALS.c.id == SESSIONS.c.official_id).where(SESSIONS.c.id == view.id)).one()
    return SessionOut(id=view.id, counter=row.code, official=row.official, started_at=view.started_at,
                      ended_at=view.ended_at)


def _wake_configs(request: Request) -> None:
    ingest = request.app.state.ingest
    if ingest is not None and ingest.configs is not None:
        ingest.configs.wake()  # the counter's display should change now, not at the next poll


@router.post("/{code}/sign-in", status_code=status.HTTP_201_CREATED, response_model=SessionOut,
             summary="An official starts serving at this counter")
def sign_in(code: str, req: SignInRequest, request: Request,
            who: Principal = Depends(require("sessions:write"))) -> SessionOut:  # noqa: B008
    now = utcnow()
    with request.app.state.engine.begin() as conn:
        if unit_of_counter(conn, code) is not None:
            require_unit(who, unit_of_counter(conn, code))
        official = conn.execute(select(OFFICIALS.c.id).where(OFFICIALS.c.code == req.official)).scalar()
        if official is None:
            raise ApiError(404, "not_found", f"no official {req.official!r}")
        view = sessions.sign_in(conn, counter_id=counter_id(conn, code), official_id=official, at=req.at or now,
                                now=now, actor=who.name)
        out = _out(conn, view)
    _wake_configs(request)
    return out


@router.post("/{code}/sign-out", response_model=SessionOut, summary="The official at this counter stops serving")
def sign_out(code: str, req: SignOutRequest, request: Request,
             who: Principal = Depends(require("sessions:write"))) -> SessionOut:  # noqa: B008
    now = utcnow()
    with request.app.state.engine.begin() as conn:
        if unit_of_counter(conn, code) is not None:
            require_unit(who, unit_of_counter(conn, code))
        view = sessions.sign_out(conn, counter_id=counter_id(conn, code), at=req.at or now, now=now, actor=who.name)
        out = _out(conn, view)
    _wake_configs(request)
    return out


def _apply(conn: Connection, who: Principal, change: SessionChange, now: datetime) -> tuple[int, SessionOut]:
    """One change of a batch, as the single endpoints do it; raises what they would answer."""
    unit = unit_of_counter(conn, change.counter)
    if unit is not None:
        require_unit(who, unit)
    counter = counter_id(conn, change.counter)
    if change.action == "sign_out":
        return 200, _out(conn, sessions.sign_out(conn, counter_id=counter, at=change.at or now, now=now,
                                                 actor=who.name))
    if not change.official:
        raise ApiError(422, "invalid_request", "a sign_in needs the official's code")
    official = conn.execute(select(OFFICIALS.c.id).where(OFFICIALS.c.code == change.official)).scalar()
    if official is None:
        raise ApiError(404, "not_found", f"no official {change.official!r}")
    view = sessions.sign_in(conn, counter_id=counter, official_id=official, at=change.at or now, now=now,
                            actor=who.name)
    return 201, _out(conn, view)


@batch_router.post("/batch", response_model=SessionBatchOut,
                   summary="Many sign-ins and sign-outs at once (a queue system's shift change), in order")
def batch(req: SessionBatchRequest, request: Request,
          who: Principal = Depends(require("sessions:write"))) -> SessionBatchOut:  # noqa: B008
    """Each change answers as its single call would; they share one transaction, one commit and one seal
    of the audit chain, which is most of what a single call costs: a province opening at 07:30 sends 500."""
    now = utcnow()
    results: list[dict[str, Any]] = []
    with request.app.state.engine.begin() as conn:
        # Every counter of the batch, locked at once in id order, the order ingest share-locks them in
        # (SessionIndex.load): locking them change by change could close a cycle with an ingest batch.
        conn.execute(select(COUNTERS.c.id).where(COUNTERS.c.code.in_(sorted({c.counter for c in req.changes})))
                     .order_by(COUNTERS.c.id).with_for_update(key_share=True))
        for change in req.changes:
            try:
                with conn.begin_nested():  # a change that fails leaves nothing behind, and the others stand
                    code, out = _apply(conn, who, change, now)
                results.append({"status": code, "session": out})
            except ApiError as exc:
                results.append({"status": exc.status, "error": {"code": exc.code, "message": exc.message}})
            except (SessionError, RegistryError) as exc:
                results.append({"status": STATUS_FOR_KIND.get(exc.kind, 400),
                                "error": {"code": exc.kind, "message": str(exc)}})
    _wake_configs(request)
    return SessionBatchOut.model_validate({"results": results})
