"""Clip uploads (docs/protocol.md §10): a signed manifest first, then the bytes in resumable chunks.

Keyword-only data-layer functions, called inside the route's transaction; they know nothing of HTTP.
Bytes in progress are kept in `<clips dir>/incoming/<clip>.part`; the row's `received` is the resume
offset (the file may hold more after a crash between write and commit: the next chunk overwrites it).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, insert, select, update

from motcua.protocol import ProtocolError, verify_payload
from motcua.protocol.messages import ClipManifest, parse_json_strict, validate_clip_manifest
from server.audit import record
from server.clips.storage import ClipStorage
from server.db.models import BOOTS, CLIP_EVENTS, CLIPS, ClipState
from server.db.types import from_ms, utcnow

CONTENT_TYPE = "video/x-matroska"


@dataclass(frozen=True, slots=True)
class UploadingDevice:
    id: str
    secret: bytes
    counter_id: int


@dataclass(frozen=True, slots=True)
class UploadStatus:
    clip: str
    state: str
    offset: int
    size: int
    sha256: str
    error: str | None = None


class ClipRejected(Exception):
    """The upload is refused; the route records it (audit) and answers with `status` and `code`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class OffsetMismatch(Exception):
    """A chunk for another offset (a resume after a lost response): the device continues from `offset`."""

    def __init__(self, offset: int) -> None:
        super().__init__(f"the server has {offset} bytes of this clip: send from there")
        self.offset = offset


def part_path(incoming: Path, clip_id: str) -> Path:
    return incoming / f"{clip_id}.part"


def _status(row: Any) -> UploadStatus:
    return UploadStatus(row.id, str(row.state), int(row.received), int(row.size), row.sha256, row.reject_reason)


def _parse(device: UploadingDevice, manifest: bytes, max_bytes: int) -> ClipManifest:
    try:
        verify_payload(device.secret, manifest)
        parsed = validate_clip_manifest(parse_json_strict(manifest))
    except ProtocolError as exc:
        raise ClipRejected(422, f"manifest_{exc.code}", f"the clip manifest was refused: {exc}") from None
    if parsed.dev != device.id:
        raise ClipRejected(422, "manifest_device", f"the manifest is for device {parsed.dev!r}, not {device.id!r}")
    if parsed.size > max_bytes:
        raise ClipRejected(413, "too_large", f"{parsed.size} bytes is over the server's limit of {max_bytes}; "
                                             "record shorter clips (post_roll_s) or raise clips.max_clip_bytes")
    return parsed


def _times(conn: Connection, device_id: str, m: ClipManifest) -> tuple[datetime | None, datetime | None]:
    """Start and end on the server's clock when the boot has a heartbeat anchor, else the device's (§4)."""
    anchor = conn.execute(select(BOOTS.c.anchor_ms).where(BOOTS.c.device_id == device_id,
                                                          BOOTS.c.epoch == m.ep)).scalar()
    if anchor is not None:
        return from_ms(anchor + m.up0), from_ms(anchor + m.up1)
    if m.ts0 is not None and m.ts1 is not None:
        return from_ms(m.ts0), from_ms(m.ts1)
    return None, None


def accept_manifest(conn: Connection, *, device: UploadingDevice, manifest: bytes, incoming: Path,
                    max_bytes: int) -> UploadStatus:
    """Start (or resume, or confirm) the upload a signed manifest describes; idempotent."""
    m = _parse(device, manifest, max_bytes)
    row = conn.execute(select(CLIPS).where(CLIPS.c.id == m.clip).with_for_update()).first()
    if row is not None:
        if bytes(row.manifest) != manifest or row.device_id != device.id:
            raise ClipRejected(409, "clip_conflict", f"clip {m.clip} was already announced with another manifest")
        if row.state == ClipState.REJECTED:  # a fresh attempt after a mismatch (e.g. a bad read on the device)
            conn.execute(update(CLIPS).where(CLIPS.c.id == m.clip).values(state=ClipState.RECEIVING, received=0))
            part_path(incoming, m.clip).unlink(missing_ok=True)
            return UploadStatus(m.clip, ClipState.RECEIVING.value, 0, m.size, m.sha256)
        return _status(row)
    started, ended = _times(conn, device.id, m)
    conn.execute(insert(CLIPS).values(
        id=m.clip, device_id=device.id, counter_id=device.counter_id, state=ClipState.RECEIVING, manifest=manifest,
        sha256=m.sha256, size=m.size, received=0, epoch=m.ep, started_at=started, ended_at=ended, frames=m.frames,
        width=m.width, height=m.height, privacy=m.privacy, created_at=utcnow()))
    refs = {(ep, seq) for ep, seq in m.events}
    if refs:
        conn.execute(insert(CLIP_EVENTS), [{"clip_id": m.clip, "device_id": device.id, "epoch": ep, "seq": seq}
                                           for ep, seq in sorted(refs)])
    return UploadStatus(m.clip, ClipState.RECEIVING.value, 0, m.size, m.sha256)


