"""Liveness/readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Is the server able to do its job?")
def healthz(request: Request) -> JSONResponse:
    state: dict[str, Any] = {"status": "ok"}
    try:
        with request.app.state.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        state["database"] = "ok"
    except Exception as exc:
        state.update(status="degraded", database=f"unreachable: {type(exc).__name__}")
    ingest = request.app.state.ingest
    if ingest is None:
        state["ingest"] = "not in this process"
    else:
        state["mqtt"] = "connected" if ingest.bus.connected.is_set() else "disconnected"
        state["ingest_queue"] = ingest.queue.qsize()
        problems = ingest.problems()
        if problems:
            state.update(status="degraded", problems=problems)
    return JSONResponse(state, status_code=200 if state["status"] == "ok" else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.registry), media_type=CONTENT_TYPE_LATEST)
