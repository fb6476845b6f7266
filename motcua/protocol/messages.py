"""Message schemas of protocol v1 (docs/protocol.md §3-§5), validated strictly: no coercion, no extras."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from motcua.protocol.errors import ProtocolError
from motcua.protocol.topics import DEVICE_ID_PATTERN

PROTOCOL_VERSION = 1
MAX_EPOCH = 2**31 - 1
MAX_SAFE_INT = 2**53 - 1  # keeps every integer exact in JavaScript consoles and JSON tools
MAX_LEVELS = 10
EVENT_TYPES = frozenset({"rating", "incident"})  # what travels on `evt`; heartbeats have their own topic

_STRICT = ConfigDict(strict=True, extra="forbid", frozen=True)


class RatingBody(BaseModel):
    """A citizen's press: `value` on a 1..`levels` scale, 1 the worst (docs/protocol.md §3.1)."""

    model_config = _STRICT
    value: int = Field(ge=1, le=MAX_LEVELS)
    levels: int = Field(ge=2, le=MAX_LEVELS)
    txn: str | None = Field(default=None, min_length=1, max_length=32, pattern=r"^[\x21-\x7e]+$")
    reasons: list[Annotated[str, Field(pattern=r"^[a-z0-9_]{1,32}$")]] | None = Field(
        default=None, max_length=8
    )
    during_thanks: bool | None = None

    @model_validator(mode="after")
    def _value_on_scale(self) -> RatingBody:
        if self.value > self.levels:
            raise ValueError(f"value {self.value} is above the scale's {self.levels} levels")
        return self


