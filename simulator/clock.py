"""The simulated clock: a month in minutes, the same in every process of a run.

Simulated time is a piecewise-linear function of the machine's wall clock, fixed when the run starts, so
the device hosts, the ingest workers and the orchestrator agree on it without talking to each other.
The first segment (the warm-up) runs at compression 1, so devices connect and the server anchors their
clocks (docs/protocol.md §4) before time speeds up; office hours then run at the scenario's
compression, nights and weekends faster (nothing happens then but heartbeats).
"""

from __future__ import annotations

import time
from bisect import bisect_right
from dataclasses import dataclass

NIGHT_SPEEDUP = 5.0  # closed hours run this much faster than office hours: only heartbeats happen then


@dataclass(frozen=True, slots=True)
class Segment:
    real_s: float  # wall-clock second at which the segment starts
    sim_ms: int  # simulated time then, ms since the epoch
    factor: float  # simulated seconds per real second


class SimClock:
    """Picklable: every process of a run gets the same segments and so the same time."""

    def __init__(self, segments: tuple[Segment, ...]) -> None:
        self.segments = segments
        self._reals = [s.real_s for s in segments]
        self._sims = [s.sim_ms for s in segments]

    def now_ms(self) -> int:
        return self.at_real(time.time())

    def now_s(self) -> float:
        """Simulated time in seconds, the shape of time.time() (what IngestService takes as its clock)."""
        return self.at_real(time.time()) / 1000.0

    def at_real(self, real_s: float) -> int:
        seg = self.segments[max(0, bisect_right(self._reals, real_s) - 1)]
        return seg.sim_ms + int((real_s - seg.real_s) * 1000 * seg.factor)

    def real_at(self, sim_ms: int) -> float:
        """The wall-clock second at which the simulated clock shows `sim_ms`."""
        seg = self.segments[max(0, bisect_right(self._sims, sim_ms) - 1)]
        return seg.real_s + (sim_ms - seg.sim_ms) / 1000.0 / seg.factor

    @property
    def max_factor(self) -> float:
        return max(s.factor for s in self.segments)

    @property
    def end_ms(self) -> int:
        return self.segments[-1].sim_ms


def build_clock(*, real_start: float, warm_from_ms: int, busy: list[tuple[int, int]], end_ms: int,
                warmup_s: float, factor: float) -> SimClock:
    """Warm-up at 1x up to the first busy period; busy periods (office hours) at `factor`; the rest faster.

    `busy` are (start_ms, end_ms) simulated periods, sorted and disjoint, after `warm_from_ms`.
    The last segment starts at `end_ms` (the end of the simulation) and runs at 1x.
    """
    segments = [Segment(real_start, warm_from_ms, 1.0)]
    real, sim = real_start + warmup_s, warm_from_ms + int(warmup_s * 1000)
    for start, stop in busy:
        if start > sim:  # closed hours before this period
            segments.append(Segment(real, sim, factor * NIGHT_SPEEDUP))
            real, sim = real + (start - sim) / 1000 / (factor * NIGHT_SPEEDUP), start
        segments.append(Segment(real, sim, factor))
        real, sim = real + (stop - sim) / 1000 / factor, stop
    if end_ms > sim:
        segments.append(Segment(real, sim, factor * NIGHT_SPEEDUP))
        real, sim = real + (end_ms - sim) / 1000 / (factor * NIGHT_SPEEDUP), end_ms
    segments.append(Segment(real, sim, 1.0))
    return SimClock(tuple(segments))


class DeviceClock:
    """One virtual device's clock: simulated time plus its offset, pinned while an action is performed.

    An action scheduled for simulated time T is stamped T (ts and uptime) however late its process gets
    to it, so event times do not depend on how busy the machine is; the link's own timers read the
    live clock, which is never behind a pinned value.
    """

    def __init__(self, sim: SimClock, *, offset_ms: int = 0, synced: bool = True) -> None:
        self.sim = sim
        self.offset_ms = offset_ms
        self.synced = synced
        self.boot_ms = sim.now_ms()
        self._pinned: int | None = None

    def sim_ms(self) -> int:
        return self._pinned if self._pinned is not None else self.sim.now_ms()

    def __call__(self) -> float:
        """The device's wall clock in seconds (offset included), what DeviceAgent takes as `clock`."""
        return (self.sim_ms() + self.offset_ms) / 1000.0

    def uptime_ms(self) -> int:
        return max(0, self.sim_ms() - self.boot_ms)

    def is_synced(self) -> bool:
        return self.synced

    def pin(self, sim_ms: int | None) -> None:
        self._pinned = sim_ms

    def boot(self, sim_ms: int) -> None:
        self.boot_ms = sim_ms
