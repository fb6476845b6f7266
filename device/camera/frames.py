"""One captured frame, already JPEG-encoded: what the ring buffer and the clips hold."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Frame:
    mono: float  # time.monotonic() at capture: orders frames and measures clip durations
    up_ms: int  # device uptime at capture (protocol §3 `up`), for the manifest
    wall_ms: int  # wall clock at capture, Unix ms (meaningful only while the clock is synced)
    jpeg: bytes
