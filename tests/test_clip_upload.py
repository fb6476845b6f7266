"""Clip uploads on the server, on both backends: signed manifest, resumable chunks, hash check, audit.

A real clip (synthetic frames muxed by the kiosk's writer) goes through the real API (TestClient),
the real storage and the real transcoder.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from device.camera.frames import Frame
from device.camera.sources import SyntheticSource
from device.camera.writer import write_clip
from motcua.protocol import codec, encode_clip_manifest
from motcua.protocol.httpauth import signed_headers
from server import registry
from server.api.app import create_app
from server.clips.service import ClipService
from server.db.models import AUDIT, CLIPS, ClipState, DeviceKind, RenditionState
from server.settings import Settings
from tests.utils.factories import Office, SignedDevice, make_office

CLIP = "0123456789abcdef0123456789abcdef"


@pytest.fixture(scope="module")
def clip_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two seconds of synthetic camera at 15 fps, as the kiosk writes it."""
    import cv2

    source = SyntheticSource(320, 240, clock=iter(x / 15 for x in range(10_000)).__next__)
    frames = [Frame(i / 15, 1000 + i * 66, 0, cv2.imencode(".jpg", source.read())[1].tobytes()) for i in range(30)]
    return write_clip(frames, tmp_path_factory.mktemp("clip") / "c.mkv", width=320, height=240, fps=15).path


@pytest.fixture
def office(engine: Engine) -> Office:
    return make_office(engine, counters=1, kind=DeviceKind.KIOSK)


@pytest.fixture
def service(engine: Engine, db_url: str, tmp_path: Path) -> Iterator[tuple[TestClient, ClipService]]:
    settings = Settings(mode="demo", database_url=db_url, data_dir=tmp_path,
                        clips={"max_clip_bytes": 4_000_000, "max_chunk_bytes": 64 * 1024})  # type: ignore[arg-type]
    clips = ClipService.from_settings(settings, engine, with_worker=True)
    with TestClient(create_app(settings, engine, clip_service=clips)) as client:
        yield client, clips


class Device:
    """The kiosk side of the upload protocol, by hand."""

    def __init__(self, client: TestClient, dev: SignedDevice) -> None:
        self.client, self.dev = client, dev

    def call(self, method: str, path: str, body: bytes = b"", offset: int | None = None,
             **tamper: Any) -> Any:
        headers = signed_headers(self.dev.secret, method=method, path=path, device=self.dev.id,
                                 time_ms=tamper.pop("time_ms", int(time.time() * 1000)), body=body, offset=offset)
        headers.update(tamper.pop("headers", {}))
        return self.client.request(method, path, content=tamper.pop("send", body), headers=headers)

    def manifest(self, data: bytes, *, clip: str = CLIP, size: int | None = None, events: Any = ((1, 1),)) -> bytes:
        return encode_clip_manifest(self.dev.secret, dev=self.dev.id, clip=clip, ep=1, up0=1000, up1=3000,
                                    ts0=None, ts1=None, frames=30, width=320, height=240,
                                    size=len(data) if size is None else size, sha256=hashlib.sha256(data).hexdigest(),
                                    events=events)

    def send(self, data: bytes, start: int = 0, chunk: int = 50_000, clip: str = CLIP) -> Any:
        response = None
        for at in range(start, len(data), chunk):
            response = self.call("PATCH", f"/api/v1/device/clips/{clip}", data[at:at + chunk], at)
        return response


def _audit(engine: Engine, action: str) -> list[Any]:
    with engine.connect() as conn:
        return [r.detail for r in conn.execute(select(AUDIT.c.detail).where(AUDIT.c.action == action))]


def _clip(engine: Engine) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(CLIPS).where(CLIPS.c.id == CLIP)).first()


def test_upload_in_chunks_keeps_the_original_and_makes_a_playable_rendition(
        engine: Engine, office: Office, service: Any, clip_file: Path) -> None:
    client, clips = service
    kiosk, data = Device(client, office.devices[0]), clip_file.read_bytes()
    put = kiosk.call("PUT", f"/api/v1/device/clips/{CLIP}", kiosk.manifest(data))
    assert put.status_code == 200 and put.json()["offset"] == 0
    done = kiosk.send(data)
    assert done.json()["state"] == "complete"
    row = _clip(engine)
    stored = b"".join(clips.storage.read(row.original_key, 0, row.size))
    assert stored == data and hashlib.sha256(stored).hexdigest() == row.sha256
    assert _audit(engine, "clip.upload")[0]["sha256"] == row.sha256
    assert clips.worker.run_once()
    row = _clip(engine)
    assert (row.rendition_state, abs(row.duration_ms - 2000) <= 70) == (RenditionState.DONE, True)
    video = b"".join(clips.storage.read(row.rendition_key, 0, clips.storage.size(row.rendition_key)))
    assert video[4:8] == b"ftyp" and video.find(b"moov") < video.find(b"mdat")  # faststart: index first
    # Idempotent: the same manifest and the last chunk again change nothing.
    again = kiosk.call("PUT", f"/api/v1/device/clips/{CLIP}", kiosk.manifest(data))
    assert again.json()["state"] == "complete" and len(_audit(engine, "clip.upload")) == 1


