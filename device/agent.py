"""A CPython counter device: an outbox, a link, and the two things a citizen can do."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from device.link import DeviceLink
from device.outbox import Entry, Outbox
from motcua.protocol import codec, credentials


class DeviceAgent:
    """`press()` and `complain()` return once the event is durably in the outbox (not when it is sent)."""

    def __init__(self, *, device_id: str, secret_hex: str, state_dir: Path, host: str, port: int,
                 fw: str = "cpython-0.1", levels: int = 4, clock: Callable[[], float] = time.time,
                 clock_synced: Callable[[], bool] = lambda: True, **link: Any) -> None:
        self.device_id = device_id
        self.levels = levels
        self.clock = clock
        self.outbox = Outbox(Path(state_dir) / f"{device_id}.outbox.sqlite3")
        self.link = DeviceLink(device_id=device_id, secret=bytes.fromhex(secret_hex), outbox=self.outbox, host=host,
                               port=port, fw=fw, clock=clock, clock_synced=clock_synced, **link)
        self._secret = bytes.fromhex(secret_hex)

    def start(self) -> DeviceAgent:
        """Boot: a new epoch is persisted before anything else happens, then connect."""
        self.outbox.begin_boot()
        self.link.start()
        return self

    def stop(self) -> None:
        self.link.stop()
        self.outbox.close()

    def _add(self, typ: str, body: dict[str, Any]) -> Entry:
        up, ts = self.link.uptime_ms(), self.link.device_ts()
        entry = self.outbox.add(lambda ep, seq: codec.encode_event(self._secret, dev=self.device_id, ep=ep, seq=seq,
                                                                   up=up, ts=ts, typ=typ, body=body),
                                int(self.clock() * 1000))
        self.link.wake()
        return entry

    def press(self, value: int, *, txn: str | None = None, reasons: Sequence[str] | None = None,
              during_thanks: bool = False) -> Entry:
        """A rating on this device's scale (1 = worst)."""
        return self._add("rating", codec.rating_body(value, self.levels, txn=txn, reasons=reasons,
                                                     during_thanks=during_thanks))

    def complain(self, kind: str = "complaint", *, note: str | None = None) -> Entry:
        return self._add("incident", codec.incident_body(kind, note=note))

    def incident(self, kind: str, *, ref: tuple[int, int] | None = None, note: str | None = None,
                 clip: str | None = None, camera: str | None = None) -> Entry:
        """An incident with the evidence clip it names (or why there is none: camera "failed"/"none")."""
        return self._add("incident", codec.incident_body(kind, ref=ref, note=note, clip=clip, camera=camera))

    def session(self, action: str, *, official: str, method: str, secret: str, verifier: str | None = None) -> Entry:
        """An official signs in/out; only a proof of the PIN or badge leaves the device (protocol §3.4).

        `verifier` skips the PBKDF2 step (0.1 s) for callers that derived it already: the simulator, which
        signs thousands of sessions in on one machine. A kiosk never keeps one (only the server does).
        """
        verifier = verifier or credentials.credential_verifier(secret, official=official,
                                                               method=method)  # type: ignore[arg-type]
        nonce = credentials.new_nonce()
        proof = credentials.session_proof(self._secret, dev=self.device_id, action=action, official=official,
                                          method=method, nonce=nonce, verifier_hex=verifier)
        return self._add("session", codec.session_body(action, official=official, method=method, nonce=nonce,
                                                       proof=proof))

    def pending(self) -> int:
        return self.outbox.depth()
