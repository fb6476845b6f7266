"""The touch UI's local web app: the page, its assets and a small JSON API, all served by the kiosk.

Bound to localhost: only the Pi's own browser (in kiosk mode) talks to it. Nothing is loaded from
the internet, so the screen works whether or not the server is reachable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field

from device.kiosk.kiosk import Kiosk

STATIC = Path(__file__).with_name("static")


class RatingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    value: int = Field(ge=1, le=10)
    reasons: list[str] = Field(default_factory=list, max_length=8)


class ComplaintIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ref: tuple[int, int] | None = None
    note: str | None = Field(None, max_length=280)


class SessionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: str = Field(pattern="^(in|out)$")
    official: str = Field(min_length=1, max_length=32, pattern=r"^[\x21-\x7e]+$")
    method: str = Field(pattern="^(pin|badge)$")
    secret: str = Field(min_length=4, max_length=128)


def create_kiosk_app(kiosk: Kiosk) -> FastAPI:
    app = FastAPI(title="motcua kiosk", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    @app.get("/api/state")
    def state() -> dict[str, Any]:
        return kiosk.state()

    @app.get("/api/health")
    def health() -> dict[str, Any]:
        return kiosk.health()

    @app.post("/api/rating")
    def rating(req: RatingIn) -> dict[str, Any]:
        try:
            return kiosk.rate(req.value, req.reasons)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None

    @app.post("/api/complaint")
    def complaint(req: ComplaintIn) -> dict[str, Any]:
        return kiosk.incident("complaint", ref=req.ref, note=req.note)

    @app.post("/api/trigger")
    def trigger() -> dict[str, Any]:
        """A local manual trigger (a staff button or key): keep a clip of now."""
        return kiosk.incident("manual")

    @app.post("/api/session")
    async def session(req: SessionIn) -> dict[str, Any]:
        # PBKDF2 takes ~0.1 s on a Pi: off the event loop, so the screen keeps answering.
        return await run_in_threadpool(kiosk.session, req.action, official=req.official, method=req.method,
                                       secret=req.secret)

    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    return app