def test_resume_after_a_cut_continues_from_the_servers_offset(
        engine: Engine, office: Office, service: Any, clip_file: Path) -> None:
    client, _clips = service
    kiosk, data = Device(client, office.devices[0]), clip_file.read_bytes()
    kiosk.call("PUT", f"/api/v1/device/clips/{CLIP}", kiosk.manifest(data))
    kiosk.call("PATCH", f"/api/v1/device/clips/{CLIP}", data[:30_000], 0)
    head = kiosk.call("HEAD", f"/api/v1/device/clips/{CLIP}")
    assert head.headers["upload-offset"] == "30000"
    stale = kiosk.call("PATCH", f"/api/v1/device/clips/{CLIP}", data[:30_000], 0)  # a lost response, re-sent
    assert stale.status_code == 409 and stale.headers["upload-offset"] == "30000"
    assert kiosk.send(data, start=30_000).json()["state"] == "complete"
    assert _clip(engine).state == ClipState.COMPLETE


def test_tampered_clip_is_rejected_recorded_and_not_stored(
        engine: Engine, office: Office, service: Any, clip_file: Path) -> None:
    client, _clips = service
    kiosk, data = Device(client, office.devices[0]), clip_file.read_bytes()
    kiosk.call("PUT", f"/api/v1/device/clips/{CLIP}", kiosk.manifest(data))
    tampered = data[:1000] + bytes([data[1000] ^ 0xFF]) + data[1001:]
    response = kiosk.send(tampered)
    assert response.status_code == 422 and response.json()["error"]["code"] == "hash_mismatch"
    row = _clip(engine)
    assert (row.state, row.original_key) == (ClipState.REJECTED, None)
    assert _audit(engine, "clip.reject")[0]["code"] == "hash_mismatch"
    # The device may try again with the true bytes (a bad read on its side): the same manifest restarts it.
    assert kiosk.call("PUT", f"/api/v1/device/clips/{CLIP}", kiosk.manifest(data)).json()["offset"] == 0
    assert kiosk.send(data).json()["state"] == "complete"


def test_a_manifest_that_is_not_the_devices_is_refused_and_recorded(
        engine: Engine, office: Office, service: Any, clip_file: Path) -> None:
    client, _clips = service
    kiosk, data = Device(client, office.devices[0]), clip_file.read_bytes()
    forged = kiosk.manifest(data).replace(b'"frames":30', b'"frames":31')
    response = kiosk.call("PUT", f"/api/v1/device/clips/{CLIP}", forged)
    assert (response.status_code, response.json()["error"]["code"]) == (422, "manifest_bad_signature")
    other = kiosk.call("PUT", f"/api/v1/device/clips/{CLIP}", kiosk.manifest(data + b"x"))
    assert other.status_code == 200
    clash = kiosk.call("PUT", f"/api/v1/device/clips/{CLIP}", kiosk.manifest(data))
    assert clash.status_code == 409  # one clip id, two different manifests
    assert [d["code"] for d in _audit(engine, "clip.reject")] == ["manifest_bad_signature", "clip_conflict"]


@pytest.mark.parametrize("tamper", [
    {"time_ms": int(time.time() * 1000) - 3_600_000},  # replay of an old request
    {"headers": {"X-Motcua-Signature": "0" * 64}},
    {"headers": {"X-Motcua-Device": "px-dev-9"}},
    {"send": b"other bytes"},
])
def test_unauthenticated_requests_are_refused(office: Office, service: Any, tamper: dict[str, Any]) -> None:
    client, _clips = service
    kiosk = Device(client, office.devices[0])
    response = kiosk.call("PUT", f"/api/v1/device/clips/{CLIP}", kiosk.manifest(b"x" * 100), **tamper)
    assert response.status_code in (400, 401) and response.json()["error"]["message"]


def test_size_limits(office: Office, service: Any) -> None:
    client, _clips = service
    kiosk = Device(client, office.devices[0])
    big = kiosk.call("PUT", f"/api/v1/device/clips/{CLIP}", kiosk.manifest(b"x", size=5_000_000))
    assert (big.status_code, big.json()["error"]["code"]) == (413, "too_large")
    kiosk.call("PUT", f"/api/v1/device/clips/{CLIP}", kiosk.manifest(b"y" * 100_000))
    chunk = kiosk.call("PATCH", f"/api/v1/device/clips/{CLIP}", b"y" * 70_000, 0)
    assert chunk.status_code == 413