def _locked(conn: Connection, device: UploadingDevice, clip_id: str) -> Any:
    row = conn.execute(select(CLIPS).where(CLIPS.c.id == clip_id, CLIPS.c.device_id == device.id)
                       .with_for_update()).first()
    if row is None:
        raise ClipRejected(404, "not_found", f"no upload of clip {clip_id} from this device: PUT its manifest first")
    return row


def upload_status(conn: Connection, *, device: UploadingDevice, clip_id: str) -> UploadStatus:
    """Where an upload stands (the resume offset)."""
    return _status(_locked(conn, device, clip_id))


def _write_at(path: Path, offset: int, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("r+b" if path.exists() else "w+b") as f:
        f.seek(offset)
        f.write(data)
        f.truncate()
        f.flush()
        os.fsync(f.fileno())  # the offset we commit must never promise bytes the disk does not have


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def append_chunk(conn: Connection, *, device: UploadingDevice, clip_id: str, offset: int, data: bytes,
                 incoming: Path, storage: ClipStorage) -> UploadStatus:
    """Append bytes at `offset`; after the last byte, check the SHA-256 and keep the original, or reject it."""
    row = _locked(conn, device, clip_id)
    if row.state == ClipState.COMPLETE:
        return _status(row)
    if row.state == ClipState.REJECTED:
        raise ClipRejected(409, "rejected", f"clip {clip_id} was rejected ({row.reject_reason}); PUT the manifest "
                                            "again to start over")
    if offset != row.received:
        raise OffsetMismatch(int(row.received))
    if offset + len(data) > row.size:
        raise ClipRejected(422, "too_long", f"{offset + len(data)} bytes is more than the manifest's {row.size}")
    part = part_path(incoming, clip_id)
    _write_at(part, offset, data)
    received = offset + len(data)
    conn.execute(update(CLIPS).where(CLIPS.c.id == clip_id).values(received=received))
    if received < row.size:
        return UploadStatus(clip_id, ClipState.RECEIVING.value, received, int(row.size), row.sha256)
    return _complete(conn, row, part, device, storage)


def original_key(device_id: str, clip_id: str, at: datetime) -> str:
    return f"originals/{device_id}/{at:%Y-%m}/{clip_id}.mkv"


def _complete(conn: Connection, row: Any, part: Path, device: UploadingDevice, storage: ClipStorage) -> UploadStatus:
    actual = file_sha256(part)
    if actual != row.sha256:
        why = f"SHA-256 of the received bytes is {actual}, the signed manifest says {row.sha256}"
        conn.execute(update(CLIPS).where(CLIPS.c.id == row.id).values(state=ClipState.REJECTED, received=0,
                                                                       reject_reason=why[:500]))
        part.unlink(missing_ok=True)
        record(conn, actor=f"device:{device.id}", action="clip.reject", target_type="clip", target_id=row.id,
               detail={"code": "hash_mismatch", "message": why})
        return UploadStatus(row.id, ClipState.REJECTED.value, 0, int(row.size), row.sha256, why)
    key = original_key(device.id, row.id, row.created_at)
    storage.put_file(key, part, CONTENT_TYPE)
    conn.execute(update(CLIPS).where(CLIPS.c.id == row.id).values(
        state=ClipState.COMPLETE, original_key=key, completed_at=utcnow(), reject_reason=None))
    record(conn, actor=f"device:{device.id}", action="clip.upload", target_type="clip", target_id=row.id,
           detail={"size": int(row.size), "sha256": row.sha256, "key": key})
    part.unlink(missing_ok=True)
    return UploadStatus(row.id, ClipState.COMPLETE.value, int(row.size), int(row.size), row.sha256)


def record_rejection(conn: Connection, *, device_id: str | None, clip_id: str, code: str, message: str) -> None:
    """Audit a refused upload request (its own transaction: the refused one was rolled back)."""
    record(conn, actor=f"device:{device_id}" if device_id else "unauthenticated", action="clip.reject",
           target_type="clip", target_id=clip_id[:64], detail={"code": code, "message": message[:500]})
