"""A tiny SNTP server on loopback for the firmware's clock tests: the simulator's (simulator/firmware.py),
answering with this machine's time shifted by `offset_s` (so a test can tell the firmware's clock from
its own), or silent while `answering` is False."""

from __future__ import annotations

import time

from simulator.firmware import SimSntp


class SntpServer(SimSntp):
    def __init__(self, offset_s: float = 3600.0) -> None:
        self.offset_s = offset_s
        super().__init__(now_ms=lambda: int((time.time() + self.offset_s) * 1000))
        self.start()
