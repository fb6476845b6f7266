"""The kiosk camera with real OpenCV and PyAV: ring buffer bounds, clip triggers, capture pace, privacy,
camera failure, and the clip store's quota. The camera itself is the synthetic source."""

from __future__ import annotations

import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from device.camera.capture import CaptureThread
from device.camera.frames import Frame
from device.camera.privacy import Privacy
from device.camera.recorder import ClipRecorder, RecordingClip
from device.camera.ring import FrameRing
from device.camera.sources import SyntheticSource
from device.camera.writer import write_clip
from device.kiosk.clipstore import ClipStore


def _frame(t: float, size: int = 1000) -> Frame:
    return Frame(t, int(t * 1000), 0, b"\xff" * size)


def test_ring_keeps_the_pre_roll_and_respects_its_byte_cap() -> None:
    ring = FrameRing(seconds=2.0, max_bytes=50_000)
    for i in range(100):
        ring.push(_frame(i / 15, 1000))
    assert len(ring) == 31 and ring.since(99 / 15 - 1.0)[0].mono >= 99 / 15 - 1.0  # 2 s at 15 fps, both ends
    capped = FrameRing(seconds=10.0, max_bytes=20_000)
    for i in range(100):
        capped.push(_frame(i / 15, 1000))
    assert capped.nbytes <= 20_000 and capped.evicted_for_bytes > 0


def test_overlapping_triggers_extend_one_clip_and_a_later_one_starts_another() -> None:
    now = [0.0]
    ring = FrameRing(10, 10_000_000)
    done: list[RecordingClip] = []
    rec = ClipRecorder(ring, pre_roll_s=2, post_roll_s=3, on_finished=done.append, clock=lambda: now[0])

    def run_until(t: float) -> None:
        while now[0] < t:
            now[0] = round(now[0] + 0.1, 3)
            frame = _frame(now[0])
            ring.push(frame)
            rec.offer(frame)

    run_until(5.0)
    first = rec.trigger("complaint")
    run_until(6.0)
    assert rec.trigger("lowest_rating") == first and rec.attach(first, (1, 7))
    run_until(12.0)
    assert [c.id for c in done] == [first] and done[0].kinds == ["complaint", "lowest_rating"]
    frames = [f.mono for f in done[0].frames]
    assert frames[0] == pytest.approx(3.0, abs=0.11) and frames[-1] == pytest.approx(9.0, abs=0.11)
    assert len(frames) == len(set(frames)) and done[0].events == [(1, 7)]
    assert rec.trigger("manual") != first


def test_capture_keeps_pace_and_the_clip_decodes_with_its_duration(tmp_path: Path) -> None:
    ring = FrameRing(10, 20_000_000)
    done: list[RecordingClip] = []
    rec = ClipRecorder(ring, pre_roll_s=1.0, post_roll_s=1.0, on_finished=done.append)
    started = time.monotonic()
    cap = CaptureThread("synthetic", width=640, height=480, fps=15, ring=ring, recorder=rec,
                        uptime_ms=lambda: int((time.monotonic() - started) * 1000)).start()
    try:
        time.sleep(1.5)
        rec.trigger("manual")
        time.sleep(1.4)
    finally:
        cap.stop()
    assert 36 <= cap.health.frames <= 46 and cap.health.state == "ok"  # 15 fps for ~2.9 s
    [clip] = done
    written = write_clip(clip.frames, tmp_path / "c.mkv", width=640, height=480, fps=15)
    with av.open(str(written.path)) as c:
        decoded = list(c.decode(video=0))
        assert c.duration / 1e6 == pytest.approx(2.0, abs=0.25)
    assert len(decoded) == written.frames == len(clip.frames) and decoded[0].width == 640


def test_a_camera_that_cannot_open_is_reported_failed(tmp_path: Path) -> None:
    ring = FrameRing(10, 1_000_000)
    cap = CaptureThread(str(tmp_path / "no-camera.mp4"), width=640, height=480, fps=15, ring=ring, recorder=None,
                        uptime_ms=lambda: 0).start()
    try:
        deadline = time.monotonic() + 5
        while cap.health.state != "failed" and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        cap.stop()
    assert cap.health.state == "failed" and not cap.ok and "cannot open camera source" in (cap.health.last_error or "")


def test_privacy_masks_regions_before_the_clip_is_written(tmp_path: Path) -> None:
    source = SyntheticSource(320, 240, clock=lambda: 0.0)
    jpeg = cv2.imencode(".jpg", np.full((240, 320, 3), 200, np.uint8))[1].tobytes()
    frames = [Frame(i / 15, i, 0, jpeg) for i in range(5)]
    privacy = Privacy(blur_faces=True, regions=[[0.0, 0.0, 0.5, 0.5]])
    assert privacy.label == "faces+regions" and privacy.faces(source.read()) == []
    written = write_clip(frames, tmp_path / "m.mkv", width=320, height=240, fps=15, privacy=privacy)
    with av.open(str(written.path)) as c:
        img = next(c.decode(video=0)).to_ndarray(format="bgr24")
    assert img[:110, :150].max() < 20 and img[130:, 170:].min() > 180  # masked quarter black, the rest as shot


def test_pixelation_hides_detail_in_a_detected_face_box() -> None:
    from device.camera.privacy import _pixelate

    rng = np.random.default_rng(1)
    roi = rng.integers(0, 255, (96, 96, 3), dtype=np.uint8)
    out = _pixelate(roi.copy())
    assert len(np.unique(out.reshape(-1, 3), axis=0)) <= 64 < len(np.unique(roi.reshape(-1, 3), axis=0))


def test_quota_evicts_confirmed_clips_first_then_the_oldest_unconfirmed(tmp_path: Path) -> None:
    store = ClipStore(tmp_path)
    for n in range(4):
        path = tmp_path / f"{n}.mkv"
        path.write_bytes(b"x" * 1000)
        store.add(f"c{n}", path, b"{}", 1000, now_ms=n)
    store.mark("c2", "confirmed")
    assert store.enforce_quota(3000) == ["c2"]
    assert store.enforce_quota(1500) == ["c0", "c1"]
    assert store.counts()["evicted_unconfirmed"] == 2 and (tmp_path / "3.mkv").exists()
    assert not (tmp_path / "0.mkv").exists() and store.next_ready() is not None
    assert store.next_ready().id == "c3"  # type: ignore[union-attr]


def test_with_a_failed_camera_the_incident_is_still_sent_marked_without_clip(tmp_path: Path) -> None:
    from device.kiosk.config import KioskConfig
    from device.kiosk.kiosk import Kiosk
    from motcua.protocol import parse_json_strict
    from tests.utils.services import free_port

    cfg = KioskConfig(device_id="kiosk-test-1", secret_hex="ab" * 32, mqtt_host="127.0.0.1", mqtt_port=free_port(),
                      server_url="http://127.0.0.1:9", state_dir=tmp_path, camera=str(tmp_path / "missing.mp4"))
    kiosk = Kiosk(cfg).start()
    try:
        deadline = time.monotonic() + 5
        while kiosk.evidence.capture.health.state != "failed" and time.monotonic() < deadline:
            time.sleep(0.05)
        made = kiosk.incident("complaint", note="camera hỏng")
        assert (made["clip"], made["camera"]) == (None, "failed")
        [entry] = kiosk.agent.outbox.due(int(time.time() * 1000), 0)
        body = parse_json_strict(entry.payload)["body"]
        assert body == {"kind": "complaint", "note": "camera hỏng", "camera": "failed"}
        assert kiosk.health()["camera"] == "failed" and kiosk.health()["camera_failures"] >= 1
    finally:
        kiosk.stop()
