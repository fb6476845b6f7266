"""Pre-roll: the last few seconds of JPEG frames, bounded in time and in bytes.

Raw 640×480 BGR frames at 15 fps cost ~14 MB/s; JPEG-encoded, ~0.3-0.6 MB/s (docs/benchmarks.md),
so ten seconds of pre-roll fit in a few MB. The byte cap protects the Pi if a scene compresses badly.
"""

from __future__ import annotations

import threading
from collections import deque

from device.camera.frames import Frame


class FrameRing:
    def __init__(self, seconds: float, max_bytes: int) -> None:
        self.seconds, self.max_bytes = seconds, max_bytes
        self._frames: deque[Frame] = deque()
        self._bytes = 0
        self._lock = threading.Lock()
        self.evicted_for_bytes = 0  # frames dropped by the byte cap before their time: a health figure

    def push(self, frame: Frame) -> None:
        with self._lock:
            self._frames.append(frame)
            self._bytes += len(frame.jpeg)
            horizon = frame.mono - self.seconds
            while self._frames and self._frames[0].mono < horizon:
                self._drop()
            while self._bytes > self.max_bytes and len(self._frames) > 1:
                self._drop()
                self.evicted_for_bytes += 1

    def _drop(self) -> None:
        self._bytes -= len(self._frames.popleft().jpeg)

    def since(self, mono: float) -> list[Frame]:
        """Frames captured at or after `mono`, oldest first."""
        with self._lock:
            return [f for f in self._frames if f.mono >= mono]

    @property
    def nbytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._frames)
