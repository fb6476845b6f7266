"""What travels between the MQTT adapter and the pipeline: plain data, no library types."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


@dataclass(slots=True)
class Incoming:
    """One MQTT message as received; `token` lets the adapter PUBACK it after the commit."""

    topic: str
    payload: bytes
    received_ms: int
    arrived_monotonic: float = field(default=0.0, compare=False)  # for ack-latency metrics
    token: Any = field(default=None, compare=False)  # the adapter's handle for the PUBACK


class Fate(StrEnum):
    STORED = "stored"
    DUPLICATE = "duplicate"
    QUARANTINED = "quarantined"
    HEARTBEAT = "heartbeat"
    STATUS = "status"
    IGNORED = "ignored"  # advisory status of an unknown device: nothing to keep


# End-to-end ack codes (docs/protocol.md §7).
ACK_CODE = {Fate.STORED: "ok", Fate.DUPLICATE: "dup", Fate.QUARANTINED: "quar"}


@dataclass(slots=True)
class Result:
    """The committed fate of one message, and the e2e ack it earns (None: no ack is due)."""

    fate: Fate
    reason: str | None = None
    device_id: str | None = None
    ack: tuple[int, int, str] | None = None  # (epoch, seq, code) for the device's ack topic
