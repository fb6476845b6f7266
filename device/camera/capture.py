"""The capture loop, on its own thread: read, JPEG-encode, push to the ring and the recorder, keep pace.

OpenCV releases the interpreter lock while it reads and encodes, so this thread does not stall the
kiosk's web UI; the benchmark (bench/kiosk.py) measures its CPU at 640x480 @ 15 fps on one core.
A failing source is reopened with a backoff, and `health` says so (the kiosk reports it).

`take` (one image in) and `failed` are public so that a camera driven from outside goes through the
same path: the simulator's cameras render frames only around triggers, on simulated time (`mono`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from device.camera.frames import Frame
from device.camera.recorder import ClipRecorder
from device.camera.ring import FrameRing
from device.camera.sources import Source, open_source

log = logging.getLogger("motcua.kiosk.camera")

JPEG_QUALITY = 75  # ~35-45 KB per 640x480 frame: 10 s of pre-roll in ~6 MB
REOPEN_FIRST_S, REOPEN_MAX_S = 1.0, 30.0
STALE_AFTER_S = 2.0  # no frame for this long: the camera is reported failed


@dataclass
class CameraHealth:
    state: str = "starting"  # starting | ok | failed
    frames: int = 0
    failures: int = 0
    last_error: str | None = None
    last_frame_mono: float = 0.0


class CaptureThread:
    def __init__(self, spec: str, *, width: int, height: int, fps: float, ring: FrameRing,
                 recorder: ClipRecorder | None, uptime_ms: Callable[[], int], clock: Callable[[], float] = time.time,
                 opener: Callable[[str, int, int], Source] = open_source,
                 mono: Callable[[], float] = time.monotonic) -> None:
        self.spec, self.width, self.height, self.fps = spec, width, height, fps
        self.ring, self.recorder, self.uptime_ms, self.clock, self.opener = ring, recorder, uptime_ms, clock, opener
        self.mono = mono  # orders frames and measures pre/post-roll: the recorder must share it
        self.health = CameraHealth()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="camera", daemon=True)

    def start(self) -> CaptureThread:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    @property
    def ok(self) -> bool:
        """True while frames are arriving (a trigger can expect footage)."""
        return self.health.state == "ok" and self.mono() - self.health.last_frame_mono < STALE_AFTER_S

    def _run(self) -> None:
        pause = REOPEN_FIRST_S
        while not self._stop.is_set():
            try:
                source = self.opener(self.spec, self.width, self.height)
            except OSError as exc:
                self.failed(str(exc))
                self._stop.wait(pause)
                pause = min(pause * 2, REOPEN_MAX_S)
                continue
            pause = REOPEN_FIRST_S
            try:
                self._pump(source)
            finally:
                source.close()

    def _pump(self, source: Source) -> None:
        interval = 1.0 / self.fps
        due = time.monotonic()
        while not self._stop.is_set():
            img = source.read()
            if img is None:
                self.failed(f"camera source {self.spec!r} stopped delivering frames")
                return
            self.take(img)
            due += interval
            delay = due - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
            elif delay < -interval:
                due = time.monotonic()  # fell behind (slow camera, busy CPU): do not try to catch up in a burst

    def take(self, img: np.ndarray) -> None:
        """One BGR image from the source: JPEG-encoded once, then into the ring and the recording clip."""
        self._take(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])[1].tobytes())

    def _take(self, jpeg: bytes) -> None:
        now = self.mono()
        frame = Frame(now, self.uptime_ms(), int(self.clock() * 1000), jpeg)
        self.ring.push(frame)
        if self.recorder is not None:
            self.recorder.offer(frame)
        h = self.health
        h.frames += 1
        h.last_frame_mono = now
        if h.state != "ok":
            log.info("camera %s delivering frames", self.spec)
        h.state = "ok"

    def failed(self, why: str) -> None:
        """The source gave no frame: report the camera failed and end a clip whose post-roll is over."""
        h = self.health
        h.failures += 1
        if h.state != "failed" or h.last_error != why:
            log.warning("camera failed: %s; retrying", why)
        h.state, h.last_error = "failed", why
        if self.recorder is not None:
            self.recorder.flush()
