"""When did an event happen, on the server's clock? (docs/protocol.md §4) Pure functions."""

from __future__ import annotations

from dataclasses import dataclass

from server.db.models import TimeSource
from server.ingest.reasons import Reason

EARLIEST_PLAUSIBLE_MS = 1_704_067_200_000  # 2024-01-01T00:00Z: before motcua existed, so a clock reset


@dataclass(frozen=True, slots=True)
class TimeLimits:
    max_future_skew_ms: int
    max_event_age_ms: int
    clock_conflict_ms: int = 600_000


@dataclass(frozen=True, slots=True)
class Timed:
    at_ms: int
    source: TimeSource
    problem: Reason | None = None  # set when the event must wait in quarantine


def derive_time(*, ts: int | None, up: int, received_ms: int, anchor_ms: int | None, limits: TimeLimits) -> Timed:
    """Event time by the first rule that applies: anchor, plausible device clock, else quarantine."""
    if anchor_ms is not None:
        # The anchor is on the server's clock, so a device whose clock is a little off is placed right.
        at = min(anchor_ms + up, received_ms)
        if ts is not None and plausible(ts, received_ms, limits) and abs(ts - at) > limits.clock_conflict_ms:
            # Far apart: either the device clock is wrong, or the anchor belongs to an earlier life of
            # this epoch number (the device was reset). Guessing could credit the wrong official.
            return Timed(received_ms, TimeSource.RECEIVE, Reason.CLOCK_CONFLICT)
        return Timed(at, TimeSource.ANCHOR)
    if ts is None:
        return Timed(received_ms, TimeSource.RECEIVE, Reason.UNTIMED)
    if plausible(ts, received_ms, limits):
        return Timed(ts, TimeSource.DEVICE)
    return Timed(received_ms, TimeSource.RECEIVE, Reason.IMPLAUSIBLE_TIME)


def plausible(ts: int, received_ms: int, limits: TimeLimits) -> bool:
    """A device time that could be true: after 2024, not ahead of us, not older than the limit."""
    return (
        ts >= EARLIEST_PLAUSIBLE_MS
        and ts <= received_ms + limits.max_future_skew_ms
        and ts >= received_ms - limits.max_event_age_ms
    )


def anchor_candidate(*, received_ms: int, up: int) -> int:
    """Boot instant implied by a live heartbeat: an upper bound, tight when the network is quick."""
    return received_ms - up
