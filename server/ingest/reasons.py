"""Quarantine reason codes (docs/protocol.md §8): stable strings, used in the API and metrics."""

from enum import StrEnum


class Reason(StrEnum):
    OVERSIZED = "oversized"
    MALFORMED = "malformed"
    BAD_TOPIC = "bad_topic"
    UNKNOWN_DEVICE = "unknown_device"
    REVOKED_DEVICE = "revoked_device"
    BAD_SIGNATURE = "bad_signature"
    SCHEMA = "schema"
    TOPIC_MISMATCH = "topic_mismatch"
    IMPLAUSIBLE_TIME = "implausible_time"
    UNTIMED = "untimed"
    CLOCK_CONFLICT = "clock_conflict"
    EPOCH_REGRESSION = "epoch_regression"
    SEQ_CONFLICT = "seq_conflict"
    REPLAY = "replay"
    UNATTRIBUTED = "unattributed"
    BAD_CREDENTIAL = "bad_credential"  # kiosk sign-in/out: unknown official, no credential, wrong PIN/badge
    SESSION_REFUSED = "session_refused"  # kiosk sign-in/out with a valid credential that cannot be applied
    INTERNAL_ERROR = "internal_error"


# Reasons under which the event itself is stored (and waits for time or an official); the others keep
# only the raw payload in the quarantine record.
STORED_AS_EVENT = frozenset({Reason.IMPLAUSIBLE_TIME, Reason.UNTIMED, Reason.CLOCK_CONFLICT, Reason.UNATTRIBUTED})
# Reasons a later clock anchor of the event's boot settles by itself.
RETIMED_BY_ANCHOR = frozenset({Reason.UNTIMED, Reason.IMPLAUSIBLE_TIME})
