"""Clip stores: the local folder, and S3Storage against moto's S3-compatible server (a real HTTP server
from PyPI; MinIO itself cannot be installed offline here)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.clips.storage import ClipStorage, LocalStorage, S3Storage
from tests.utils.services import free_port, unavailable, wait_for_port


@pytest.fixture
def s3(tmp_path: Path) -> Iterator[S3Storage]:
    if shutil.which("moto_server") is None and not Path(sys.executable).with_name("moto_server").exists():
        unavailable("moto_server is not installed: pip install 'moto[server]'")
    port = free_port()
    log = (tmp_path / "moto.log").open("wb")
    proc = subprocess.Popen([str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=log, stderr=log)
    try:
        wait_for_port(port, 20)
        store = S3Storage(endpoint_url=f"http://127.0.0.1:{port}", bucket="clips", region="us-east-1",
                          access_key="test", secret_key="test", prefix="unit-a/")
        store._s3.create_bucket(Bucket="clips")
        yield store
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def _exercise(store: ClipStorage, tmp_path: Path) -> None:
    src = tmp_path / "clip.mkv"
    src.write_bytes(bytes(range(256)) * 4000)
    store.put_file("originals/dev-1/2026-11/c.mkv", src, "video/x-matroska")
    assert store.size("originals/dev-1/2026-11/c.mkv") == 1_024_000
    assert b"".join(store.read("originals/dev-1/2026-11/c.mkv", 300, 10)) == (bytes(range(256)) * 2)[300:310]
    src.write_bytes(b"changed")  # originals are written once: a second put leaves the first bytes
    store.put_file("originals/dev-1/2026-11/c.mkv", src, "video/x-matroska")
    store.fetch("originals/dev-1/2026-11/c.mkv", tmp_path / "back.mkv")
    assert (tmp_path / "back.mkv").stat().st_size == 1_024_000
    with pytest.raises(FileNotFoundError):
        store.size("originals/none.mkv")


def test_local_store(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path / "store")
    _exercise(store, tmp_path)
    with pytest.raises(ValueError, match="leaves the store"):
        store.size("../escape")


def test_s3_store_against_an_s3_compatible_server(s3: S3Storage, tmp_path: Path) -> None:
    _exercise(s3, tmp_path)
    keys = [o["Key"] for o in s3._s3.list_objects_v2(Bucket="clips")["Contents"]]
    assert keys == ["unit-a/originals/dev-1/2026-11/c.mkv"]
