"""Where frames come from: a camera or stream through OpenCV, or a synthetic picture for tests and demos.

`open_source("synthetic")`, `open_source("0")` (device index), `open_source("/path/file.mp4")`,
`open_source("rtsp://…")`. A source returns BGR frames of the requested size, or None when it failed
(the capture thread then reopens it with a backoff and reports the camera unhealthy).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Protocol

import cv2
import numpy as np


class Source(Protocol):
    def read(self) -> np.ndarray | None: ...

    def close(self) -> None: ...


class SyntheticSource:
    """A clock, a frame counter and moving shapes: changing content that compresses like a real scene."""

    def __init__(self, width: int, height: int, clock: Callable[[], float] = time.time) -> None:
        self.width, self.height, self.clock = width, height, clock
        self.count = 0
        self._background = np.full((height, width, 3), (60, 50, 40), np.uint8)
        # A face-like pattern is not drawn: face blurring is tested with real cascades on a drawn face.

    def read(self) -> np.ndarray:
        self.count += 1
        img = self._background.copy()
        t = self.clock()
        w, h = self.width, self.height
        cx, cy = int(w / 2 + w / 3 * math.cos(t)), int(h / 2 + h / 3 * math.sin(t * 1.3))
        cv2.circle(img, (cx, cy), h // 8, (40, 180, 250), -1)
        x = int((t * 120) % w)
        cv2.rectangle(img, (x, h - h // 5), (x + w // 8, h - h // 12), (230, 230, 230), -1)
        stamp = time.strftime("%H:%M:%S", time.localtime(t)) + f".{int(t * 1000) % 1000:03d}"
        cv2.putText(img, stamp, (16, 48), cv2.FONT_HERSHEY_SIMPLEX, 1.4, (255, 255, 255), 3, cv2.LINE_AA)
        cv2.putText(img, f"#{self.count}", (16, h - 16), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (200, 255, 200), 2)
        return img

    def close(self) -> None:
        pass


class OpenCVSource:
    """A V4L2 device, a file or a network stream (RTSP/HTTP) through cv2.VideoCapture."""

    def __init__(self, spec: str, width: int, height: int) -> None:
        self.spec, self.width, self.height = spec, width, height
        target: int | str = int(spec) if spec.isdigit() else spec
        self._cap = cv2.VideoCapture(target)
        if spec.isdigit():
            self._cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
            self._cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        if not self._cap.isOpened():
            raise OSError(f"cannot open camera source {spec!r}: check the device index, path or URL "
                          "(`v4l2-ctl --list-devices` lists cameras)")

    def read(self) -> np.ndarray | None:
        ok, img = self._cap.read()
        if not ok or img is None:
            return None
        if img.shape[1] != self.width or img.shape[0] != self.height:
            img = cv2.resize(img, (self.width, self.height), interpolation=cv2.INTER_AREA)
        return img

    def close(self) -> None:
        self._cap.release()


def open_source(spec: str, width: int, height: int) -> Source:
    """The source named by `spec`; raises OSError when it cannot be opened."""
    if spec == "synthetic":
        return SyntheticSource(width, height)
    return OpenCVSource(spec, width, height)
