"""Encoders producing the exact bytes of protocol v1 (docs/protocol.md §3): the member order is part of
the protocol so that every implementation can reproduce tests/vectors/ byte for byte."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from motcua.protocol.framing import seal
from motcua.protocol.messages import PROTOCOL_VERSION
from motcua.protocol.topics import is_device_id


def _json(value: Any) -> str:
    # Compact separators and raw UTF-8: what MicroPython's json.dumps can be made to emit too.
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _members(pairs: Iterable[tuple[str, Any]]) -> bytes:
    return ("{" + ",".join(f"{_json(k)}:{_json(v)}" for k, v in pairs)).encode("utf-8")


def _envelope(
    secret: bytes, *, dev: str, ep: int, seq: int, up: int, ts: int | None, typ: str, body: dict[str, Any]
) -> bytes:
    pairs: list[tuple[str, Any]] = [("v", PROTOCOL_VERSION), ("dev", dev), ("ep", ep), ("seq", seq)]
    pairs.append(("up", up))
    if ts is not None:  # absent, not null, while the device clock is unsynced
        pairs.append(("ts", ts))
    pairs += [("typ", typ), ("body", body)]
    return seal(secret, _members(pairs))


def rating_body(
    value: int,
    levels: int,
    *,
    txn: str | None = None,
    reasons: Sequence[str] | None = None,
    during_thanks: bool = False,
) -> dict[str, Any]:
    """A rating body with its members in protocol order; optional members only when set."""
    body: dict[str, Any] = {"value": value, "levels": levels}
    if txn is not None:
        body["txn"] = txn
    if reasons:
        body["reasons"] = list(reasons)
    if during_thanks:
        body["during_thanks"] = True
    return body


def incident_body(
    kind: str,
    *,
    ref: tuple[int, int] | None = None,
    note: str | None = None,
    clip: str | None = None,
    camera: str | None = None,
) -> dict[str, Any]:
    """An incident body with its members in protocol order; optional members only when set."""
    body: dict[str, Any] = {"kind": kind}
    for key, value in (("ref", list(ref) if ref else None), ("note", note), ("clip", clip), ("camera", camera)):
        if value is not None:
            body[key] = value
    return body


def session_body(action: str, *, official: str, method: str, nonce: str, proof: str) -> dict[str, Any]:
    """A session body (kiosk sign-in/out) with its members in protocol order (docs/protocol.md §3.4)."""
    return {"action": action, "official": official, "method": method, "nonce": nonce, "proof": proof}


def encode_clip_manifest(
    secret: bytes,
    *,
    dev: str,
    clip: str,
    ep: int,
    up0: int,
    up1: int,
    ts0: int | None,
    ts1: int | None,
    frames: int,
    width: int,
    height: int,
    size: int,
    sha256: str,
    events: Sequence[tuple[int, int]],
    privacy: str = "none",
) -> bytes:
    """The signed manifest of an evidence clip (docs/protocol.md §10), sent over HTTP before its bytes."""
    pairs: list[tuple[str, Any]] = [("v", PROTOCOL_VERSION), ("typ", "clip"), ("dev", dev), ("clip", clip)]
    pairs += [("ep", ep), ("up0", up0), ("up1", up1)]
    if ts0 is not None and ts1 is not None:  # only with a synced clock, as `ts` in events
        pairs += [("ts0", ts0), ("ts1", ts1)]
    pairs += [("frames", frames), ("width", width), ("height", height), ("format", "mkv-mjpeg"), ("size", size)]
    pairs += [("sha256", sha256), ("events", [list(e) for e in events]), ("privacy", privacy)]
    return seal(secret, _members(pairs))


def encode_event(
    secret: bytes, *, dev: str, ep: int, seq: int, up: int, ts: int | None, typ: str, body: dict[str, Any]
) -> bytes:
    """A signed event (rating, incident) ready to publish on the device's `evt` topic."""
    return _envelope(secret, dev=dev, ep=ep, seq=seq, up=up, ts=ts, typ=typ, body=body)


def encode_heartbeat(
    secret: bytes,
    *,
    dev: str,
    ep: int,
    seq: int,
    up: int,
    ts: int | None,
    fw: str,
    outbox: int,
    mem: int,
    dropped: int = 0,
    rssi: int | None = None,
) -> bytes:
    """A signed heartbeat for the `hb` topic; `seq` is the last sequence number assigned."""
    body: dict[str, Any] = {
        "fw": fw,
        "outbox": outbox,
        "clock": "synced" if ts is not None else "unsynced",
        "mem": mem,
        "dropped": dropped,
    }
    if rssi is not None:
        body["rssi"] = rssi
    return _envelope(secret, dev=dev, ep=ep, seq=seq, up=up, ts=ts, typ="heartbeat", body=body)


_ACK_CODES = frozenset({"ok", "dup", "quar"})


def encode_ack(secret: bytes, *, dev: str, ts: int, acks: Sequence[tuple[int, int, str]]) -> bytes:
    """A signed end-to-end ack: each entry is (epoch, seq, "ok" | "dup" | "quar").

    Formatted directly rather than through json.dumps: ingest sends one per device per batch, and every
    member is an integer, a code from a fixed set or a topic-safe device id, so nothing needs escaping.
    """
    if not is_device_id(dev) or any(code not in _ACK_CODES for _e, _s, code in acks):
        raise ValueError("encode_ack takes a valid device id and codes ok/dup/quar")
    entries = ",".join(f'[{int(ep)},{int(seq)},"{code}"]' for ep, seq, code in acks)
    prefix = f'{{"v":{PROTOCOL_VERSION},"typ":"ack","dev":"{dev}","ts":{int(ts)},"acks":[{entries}]'
    return seal(secret, prefix.encode("ascii"))


def encode_config(
    secret: bytes,
    *,
    dev: str,
    ts: int,
    rev: int,
    counter: dict[str, Any],
    official: dict[str, Any] | None,
    scale: dict[str, Any],
    thanks_ms: int,
    hb_s: int,
    ep_min: int | None = None,
) -> bytes:
    """The signed, retained configuration of one device (`ep_min`: the lowest epoch it may use now)."""
    pairs: list[tuple[str, Any]] = [("v", PROTOCOL_VERSION), ("typ", "config"), ("dev", dev), ("ts", ts)]
    pairs += [("rev", rev), ("counter", counter), ("official", official), ("scale", scale)]
    pairs += [("thanks_ms", thanks_ms), ("hb_s", hb_s)]
    if ep_min is not None:
        pairs.append(("ep_min", ep_min))
    return seal(secret, _members(pairs))


def encode_status(*, online: bool, ep: int | None = None, fw: str | None = None) -> bytes:
    """Retained availability (unsigned, advisory): `{"online":true,"ep":7,"fw":"1.0.0"}`."""
    pairs: list[tuple[str, Any]] = [("online", online)]
    if ep is not None:
        pairs.append(("ep", ep))
    if fw is not None:
        pairs.append(("fw", fw))
    return _members(pairs) + b"}"
