"""A small simulated ward office, for the demo: the real device code, the real API, a real broker.

Officials work shifts at counters (signed in and out through the REST API, as a queue system does);
citizens arrive at random and rate according to the serving official's latent quality; now and then
something goes wrong on purpose (mashing, a re-send, a forged or malformed packet, an unknown device,
a second rating for one ticket, a gap between shifts) so every part of ingest shows up in the demo.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import Engine

from device.agent import DeviceAgent
from motcua.protocol import codec
from server import registry
from server.db.models import DeviceKind

log = logging.getLogger("motcua.simulator")

OFFICIALS = [
    ("Nguyễn Thị Lan", "Công chức Tư pháp - Hộ tịch"), ("Trần Văn Minh", "Công chức Địa chính - Xây dựng"),
    ("Lê Thu Hà", "Công chức Văn phòng - Thống kê"), ("Phạm Quốc Huy", "Công chức Văn hóa - Xã hội"),
    ("Hoàng Mai Anh", "Công chức Tư pháp - Hộ tịch"), ("Vũ Đức Thắng", "Công chức Địa chính - Xây dựng"),
    ("Đặng Thị Hoa", "Công chức Tài chính - Kế toán"), ("Bùi Văn Nam", "Công chức Văn phòng - Thống kê"),
]
SERVICES = [("Quầy Tư pháp - Hộ tịch", "ho-tich"), ("Quầy Đất đai", "dat-dai"), ("Quầy Chứng thực", "chung-thuc"),
            ("Quầy Lao động - Xã hội", "lao-dong"), ("Quầy Xây dựng", "xay-dung"), ("Quầy Kinh tế", "kinh-te")]
LEVELS = 4
SHIFT_CHANGE_EVERY_S = (30.0, 60.0)  # one counter changes hands this often (a gap of a few seconds between)
MISCHIEF_EVERY_S = (6.0, 12.0)  # something odd happens this often


@dataclass
class Counter:
    code: str
    name: str
    agent: DeviceAgent
    serving: str | None = None  # official code
    ticket: int = 0


@dataclass
class OfficeState:
    officials: dict[str, float] = field(default_factory=dict)  # code -> latent quality in [0, 1]
    counters: list[Counter] = field(default_factory=list)
    pressed: int = 0
    mischief: dict[str, int] = field(default_factory=dict)


def _constant(value: bool) -> Callable[[], bool]:
    return lambda: value


class SimulatedOffice:
    def __init__(self, *, engine: Engine, broker_host: str, broker_port: int, api_url: str, state_dir: Path,
                 counters: int = 4, rate: float = 1.5, seed: int | None = None, unit_code: str = "PHUONG-DEMO") -> None:
        self.engine = engine
        self.broker = (broker_host, broker_port)
        self.api_url = api_url
        self.state_dir = state_dir
        self.n_counters = counters
        self.rate = rate
        self.unit_code = unit_code
        self.rng = random.Random(seed)
        self.state = OfficeState()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._http: httpx.Client | None = None
        self._raw: mqtt.Client | None = None
        self._sent: list[tuple[str, bytes]] = []

    # --- set-up ------------------------------------------------------------------------------

    def provision(self) -> None:
        """Create the unit, counters, officials, devices and the queue system's API token."""
        officials = OFFICIALS[: max(self.n_counters + 2, 3)]
        with self.engine.begin() as conn:
            unit = registry.create_unit(conn, code=self.unit_code, name="UBND phường Minh Khai (mô phỏng)")
            for n, (name, post) in enumerate(officials, 1):
                code = f"CB-{n:04d}"
                registry.create_official(conn, unit_id=unit, code=code, full_name=name, post=post,
                                         duty_group="mot-cua")
                self.state.officials[code] = self.rng.uniform(0.35, 0.95)
            token = registry.create_api_token(conn, name="demo-queue-system", scopes=["sessions:write"],
                                              actor="demo")
            devices = []
            for n in range(1, self.n_counters + 1):
                name, service = SERVICES[(n - 1) % len(SERVICES)]
                cid = registry.create_counter(conn, unit_id=unit, code=f"Q{n:02d}", name=f"{name} ({n})",
                                              service_type=service)
                devices.append((f"Q{n:02d}", f"{name} ({n})",
                                registry.provision_device(conn, counter_id=cid, kind=DeviceKind.SIMULATED,
                                                          actor="demo", device_id=f"demo-q{n:02d}")))
        self._http = httpx.Client(base_url=self.api_url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
        for n, (code, name, dev) in enumerate(devices):
            # Counter 2 has no clock sync: its events are timed from heartbeat anchors (protocol §4).
            synced = n != 1
            agent = DeviceAgent(device_id=dev.id, secret_hex=dev.secret_hex, state_dir=self.state_dir,
                                host=self.broker[0], port=self.broker[1], fw="demo-sim-1", levels=LEVELS,
                                clock_synced=_constant(synced), resend_after_s=5.0, heartbeat_s=15.0)
            self.state.counters.append(Counter(code, name, agent))

    # --- running -----------------------------------------------------------------------------

    def start(self) -> None:
        for counter in self.state.counters:
            counter.agent.start()
        self._raw = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="demo-mischief")
        self._raw.connect_async(*self.broker)
        self._raw.loop_start()
        for i, counter in enumerate(self.state.counters):
            self._sign_in(counter, list(self.state.officials)[i])
        for target, name in ((self._citizens, "citizens"), (self._shifts, "shifts"), (self._mischief, "mischief")):
            thread = threading.Thread(target=self._guard(target), name=f"sim-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _guard(self, loop: Any) -> Any:
        def run() -> None:
            try:
                loop()
            except Exception:
                log.exception("simulated office: %s stopped", loop.__name__)
        return run

    def stop(self, drain_s: float = 8.0) -> int:
        """Stop new activity, give the devices `drain_s` to deliver their outboxes, then power down.

        Returns how many events were still waiting in outboxes (they would be sent at the next start).
        """
        self._stop.set()
        for thread in self._threads:
            thread.join(5)
        deadline = time.monotonic() + drain_s
        while time.monotonic() < deadline and any(c.agent.pending() for c in self.state.counters):
            time.sleep(0.1)
        left = self.pending()
        for counter in self.state.counters:
            counter.agent.stop()
        if self._raw is not None:
            self._raw.loop_stop()
            self._raw.disconnect()
        if self._http is not None:
            self._http.close()
        return left

    def pending(self) -> int:
        return sum(c.agent.pending() for c in self.state.counters)

    # --- behaviour ---------------------------------------------------------------------------

    def _sign_in(self, counter: Counter, official: str) -> None:
        assert self._http is not None
        res = self._http.post(f"/api/v1/counters/{counter.code}/sign-in", json={"official": official})
        if res.status_code == 201:
            counter.serving = official
        else:
            log.warning("sign-in of %s at %s refused: %s", official, counter.code, res.text)

    def _sign_out(self, counter: Counter) -> None:
        assert self._http is not None
        res = self._http.post(f"/api/v1/counters/{counter.code}/sign-out", json={})
        if res.status_code == 200:
            counter.serving = None

    def _rating_for(self, official: str | None) -> int:
        quality = self.state.officials.get(official or "", 0.6)
        centre = 1 + (LEVELS - 1) * quality
        return max(1, min(LEVELS, round(self.rng.gauss(centre, 0.8))))

    def _citizens(self) -> None:
        while not self._stop.wait(self.rng.expovariate(self.rate)):
            counter = self.rng.choice(self.state.counters)
            counter.ticket += 1
            value = self._rating_for(counter.serving)
            counter.agent.press(value, txn=f"{counter.code}-{counter.ticket:03d}")
            self.state.pressed += 1
            if value == 1 and self.rng.random() < 0.3:
                counter.agent.complain(note="Chờ lâu, không được hướng dẫn")

    def _shifts(self) -> None:
        while not self._stop.wait(self.rng.uniform(*SHIFT_CHANGE_EVERY_S)):
            counter = self.rng.choice(self.state.counters)
            busy = {c.serving for c in self.state.counters}
            free = [o for o in self.state.officials if o not in busy]
            if not free:
                continue
            self._sign_out(counter)
            if self._stop.wait(self.rng.uniform(2.0, 6.0)):  # the desk is unattended for a moment
                return
            self._sign_in(counter, self.rng.choice(free))

    def _mischief(self) -> None:
        tricks = [self._mash, self._resend, self._forged, self._malformed, self._unknown_device, self._same_ticket]
        while not self._stop.wait(self.rng.uniform(*MISCHIEF_EVERY_S)):
            trick = self.rng.choice(tricks)
            trick()
            self.state.mischief[trick.__name__.strip("_")] = self.state.mischief.get(trick.__name__.strip("_"), 0) + 1

    def _mash(self) -> None:
        counter = self.rng.choice(self.state.counters)
        for _ in range(self.rng.randint(3, 6)):  # a child finds the buttons
            counter.agent.press(self.rng.randint(1, LEVELS))
            time.sleep(0.15)

    def _resend(self) -> None:
        counter = self.rng.choice(self.state.counters)
        entry = counter.agent.press(self._rating_for(counter.serving))
        time.sleep(1.0)
        self._publish(f"motcua/v1/dev/{counter.agent.device_id}/evt", entry.payload)  # the same bytes again

    def _forged(self) -> None:
        counter = self.rng.choice(self.state.counters)
        payload = codec.encode_event(self.rng.randbytes(32), dev=counter.agent.device_id, ep=1, seq=10**9 +
                                     self.rng.randint(0, 10**6), up=1000, ts=int(time.time() * 1000), typ="rating",
                                     body=codec.rating_body(1, LEVELS))
        self._publish(f"motcua/v1/dev/{counter.agent.device_id}/evt", payload)

    def _malformed(self) -> None:
        counter = self.rng.choice(self.state.counters)
        self._publish(f"motcua/v1/dev/{counter.agent.device_id}/evt", b'{"v":1,"dev":' + self.rng.randbytes(8))

    def _unknown_device(self) -> None:
        payload = codec.encode_event(b"k" * 32, dev="stolen-box-01", ep=1, seq=self.rng.randint(1, 10**6), up=5,
                                     ts=int(time.time() * 1000), typ="rating", body=codec.rating_body(4, LEVELS))
        self._publish("motcua/v1/dev/stolen-box-01/evt", payload)

    def _same_ticket(self) -> None:
        counter = self.rng.choice(self.state.counters)
        ticket = f"{counter.code}-{counter.ticket:03d}"
        counter.agent.press(self._rating_for(counter.serving), txn=ticket)  # a second rating, same transaction

    def _publish(self, topic: str, payload: bytes) -> None:
        if self._raw is not None:
            self._raw.publish(topic, payload, qos=1)
