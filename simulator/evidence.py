"""Evidence clips at the simulator's kiosk counters: the real kiosk's clip path, on simulated time.

Each kiosk counter is a real `device.kiosk.kiosk.Kiosk` built around the counter's virtual device
agent: its Evidence (pre-roll ring, clip recorder, writer, signed manifest), its ClipStore and its
Uploader, which sends the clips to the run's real HTTP API. Incidents are made by
`Kiosk.record_incident`, so they name their clip exactly as a kiosk does, and the lowest-rating rule is
`Kiosk.keeps_clip`.

The camera renders frames only around triggers, not continuously. A kiosk's capture thread encodes
every frame all day, but only the last `pre_roll_s` of them can ever end up in a clip; hundreds of
simulated cameras doing that would use both cores. The synthetic scene is a function of time (it
draws the frame's time), so rendering [T - pre_roll, T] when a trigger comes at T puts in the ring the
frames a continuous camera would hold then; the post-roll is rendered as simulated time reaches it (a
ticker thread). Frames go through `CaptureThread.take`, the capture loop's own step.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from pathlib import Path
from typing import Any

from device.agent import DeviceAgent
from device.camera.sources import SyntheticSource
from device.kiosk.config import KioskConfig
from device.kiosk.evidence import CameraClock
from device.kiosk.kiosk import Kiosk
from device.outbox import Entry
from simulator.clock import DeviceClock, SimClock

log = logging.getLogger("motcua.simulator.evidence")

TICK_S = 0.1  # real seconds between looks at recording clips (at compression 1500: 150 simulated s)
# Nobody asks a simulated kiosk for a clip; every kiosk of a run polls the one HTTP API, so rarely.
REQUEST_POLL_S = 300.0
FAULT_MESSAGE = "simulated camera fault (faults.camera_failure)"

Made = tuple[Entry, str | None, str]  # an incident in the outbox, the clip it names, the camera state it reports


class SimKiosk:
    """One kiosk counter's camera, clips and uploads around the virtual device's agent."""

    def __init__(self, *, device_id: str, secret_hex: str, clock: DeviceClock, settings: Any, api_url: str,
                 broker: tuple[str, int], state_dir: Path, levels: int) -> None:
        self.cfg = KioskConfig(
            device_id=device_id, secret_hex=secret_hex, mqtt_host=broker[0], mqtt_port=broker[1],
            server_url=api_url, state_dir=state_dir / f"{device_id}.kiosk",
            camera="synthetic" if settings.camera else "none", width=settings.width, height=settings.height,
            fps=settings.fps, pre_roll_s=settings.pre_roll_s, post_roll_s=settings.post_roll_s,
            clip_on_lowest=settings.clip_on_lowest, request_poll_s=REQUEST_POLL_S, levels=levels)
        self.clock = clock
        self.period_ms = max(1, round(1000 / settings.fps))
        self.lock = threading.Lock()  # the host's triggers and the ticker's post-roll frames, one at a time
        self.at_ms = 0  # the camera's simulated time: of the frame being taken, or of the trigger
        self.last_frame_ms: int | None = None
        self.broken = False
        self.kiosk: Kiosk | None = None
        self.triggered: set[str] = set()  # every clip an incident named
        self.confirmed_before = 0  # clips confirmed by the uploaders of earlier boots
        self.last_rating: tuple[int, int] | None = None
        self._source = SyntheticSource(settings.width, settings.height, clock=self._wall)

    # --- the camera's clocks: simulated time, the device's offset and boot -------------------------

    def _mono(self) -> float:
        return self.at_ms / 1000.0

    def _wall(self) -> float:
        return (self.at_ms + self.clock.offset_ms) / 1000.0

    def _uptime_ms(self) -> int:
        return max(0, self.at_ms - self.clock.boot_ms)

    # --- life cycle ------------------------------------------------------------------------------

    def attach(self, agent: DeviceAgent) -> None:
        """The device booted: a kiosk around its agent (clips on disk survive, as on a real kiosk)."""
        self.detach()
        camera = CameraClock(mono=self._mono, wall=self._wall, uptime_ms=self._uptime_ms, continuous=False)
        self.kiosk = Kiosk(self.cfg, clock_synced=self.clock.is_synced, agent=agent, camera_clock=camera).start()

    def detach(self) -> None:
        """Power off: a clip still in its post-roll is lost (docs/kiosk.md "Known limits")."""
        with self.lock:
            kiosk, self.kiosk = self.kiosk, None
        if kiosk is not None:
            self.confirmed_before += kiosk.uploader.confirmed
            kiosk.stop()

    def pending(self) -> int:
        """Clips named by an incident and not yet confirmed by the server (the run drains them too)."""
        confirmed = self.confirmed_before + (self.kiosk.uploader.confirmed if self.kiosk is not None else 0)
        return max(0, len(self.triggered) - confirmed)

    def records(self) -> list[dict[str, Any]]:
        """Ground truth: each clip's SHA-256 as written on the device (None: it never was)."""
        out = []
        for clip in sorted(self.triggered):
            path = self.cfg.state_dir / "clips" / f"{clip}.mkv"
            sha = hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None
            out.append({"k": "clip", "dev": self.cfg.device_id, "clip": clip, "sha": sha})
        return out

    # --- faults ----------------------------------------------------------------------------------

    def break_camera(self) -> None:
        self.broken = True

    def repair_camera(self) -> None:
        self.broken = False

    # --- what citizens do --------------------------------------------------------------------------

    def rated(self, value: int, entry: Entry, at_ms: int) -> Made | None:
        """After a press: complaints refer to it; the lowest one keeps a clip if the kiosk's config says so."""
        self.last_rating = (entry.ep, entry.seq)
        if self.kiosk is None or not self.kiosk.keeps_clip(value):
            return None
        return self._incident("lowest_rating", at_ms, ref=self.last_rating)

    def complain(self, at_ms: int, note: str | None) -> Made | None:
        """The complaint button after a rating (the kiosk screen's Phản ánh): an incident referring to it."""
        return self._incident("complaint", at_ms, ref=self.last_rating, note=note)

    def _incident(self, kind: str, at_ms: int, *, ref: tuple[int, int] | None = None,
                  note: str | None = None) -> Made | None:
        with self.lock:
            kiosk = self.kiosk
            if kiosk is None:
                return None
            if kiosk.evidence.enabled:
                self._catch_up(kiosk, at_ms)
            self.clock.pin(at_ms)  # the incident is stamped with its scheduled time, like every action
            try:
                made = kiosk.record_incident(kind, ref=ref, note=note)
            finally:
                self.clock.pin(None)
        if made[1] is not None:
            self.triggered.add(made[1])
        return made

    # --- frames ----------------------------------------------------------------------------------

    def _take(self, kiosk: Kiosk, at_ms: int) -> None:
        self.at_ms = at_ms
        kiosk.evidence.capture.take(self._source.read())
        self.last_frame_ms = at_ms

    def _catch_up(self, kiosk: Kiosk, at_ms: int) -> None:
        """Before a trigger at `at_ms`: the pre-roll a continuously running camera would hold in its ring."""
        if self.broken:
            self.at_ms = max(self.at_ms, at_ms)
            kiosk.evidence.capture.failed(FAULT_MESSAGE)
            return
        self._post_roll(kiosk, at_ms)  # a clip still recording gets its frames before the ticker's next look
        last = self.last_frame_ms if self.last_frame_ms is not None else -(1 << 62)
        start = max(at_ms - int(self.cfg.pre_roll_s * 1000), last + self.period_ms)
        for t in [*range(start, at_ms, self.period_ms), at_ms]:
            if t > last:  # a trigger inside a post-roll already rendered adds no frames
                self._take(kiosk, t)
        self.at_ms = max(self.at_ms, at_ms)

    def advance(self, now_ms: int) -> None:
        """The ticker: post-roll frames up to simulated `now_ms`, until the recorder ends the clip."""
        with self.lock:
            kiosk = self.kiosk
            if kiosk is None or not kiosk.evidence.recorder.recording:
                return
            if self.broken:  # the clip ends with the frames it got (the recorder is flushed by `failed`)
                self.at_ms = max(self.at_ms, now_ms)
                kiosk.evidence.capture.failed(FAULT_MESSAGE)
                return
            self._post_roll(kiosk, now_ms)

    def _post_roll(self, kiosk: Kiosk, until_ms: int) -> None:
        """Frames of the recording clip up to `until_ms`; the first one past its post-roll ends it."""
        t = (self.last_frame_ms if self.last_frame_ms is not None else until_ms) + self.period_ms
        while t <= until_ms and kiosk.evidence.recorder.recording:
            self._take(kiosk, t)
            t += self.period_ms


class CameraTicker:
    """One thread per device host that renders the post-roll of every recording clip as time passes."""

    def __init__(self, kiosks: list[SimKiosk], clock: SimClock) -> None:
        self.kiosks, self.clock = kiosks, clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sim-cameras", daemon=True)

    def start(self) -> CameraTicker:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(TICK_S):
            now = self.clock.now_ms()
            for k in self.kiosks:
                try:
                    k.advance(now)
                except Exception:
                    log.exception("%s: camera frame failed", k.cfg.device_id)
