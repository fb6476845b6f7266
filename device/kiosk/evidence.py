"""The kiosk's camera side: capture, pre-roll ring, clips around triggers, saved and signed for upload.

Finished clips are written by their own thread (muxing, and face blurring when enabled, take time
the capture loop must not lose), then hashed, described by a signed manifest and queued for upload.

A `CameraClock` says where frames get their times: on a kiosk, the machine's clocks and a capture
thread; in the simulator, simulated time and frames rendered from outside (`CaptureThread.take`).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from device.camera.capture import CaptureThread
from device.camera.privacy import Privacy
from device.camera.recorder import ClipRecorder, RecordingClip
from device.camera.ring import FrameRing
from device.camera.writer import write_clip
from device.kiosk.clipstore import ClipStore
from device.kiosk.config import KioskConfig
from motcua.protocol import encode_clip_manifest

log = logging.getLogger("motcua.kiosk.camera")


@dataclass(frozen=True)
class CameraClock:
    """The times a camera's frames carry, and who captures them."""

    mono: Callable[[], float] = time.monotonic  # orders frames, measures pre/post-roll (ring, recorder, health)
    wall: Callable[[], float] = time.time  # the frame's wall clock (manifest ts0/ts1 when synced)
    uptime_ms: Callable[[], int] | None = None  # the frame's uptime (manifest up0/up1); None: the device link's
    continuous: bool = True  # False: no capture thread; whoever owns the camera calls `capture.take(img)`


REAL_CAMERA = CameraClock()  # a kiosk's: the machine's clocks, a capture thread


class Evidence:
    def __init__(self, cfg: KioskConfig, store: ClipStore, *, epoch: Callable[[], int], uptime_ms: Callable[[], int],
                 clock_synced: Callable[[], bool], on_saved: Callable[[str], None],
                 camera_clock: CameraClock = REAL_CAMERA) -> None:
        self.cfg, self.store, self.epoch, self.clock_synced, self.on_saved = cfg, store, epoch, clock_synced, on_saved
        self.enabled = cfg.camera != "none"
        self.continuous = camera_clock.continuous
        self.ring = FrameRing(cfg.pre_roll_s, cfg.ring_max_bytes)
        self._finished: queue.Queue[RecordingClip | None] = queue.Queue()
        self.recorder = ClipRecorder(self.ring, pre_roll_s=cfg.pre_roll_s, post_roll_s=cfg.post_roll_s,
                                     on_finished=self._finished.put, clock=camera_clock.mono)
        self.capture = CaptureThread(cfg.camera, width=cfg.width, height=cfg.height, fps=cfg.fps, ring=self.ring,
                                     recorder=self.recorder, uptime_ms=camera_clock.uptime_ms or uptime_ms,
                                     clock=camera_clock.wall, mono=camera_clock.mono)
        self.privacy = Privacy(blur_faces=cfg.blur_faces, regions=cfg.mask_regions) \
            if cfg.blur_faces or cfg.mask_regions else None
        self._saver = threading.Thread(target=self._save_loop, name="clip-saver", daemon=True)
        self.saved = 0

    def start(self) -> Evidence:
        if self.enabled and self.continuous:
            self.capture.start()
        self._saver.start()
        return self

    def stop(self) -> None:
        if self.enabled and self.continuous:
            self.capture.stop()
        self.recorder.flush()
        self._finished.put(None)
        self._saver.join(60)

    def camera_state(self) -> str:
        """ok | failed | none: what an incident's `camera` member says (protocol §3.2)."""
        if not self.enabled:
            return "none"
        return "ok" if self.capture.ok else "failed"

    def trigger(self, kind: str) -> str | None:
        """A clip id covering now (new or extended), or None when the camera cannot give footage."""
        if self.camera_state() != "ok":
            return None
        return self.recorder.trigger(kind)

    def _save_loop(self) -> None:
        while True:
            try:
                clip = self._finished.get(timeout=1.0)
            except queue.Empty:
                self.recorder.flush()  # a camera that died mid-clip still ends the clip
                continue
            if clip is None:
                return
            try:
                self._save(clip)
            except Exception:
                log.exception("clip %s could not be saved", clip.id)

    def _save(self, clip: RecordingClip) -> None:
        cfg = self.cfg
        path = self.store.directory / f"{clip.id}.mkv"
        written = write_clip(clip.frames, path, width=cfg.width, height=cfg.height, fps=cfg.fps, privacy=self.privacy)
        first, last = clip.frames[0], clip.frames[-1]
        synced = self.clock_synced()
        manifest = encode_clip_manifest(
            cfg.secret, dev=cfg.device_id, clip=clip.id, ep=self.epoch(), up0=first.up_ms, up1=last.up_ms,
            ts0=first.wall_ms if synced else None, ts1=last.wall_ms if synced else None, frames=written.frames,
            width=cfg.width, height=cfg.height, size=written.size, sha256=written.sha256,
            events=sorted(set(clip.events)), privacy=self.privacy.label if self.privacy else "none")
        self.store.add(clip.id, Path(path), manifest, written.size, int(time.time() * 1000))
        evicted = self.store.enforce_quota(cfg.clips_quota_bytes)
        if evicted:
            log.warning("clip quota reached: deleted %d old clip(s)", len(evicted))
        self.saved += 1
        self.on_saved(clip.id)
