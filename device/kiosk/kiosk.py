"""The kiosk's composition root: device agent (outbox + MQTT link), camera evidence, uploader, touch UI.

Everything a citizen or an official does becomes a signed event in the persistent outbox first; the
UI only reports what the outbox and the server's acks say.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from device.agent import DeviceAgent
from device.kiosk.clipstore import ClipStore
from device.kiosk.config import KioskConfig
from device.kiosk.evidence import REAL_CAMERA, CameraClock, Evidence
from device.kiosk.uploader import Uploader
from device.outbox import Entry

log = logging.getLogger("motcua.kiosk")
FW = "kiosk-0.1"


@dataclass
class SignInStatus:
    """The last sign-in/out the UI asked for, as the server's ack tells it (protocol §7 codes)."""

    key: tuple[int, int] | None = None
    action: str = ""
    state: str = "idle"  # idle | pending | ok | refused
    since: float = field(default_factory=time.monotonic)


class Kiosk:
    """`agent` and `camera_clock` are for the simulator, whose virtual kiosks run on simulated time: it
    brings its own device agent (started and stopped by it) and renders frames only around triggers."""

    def __init__(self, cfg: KioskConfig, *, clock_synced: Any = lambda: True, agent: DeviceAgent | None = None,
                 camera_clock: CameraClock = REAL_CAMERA) -> None:
        self.cfg = cfg
        self._config_lock = threading.Lock()
        self.server_config: dict[str, Any] | None = None
        self.signin = SignInStatus()
        self._owns_agent = agent is None
        self.agent = agent or DeviceAgent(
            device_id=cfg.device_id, secret_hex=cfg.secret_hex, state_dir=cfg.state_dir, host=cfg.mqtt_host,
            port=cfg.mqtt_port, fw=FW, levels=cfg.levels, clock_synced=clock_synced, username=cfg.mqtt_user,
            password=cfg.mqtt_password, resend_after_s=cfg.resend_after_s, heartbeat_s=cfg.heartbeat_s,
            on_config=self._on_config, on_ack=self._on_ack)
        self.clips = ClipStore(cfg.state_dir / "clips")
        self.evidence = Evidence(cfg, self.clips, epoch=lambda: self.agent.outbox.epoch,
                                 uptime_ms=self.agent.link.uptime_ms, clock_synced=clock_synced,
                                 on_saved=lambda _id: self.uploader.wake(), camera_clock=camera_clock)
        self.uploader = Uploader(server_url=cfg.server_url, device_id=cfg.device_id, secret=cfg.secret,
                                 store=self.clips, chunk_bytes=cfg.upload_chunk_bytes,
                                 request_poll_s=cfg.request_poll_s, on_request=self._remote_request)

    def start(self) -> Kiosk:
        if self._owns_agent:
            self.agent.start()
        self.server_config = self.agent.outbox.get("config")  # the last one applied: shown even offline
        self.evidence.start()
        self.uploader.start()
        return self

    def stop(self) -> None:
        self.evidence.stop()
        self.uploader.stop()
        if self._owns_agent:
            self.agent.stop()
        self.clips.close()

    # --- from the server -----------------------------------------------------------------------

    def _on_config(self, doc: dict[str, Any] | None) -> None:
        with self._config_lock:
            self.server_config = doc

    def _on_ack(self, entries: list[tuple[int, int, str]]) -> None:
        s = self.signin
        for ep, seq, code in entries:
            if s.key == (ep, seq):
                s.state = "ok" if code in ("ok", "dup") else "refused"

    def _remote_request(self, req: dict[str, Any]) -> None:
        log.info("remote clip request %s (%s)", req.get("id"), req.get("note"))
        self.incident("remote", note=req.get("note") or None)

    # --- what people do ----------------------------------------------------------------------------

    def scale(self) -> tuple[int, list[str]]:
        cfg = self.server_config or {}
        scale = cfg.get("scale") or {}
        labels = scale.get("labels") or self.cfg.labels
        return int(scale.get("levels") or len(labels)), list(labels)

    def rate(self, value: int, reasons: list[str]) -> dict[str, Any]:
        """A citizen's rating; the lowest one keeps a clip when so configured."""
        levels, _labels = self.scale()
        if not 1 <= value <= levels:
            raise ValueError(f"rating {value} is outside 1..{levels}")
        known = [r for r in reasons if r in self.cfg.reasons]
        self.agent.levels = levels
        entry = self.agent.press(value, reasons=known)
        out: dict[str, Any] = {"ep": entry.ep, "seq": entry.seq}
        if self.keeps_clip(value):
            out["incident"] = self.incident("lowest_rating", ref=(entry.ep, entry.seq))
        return out

    def keeps_clip(self, value: int) -> bool:
        """Whether a rating of `value` keeps a clip: the lowest one, when `clip_on_lowest` says so."""
        return value == 1 and self.cfg.clip_on_lowest

    def incident(self, kind: str, *, ref: tuple[int, int] | None = None, note: str | None = None) -> dict[str, Any]:
        """A complaint, a manual or remote trigger: the incident is sent whether or not a clip could be kept."""
        entry, clip, camera = self.record_incident(kind, ref=ref, note=note)
        return {"ep": entry.ep, "seq": entry.seq, "clip": clip, "camera": camera}

    def record_incident(self, kind: str, *, ref: tuple[int, int] | None = None,
                        note: str | None = None) -> tuple[Entry, str | None, str]:
        """The incident in the outbox, the clip it names (None: no footage) and the camera state it reports."""
        clip = self.evidence.trigger(kind)
        camera = self.evidence.camera_state() if clip is None else "ok"
        entry = self.agent.incident(kind, ref=ref, note=note, clip=clip, camera=camera)
        if clip is not None and not self.evidence.recorder.attach(clip, (entry.ep, entry.seq)):
            log.warning("clip %s ended before incident %s/%s could be named in it", clip, entry.ep, entry.seq)
        if ref is not None and clip is not None:
            self.evidence.recorder.attach(clip, ref)
        return entry, clip, camera

    def session(self, action: str, *, official: str, method: str, secret: str) -> dict[str, Any]:
        entry = self.agent.session(action, official=official, method=method, secret=secret)
        self.signin = SignInStatus((entry.ep, entry.seq), action, "pending")
        return {"ep": entry.ep, "seq": entry.seq}

    def state(self) -> dict[str, Any]:
        """Everything the UI shows, in one document."""
        cfg = self.server_config or {}
        levels, labels = self.scale()
        return {
            "device": self.cfg.device_id, "counter": cfg.get("counter"), "official": cfg.get("official"),
            "levels": levels, "labels": labels, "thanks_ms": int(cfg.get("thanks_ms") or self.cfg.thanks_ms),
            "reasons": [{"code": k, "label": v} for k, v in self.cfg.reasons.items()],
            "online": self.agent.link.connected.is_set(), "pending": self.agent.pending(),
            "camera": self.evidence.camera_state(), "recording": self.evidence.recorder.recording,
            "signin": {"state": self.signin.state, "action": self.signin.action},
        }

    def health(self) -> dict[str, Any]:
        h = self.evidence.capture.health
        return {"camera": self.evidence.camera_state(), "frames": h.frames, "camera_failures": h.failures,
                "camera_error": h.last_error, "ring_bytes": self.evidence.ring.nbytes, "clips": self.clips.counts(),
                "upload_error": self.uploader.last_error, "outbox": self.agent.pending()}
