"""One error body across the API: {"error": {"code": ..., "message": ..., "details": [...]}}."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from server.evaluation.errors import EvaluationError
from server.registry import RegistryError
from server.review.verdicts import ReviewError
from server.sessions import SessionError

STATUS_FOR_KIND = {"not_found": 404, "conflict": 409, "invalid": 422, "forbidden": 403}
CODE_FOR_STATUS = {400: "bad_request", 401: "unauthenticated", 403: "forbidden", 404: "not_found",
                   405: "method_not_allowed", 409: "conflict", 422: "invalid_request", 503: "unavailable"}


class ApiError(Exception):
    """Raised by routes: an HTTP status, a stable code and a message that says what to do."""

    def __init__(self, status: int, code: str, message: str, details: list[Any] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


def body(code: str, message: str, details: list[Any] | None = None) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message}
    if details:
        err["details"] = details
    return {"error": err}


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api(_r: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(body(exc.code, exc.message, exc.details), status_code=exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_r: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = CODE_FOR_STATUS.get(exc.status_code, "error")
        return JSONResponse(body(code, str(exc.detail)), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_r: Request, exc: RequestValidationError) -> JSONResponse:
        details = [{"where": ".".join(str(p) for p in e["loc"]), "problem": e["msg"]} for e in exc.errors()]
        first = details[0] if details else {"where": "request", "problem": "invalid"}
        return JSONResponse(body("invalid_request", f"{first['where']}: {first['problem']}", details), 422)

    @app.exception_handler(RegistryError)
    async def _registry(_r: Request, exc: RegistryError) -> JSONResponse:
        return JSONResponse(body(exc.kind, str(exc)), status_code=STATUS_FOR_KIND.get(exc.kind, 400))

    @app.exception_handler(IntegrityError)
    async def _integrity(_r: Request, _exc: IntegrityError) -> JSONResponse:
        # A unique rule lost a race to a concurrent request (two sign-ins at once, two provisions).
        return JSONResponse(body("conflict", "a concurrent change conflicted with this one; try again"), 409)

    @app.exception_handler(OperationalError)
    async def _busy(_r: Request, exc: OperationalError) -> JSONResponse:
        return JSONResponse(body("unavailable", "the database is busy or unreachable; try again shortly"), 503,
                            headers={"Retry-After": "2"})

    @app.exception_handler(EvaluationError)
    async def _evaluation(_r: Request, exc: EvaluationError) -> JSONResponse:
        return JSONResponse(body(exc.kind, str(exc), exc.details), status_code=STATUS_FOR_KIND.get(exc.kind, 400))

    @app.exception_handler(SessionError)
    async def _session(_r: Request, exc: SessionError) -> JSONResponse:
        return JSONResponse(body(exc.kind, str(exc)), status_code=STATUS_FOR_KIND.get(exc.kind, 400))

    @app.exception_handler(ReviewError)
    async def _review(_r: Request, exc: ReviewError) -> JSONResponse:
        return JSONResponse(body(exc.kind, str(exc)), status_code=STATUS_FOR_KIND.get(exc.kind, 400))
