"""Optional privacy before a clip leaves the kiosk: blur detected faces, black out configured regions.

Applied when a clip is written, not in the ring buffer: frames nobody keeps cost nothing. Faces are
found with the frontal-face Haar cascade that ships with OpenCV, on a half-size grey image (4x fewer
pixels, still finds faces of people standing at a counter).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

DETECT_SCALE = 0.5
PIXEL_BLOCK = 12  # pixelation cell in pixels: unrecognisable at 640x480, yet shows that someone was there


class Privacy:
    def __init__(self, *, blur_faces: bool, regions: Sequence[Sequence[float]] = ()) -> None:
        self.blur_faces = blur_faces
        self.regions = [tuple(r) for r in regions]  # (x, y, w, h) as fractions of the frame
        self._cascade: cv2.CascadeClassifier | None = None
        if blur_faces:
            cascades = cv2.data.haarcascades  # type: ignore[attr-defined]  # shipped data, missing from the stubs
            self._cascade = cv2.CascadeClassifier(cascades + "haarcascade_frontalface_default.xml")
            if self._cascade.empty():
                raise OSError("OpenCV's face cascade is missing: install opencv-python-headless < 5")

    @property
    def label(self) -> str:
        """What the manifest's `privacy` member says was applied."""
        parts = (["faces"] if self.blur_faces else []) + (["regions"] if self.regions else [])
        return "+".join(parts) or "none"

    def apply(self, img: np.ndarray) -> np.ndarray:
        for x, y, w, h in self.regions:
            H, W = img.shape[:2]
            img[int(y * H):int((y + h) * H), int(x * W):int((x + w) * W)] = 0
        if self._cascade is not None:
            for x, y, w, h in self.faces(img):
                img[y:y + h, x:x + w] = _pixelate(img[y:y + h, x:x + w])
        return img

    def faces(self, img: np.ndarray) -> list[tuple[int, int, int, int]]:
        assert self._cascade is not None
        small = cv2.resize(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), None, fx=DETECT_SCALE, fy=DETECT_SCALE)
        found = self._cascade.detectMultiScale(small, scaleFactor=1.1, minNeighbors=4, minSize=(24, 24))
        k = 1 / DETECT_SCALE
        return [(int(x * k), int(y * k), int(w * k), int(h * k)) for x, y, w, h in found]


def _pixelate(roi: np.ndarray) -> np.ndarray:
    h, w = roi.shape[:2]
    small = cv2.resize(roi, (max(1, w // PIXEL_BLOCK), max(1, h // PIXEL_BLOCK)), interpolation=cv2.INTER_LINEAR)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)
