"""Test data: a small office with counters, officials and provisioned devices."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine

from motcua.protocol import codec
from server import registry, sessions
from server.db.models import DeviceKind


@dataclass
class SignedDevice:
    """A provisioned device and the encoder state a real one would keep (epoch, next sequence)."""

    id: str
    secret: bytes
    counter_id: int
    epoch: int = 1
    seq: int = 0

    def rating(self, value: int, *, up: int, ts: int | None = None, levels: int = 4, txn: str | None = None,
               seq: int | None = None, epoch: int | None = None) -> bytes:
        if seq is None:
            self.seq += 1
            seq = self.seq
        return codec.encode_event(self.secret, dev=self.id, ep=epoch or self.epoch, seq=seq, up=up, ts=ts,
                                  typ="rating", body=codec.rating_body(value, levels, txn=txn))

    def incident(self, kind: str = "complaint", *, up: int, ts: int | None = None, ref: tuple[int, int] | None = None,
                 clip: str | None = None, note: str | None = None, camera: str | None = None) -> bytes:
        self.seq += 1
        return codec.encode_event(self.secret, dev=self.id, ep=self.epoch, seq=self.seq, up=up, ts=ts,
                                  typ="incident", body=codec.incident_body(kind, ref=ref, clip=clip, note=note,
                                                                           camera=camera))

    def rating_with_reasons(self, value: int, reasons: list[str], *, up: int, ts: int | None = None,
                            levels: int = 4) -> bytes:
        self.seq += 1
        return codec.encode_event(self.secret, dev=self.id, ep=self.epoch, seq=self.seq, up=up, ts=ts,
                                  typ="rating", body=codec.rating_body(value, levels, reasons=reasons))

    def session(self, action: str, official: str, secret: str, *, up: int, ts: int | None = None,
                method: str = "pin", enrolled_as: str | None = None) -> bytes:
        """A kiosk sign-in/out proving `secret` (docs/protocol.md §3.4); `enrolled_as` forges another PIN's proof."""
        from motcua.protocol.credentials import credential_verifier, new_nonce, session_proof

        self.seq += 1
        verifier = credential_verifier(enrolled_as or secret, official=official, method=method)  # type: ignore[arg-type]
        nonce = new_nonce()
        proof = session_proof(self.secret, dev=self.id, action=action, official=official, method=method, nonce=nonce,
                              verifier_hex=verifier)
        body = codec.session_body(action, official=official, method=method, nonce=nonce, proof=proof)
        return codec.encode_event(self.secret, dev=self.id, ep=self.epoch, seq=self.seq, up=up, ts=ts,
                                  typ="session", body=body)

    def heartbeat(self, *, up: int, ts: int | None = None, epoch: int | None = None) -> bytes:
        return codec.encode_heartbeat(self.secret, dev=self.id, ep=epoch or self.epoch, seq=self.seq, up=up, ts=ts,
                                      fw="test-1", outbox=0, mem=100_000)

    def topic(self, kind: str = "evt") -> str:
        return f"motcua/v1/dev/{self.id}/{kind}"


@dataclass
class Office:
    unit_id: int
    counters: list[int] = field(default_factory=list)
    officials: list[int] = field(default_factory=list)
    devices: list[SignedDevice] = field(default_factory=list)


def make_office(engine: Engine, *, counters: int = 2, officials: int = 3, code: str = "PX",
                kind: DeviceKind = DeviceKind.SIMULATED) -> Office:
    """A unit with `counters` counters (one device each) and `officials` officials."""
    with engine.begin() as conn:
        office = Office(registry.create_unit(conn, code=code, name=f"UBND phường {code}"))
        for n in range(1, counters + 1):
            cid = registry.create_counter(conn, unit_id=office.unit_id, code=f"{code}-Q{n}", name=f"Quầy {n}")
            office.counters.append(cid)
            dev = registry.provision_device(conn, counter_id=cid, kind=kind, actor="test",
                                            device_id=f"{code.lower()}-dev-{n}")
            office.devices.append(SignedDevice(dev.id, bytes.fromhex(dev.secret_hex), cid))
        for n in range(1, officials + 1):
            office.officials.append(registry.create_official(
                conn, unit_id=office.unit_id, code=f"{code}-CB{n:03d}", full_name=f"Cán bộ {n}", post="Chuyên viên"))
    return office


def sign_in(engine: Engine, counter_id: int, official_id: int, at: datetime, now: datetime | None = None) -> int:
    with engine.begin() as conn:
        return sessions.sign_in(conn, counter_id=counter_id, official_id=official_id, at=at, now=now or at,
                                actor="test").id


def sign_out(engine: Engine, counter_id: int, at: datetime, now: datetime | None = None) -> None:
    with engine.begin() as conn:
        sessions.sign_out(conn, counter_id=counter_id, at=at, now=now or at, actor="test")
