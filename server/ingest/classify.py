"""Stage 1, pure: authenticate and validate one message against the device registry.

Order matters: the signature is checked on the raw bytes *before* the schema, so an unauthenticated
payload is reported as forged rather than as merely ill-shaped, and nothing is trusted unverified.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from motcua.protocol import ProtocolError, TopicKind, parse_topic, verify_payload
from motcua.protocol.messages import (
    EVENT_TYPES,
    MAX_EPOCH,
    MAX_SAFE_INT,
    HeartbeatEnvelope,
    IncidentEvent,
    RatingEvent,
    SessionEvent,
    parse_json_strict,
    validate_event,
    validate_heartbeat,
)
from server.ingest.messages import Incoming
from server.ingest.reasons import Reason


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """What stage 1 needs to know about a device (loaded once per batch)."""

    id: str
    secret: bytes
    active: bool
    counter_id: int


@dataclass(frozen=True, slots=True)
class Rejected:
    reason: Reason
    detail: str
    device_id: str | None = None
    epoch: int | None = None
    seq: int | None = None
    ackable: bool = False  # authenticated: the device may be told to stop re-sending


@dataclass(frozen=True, slots=True)
class VerifiedEvent:
    device: DeviceInfo
    event: RatingEvent | IncidentEvent | SessionEvent
    body: dict[str, Any]  # the body as parsed (validated through `event`), stored as sent


@dataclass(frozen=True, slots=True)
class VerifiedHeartbeat:
    device: DeviceInfo
    heartbeat: HeartbeatEnvelope


@dataclass(frozen=True, slots=True)
class Status:
    device_id: str
    doc: dict[str, Any] | None


Classified = Rejected | VerifiedEvent | VerifiedHeartbeat | Status


def _ints(doc: dict[str, Any]) -> tuple[int | None, int | None]:
    """(ep, seq) as claimed, when they are integers within the protocol's bounds; else (None, None).

    Out-of-range numbers from unauthenticated junk must not reach BIGINT columns (they would fail the
    whole batch), and are worthless as evidence anyway.
    """
    ep, seq = doc.get("ep"), doc.get("seq")
    if type(ep) is not int or type(seq) is not int:
        return None, None
    if not (1 <= ep <= MAX_EPOCH and 0 <= seq <= MAX_SAFE_INT):
        return None, None
    return ep, seq


def classify(msg: Incoming, devices: dict[str, DeviceInfo], max_payload: int) -> Classified:
    """Decide what `msg` is; never raises for any payload."""
    try:
        where = parse_topic(msg.topic)
    except ProtocolError as exc:
        return Rejected(Reason.BAD_TOPIC, str(exc))
    if where.kind is TopicKind.STATUS:
        return _status(where.device_id, msg.payload)
    if len(msg.payload) > max_payload:
        return Rejected(Reason.OVERSIZED, f"{len(msg.payload)} bytes > limit {max_payload}", where.device_id)
    try:
        doc = parse_json_strict(msg.payload)
    except ProtocolError as exc:
        return Rejected(Reason.MALFORMED, str(exc), where.device_id)
    ep, seq = _ints(doc)
    device = devices.get(where.device_id)
    if device is None:
        return Rejected(Reason.UNKNOWN_DEVICE, "no device with this id is provisioned", where.device_id, ep, seq)
    if not device.active:
        return Rejected(Reason.REVOKED_DEVICE, "the device was revoked", device.id, ep, seq)
    try:
        verify_payload(device.secret, msg.payload)
    except ProtocolError as exc:
        return Rejected(Reason.BAD_SIGNATURE, str(exc), device.id, ep, seq)
    # Only something that claims to be an event may earn an ack for its (ep, seq): a heartbeat (signed
    # with the same key, carrying the last assigned seq) replayed on `evt` must never make the device
    # delete its newest, unstored press.
    ackable = (where.kind is TopicKind.EVENT and doc.get("typ") in EVENT_TYPES and ep is not None
               and seq is not None and seq >= 1)
    try:
        if where.kind is TopicKind.HEARTBEAT:
            beat = validate_heartbeat(doc)
        elif where.kind is TopicKind.EVENT:
            event = validate_event(doc)
        else:
            return Rejected(Reason.BAD_TOPIC, f"devices do not publish on {where.kind.value}", device.id)
    except ProtocolError as exc:
        return Rejected(Reason.SCHEMA, str(exc), device.id, ep, seq, ackable)
    claimed = doc["dev"]
    if claimed != device.id:
        detail = f"envelope says {claimed!r}, topic says {device.id!r}"
        return Rejected(Reason.TOPIC_MISMATCH, detail, device.id, ep, seq, ackable)
    if where.kind is TopicKind.HEARTBEAT:
        return VerifiedHeartbeat(device, beat)
    return VerifiedEvent(device, event, doc["body"])


def _status(device_id: str, payload: bytes) -> Status:
    try:
        doc = parse_json_strict(payload) if payload else None
    except ProtocolError:
        doc = None
    return Status(device_id, doc)
