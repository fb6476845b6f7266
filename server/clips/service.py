"""What the HTTP API needs for clips, built once by the composition root and passed to create_app."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine

from server.clips.storage import ClipStorage, make_storage
from server.clips.worker import RenditionWorker
from server.settings import Settings


@dataclass
class ClipService:
    storage: ClipStorage
    incoming: Path  # uploads in progress: always a local folder, whatever the store
    worker: RenditionWorker | None = None

    @classmethod
    def from_settings(cls, settings: Settings, engine: Engine, *, with_worker: bool) -> ClipService:
        storage = make_storage(settings)
        worker = RenditionWorker(engine, storage, kind=settings.clips.rendition) if with_worker else None
        return cls(storage, settings.clips_dir / "incoming", worker)

    def uploaded(self) -> None:
        """A clip is complete: make its rendition now rather than at the next poll."""
        if self.worker is not None:
            self.worker.wake()
