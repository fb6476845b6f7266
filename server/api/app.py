"""The FastAPI application factory: every collaborator comes in as an argument."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine
from starlette.middleware.sessions import SessionMiddleware

from motcua import __version__
from server.api import errors, pages
from server.api.routes import (
    audit,
    clips,
    console_admin,
    console_dashboards,
    console_reviews,
    dashboards,
    device_clips,
    devices,
    health,
    hr,
    months,
    officials,
    quarantine,
    reviews,
    sessions,
    tasks,
    units,
    web,
)
from server.clips.service import ClipService
from server.settings import Settings

if TYPE_CHECKING:
    from server.ingest.service import IngestService

SESSION_MAX_AGE_S = 8 * 3600  # one working day


def create_app(settings: Settings, engine: Engine, *, registry: CollectorRegistry | None = None,
               ingest: IngestService | None = None, clip_service: ClipService | None = None) -> FastAPI:
    """The HTTP API and console. `ingest` is the in-process ingest service, if any (health, config wake-ups);
    `clip_service` the clip store and rendition worker (default: the configured store, no worker)."""
    app = FastAPI(title="motcua API", version=__version__,
                  description="Signed citizen ratings at one-stop counters. Errors always have the shape "
                              '{"error": {"code", "message", "details"?}}.')
    app.state.settings = settings
    app.state.engine = engine
    app.state.registry = registry or (ingest.metrics_registry if ingest else CollectorRegistry())
    app.state.ingest = ingest
    app.state.clips = clip_service or ClipService.from_settings(settings, engine, with_worker=False)
    assert settings.secret_key is not None  # settings validation guarantees it
    # Secure-only cookies when people reach us over HTTPS (behind a TLS proxy in production).
    https = bool(settings.api.public_url and settings.api.public_url.startswith("https://"))
    app.add_middleware(SessionMiddleware, secret_key=settings.secret_key.get_secret_value(),
                       session_cookie="motcua_session", max_age=SESSION_MAX_AGE_S, same_site="lax", https_only=https)
    errors.install(app)
    pages.install(app)
    for module in (health, sessions, officials, quarantine, devices, units, clips, device_clips, reviews, audit,
                   dashboards, web, console_reviews, console_dashboards, console_admin):
        app.include_router(module.router)
    for module in (hr, tasks, months):  # issue 6: scores for HR, task results, the month lifecycle
        app.include_router(module.router)
    app.include_router(sessions.batch_router)
    app.mount("/static", StaticFiles(directory=str(Path(__file__).with_name("static"))), name="static")
    return app
