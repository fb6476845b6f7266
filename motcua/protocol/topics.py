"""Topic namespace of protocol v1: one subtree per device under `motcua/v1/dev/<device-id>/`."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import NamedTuple

from motcua.protocol.errors import ProtocolError

ROOT = "motcua/v1"
# Device ids are topic-safe by construction: no '/', '+', '#', no upper case (MQTT topics are case-sensitive
# and people type ids from labels).
DEVICE_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{2,39}$"
_DEVICE_ID = re.compile(DEVICE_ID_PATTERN)
SERVER_STATUS_TOPIC = f"{ROOT}/server/status"


class TopicKind(StrEnum):
    """The leaf of a device topic; the direction is fixed per kind (docs/protocol.md §2)."""

    EVENT = "evt"  # device -> server, QoS 1, signed, kept in the device outbox until acked
    HEARTBEAT = "hb"  # device -> server, QoS 0, signed, never queued on the device
    STATUS = "status"  # device -> server, retained, unsigned (advisory; last will = offline)
    ACK = "ack"  # server -> device, QoS 1, signed with the device key
    CONFIG = "cfg"  # server -> device, retained, QoS 1, signed with the device key


class Topic(NamedTuple):
    device_id: str
    kind: TopicKind


def is_device_id(value: str) -> bool:
    """True when `value` is a well-formed device id."""
    return bool(_DEVICE_ID.match(value))


def topic(device_id: str, kind: TopicKind) -> str:
    """The topic for `kind` in the subtree of `device_id`."""
    if not is_device_id(device_id):
        raise ValueError(f"not a valid device id: {device_id!r} (expected {DEVICE_ID_PATTERN})")
    return f"{ROOT}/dev/{device_id}/{kind.value}"


def subscription(kind: TopicKind) -> str:
    """Wildcard filter matching `kind` for every device."""
    return f"{ROOT}/dev/+/{kind.value}"


def parse_topic(name: str) -> Topic:
    """Split a device topic into (device id, kind); raises ProtocolError("bad_topic") otherwise."""
    parts = name.split("/")
    if len(parts) != 5 or f"{parts[0]}/{parts[1]}" != ROOT or parts[2] != "dev":
        raise ProtocolError("bad_topic", f"topic {name!r} is not under {ROOT}/dev/<device>/<kind>")
    if not is_device_id(parts[3]):
        raise ProtocolError("bad_topic", f"topic {name!r} carries an invalid device id")
    try:
        kind = TopicKind(parts[4])
    except ValueError:
        raise ProtocolError("bad_topic", f"topic {name!r} has unknown kind {parts[4]!r}") from None
    return Topic(parts[3], kind)
