"""Evidence clips for people: list, detail (with the incidents, ratings and officials), media, remote requests.

Every read goes through server/clips/access.py, which logs each view and download in the audit trail.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection

from server.api.auth import Principal, require
from server.api.errors import ApiError
from server.api.scope import require_unit, unit_of_clip, unit_of_device, unit_of_official
from server.clips import access
from server.clips.requests import request_clip
from server.credentials import set_credential
from server.review.queue import official_may_view_clip

router = APIRouter(prefix="/api/v1", tags=["clips"])
_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


class ClipRequestIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str | None = Field(None, max_length=280, description="Why: shown in the audit log")


class CredentialIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    secret: str = Field(min_length=4, max_length=128, description="The PIN (4-12 digits) or badge code; never stored")


@router.get("/clips", summary="Clips, newest first; filter by device or by official shown")
def list_clips(request: Request, device: str | None = None, official: str | None = None, cursor: str | None = None,
               limit: int = Query(50, ge=1, le=200),
               who: Principal = Depends(require("read"))) -> dict[str, Any]:  # noqa: B008
    with request.app.state.engine.connect() as conn:
        items = access.clips_page(conn, device_id=device, official_code=official, after=cursor, limit=limit,
                                  units=who.units)
    return {"items": items, "next_cursor": items[-1]["id"] if len(items) == limit else None}


def _clip_unit(conn: Connection, clip_id: str) -> int | None:
    unit = unit_of_clip(conn, clip_id)
    if unit is None:
        raise ApiError(404, "not_found", f"no clip {clip_id}")
    return unit


@router.get("/clips/{clip_id}", summary="One clip with its manifest and the events, officials it is evidence for")
def get_clip(clip_id: str, request: Request,
             who: Principal = Depends(require("read"))) -> dict[str, Any]:  # noqa: B008
    with request.app.state.engine.connect() as conn:
        require_unit(who, _clip_unit(conn, clip_id))
        try:
            return access.clip_detail(conn, clip_id=clip_id)
        except access.ClipNotFound:
            raise ApiError(404, "not_found", f"no clip {clip_id}") from None


def _span(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, length) of a single byte range, None for the whole; 416 when unsatisfiable."""
    if not header:
        return None
    m = _RANGE.match(header.strip())
    if m is None or (not m[1] and not m[2]):
        return None  # multiple or odd ranges: answer with the whole file, as RFC 9110 §14.2 allows
    start = int(m[1]) if m[1] else max(0, size - int(m[2]))  # "bytes=-N" is the last N bytes
    end = min(size - 1, int(m[2])) if m[1] and m[2] else size - 1
    if start >= size or end < start:
        raise ApiError(416, "range_not_satisfiable", f"the file has {size} bytes")
    return start, end - start + 1


def _may_watch(conn: Connection, who: Principal, clip_id: str) -> None:
    """Reviewers of the clip's unit, or the official a verdict on it is against (fairness: the evidence)."""
    unit = _clip_unit(conn, clip_id)
    if who.has("clips:view") and who.sees_unit(unit):
        return
    if who.has("own:read") and who.official_id is not None and \
            official_may_view_clip(conn, official_id=who.official_id, clip_id=clip_id):
        return
    raise ApiError(403, "forbidden", "watching this clip needs the 'clips:view' scope for its unit")


def _log_as(request: Request, download: bool) -> str | None:
    """One audit entry per view or download: the first request (no Range, or from byte 0); the ranges a
    <video> asks for while playing or seeking, or a resumed download, belong to the same access."""
    header = (request.headers.get("range") or "").replace(" ", "")
    if header and not header.startswith("bytes=0-"):
        return None
    return "download" if download else "view"


def _media(request: Request, clip_id: str, kind: str, who: Principal, *, download: bool = False) -> Response:
    engine = request.app.state.engine
    with engine.connect() as conn:
        _may_watch(conn, who, clip_id)
    log = _log_as(request, download)
    with (engine.begin() if log else engine.connect()) as conn:
        try:
            media = access.open_media(conn, request.app.state.clips.storage, clip_id=clip_id, kind=kind,
                                      actor=who.name, log=log)
        except access.ClipPurged as gone:
            raise ApiError(410, "purged", str(gone)) from None
        except (access.ClipNotFound, FileNotFoundError):
            raise ApiError(404, "not_found", f"clip {clip_id} has no {kind} (yet): see its rendition state") from None
    span = _span(request.headers.get("range"), media.size)
    headers = {"Accept-Ranges": "bytes", "Cache-Control": "private, no-store"}
    if download:
        headers["Content-Disposition"] = f'attachment; filename="{clip_id}-{kind}{_suffix(media.content_type)}"'
    if span is None:
        headers["Content-Length"] = str(media.size)
        return StreamingResponse(media.read(0, media.size), media_type=media.content_type, headers=headers)
    start, length = span
    headers.update({"Content-Range": f"bytes {start}-{start + length - 1}/{media.size}",
                    "Content-Length": str(length)})
    return StreamingResponse(media.read(start, length), status_code=206, media_type=media.content_type,
                             headers=headers)


def _suffix(content_type: str) -> str:
    return {"video/mp4": ".mp4", "video/webm": ".webm", "image/jpeg": ".jpg", "video/x-matroska": ".mkv"}.get(
        content_type, "")


@router.get("/clips/{clip_id}/video", summary="The browser rendition (MP4 or WebM); byte ranges supported; "
                                              "?download=1 as a file (every view and download is audited)")
def video(clip_id: str, request: Request, download: bool = False,
          who: Principal = Depends(require("clips:view", "own:read"))) -> Response:  # noqa: B008
    return _media(request, clip_id, "video", who, download=download)


@router.get("/clips/{clip_id}/thumbnail", summary="A JPEG of the clip's middle frame (audited as a view)")
def thumbnail(clip_id: str, request: Request,
              who: Principal = Depends(require("clips:view", "own:read"))) -> Response:  # noqa: B008
    return _media(request, clip_id, "thumbnail", who)


@router.get("/clips/{clip_id}/original", summary="The original as the kiosk sent it (its SHA-256 is signed); audited")
def original(clip_id: str, request: Request, who: Principal = Depends(require("admin"))) -> Response:  # noqa: B008
    return _media(request, clip_id, "original", who, download=True)


@router.post("/devices/{device_id}/clip-requests", status_code=status.HTTP_201_CREATED,
             summary="Ask a kiosk to keep a clip of now (it collects the request within seconds)")
def ask_for_clip(device_id: str, req: ClipRequestIn, request: Request,
                 who: Principal = Depends(require("admin"))) -> dict[str, Any]:  # noqa: B008
    with request.app.state.engine.begin() as conn:
        if unit_of_device(conn, device_id) is not None:
            require_unit(who, unit_of_device(conn, device_id))
        return {"id": request_clip(conn, device_id=device_id, note=req.note, actor=who.name), "device": device_id}


@router.put("/officials/{code}/credentials/{method}", summary="Enrol an official's kiosk PIN or badge (audited)")
def put_credential(code: str, method: str, req: CredentialIn, request: Request,
                   who: Principal = Depends(require("admin"))) -> dict[str, str]:  # noqa: B008
    if method not in ("pin", "badge"):
        raise ApiError(404, "not_found", "method is pin or badge")
    with request.app.state.engine.begin() as conn:
        if unit_of_official(conn, code) is not None:
            require_unit(who, unit_of_official(conn, code))
        set_credential(conn, official_code=code, method=method, secret=req.secret, actor=who.name)  # type: ignore[arg-type]
    return {"official": code, "method": method}
