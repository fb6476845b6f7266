"""Writing a clip: the captured JPEGs muxed as-is into Matroska (MJPEG), timed by their capture instants.

No re-encoding on the Pi (unless privacy filters must change pixels): the JPEGs from the ring are the
frames. Matroska keeps each frame's real capture time (1 ms time base), so a dropped frame shows as
a longer one rather than shifting everything after it. The server transcodes to H.264 for browsers.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from device.camera.frames import Frame
from device.camera.privacy import Privacy

JPEG_QUALITY = 75


@dataclass(frozen=True, slots=True)
class WrittenClip:
    path: Path
    size: int
    sha256: str
    frames: int


def _filtered(frames: Sequence[Frame], privacy: Privacy | None) -> list[bytes]:
    if privacy is None or privacy.label == "none":
        return [f.jpeg for f in frames]
    out = []
    for f in frames:
        decoded = cv2.imdecode(np.frombuffer(f.jpeg, np.uint8), cv2.IMREAD_COLOR)
        if decoded is None:
            raise ValueError("a frame of the ring buffer is not a decodable JPEG")
        img = privacy.apply(decoded)
        out.append(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])[1].tobytes())
    return out


def write_clip(frames: Sequence[Frame], path: Path, *, width: int, height: int, fps: float,
               privacy: Privacy | None = None) -> WrittenClip:
    """Write `frames` to `path` (atomically: a .part file renamed after fsync); returns size and SHA-256."""
    part = path.with_suffix(path.suffix + ".part")
    t0 = frames[0].mono
    frame_ms = max(1, round(1000 / fps))
    with av.open(str(part), "w", format="matroska") as out:
        stream = out.add_stream("mjpeg", rate=round(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuvj420p"
        stream.time_base = Fraction(1, 1000)
        for frame, jpeg in zip(frames, _filtered(frames, privacy), strict=True):
            packet = av.Packet(jpeg)
            packet.stream = stream
            packet.time_base = stream.time_base
            packet.pts = packet.dts = round((frame.mono - t0) * 1000)
            packet.duration = frame_ms
            out.mux(packet)
    digest = hashlib.sha256()
    with part.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
        os.fsync(f.fileno())
    part.replace(path)
    return WrittenClip(path, path.stat().st_size, digest.hexdigest(), len(frames))
