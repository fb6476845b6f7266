"""Where clip files live, behind one small interface: a local folder (default) or S3-compatible storage.

Keys are paths like `originals/<device>/<YYYY-MM>/<clip>.mkv`. Originals are written once and never
replaced (evidence: the signed manifest's SHA-256 must keep matching them).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from server.settings import Settings

READ_BLOCK = 256 * 1024


class ClipStorage(Protocol):
    def put_file(self, key: str, path: Path, content_type: str) -> None:
        """Store the file at `path` under `key`; a key already there is left as it is."""

    def fetch(self, key: str, dest: Path) -> None:
        """Copy the object to a local file (the transcoder reads from disk)."""

    def size(self, key: str) -> int:
        """Bytes in the object; raises FileNotFoundError when it is missing."""

    def read(self, key: str, start: int, length: int) -> Iterator[bytes]:
        """The bytes [start, start + length) in blocks."""

    def delete(self, key: str) -> None:
        """Remove the object (retention); a key already gone is not an error."""


class LocalStorage:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise ValueError(f"key {key!r} leaves the store")
        return path

    def put_file(self, key: str, path: Path, content_type: str) -> None:
        dest = self._path(key)
        if dest.exists():
            return
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".tmp")
        shutil.copyfile(path, tmp)
        with tmp.open("rb") as f:
            os.fsync(f.fileno())
        tmp.chmod(0o444)  # read-only: nothing in motcua rewrites a stored file
        tmp.replace(dest)

    def fetch(self, key: str, dest: Path) -> None:
        shutil.copyfile(self._path(key), dest)

    def size(self, key: str) -> int:
        return self._path(key).stat().st_size

    def read(self, key: str, start: int, length: int) -> Iterator[bytes]:
        with self._path(key).open("rb") as f:
            f.seek(start)
            left = length
            while left > 0:
                block = f.read(min(READ_BLOCK, left))
                if not block:
                    return
                left -= len(block)
                yield block

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)  # read-only files go too: unlinking needs the folder's write bit


class S3Storage:
    """S3-compatible object storage (MinIO, Ceph RGW, AWS) through boto3; the bucket must exist."""

    def __init__(self, *, endpoint_url: str, bucket: str, region: str, access_key: str, secret_key: str,
                 prefix: str = "") -> None:
        import boto3  # optional dependency: pip install 'motcua[s3]'

        self.bucket, self.prefix = bucket, prefix
        self._s3: Any = boto3.client("s3", endpoint_url=endpoint_url, region_name=region,
                                     aws_access_key_id=access_key, aws_secret_access_key=secret_key)

    def _key(self, key: str) -> str:
        return f"{self.prefix}{key}"

    def put_file(self, key: str, path: Path, content_type: str) -> None:
        try:
            self.size(key)
            return
        except FileNotFoundError:
            pass
        self._s3.upload_file(str(path), self.bucket, self._key(key), ExtraArgs={"ContentType": content_type})

    def fetch(self, key: str, dest: Path) -> None:
        self._s3.download_file(self.bucket, self._key(key), str(dest))

    def size(self, key: str) -> int:
        from botocore.exceptions import ClientError

        try:
            return int(self._s3.head_object(Bucket=self.bucket, Key=self._key(key))["ContentLength"])
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
                raise FileNotFoundError(key) from None
            raise

    def read(self, key: str, start: int, length: int) -> Iterator[bytes]:
        if length <= 0:
            return
        obj = self._s3.get_object(Bucket=self.bucket, Key=self._key(key), Range=f"bytes={start}-{start + length - 1}")
        yield from obj["Body"].iter_chunks(READ_BLOCK)

    def delete(self, key: str) -> None:
        self._s3.delete_object(Bucket=self.bucket, Key=self._key(key))  # S3 answers 204 for a missing key too


def make_storage(settings: Settings) -> ClipStorage:
    """The store the settings choose."""
    c = settings.clips
    if c.storage == "s3":
        assert c.s3_endpoint_url and c.s3_access_key and c.s3_secret_key  # settings validation guarantees it
        return S3Storage(endpoint_url=c.s3_endpoint_url, bucket=c.s3_bucket, region=c.s3_region,
                         access_key=c.s3_access_key, secret_key=c.s3_secret_key.get_secret_value(),
                         prefix=c.s3_prefix)
    return LocalStorage(settings.clips_dir / "store")
