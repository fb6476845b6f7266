"""The kiosk's side of clips: resumable signed uploads, and collecting remote clip requests.

PUT the signed manifest, then PATCH the bytes from the offset it answers with (Upload-Offset header),
HEAD to learn the offset again after a cut. Every request is signed with the device key.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from server.api.device_auth import authenticate_device, offset_header
from server.api.errors import ApiError, body
from server.clips import requests as clip_requests
from server.clips.uploads import (
    ClipRejected,
    OffsetMismatch,
    UploadingDevice,
    UploadStatus,
    accept_manifest,
    append_chunk,
    record_rejection,
    upload_status,
)
from server.db.models import ClipState

router = APIRouter(prefix="/api/v1/device", tags=["device"])


async def _body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "too_large", f"a request body is at most {limit} bytes: send smaller chunks")
    data = b""
    async for piece in request.stream():
        data += piece
        if len(data) > limit:
            raise ApiError(413, "too_large", f"a request body is at most {limit} bytes: send smaller chunks")
    return data


def _out(status: UploadStatus) -> JSONResponse:
    doc = {"clip": status.clip, "state": status.state, "offset": status.offset, "size": status.size,
           "sha256": status.sha256}
    if status.state == ClipState.REJECTED.value:
        return JSONResponse(body("hash_mismatch", f"clip rejected: {status.error}; it was recorded. The kiosk "
                                                  "keeps its copy; PUT the manifest again to retry"), 422)
    return JSONResponse(doc, headers={"Upload-Offset": str(status.offset)})


def _run(request: Request, device: UploadingDevice, clip_id: str, action: Any) -> JSONResponse:
    engine = request.app.state.engine
    try:
        with engine.begin() as conn:
            status = action(conn)
    except OffsetMismatch as exc:
        return JSONResponse(body("offset_mismatch", str(exc), [{"offset": exc.offset}]), 409,
                            headers={"Upload-Offset": str(exc.offset)})
    except ClipRejected as exc:
        with engine.begin() as conn:
            record_rejection(conn, device_id=device.id, clip_id=clip_id, code=exc.code, message=exc.message)
        raise ApiError(exc.status, exc.code, exc.message) from None
    if status.state == ClipState.COMPLETE.value:
        request.app.state.clips.uploaded()
    return _out(status)


@router.put("/clips/{clip_id}", summary="Announce a clip with its signed manifest; answers the resume offset")
async def put_manifest(clip_id: str, request: Request) -> JSONResponse:
    manifest = await _body(request, 8192)
    device = await run_in_threadpool(authenticate_device, request, manifest)
    settings, clips = request.app.state.settings, request.app.state.clips

    def act(conn: Any) -> UploadStatus:
        status = accept_manifest(conn, device=device, manifest=manifest, incoming=clips.incoming,
                                 max_bytes=settings.clips.max_clip_bytes)
        if status.clip != clip_id:
            raise ClipRejected(422, "manifest_clip", f"the manifest is for clip {status.clip}, the URL says {clip_id}")
        return status

    return await run_in_threadpool(_run, request, device, clip_id, act)


@router.patch("/clips/{clip_id}", summary="Append bytes at Upload-Offset; the last chunk verifies the SHA-256")
async def patch_bytes(clip_id: str, request: Request) -> JSONResponse:
    data = await _body(request, request.app.state.settings.clips.max_chunk_bytes)
    device = await run_in_threadpool(authenticate_device, request, data)
    offset = offset_header(request)
    if offset is None:
        raise ApiError(400, "bad_request", "send the byte offset of this chunk in Upload-Offset")
    clips = request.app.state.clips
    return await run_in_threadpool(_run, request, device, clip_id, lambda conn: append_chunk(
        conn, device=device, clip_id=clip_id, offset=offset, data=data, incoming=clips.incoming,
        storage=clips.storage))


@router.head("/clips/{clip_id}", summary="The resume offset (Upload-Offset header)")
async def head_upload(clip_id: str, request: Request) -> Response:
    device = await run_in_threadpool(authenticate_device, request, b"")
    response = await run_in_threadpool(_run, request, device, clip_id, lambda conn: upload_status(
        conn, device=device, clip_id=clip_id))
    offset = response.headers.get("upload-offset")
    return Response(status_code=response.status_code, headers={"Upload-Offset": offset} if offset else None)


@router.get("/clip-requests", summary="Remote clip requests not yet taken by this kiosk")
async def list_requests(request: Request) -> list[dict[str, Any]]:
    device = await run_in_threadpool(authenticate_device, request, b"")

    def read() -> list[dict[str, Any]]:
        with request.app.state.engine.connect() as conn:
            return clip_requests.open_requests(conn, device_id=device.id)

    return await run_in_threadpool(read)


@router.post("/clip-requests/{request_id}/taken", summary="The kiosk started the requested clip")
async def take(request_id: int, request: Request) -> dict[str, Any]:
    device = await run_in_threadpool(authenticate_device, request, await request.body())

    def act() -> bool:
        with request.app.state.engine.begin() as conn:
            return clip_requests.take_request(conn, device_id=device.id, request_id=request_id)

    return {"id": request_id, "taken": await run_in_threadpool(act)}