class IncidentBody(BaseModel):
    """Something a supervisor should look at: a complaint, a manual or remote trigger (§3.2)."""

    model_config = _STRICT
    kind: Literal["complaint", "manual", "remote", "lowest_rating"]
    ref: list[Annotated[int, Field(ge=0, le=MAX_SAFE_INT)]] | None = Field(
        default=None, min_length=2, max_length=2
    )
    note: str | None = Field(default=None, max_length=280)
    clip: str | None = Field(default=None, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    camera: Literal["ok", "failed", "none"] | None = None


class SessionBody(BaseModel):
    """An official signs in or out at a kiosk, proving a PIN or badge without sending it (§3.4)."""

    model_config = _STRICT
    action: Literal["in", "out"]
    official: str = Field(min_length=1, max_length=32, pattern=r"^[\x21-\x7e]+$")
    method: Literal["pin", "badge"]
    nonce: str = Field(pattern=r"^[0-9a-f]{32}$")
    proof: str = Field(pattern=r"^[0-9a-f]{64}$")


class HeartbeatBody(BaseModel):
    """Device health, sent live every `hb_s` seconds and at every (re)connect (§4)."""

    model_config = _STRICT
    fw: str = Field(min_length=1, max_length=32)
    outbox: int = Field(ge=0, le=MAX_SAFE_INT)
    clock: Literal["synced", "unsynced"]
    mem: int = Field(ge=0, le=MAX_SAFE_INT)
    dropped: int = Field(ge=0, le=MAX_SAFE_INT)
    rssi: int | None = Field(default=None, ge=-150, le=0)


class _EnvelopeBase(BaseModel):
    model_config = _STRICT
    v: Literal[1]
    dev: str = Field(pattern=DEVICE_ID_PATTERN)
    ep: int = Field(ge=1, le=MAX_EPOCH)
    up: int = Field(ge=0, le=MAX_SAFE_INT)
    ts: int | None = Field(default=None, ge=0, le=MAX_SAFE_INT)
    sig: str = Field(pattern=r"^[0-9a-f]{64}$")


class RatingEvent(_EnvelopeBase):
    seq: int = Field(ge=1, le=MAX_SAFE_INT)
    typ: Literal["rating"]
    body: RatingBody


class IncidentEvent(_EnvelopeBase):
    seq: int = Field(ge=1, le=MAX_SAFE_INT)
    typ: Literal["incident"]
    body: IncidentBody


class SessionEvent(_EnvelopeBase):
    seq: int = Field(ge=1, le=MAX_SAFE_INT)
    typ: Literal["session"]
    body: SessionBody


EventEnvelope = Annotated[RatingEvent | IncidentEvent | SessionEvent, Field(discriminator="typ")]
_EVENT = TypeAdapter(EventEnvelope)


class HeartbeatEnvelope(_EnvelopeBase):
    seq: int = Field(ge=0, le=MAX_SAFE_INT)  # the last sequence number assigned, 0 if none yet
    typ: Literal["heartbeat"]
    body: HeartbeatBody


class AckMessage(BaseModel):
    """Server -> device: these (epoch, seq) are durably stored (or kept in quarantine) and may be deleted."""

    model_config = _STRICT
    v: Literal[1]
    typ: Literal["ack"]
    dev: str = Field(pattern=DEVICE_ID_PATTERN)
    ts: int = Field(ge=0)
    acks: list[list[int | str]] = Field(min_length=1)
    sig: str = Field(pattern=r"^[0-9a-f]{64}$")


class ConfigMessage(BaseModel):
    """Server -> device, retained: who is serving at this counter and how to ask citizens (§5)."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)
    v: Literal[1]
    typ: Literal["config"]
    dev: str = Field(pattern=DEVICE_ID_PATTERN)
    ts: int = Field(ge=0)
    rev: int = Field(ge=1)
    counter: dict[str, Any]
    official: dict[str, Any] | None
    scale: dict[str, Any]
    thanks_ms: int = Field(ge=0)
    hb_s: int = Field(ge=5)
    ep_min: int | None = Field(default=None, ge=1, le=MAX_EPOCH)
    sig: str = Field(pattern=r"^[0-9a-f]{64}$")


CLIP_ID_PATTERN = r"^[0-9a-f]{32}$"


class ClipManifest(BaseModel):
    """Device -> server over HTTP: what an evidence clip holds, signed like an event (§10)."""

    model_config = _STRICT
    v: Literal[1]
    typ: Literal["clip"]
    dev: str = Field(pattern=DEVICE_ID_PATTERN)
    clip: str = Field(pattern=CLIP_ID_PATTERN)
    ep: int = Field(ge=1, le=MAX_EPOCH)
    up0: int = Field(ge=0, le=MAX_SAFE_INT)
    up1: int = Field(ge=0, le=MAX_SAFE_INT)
    ts0: int | None = Field(default=None, ge=0, le=MAX_SAFE_INT)
    ts1: int | None = Field(default=None, ge=0, le=MAX_SAFE_INT)
    frames: int = Field(ge=1, le=1_000_000)
    width: int = Field(ge=16, le=8192)
    height: int = Field(ge=16, le=8192)
    format: Literal["mkv-mjpeg"]
    size: int = Field(ge=1, le=MAX_SAFE_INT)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    events: list[list[Annotated[int, Field(ge=1, le=MAX_SAFE_INT)]]] = Field(max_length=64)
    privacy: Literal["none", "faces", "regions", "faces+regions"]
    sig: str = Field(pattern=r"^[0-9a-f]{64}$")

    @model_validator(mode="after")
    def _consistent(self) -> ClipManifest:
        if self.up1 < self.up0:
            raise ValueError("up1 is before up0")
        if any(len(ref) != 2 for ref in self.events):
            raise ValueError("each of events is [ep, seq]")
        return self


def validate_clip_manifest(doc: dict[str, Any]) -> ClipManifest:
    """Validate a parsed clip manifest; raises ProtocolError("schema")."""
    try:
        return ClipManifest.model_validate(doc)
    except ValidationError as exc:
        raise _schema_error(exc) from None


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Two members with one name would let two parsers read two different messages from one signature.
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        twice = next(k for k, _v in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise ProtocolError("malformed", f"duplicate member {twice!r}")
    return out


def _no_constants(name: str) -> Any:
    raise ProtocolError("malformed", f"{name} is not JSON")


def parse_json_strict(payload: bytes) -> dict[str, Any]:
    """Parse UTF-8 JSON holding one object; raises ProtocolError("malformed") otherwise."""
    try:
        text = payload.decode("utf-8")
        value = json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constants)
    except ProtocolError:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ProtocolError("malformed", f"not UTF-8 JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ProtocolError("malformed", "the payload must be a JSON object")
    return value


def _schema_error(exc: ValidationError) -> ProtocolError:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "(root)"
    return ProtocolError("schema", f"{where}: {first['msg']} ({exc.error_count()} error(s))")


def validate_event(doc: dict[str, Any]) -> RatingEvent | IncidentEvent | SessionEvent:
    """Validate a parsed event document; raises ProtocolError("schema")."""
    try:
        return _EVENT.validate_python(doc)
    except ValidationError as exc:
        raise _schema_error(exc) from None


def validate_heartbeat(doc: dict[str, Any]) -> HeartbeatEnvelope:
    """Validate a parsed heartbeat document; raises ProtocolError("schema")."""
    try:
        return HeartbeatEnvelope.model_validate(doc)
    except ValidationError as exc:
        raise _schema_error(exc) from None


def validate_server_message(doc: dict[str, Any]) -> AckMessage | ConfigMessage:
    """Validate an ack or config document (the device side of the protocol)."""
    try:
        if doc.get("typ") == "ack":
            return AckMessage.model_validate(doc)
        return ConfigMessage.model_validate(doc)
    except ValidationError as exc:
        raise _schema_error(exc) from None
