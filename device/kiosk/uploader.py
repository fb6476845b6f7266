"""Sends finished clips to the server and collects remote clip requests, over signed HTTP.

Resumable: the server answers every request with how many bytes it holds (Upload-Offset), so after
a network cut or a restart the kiosk continues from there instead of starting again. A clip is marked
confirmed only when the server says it verified the SHA-256 of the whole file.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from device.kiosk.clipstore import ClipStore, StoredClip
from motcua.protocol.httpauth import signed_headers

log = logging.getLogger("motcua.kiosk.upload")

BACKOFF_FIRST_S, BACKOFF_MAX_S = 1.0, 60.0
TIMEOUT_S = 30.0


class Rejected(Exception):
    """The server refused the clip for good (bad manifest, hash mismatch): keep it, stop sending it."""


class Uploader:
    def __init__(self, *, server_url: str, device_id: str, secret: bytes, store: ClipStore, chunk_bytes: int,
                 request_poll_s: float, on_request: Callable[[dict[str, Any]], None],
                 clock: Callable[[], float] = time.time) -> None:
        self.base, self.device_id, self.secret, self.store = server_url.rstrip("/"), device_id, secret, store
        self.chunk_bytes, self.request_poll_s, self.on_request, self.clock = chunk_bytes, request_poll_s, \
            on_request, clock
        self._client = httpx.Client(timeout=TIMEOUT_S)
        self._wake, self._stop = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._run, name="clip-upload", daemon=True)
        self._next_poll = 0.0
        self.bytes_sent = 0
        self.confirmed = 0
        self.last_error: str | None = None

    def start(self) -> Uploader:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(TIMEOUT_S)
        self._client.close()

    def wake(self) -> None:
        self._wake.set()

    # --- signed requests --------------------------------------------------------------------------

    def _call(self, method: str, path: str, body: bytes = b"", offset: int | None = None) -> httpx.Response:
        headers = signed_headers(self.secret, method=method, path=path, device=self.device_id,
                                 time_ms=int(self.clock() * 1000), body=body, offset=offset)
        return self._client.request(method, self.base + path, content=body, headers=headers)

    # --- loop -------------------------------------------------------------------------------------

    def _run(self) -> None:
        pause = BACKOFF_FIRST_S
        while not self._stop.is_set():
            try:
                self._poll_requests()
                worked = self._send_one()
                pause = BACKOFF_FIRST_S
                if worked:
                    continue
            except (httpx.HTTPError, OSError) as exc:  # the network or the server is away: try again later
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("clip upload paused (%s); retrying in %.0fs", self.last_error, pause)
                self._wake.wait(pause)
                pause = min(pause * 2, BACKOFF_MAX_S)
                continue
            self._wake.wait(min(self.request_poll_s, 5.0))
            self._wake.clear()

    def _poll_requests(self) -> None:
        if time.monotonic() < self._next_poll:
            return
        self._next_poll = time.monotonic() + self.request_poll_s
        response = self._call("GET", "/api/v1/device/clip-requests")
        response.raise_for_status()
        for req in response.json():
            self.on_request(req)
            self._call("POST", f"/api/v1/device/clip-requests/{req['id']}/taken").raise_for_status()

    def _send_one(self) -> bool:
        clip = self.store.next_ready()
        if clip is None:
            return False
        try:
            self.upload(clip)
        except Rejected as exc:
            log.error("clip %s refused by the server: %s (kept on the kiosk)", clip.id, exc)
            self.store.mark(clip.id, "rejected", str(exc))
        return True

    def upload(self, clip: StoredClip) -> None:
        """Send the manifest, then the bytes from wherever the server stands; returns once confirmed."""
        offset = self._expect(self._call("PUT", f"/api/v1/device/clips/{clip.id}", clip.manifest))
        with clip.path.open("rb") as f:
            while offset is not None and offset < clip.size:
                f.seek(offset)
                chunk = f.read(self.chunk_bytes)
                offset = self._expect(self._call("PATCH", f"/api/v1/device/clips/{clip.id}", chunk, offset))
                self.bytes_sent += len(chunk)
        self.store.mark(clip.id, "confirmed")
        self.confirmed += 1

    def _expect(self, response: httpx.Response) -> int | None:
        """The server's offset; None once it confirmed the clip; raises Rejected or HTTPStatusError."""
        if response.status_code in (200, 409) and "upload-offset" in response.headers:
            if response.status_code == 200 and response.json().get("state") == "complete":
                return None
            return int(response.headers["upload-offset"])
        if response.status_code in (413, 422):
            raise Rejected(_message(response))
        response.raise_for_status()
        raise httpx.HTTPStatusError(f"unexpected answer {response.status_code}", request=response.request,
                                    response=response)


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError, json.JSONDecodeError):
        return response.text[:200]
