"""Renditions for browsers: the MJPEG original re-encoded to H.264 MP4 (faststart) or VP8 WebM, and a thumbnail.

PyAV's wheels carry libx264 and libvpx. Frames keep their capture times (1 ms time base), so the
rendition lasts exactly as long as what the camera saw. The original is only read.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

THUMB_WIDTH = 320
MS = Fraction(1, 1000)
# Evidence is watched, not broadcast: CRF 26 keeps faces and gestures legible at ~0.5 Mbit/s at 640x480.
H264_OPTIONS = {"crf": "26", "preset": "veryfast"}
VP8_OPTIONS = {"crf": "10", "b": "1M", "deadline": "realtime", "cpu-used": "8"}


@dataclass(frozen=True, slots=True)
class Rendition:
    duration_ms: int
    frames: int


def _output(path: Path, kind: str, width: int, height: int) -> tuple[av.container.OutputContainer, av.VideoStream]:
    if kind == "mp4":
        out = av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"})
        stream = out.add_stream("libx264", rate=15, options=H264_OPTIONS)
    else:
        out = av.open(str(path), "w", format="webm")
        stream = out.add_stream("libvpx", rate=15, options=VP8_OPTIONS)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    stream.codec_context.time_base = MS
    return out, stream


def make_rendition(original: Path, dest: Path, thumbnail: Path, *, kind: str = "mp4") -> Rendition:
    """Write the browser rendition of `original` to `dest` and a JPEG thumbnail of its middle frame."""
    with av.open(str(original)) as src:
        vin = src.streams.video[0]
        frames = list(src.decode(vin))
        ms_per_tick = Fraction(vin.time_base or MS) / MS
    if not frames:
        raise ValueError(f"{original.name} holds no decodable frame")
    t0, last = frames[0].pts or 0, frames[-1].pts or 0
    span_ms = round((last - t0) * ms_per_tick)
    step = round(span_ms / (len(frames) - 1)) if len(frames) > 1 else 66  # the last frame lasts one interval
    out, stream = _output(dest, kind, frames[0].width, frames[0].height)
    previous = -1
    with out:
        for frame in frames:
            picture = frame.reformat(format="yuv420p")
            # Strictly increasing, as the MP4 muxer demands (EINVAL otherwise): a capture thread starved
            # of CPU can stamp two frames with the same millisecond.
            previous = picture.pts = max(previous + 1, round(((frame.pts or 0) - t0) * ms_per_tick))
            picture.time_base = MS
            for packet in stream.encode(picture):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    _thumbnail(frames[len(frames) // 2], thumbnail)
    return Rendition(span_ms + step, len(frames))


def _thumbnail(frame: av.VideoFrame, path: Path) -> None:
    height = round(frame.height * THUMB_WIDTH / frame.width / 2) * 2
    with av.open(str(path), "w", format="image2") as out:
        stream = out.add_stream("mjpeg", rate=1)
        stream.width, stream.height, stream.pix_fmt = THUMB_WIDTH, height, "yuvj420p"
        small = frame.reformat(width=THUMB_WIDTH, height=height, format="yuvj420p")
        small.pts = 0
        for packet in stream.encode(small):
            out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
