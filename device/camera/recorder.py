"""Evidence clips around triggers: pre-roll from the ring, post-roll from the live feed.

A trigger while a clip is still being recorded extends that clip (one clip, no duplicated footage)
up to MAX_CLIP_S; after that a new clip starts. Finished clips go to `on_finished`, which must return
quickly: it runs on the capture thread.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from device.camera.frames import Frame
from device.camera.ring import FrameRing

MAX_CLIP_S = 120.0  # bounds one clip's memory (~5 MB/min of JPEG) when triggers keep coming


@dataclass
class RecordingClip:
    id: str
    until: float  # monotonic time at which the post-roll ends
    frames: list[Frame]
    events: list[tuple[int, int]] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)


class ClipRecorder:
    def __init__(self, ring: FrameRing, *, pre_roll_s: float, post_roll_s: float,
                 on_finished: Callable[[RecordingClip], None], clock: Callable[[], float] = time.monotonic) -> None:
        self.ring, self.pre_roll_s, self.post_roll_s = ring, pre_roll_s, post_roll_s
        self.on_finished, self.clock = on_finished, clock
        self._active: RecordingClip | None = None
        self._lock = threading.Lock()

    def trigger(self, kind: str) -> str:
        """Start a clip, or extend the one being recorded; returns the clip id."""
        now = self.clock()
        with self._lock:
            clip = self._active
            if clip is not None and clip.frames and now + self.post_roll_s - clip.frames[0].mono <= MAX_CLIP_S:
                clip.until = max(clip.until, now + self.post_roll_s)
            else:
                if clip is not None:
                    self._finish_locked()
                clip = RecordingClip(uuid.uuid4().hex, now + self.post_roll_s,
                                     self.ring.since(now - self.pre_roll_s))
                self._active = clip
            clip.kinds.append(kind)
            return clip.id

    def attach(self, clip_id: str, event: tuple[int, int]) -> bool:
        """Name an event (ep, seq) the clip shows; False when that clip is no longer recording."""
        with self._lock:
            if self._active is None or self._active.id != clip_id:
                return False
            self._active.events.append(event)
            return True

    def offer(self, frame: Frame) -> None:
        """A new frame from the capture thread: kept while a clip records, which ends once past its post-roll."""
        with self._lock:
            clip = self._active
            if clip is None:
                return
            if frame.mono <= clip.until:
                clip.frames.append(frame)
                return
            self._finish_locked()

    def flush(self) -> None:
        """End the active clip now if its post-roll is over (the camera may have stopped delivering)."""
        with self._lock:
            if self._active is not None and self.clock() > self._active.until:
                self._finish_locked()

    @property
    def recording(self) -> bool:
        return self._active is not None

    def _finish_locked(self) -> None:
        clip, self._active = self._active, None
        if clip is not None and clip.frames:
            self.on_finished(clip)
