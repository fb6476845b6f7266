"""Kiosk benchmarks: capture loop pace and CPU on one core, pre-roll memory, clip upload throughput.

    python -m bench.kiosk [--seconds 20] [--upload-mb 20]

Prints one JSON object; docs/benchmarks.md ("Kiosk") records the figures with the machine they ran on.
The camera is the synthetic source, which draws its picture: a real camera's read costs differ.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import cv2

from device.camera.capture import JPEG_QUALITY, CaptureThread
from device.camera.frames import Frame
from device.camera.ring import FrameRing
from device.camera.sources import SyntheticSource

WIDTH, HEIGHT, FPS = 640, 480, 15


def capture_on_one_core(seconds: float) -> dict[str, Any]:
    """The capture thread (synthetic source + JPEG encoding + ring) with the process pinned to CPU 0."""
    cores = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {0})
    try:
        return _capture(seconds)
    finally:  # the suite runs other benches in this process after this one: give them their cores back
        os.sched_setaffinity(0, cores)


def _capture(seconds: float) -> dict[str, Any]:
    ring = FrameRing(10, 64 * 1024 * 1024)
    start = time.monotonic()
    cap = CaptureThread("synthetic", width=WIDTH, height=HEIGHT, fps=FPS, ring=ring, recorder=None,
                        uptime_ms=lambda: int((time.monotonic() - start) * 1000))
    cpu0, t0 = time.process_time(), time.monotonic()
    cap.start()
    time.sleep(seconds)
    cap.stop()
    cpu, wall = time.process_time() - cpu0, time.monotonic() - t0
    return {"fps": round(cap.health.frames / wall, 2), "cpu_percent_of_one_core": round(100 * cpu / wall, 1),
            "frames": cap.health.frames, "seconds": round(wall, 1)}


def per_frame_costs(n: int = 300) -> dict[str, float]:
    source = SyntheticSource(WIDTH, HEIGHT)
    t = time.perf_counter()
    images = [source.read() for _ in range(n)]
    draw = (time.perf_counter() - t) / n
    t = time.perf_counter()
    for img in images:
        cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    encode = (time.perf_counter() - t) / n
    return {"synthetic_draw_ms": round(draw * 1000, 2), "jpeg_encode_ms": round(encode * 1000, 2)}


def ring_memory() -> dict[str, Any]:
    """Bytes held by 10 s of pre-roll at 640x480 @ 15 fps, JPEG bytes and all Python overhead."""
    source = SyntheticSource(WIDTH, HEIGHT)
    jpegs = [cv2.imencode(".jpg", source.read(), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])[1].tobytes()
             for _ in range(10 * FPS)]
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    ring = FrameRing(10, 64 * 1024 * 1024)
    for i, jpeg in enumerate(jpegs * 2):  # 20 s pushed: the ring must hold only the last 10
        ring.push(Frame(i / FPS, i, i, bytes(jpeg)))
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return {"frames": len(ring), "jpeg_bytes": ring.nbytes, "traced_bytes": held,
            "mean_jpeg_kb": round(ring.nbytes / len(ring) / 1024, 1)}


def upload_throughput(megabytes: int) -> dict[str, Any]:
    """One clip of `megabytes` MB through the signed resumable upload to a `motcua server` on loopback."""
    from device.kiosk.clipstore import ClipStore
    from device.kiosk.uploader import Uploader
    from motcua.localbroker import free_port, wait_for_port
    from motcua.protocol import encode_clip_manifest
    from server import registry
    from server.db.engine import make_engine, upgrade
    from server.db.models import DeviceKind

    with tempfile.TemporaryDirectory(prefix="motcua-bench-") as tmp:
        root = Path(tmp)
        url = f"sqlite:///{root / 'db.sqlite3'}"
        upgrade(url)
        with make_engine(url).begin() as conn:
            unit = registry.create_unit(conn, code="B", name="bench")
            counter = registry.create_counter(conn, unit_id=unit, code="B-1", name="b")
            dev = registry.provision_device(conn, counter_id=counter, kind=DeviceKind.KIOSK, actor="bench",
                                            device_id="kiosk-bench")
        port = free_port()
        env = {**os.environ, "MOTCUA_MODE": "demo", "MOTCUA_DATABASE_URL": url, "MOTCUA_DATA_DIR": str(root),
               "MOTCUA_API__PORT": str(port), "MOTCUA_CLIPS__TRANSCODE": "false",
               "MOTCUA_CLIPS__MAX_CLIP_BYTES": str(megabytes * 2 * 1024 * 1024)}
        server = subprocess.Popen([sys.executable, "-m", "motcua", "server", "--no-ingest"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for_port(port, 30)
            return _upload(root, dev.secret_hex, port, megabytes, ClipStore, Uploader, encode_clip_manifest)
        finally:
            server.terminate()
            server.wait(20)


def _upload(root: Path, secret_hex: str, port: int, megabytes: int, store_cls: Any, uploader_cls: Any,
            encode: Any) -> dict[str, Any]:
    import hashlib

    data = os.urandom(megabytes * 1024 * 1024)
    clip = root / "clip.mkv"
    clip.write_bytes(data)
    store = store_cls(root / "kiosk")
    manifest = encode(bytes.fromhex(secret_hex), dev="kiosk-bench", clip="ab" * 16, ep=1, up0=0, up1=1, ts0=None,
                      ts1=None, frames=1, width=640, height=480, size=len(data),
                      sha256=hashlib.sha256(data).hexdigest(), events=[])
    store.add("ab" * 16, clip, manifest, len(data), 0)
    up = uploader_cls(server_url=f"http://127.0.0.1:{port}", device_id="kiosk-bench", secret=bytes.fromhex(secret_hex),
                      store=store, chunk_bytes=1024 * 1024, request_poll_s=3600, on_request=lambda _r: None)
    t = time.monotonic()
    next_clip = store.next_ready()
    assert next_clip is not None
    up.upload(next_clip)
    wall = time.monotonic() - t
    return {"megabytes": megabytes, "seconds": round(wall, 2), "mb_per_s": round(megabytes / wall, 1),
            "chunk_bytes": 1024 * 1024, "confirmed": store.state("ab" * 16) == "confirmed"}


def run(quick: bool = False) -> dict[str, Any]:
    """The suite's entry (bench/suite.py)."""
    return {"per_frame": per_frame_costs(60 if quick else 300), "ring_10s": ring_memory(),
            "upload": upload_throughput(2 if quick else 20),
            "capture_one_core": capture_on_one_core(2 if quick else 20), "cpu": _cpu_name(), "cores": os.cpu_count()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--upload-mb", type=int, default=20)
    args = parser.parse_args()
    out = {"per_frame": per_frame_costs(), "ring_10s": ring_memory(),
           "upload": upload_throughput(args.upload_mb), "capture_one_core": capture_on_one_core(args.seconds),
           "cpu": _cpu_name(), "cores": os.cpu_count()}
    print(json.dumps(out, indent=1))


def _cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


if __name__ == "__main__":
    main()
