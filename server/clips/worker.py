"""Background renditions: completed clips get a browser rendition and a thumbnail, one at a time.

A thread in the server process, woken by uploads and polling as a safety net (a clip completed by
another process, or left pending by a restart). A clip that cannot be transcoded is marked failed
with the error; its original stays available.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from pathlib import Path

from sqlalchemy import Engine, select, update

from server.clips.storage import ClipStorage
from server.clips.transcode import make_rendition
from server.db.models import CLIPS, ClipState, RenditionState

log = logging.getLogger("motcua.clips")

POLL_S = 5.0
CONTENT_TYPES = {"mp4": "video/mp4", "webm": "video/webm"}


class RenditionWorker:
    def __init__(self, engine: Engine, storage: ClipStorage, *, kind: str = "mp4") -> None:
        self.engine, self.storage, self.kind = engine, storage, kind
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.done = 0

    def start(self) -> RenditionWorker:
        self._thread = threading.Thread(target=self._run, name="clip-renditions", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(30)

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self.run_once():
                    continue
            except Exception:
                log.exception("rendition round failed; retrying at the next poll")
            self._wake.wait(POLL_S)
            self._wake.clear()

    def run_once(self) -> bool:
        """Make the rendition of one pending clip; False when none is pending."""
        with self.engine.connect() as conn:
            row = conn.execute(select(CLIPS.c.id, CLIPS.c.original_key, CLIPS.c.device_id, CLIPS.c.created_at)
                               .where(CLIPS.c.state == ClipState.COMPLETE,
                                      CLIPS.c.rendition_state == RenditionState.PENDING)
                               .order_by(CLIPS.c.completed_at).limit(1)).first()
        if row is None:
            return False
        self._render(row.id, row.original_key, f"{row.device_id}/{row.created_at:%Y-%m}")
        return True

    def _render(self, clip_id: str, original: str, folder: str) -> None:
        values: dict[str, object]
        with tempfile.TemporaryDirectory(prefix="motcua-clip-") as tmp:
            src, dest, thumb = Path(tmp) / "original.mkv", Path(tmp) / f"r.{self.kind}", Path(tmp) / "t.jpg"
            try:
                self.storage.fetch(original, src)
                made = make_rendition(src, dest, thumb, kind=self.kind)
            except Exception as exc:  # a broken original must not stop the worker: say why on the clip
                log.warning("clip %s: no rendition (%s: %s)", clip_id, type(exc).__name__, exc)
                values = {"rendition_state": RenditionState.FAILED, "rendition_error": f"{exc}"[:500]}
            else:
                rkey, tkey = f"renditions/{folder}/{clip_id}.{self.kind}", f"thumbnails/{folder}/{clip_id}.jpg"
                self.storage.put_file(rkey, dest, CONTENT_TYPES[self.kind])
                self.storage.put_file(tkey, thumb, "image/jpeg")
                values = {"rendition_state": RenditionState.DONE, "rendition_key": rkey, "thumbnail_key": tkey,
                          "duration_ms": made.duration_ms}
        with self.engine.begin() as conn:
            conn.execute(update(CLIPS).where(CLIPS.c.id == clip_id).values(**values))
        self.done += 1
