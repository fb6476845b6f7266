"""Reading clips: every read of a clip's metadata or media goes through this module.

`open_media` is the one place that hands out a clip's bytes: it writes the access log (who viewed or
downloaded which clip, in the hash-chained audit trail).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, or_, select

from server.audit import record
from server.clips.storage import ClipStorage
from server.db.dialect import json_text
from server.db.models import CLIP_EVENTS, CLIPS, COUNTERS, EVENTS, OFFICIALS, ClipState

MEDIA = {"video": ("rendition_key", None), "thumbnail": ("thumbnail_key", "image/jpeg"),
         "original": ("original_key", "video/x-matroska")}
RENDITION_TYPES = {".mp4": "video/mp4", ".webm": "video/webm"}


class ClipNotFound(LookupError):
    pass


def _event_query() -> Any:
    return (select(EVENTS.c.id, EVENTS.c.typ, EVENTS.c.epoch, EVENTS.c.seq, EVENTS.c.event_time, EVENTS.c.status,
                   EVENTS.c.rating, EVENTS.c.levels, EVENTS.c.body, OFFICIALS.c.code.label("official"),
                   OFFICIALS.c.full_name.label("official_name"))
            .outerjoin(OFFICIALS, OFFICIALS.c.id == EVENTS.c.official_id))


def _body_clip(conn: Connection) -> Any:
    """The `clip` member of an event body, in the backend's JSON dialect."""
    return json_text(conn, EVENTS.c.body, "clip")


def _linked_events(conn: Connection, clip_id: str, device_id: str) -> list[dict[str, Any]]:
    """Events the clip shows: named in its signed manifest, incidents naming it, and the ratings they refer to."""
    keys = {(r.epoch, r.seq) for r in conn.execute(select(CLIP_EVENTS.c.epoch, CLIP_EVENTS.c.seq)
                                                    .where(CLIP_EVENTS.c.clip_id == clip_id))}
    mine = EVENTS.c.device_id == device_id
    incidents = [dict(r._mapping) for r in conn.execute(_event_query().where(
        mine, EVENTS.c.typ == "incident", _body_clip(conn) == clip_id))]
    keys |= {(e["epoch"], e["seq"]) for e in incidents}
    keys |= {(e["body"]["ref"][0], e["body"]["ref"][1]) for e in incidents if e["body"].get("ref")}
    if not keys:
        return []
    rows = conn.execute(_event_query().where(mine, or_(*(and_(EVENTS.c.epoch == ep, EVENTS.c.seq == seq)
                                                           for ep, seq in sorted(keys))))
                        .order_by(EVENTS.c.epoch, EVENTS.c.seq))
    return [dict(r._mapping) for r in rows]


def _summary(row: Any) -> dict[str, Any]:
    return {"id": row.id, "device": row.device_id, "counter": row.counter, "state": row.state,
            "size": row.size, "sha256": row.sha256, "received": row.received, "started_at": row.started_at,
            "ended_at": row.ended_at, "frames": row.frames, "width": row.width, "height": row.height,
            "privacy": row.privacy, "rendition": row.rendition_state, "duration_ms": row.duration_ms,
            "reject_reason": row.reject_reason, "created_at": row.created_at, "completed_at": row.completed_at}


def _select() -> Any:
    return select(CLIPS, COUNTERS.c.code.label("counter")).join(COUNTERS, COUNTERS.c.id == CLIPS.c.counter_id)


def clip_detail(conn: Connection, *, clip_id: str) -> dict[str, Any]:
    """A clip with the incidents, ratings and officials it is evidence for."""
    row = conn.execute(_select().where(CLIPS.c.id == clip_id)).first()
    if row is None:
        raise ClipNotFound(clip_id)
    events = _linked_events(conn, clip_id, row.device_id)
    officials = sorted({e["official"] for e in events if e["official"]})
    return {**_summary(row), "manifest": bytes(row.manifest).decode("utf-8"), "events": events,
            "officials": officials}


def clips_page(conn: Connection, *, device_id: str | None, official_code: str | None, after: str | None,
               limit: int, units: frozenset[int] | None = None) -> list[dict[str, Any]]:
    """Clips newest first, optionally for one device or one official (through the events they show);
    `units` limits them to those units' counters (None: every unit)."""
    q = _select()
    if units is not None:
        q = q.where(COUNTERS.c.unit_id.in_(sorted(units)) if units else CLIPS.c.id.is_(None))
    if device_id:
        q = q.where(CLIPS.c.device_id == device_id)
    if official_code:
        shown = (select(CLIP_EVENTS.c.clip_id).join(EVENTS, and_(
            EVENTS.c.device_id == CLIP_EVENTS.c.device_id, EVENTS.c.epoch == CLIP_EVENTS.c.epoch,
            EVENTS.c.seq == CLIP_EVENTS.c.seq)).join(OFFICIALS, OFFICIALS.c.id == EVENTS.c.official_id)
            .where(OFFICIALS.c.code == official_code))
        q = q.where(CLIPS.c.id.in_(shown))
    if after:
        q = q.where(CLIPS.c.id < after)
    return [_summary(r) for r in conn.execute(q.order_by(CLIPS.c.id.desc()).limit(limit))]


@dataclass(frozen=True, slots=True)
class Media:
    key: str
    size: int
    content_type: str
    storage: ClipStorage

    def read(self, start: int, length: int) -> Iterator[bytes]:
        return self.storage.read(self.key, start, length)


class ClipPurged(LookupError):
    """The clip's media were deleted under the retention rules; its record and hashes remain."""

    def __init__(self, clip_id: str, when: Any, reason: str | None) -> None:
        super().__init__(f"clip {clip_id}'s media were deleted on {when:%Y-%m-%d} ({reason}); its record, hash and "
                         "audit trail remain")


def open_media(conn: Connection, storage: ClipStorage, *, clip_id: str, kind: str, actor: str,
               log: str | None = None) -> Media:
    """The bytes of a clip's rendition, thumbnail or original, for `actor`. With `log` ("view" or
    "download"), the access goes into the audit trail in the caller's transaction: the access log."""
    column, content_type = MEDIA[kind]
    row = conn.execute(select(CLIPS.c.state, CLIPS.c[column], CLIPS.c.purged_at, CLIPS.c.purge_reason)
                       .where(CLIPS.c.id == clip_id)).first()
    if row is not None and row.purged_at is not None:
        raise ClipPurged(clip_id, row.purged_at, row.purge_reason)
    if row is None or row.state != ClipState.COMPLETE or row[1] is None:
        raise ClipNotFound(clip_id)
    key = row[1]
    kind_type = content_type or RENDITION_TYPES.get(key[key.rfind("."):], "application/octet-stream")
    media = Media(key, storage.size(key), kind_type, storage)
    if log is not None:
        record(conn, actor=actor, action=f"clip.{log}", target_type="clip", target_id=clip_id,
               detail={"media": kind, "bytes": media.size})
    return media
