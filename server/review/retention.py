"""Clip retention: evidence kept only as long as its purpose needs, and every purge in the audit trail.

Law 91/2025/QH15 (personal data) and GDPR CCTV guidance: keep recordings only as long as the purpose
needs. Here the purpose is a verdict, so a clip is kept while any incident it shows is pending or
contested; deleted `review.dismissed_clip_days` after its incidents were all dismissed; and, when one
was confirmed, kept until that month closes for contests (server/review/months.py). A clip linked to
no review (an incident still unattributed) is kept. The clip's row, its SHA-256 and its audit trail
stay: what was deleted, when and why remains provable.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, and_, select, union_all, update

from server.audit import record
from server.clips.storage import ClipStorage
from server.db.dialect import json_text
from server.db.models import CLIP_EVENTS, CLIPS, EVENTS, REVIEWS, ReviewStatus
from server.db.types import utcnow
from server.review.months import contest_closes_at, period_of
from server.settings import Settings

log = logging.getLogger("motcua.retention")
KEYS = ("rendition_key", "thumbnail_key", "original_key")


@dataclass(frozen=True, slots=True)
class PurgeItem:
    clip_id: str
    reason: str
    reviews: tuple[int, ...]


def _links(conn: Connection) -> dict[str, list[Any]]:
    """Clip id -> the reviews of the incidents it shows (named in the incident, or in the clip's manifest)."""
    cols = (REVIEWS.c.id, REVIEWS.c.status, REVIEWS.c.decided_at, REVIEWS.c.event_time, REVIEWS.c.unit_id)
    clip = json_text(conn, EVENTS.c.body, "clip")
    named = (select(clip.label("clip_id"), *cols).join(EVENTS, EVENTS.c.id == REVIEWS.c.event_id)
             .where(clip.is_not(None)))
    listed = (select(CLIP_EVENTS.c.clip_id.label("clip_id"), *cols).select_from(CLIP_EVENTS)
              .join(EVENTS, and_(EVENTS.c.device_id == CLIP_EVENTS.c.device_id, EVENTS.c.epoch == CLIP_EVENTS.c.epoch,
                                 EVENTS.c.seq == CLIP_EVENTS.c.seq))
              .join(REVIEWS, REVIEWS.c.event_id == EVENTS.c.id))
    out: dict[str, dict[int, Any]] = defaultdict(dict)
    for row in conn.execute(union_all(named, listed)):
        out[row.clip_id][row.id] = row
    return {clip: list(rows.values()) for clip, rows in out.items()}


def _due(conn: Connection, reviews: list[Any], settings: Settings, now: datetime) -> str | None:
    """Why the clip may go now, or None to keep it."""
    keep_dismissed = timedelta(days=settings.review.dismissed_clip_days)
    for r in reviews:
        status = ReviewStatus(r.status)
        if status in (ReviewStatus.PENDING, ReviewStatus.CONTESTED):
            return None
        if status == ReviewStatus.DISMISSED and (r.decided_at is None or now < r.decided_at + keep_dismissed):
            return None
        if status == ReviewStatus.CONFIRMED and now < contest_closes_at(
                conn, period=period_of(r.event_time, settings), settings=settings, unit_id=r.unit_id):
            return None
    if any(r.status == ReviewStatus.CONFIRMED for r in reviews):
        return "confirmed incident; its month has closed for contests"
    return f"dismissed incident(s), {settings.review.dismissed_clip_days} days after the dismissal"


def due_clips(conn: Connection, *, settings: Settings, now: datetime) -> list[PurgeItem]:
    """Clips whose media the retention rules say to delete now."""
    links = _links(conn)
    if not links:
        return []
    alive = set(conn.scalars(select(CLIPS.c.id).where(CLIPS.c.purged_at.is_(None), CLIPS.c.id.in_(sorted(links)))))
    items = []
    for clip_id in sorted(alive):
        why = _due(conn, links[clip_id], settings, now)
        if why:
            items.append(PurgeItem(clip_id, why, tuple(sorted(r.id for r in links[clip_id]))))
    return items


def purge_clip(conn: Connection, storage: ClipStorage, *, item: PurgeItem, actor: str, now: datetime) -> bool:
    """Delete one clip's media and mark it purged (audited); False when someone else already did."""
    row = conn.execute(select(CLIPS).where(CLIPS.c.id == item.clip_id, CLIPS.c.purged_at.is_(None))
                       .with_for_update()).first()
    if row is None:
        return False
    keys = [getattr(row, k) for k in KEYS if getattr(row, k)]
    for key in keys:
        storage.delete(key)  # before the commit: a failed commit leaves a row the next run marks again
    conn.execute(update(CLIPS).where(CLIPS.c.id == item.clip_id).values(purged_at=now, purge_reason=item.reason[:200]))
    record(conn, actor=actor, action="clip.purge", target_type="clip", target_id=item.clip_id,
           detail={"reason": item.reason, "sha256": row.sha256, "size": int(row.size), "deleted": keys,
                   "reviews": list(item.reviews)})
    return True


def purge_due(engine: Engine, storage: ClipStorage, *, settings: Settings, actor: str, dry_run: bool = False,
              progress: Callable[[PurgeItem], None] | None = None, now: datetime | None = None) -> list[PurgeItem]:
    """Purge every clip past retention, one transaction each; returns what was (or would be) purged."""
    at = now or utcnow()
    with engine.connect() as conn:
        items = due_clips(conn, settings=settings, now=at)
    done = []
    for item in items:
        if not dry_run:
            with engine.begin() as conn:
                if not purge_clip(conn, storage, item=item, actor=actor, now=at):
                    continue
        done.append(item)
        if progress is not None:
            progress(item)
    return done


class RetentionTask:
    """`motcua server`'s periodic purge (every `review.purge_every_h` hours) in a background thread."""

    def __init__(self, engine: Engine, storage: ClipStorage, settings: Settings) -> None:
        self.engine, self.storage, self.settings = engine, storage, settings
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="clip-retention", daemon=True)

    def start(self) -> RetentionTask:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        while True:
            self.run_once()
            if self._stop.wait(self.settings.review.purge_every_h * 3600):
                return

    def run_once(self) -> int:
        try:
            done = purge_due(self.engine, self.storage, settings=self.settings, actor="server:retention")
        except Exception:
            log.exception("retention round failed; trying again at the next one")
            return 0
        if done:
            log.info("retention: deleted the media of %d clip(s)", len(done))
        return len(done)
