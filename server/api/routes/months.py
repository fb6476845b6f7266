"""Closing, finalising and amending months over HTTP (scope admin); `motcua month …` does the same.

Closing a province's month takes tens of seconds (docs/benchmarks.md): the request waits for it.
"""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Depends, Path, Request

from server.api.auth import Principal, require
from server.api.score_schemas import AmendedOut, AmendIn, CloseIn, CloseOut, FinalizeIn, FinalizeOut
from server.db.types import utcnow
from server.evaluation import lifecycle
from server.evaluation.periods import PERIOD_PATTERN

router = APIRouter(prefix="/api/v1/months", tags=["months"])
admin = require("admin")
PERIOD = Path(pattern=PERIOD_PATTERN, examples=["2026-03"])


def _wake(request: Request) -> None:
    deliverer = getattr(request.app.state, "webhooks", None)
    if deliverer is not None:
        deliverer.wake()


@router.post("/{period}/close", response_model=CloseOut,
             summary="Score and freeze the month (version 1) for every unit or the ones named")
def close(request: Request, body: CloseIn, period: str = PERIOD,
          who: Principal = Depends(admin)) -> CloseOut:  # noqa: B008
    with request.app.state.engine.begin() as conn:
        report = lifecycle.close_month(conn, settings=request.app.state.settings, period=period, units=body.units,
                                       actor=who.name, now=utcnow(), force_reason=body.force_reason)
    _wake(request)
    return CloseOut.model_validate(asdict(report))


@router.post("/{period}/finalize", response_model=FinalizeOut, summary="Closed unit months become final (immutable)")
def finalize(request: Request, body: FinalizeIn, period: str = PERIOD,
             who: Principal = Depends(admin)) -> FinalizeOut:  # noqa: B008
    with request.app.state.engine.begin() as conn:
        done = lifecycle.finalize_month(conn, period=period, units=body.units, actor=who.name, now=utcnow())
    _wake(request)
    return FinalizeOut(period=period, finalized=done)


@router.post("/{period}/amendments", response_model=list[AmendedOut], status_code=201,
             summary="Correct a final unit month: re-score from today's inputs, new versions with the reason")
def amend(request: Request, body: AmendIn, period: str = PERIOD,
          who: Principal = Depends(admin)) -> list[AmendedOut]:  # noqa: B008
    with request.app.state.engine.begin() as conn:
        done = lifecycle.amend_month(conn, settings=request.app.state.settings, period=period, unit=body.unit,
                                     reason=body.reason, actor=who.name, now=utcnow(), officials=body.officials)
    _wake(request)
    return [AmendedOut.model_validate(asdict(a)) for a in done]
