"""Wire protocol v1 (docs/protocol.md): topics, framing, signing and message schemas.

This package is the single CPython implementation shared by the server, the kiosk and the simulator.
The MicroPython firmware carries its own small implementation; both are held to tests/vectors/.
"""

from motcua.protocol.codec import (
    encode_ack,
    encode_clip_manifest,
    encode_config,
    encode_event,
    encode_heartbeat,
    encode_status,
)
from motcua.protocol.errors import ProtocolError
from motcua.protocol.framing import MAX_PAYLOAD_BYTES, sign, split_signature, verify_payload
from motcua.protocol.messages import (
    AckMessage,
    ClipManifest,
    ConfigMessage,
    EventEnvelope,
    HeartbeatEnvelope,
    IncidentBody,
    RatingBody,
    SessionBody,
    parse_json_strict,
)
from motcua.protocol.topics import Topic, TopicKind, parse_topic, topic

__all__ = [
    "MAX_PAYLOAD_BYTES",
    "AckMessage",
    "ClipManifest",
    "ConfigMessage",
    "EventEnvelope",
    "HeartbeatEnvelope",
    "IncidentBody",
    "ProtocolError",
    "RatingBody",
    "SessionBody",
    "Topic",
    "TopicKind",
    "encode_ack",
    "encode_clip_manifest",
    "encode_config",
    "encode_event",
    "encode_heartbeat",
    "encode_status",
    "parse_json_strict",
    "parse_topic",
    "sign",
    "split_signature",
    "topic",
    "verify_payload",
]