def test_clip_links_incident_rating_and_official_and_remote_requests(
        engine: Engine, office: Office, service: Any, clip_file: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from server.db.types import to_ms
    from server.ingest.messages import Incoming
    from server.ingest.pipeline import Pipeline
    from server.ingest.store import IngestRules
    from tests.utils.factories import sign_in

    client, _clips = service
    dev = office.devices[0]
    now = datetime.now(UTC)
    sign_in(engine, dev.counter_id, office.officials[0], now - timedelta(minutes=5))
    rating = dev.rating(1, up=1000, ts=to_ms(now))
    incident = codec.encode_event(dev.secret, dev=dev.id, ep=1, seq=2, up=1500, ts=to_ms(now), typ="incident",
                                  body=codec.incident_body("complaint", ref=(1, 1), clip=CLIP, camera="ok"))
    Pipeline(engine, IngestRules.from_settings(Settings(mode="demo"))).process(
        [Incoming(dev.topic(), p, to_ms(now)) for p in (rating, incident)])
    kiosk, data = Device(client, dev), clip_file.read_bytes()
    kiosk.call("PUT", f"/api/v1/device/clips/{CLIP}", kiosk.manifest(data, events=[(1, 2)]))
    kiosk.send(data)
    with engine.begin() as conn:
        token = registry.create_api_token(conn, name="t", scopes=["admin"], actor="test")
    auth = {"Authorization": f"Bearer {token}"}
    detail = client.get(f"/api/v1/clips/{CLIP}", headers=auth).json()
    assert [(e["typ"], e["seq"]) for e in detail["events"]] == [("rating", 1), ("incident", 2)]
    assert detail["officials"] == ["PX-CB001"]
    assert client.get("/api/v1/clips?official=PX-CB001", headers=auth).json()["items"][0]["id"] == CLIP
    part = client.get(f"/api/v1/clips/{CLIP}/original", headers={**auth, "Range": "bytes=0-3"})
    assert (part.status_code, part.content) == (206, data[:4])
    made = client.post(f"/api/v1/devices/{dev.id}/clip-requests", json={"note": "kiểm tra"}, headers=auth)
    assert made.status_code == 201
    listed = kiosk.call("GET", "/api/v1/device/clip-requests").json()
    assert [r["note"] for r in listed] == ["kiểm tra"]
    assert kiosk.call("POST", f"/api/v1/device/clip-requests/{listed[0]['id']}/taken").json()["taken"] is True
    assert kiosk.call("GET", "/api/v1/device/clip-requests").json() == []


def test_rendition_of_a_broken_original_is_marked_failed(engine: Engine, office: Office, service: Any) -> None:
    client, clips = service
    kiosk, data = Device(client, office.devices[0]), b"not a video" * 100
    kiosk.call("PUT", f"/api/v1/device/clips/{CLIP}", kiosk.manifest(data))
    kiosk.send(data)
    assert clips.worker.run_once()
    row = _clip(engine)
    assert row.rendition_state == RenditionState.FAILED and row.rendition_error


def test_webm_rendition(clip_file: Path, tmp_path: Path) -> None:
    from server.clips.transcode import make_rendition

    made = make_rendition(clip_file, tmp_path / "r.webm", tmp_path / "t.jpg", kind="webm")
    with av.open(str(tmp_path / "r.webm")) as c:
        assert c.streams.video[0].codec_context.name == "vp8"
    assert made.frames == 30 and (tmp_path / "t.jpg").read_bytes()[:2] == b"\xff\xd8"


def test_frames_stamped_with_the_same_time_still_make_a_rendition(tmp_path: Path) -> None:
    """A capture thread starved of CPU can give two frames one timestamp; the MP4 muxer refuses that."""
    import cv2

    from server.clips.transcode import make_rendition

    source = SyntheticSource(320, 240, clock=iter(x / 15 for x in range(10_000)).__next__)
    monos = [i / 15 for i in range(10)] + [9 / 15] * 3 + [(i + 10) / 15 for i in range(10)]
    frames = [Frame(m, 1000 + round(m * 1000), 0, cv2.imencode(".jpg", source.read())[1].tobytes()) for m in monos]
    clip = write_clip(frames, tmp_path / "c.mkv", width=320, height=240, fps=15).path
    made = make_rendition(clip, tmp_path / "r.mp4", tmp_path / "t.jpg")
    assert made.frames == 23 and 1300 <= made.duration_ms <= 1500
