"""A small simulated ward office, for the demo: the real device code, the real API, a real broker.

The office is a scenario's world (`motcua demo` uses `small-ward`, so the demo's office and that
scenario are one definition): its units, officials (names, latent quality), counters (services,
clock sync), registered by the simulator's own provisioning. Unlike `motcua simulate`, time is the real
clock and the office never closes: officials work shifts at counters (signed in and out through the
REST API, as a queue system does); citizens arrive at random and rate with the scenario's rating model;
now and then something goes wrong on purpose (mashing, a re-send, a forged or malformed packet, an
unknown device, a second rating for one ticket, a gap between shifts) so every part of ingest shows up.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import Engine

from device.agent import DeviceAgent
from motcua.protocol import codec
from simulator.behaviour import rate
from simulator.provision import provision
from simulator.world import World

log = logging.getLogger("motcua.simulator")

SHIFT_CHANGE_EVERY_S = (30.0, 60.0)  # one counter changes hands this often (a gap of a few seconds between)
MISCHIEF_EVERY_S = (6.0, 12.0)  # something odd happens this often


@dataclass
class Counter:
    code: str
    name: str
    unit: str
    difficulty: float  # of the counter's service (the scenario's rating model)
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


def first_counters(world: World, count: int | None) -> World:
    """The world with only its first `count` counters (all of them for None); ValueError if it has fewer."""
    if count is None:
        return world
    if not 1 <= count <= len(world.counters):
        raise ValueError(f"scenario {world.scenario.name} has {len(world.counters)} counters: give --counters "
                         f"1..{len(world.counters)}, or another scenario")
    kept = dict(list(world.counters.items())[:count])
    return replace(world, counters=kept, actions=[a for a in world.actions if a.counter is None or a.counter in kept])


class SimulatedOffice:
    def __init__(self, *, engine: Engine, broker_host: str, broker_port: int, api_url: str, state_dir: Path,
                 world: World, rate: float = 1.5, seed: int | None = None) -> None:
        self.engine = engine
        self.broker = (broker_host, broker_port)
        self.api_url = api_url
        self.state_dir = state_dir
        self.world = world
        self.levels = world.scenario.scenario.levels
        self.rate = rate
        self.unit_code = world.units[0][0]  # the demo's live page shows the first unit
        self.rng = random.Random(seed)
        self.state = OfficeState()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._http: httpx.Client | None = None
        self._raw: mqtt.Client | None = None
        self._sent: list[tuple[str, bytes]] = []

    # --- set-up ------------------------------------------------------------------------------

    def provision(self) -> None:
        """Register the world's units, officials, counters and devices, and the queue system's API token."""
        made = provision(self.engine, self.world)
        self.state.officials = {o.code: o.quality for o in self.world.officials.values()}
        difficulty = {s.code: s.difficulty for s in self.world.scenario.services}
        self._http = httpx.Client(base_url=self.api_url, headers={"Authorization": f"Bearer {made.token}"},
                                  timeout=10)
        for c in self.world.counters.values():
            # Unsynced counters (devices.unsynced_share) are timed from heartbeat anchors (protocol §4).
            agent = DeviceAgent(device_id=c.device_id, secret_hex=made.secrets[c.device_id], state_dir=self.state_dir,
                                host=self.broker[0], port=self.broker[1], fw="demo-sim-1", levels=self.levels,
                                clock_synced=_constant(c.synced), resend_after_s=5.0, heartbeat_s=15.0)
            self.state.counters.append(Counter(c.code, c.name, c.unit, difficulty[c.service], agent))

    def _free(self, unit: str) -> list[str]:
        """Officials of `unit` serving at no counter now."""
        busy = {c.serving for c in self.state.counters}
        return [o.code for o in self.world.officials.values() if o.unit == unit and o.code not in busy]

    # --- running -----------------------------------------------------------------------------

    def start(self) -> None:
        for counter in self.state.counters:
            counter.agent.start()
        self._raw = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="demo-mischief")
        self._raw.connect_async(*self.broker)
        self._raw.loop_start()
        for counter in self.state.counters:
            free = self._free(counter.unit)
            if free:
                self._sign_in(counter, free[0])
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

    def _rating_for(self, counter: Counter) -> int:
        """The scenario's rating model (simulator/behaviour.py), for whoever serves at the counter now."""
        quality = self.state.officials.get(counter.serving or "", self.world.scenario.officials.quality_mean)
        return rate(self.rng, quality=quality, difficulty=counter.difficulty, levels=self.levels,
                    noise=self.world.scenario.citizens.noise)

    def _citizens(self) -> None:
        complaints = self.world.scenario.citizens.complaint_share
        while not self._stop.wait(self.rng.expovariate(self.rate)):
            counter = self.rng.choice(self.state.counters)
            counter.ticket += 1
            value = self._rating_for(counter)
            counter.agent.press(value, txn=f"{counter.code}-{counter.ticket:03d}")
            self.state.pressed += 1
            if value == 1 and self.rng.random() < complaints:
                counter.agent.complain(note="Chờ lâu, không được hướng dẫn")

    def _shifts(self) -> None:
        while not self._stop.wait(self.rng.uniform(*SHIFT_CHANGE_EVERY_S)):
            counter = self.rng.choice(self.state.counters)
            free = self._free(counter.unit)
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
            counter.agent.press(self.rng.randint(1, self.levels))
            time.sleep(0.15)

    def _resend(self) -> None:
        counter = self.rng.choice(self.state.counters)
        entry = counter.agent.press(self._rating_for(counter))
        time.sleep(1.0)
        self._publish(f"motcua/v1/dev/{counter.agent.device_id}/evt", entry.payload)  # the same bytes again

    def _forged(self) -> None:
        counter = self.rng.choice(self.state.counters)
        payload = codec.encode_event(self.rng.randbytes(32), dev=counter.agent.device_id, ep=1, seq=10**9 +
                                     self.rng.randint(0, 10**6), up=1000, ts=int(time.time() * 1000), typ="rating",
                                     body=codec.rating_body(1, self.levels))
        self._publish(f"motcua/v1/dev/{counter.agent.device_id}/evt", payload)

    def _malformed(self) -> None:
        counter = self.rng.choice(self.state.counters)
        self._publish(f"motcua/v1/dev/{counter.agent.device_id}/evt", b'{"v":1,"dev":' + self.rng.randbytes(8))

    def _unknown_device(self) -> None:
        payload = codec.encode_event(b"k" * 32, dev="stolen-box-01", ep=1, seq=self.rng.randint(1, 10**6), up=5,
                                     ts=int(time.time() * 1000), typ="rating",
                                     body=codec.rating_body(self.levels, self.levels))
        self._publish("motcua/v1/dev/stolen-box-01/evt", payload)

    def _same_ticket(self) -> None:
        counter = self.rng.choice(self.state.counters)
        ticket = f"{counter.code}-{counter.ticket:03d}"
        counter.agent.press(self._rating_for(counter), txn=ticket)  # a second rating, same transaction

    def _publish(self, topic: str, payload: bytes) -> None:
        if self._raw is not None:
            self._raw.publish(topic, payload, qos=1)
