"""The simulated world, built deterministically from a scenario and its seed.

Units, counters (with their device profile), officials (with a latent true quality), the daily roster,
and each counter's timeline of actions: sign-ins and sign-outs, citizens' presses and complaints, and the
faults. Every action carries what the server should make of it (the ground truth's expectation).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from simulator.behaviour import rate
from simulator.scenario import Scenario, ScenarioError, parse_shift

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")  # the offices' local time (server setting `timezone`)
# Citizens finish, and rate, at least this long before the official leaves, and start this long after
# the official arrives. It must exceed the error of the server's clock anchor for a device (network
# delay × compression, docs/simulator.md "Time"): within it the honest answer is ambiguous.
HANDOVER_GUARD_MS = 5 * 60_000
MASH_GAP_MS = (300, 1200)  # a child's presses, this far apart: well inside the server's misuse window
SKEWS = ("small", "ahead", "behind")  # clock_skew kinds, in turn (docs/simulator.md "Faults")
# small: within the server's 2-minute future tolerance and its 10-minute conflict threshold (anchor time);
# ahead: a wrong date, never plausible, so the anchor times it; behind: plausible and far off -> conflict.
SKEW_MS = {"small": 90_000, "ahead": 24 * 3600_000, "behind": -2 * 3600_000}
HOST_FAULTS = ("network_drop", "power_cut", "clock_skew", "unsynced_clock", "duplicate_send", "button_mashing",
               "forged_signature", "replay", "malformed_payload", "unknown_device", "camera_failure")


@dataclass
class Official:
    code: str
    unit: str
    name: str
    quality: float
    pin: str


@dataclass
class Counter:
    code: str
    unit: str
    name: str
    service: str
    kind: str  # "button" (ESP32 box, sessions from the queue system) or "kiosk" (PIN sign-in on the device)
    device_id: str
    synced: bool
    host: int = 0
    proxied: bool = False  # connects through the host's fault proxy (it has network drops)
    firmware: bool = False  # a button box running the real firmware in MicroPython (simulator/firmware.py)


@dataclass(order=True)
class Action:
    at_ms: int
    order: int  # ties broken in creation order
    kind: str = field(compare=False)
    counter: str | None = field(compare=False, default=None)
    args: dict[str, Any] = field(compare=False, default_factory=dict)


@dataclass
class World:
    scenario: Scenario
    units: list[tuple[str, str]]
    officials: dict[str, Official]
    counters: dict[str, Counter]
    actions: list[Action]  # all of them, sorted
    start_ms: int
    end_ms: int
    busy: list[tuple[int, int]]  # office hours, simulated ms

    def for_host(self, host: int) -> list[Action]:
        mine = {c.code for c in self.counters.values() if c.host == host}
        return [a for a in self.actions if a.counter in mine and not _orchestrated(a, self.counters)]

    def orchestrated(self) -> list[Action]:
        return [a for a in self.actions if _orchestrated(a, self.counters)]


def _orchestrated(a: Action, counters: dict[str, Counter]) -> bool:
    """Actions the orchestrator performs: queue-system sessions at button counters, broker/server faults."""
    if a.counter is None:
        return True
    return a.kind in ("sign_in", "sign_out") and counters[a.counter].kind == "button"


def default_start(days: int, today: date | None = None) -> date:
    """The first simulated day: a Monday, with the whole run ending before today."""
    day = (today or datetime.now(ZONE).date()) - timedelta(days=days + 1)
    return day - timedelta(days=day.weekday())


def local_ms(day: date, minute: int) -> int:
    when = datetime(day.year, day.month, day.day, tzinfo=ZONE) + timedelta(minutes=minute)
    return int(when.timestamp() * 1000)


class Builder:
    def __init__(self, sc: Scenario, start: date | None = None) -> None:
        self.sc = sc
        self.rng = random.Random(sc.scenario.seed)
        self.start = start or (date.fromisoformat(sc.scenario.start) if sc.scenario.start else
                               default_start(sc.scenario.days))
        self.actions: list[Action] = []
        self.counters: dict[str, Counter] = {}
        self.officials: dict[str, Official] = {}
        self.units: list[tuple[str, str]] = []
        self.shifts = [parse_shift(s) for s in sc.office.shifts]
        self.busy: list[tuple[int, int]] = []
        self.serving: dict[str, list[tuple[int, int, str]]] = {}  # counter -> (from, to, official)
        self.off: dict[str, list[tuple[int, int]]] = {}  # counter -> power-cut periods
        self.skewed: dict[str, tuple[int, str]] = {}  # counter -> (from, kind)

    def add(self, at_ms: int, kind: str, counter: str | None = None, **args: Any) -> None:
        self.actions.append(Action(at_ms, len(self.actions), kind, counter, args))

    def build(self) -> World:
        self._population()
        self._firmware()
        days = [self.start + timedelta(days=d) for d in range(self.sc.scenario.days)]
        workdays = [d for d in days if d.weekday() in self.sc.office.workdays] or days[:1]
        for day in workdays:
            self._day(day)
        self._faults(workdays)
        for day in workdays:
            self._citizens(day)
        self.actions.sort()
        first = min(a.at_ms for a in self.actions)
        end = local_ms(days[-1], 24 * 60) if len(days) > 1 else max(a.at_ms for a in self.actions) + 15 * 60_000
        return World(self.sc, self.units, self.officials, self.counters, self.actions, first, end, self.busy)

    # --- people and places ---------------------------------------------------------------------

    def _population(self) -> None:
        o, sc = self.sc.office, self.sc
        services = sc.services
        hosts = sc.devices.hosts
        for u in range(1, o.units + 1):
            unit = f"{o.unit_prefix}{u:03d}"
            self.units.append((unit, f"UBND {unit} (mô phỏng)"))
            for n in range(1, o.officials_per_unit + 1):
                q = min(0.99, max(0.05, self.rng.gauss(sc.officials.quality_mean, sc.officials.quality_sd)))
                code = f"{unit}-CB{n:02d}"
                self.officials[code] = Official(code, unit, f"Cán bộ {n} {unit}", q, f"{self.rng.randrange(10**6):06d}")
            for c in range(1, o.counters_per_unit + 1):
                svc = self.rng.choices(services, weights=[s.weight for s in services])[0]
                kind = "kiosk" if self.rng.random() < sc.devices.kiosk_share else "button"
                code = f"{unit}-Q{c:02d}"
                self.counters[code] = Counter(
                    code, unit, f"Quầy {svc.name} {c}", svc.code, kind, f"sim-{unit.lower()}-q{c:02d}",
                    synced=self.rng.random() >= sc.devices.unsynced_share, host=len(self.counters) % hosts)

    def _firmware(self) -> None:
        """The button boxes that run the real firmware: drawn from their own stream of the seed, so that the
        world is the one the same scenario has without them, but for the clock faults they are spared."""
        n = self.sc.devices.micropython
        if not n:
            return
        boxes = [c for c in self.counters.values() if c.kind == "button"]
        if len(boxes) < n:
            raise ScenarioError(f"devices.micropython = {n}, but only {len(boxes)} of the {len(self.counters)} "
                                "counters are button boxes (the others drew a kiosk: devices.kiosk_share): "
                                "lower micropython or kiosk_share")
        for c in random.Random(f"{self.sc.scenario.seed}:micropython").sample(boxes, n):
            c.firmware = True

    def _day(self, day: date) -> None:
        """Sessions of one working day: each counter keeps one official for the day (rotating by day)."""
        self.busy.append((local_ms(day, self.shifts[0][0]), local_ms(day, self.shifts[-1][1] + 10)))
        for unit, _name in self.units:
            staff = [c for c in self.officials.values() if c.unit == unit]
            self.rng.shuffle(staff)
            mine = [c for c in self.counters.values() if c.unit == unit]
            for counter, official in zip(mine, staff, strict=False):
                for start, end in self.shifts:
                    t_in = local_ms(day, start) + self.rng.randrange(0, 120_000)
                    t_out = local_ms(day, end) + self.rng.randrange(0, 180_000)
                    self.add(t_in, "sign_in", counter.code, official=official.code, pin=official.pin)
                    self.add(t_out, "sign_out", counter.code, official=official.code, pin=official.pin)
                    self.serving.setdefault(counter.code, []).append((t_in, t_out, official.code))

    def official_at(self, counter: str, at_ms: int) -> str | None:
        for start, end, who in self.serving.get(counter, ()):
            if start + HANDOVER_GUARD_MS <= at_ms <= end - HANDOVER_GUARD_MS:
                return who
        return None

    def _is_off(self, counter: str, at_ms: int) -> bool:
        return any(a <= at_ms <= b + HANDOVER_GUARD_MS for a, b in self.off.get(counter, ()))

    # --- citizens ------------------------------------------------------------------------------

    def _citizens(self, day: date) -> None:
        for counter in self.counters.values():
            for t_in, t_out, who in self.serving.get(counter.code, ()):
                if local_ms(day, 0) <= t_in < local_ms(day, 24 * 60):
                    self._queue(counter, day, t_in + HANDOVER_GUARD_MS, t_out - HANDOVER_GUARD_MS, who)
            self._unattended(counter, day)

    def _queue(self, counter: Counter, day: date, start: int, stop: int, who: str) -> None:
        """Citizens one after another between `start` and `stop`; each may press once service ends."""
        cit, sc = self.sc.citizens, self.sc
        svc = next(s for s in sc.services if s.code == counter.service)
        t, ticket = start, 0
        while True:
            per_hour = cit.per_counter_hour.get(str(datetime.fromtimestamp(t / 1000, ZONE).hour), 0.0)
            if per_hour <= 0:
                t += 10 * 60_000  # a quiet hour: look again a little later
                if t >= stop:
                    return
                continue
            t += int(self.rng.expovariate(per_hour / 3600_000))
            t += int(self.rng.uniform(*svc.service_minutes) * 60_000)
            if t >= stop:
                return
            ticket += 1
            if self.rng.random() >= cit.rate_share or self._is_off(counter.code, t):
                continue
            value = rate(self.rng, quality=self.officials[who].quality, difficulty=svc.difficulty,
                         levels=sc.scenario.levels, noise=cit.noise)
            txn = f"{counter.code}-{day.isoformat()}-{ticket:04d}"
            self.add(t, "press", counter.code, value=value, txn=txn, official=who)
            if self.rng.random() < cit.repeat_ticket_share and self.official_at(counter.code, t + 20_000):
                self.add(t + 20_000, "press", counter.code, value=value, txn=txn, official=who, tag="repeat")
            if value == 1 and self.rng.random() < cit.complaint_share and self.official_at(counter.code, t + 30_000):
                self.add(t + 30_000, "complain", counter.code, official=who, note="Chờ lâu, không được hướng dẫn")

    def _unattended(self, counter: Counter, day: date) -> None:
        """Presses at lunch, when nobody serves: the server must keep them aside, not credit anyone."""
        for (_, end), (start, _) in zip(self.shifts, self.shifts[1:], strict=False):
            if start - end > 40 and self.rng.random() < self.sc.citizens.unattended_share:
                t = local_ms(day, end + (start - end) // 2)
                if not self._is_off(counter.code, t):
                    self.add(t, "press", counter.code, value=self.rng.randint(1, self.sc.scenario.levels),
                             txn=None, official=None, tag="unattended")

    # --- faults --------------------------------------------------------------------------------

    def _faults(self, workdays: list[date]) -> None:
        f = self.sc.faults
        for name in ("broker_restart", "server_restart"):
            fault = getattr(f, name)
            for _ in range(fault.times if fault.enabled else 0):
                self.add(self._office_time(workdays), name)
        for name in HOST_FAULTS:
            fault = getattr(f, name)
            for i in range(fault.times if fault.enabled else 0):
                getattr(self, f"_{name}")(i, fault, workdays)

    def _office_time(self, workdays: list[date]) -> int:
        day = self.rng.choice(workdays)
        start, end = self.shifts[self.rng.randrange(len(self.shifts))]
        return local_ms(day, self.rng.randrange(start + 10, end - 10))

    def _pick(self, *, kinds: tuple[str, ...] = ("button", "kiosk"), calm: bool = False,
              firmware: bool = True) -> Counter:
        """A device for a fault; `calm` ones have no clock trouble or power cut (faults that combine badly);
        `firmware=False` leaves out MicroPython counters (their clock comes from NTP: it cannot be skewed or
        lost on command, docs/simulator.md "Faults")."""
        pool = [c for c in self.counters.values() if c.kind in kinds and (firmware or not c.firmware) and
                (not calm or (c.code not in self.skewed and c.code not in self.off and c.synced))]
        return self.rng.choice(pool or list(self.counters.values()))

    def _outage(self, fault: Any, workdays: list[date]) -> tuple[int, int]:
        t = self._office_time(workdays)
        return t, t + int(self.rng.uniform(*fault.minutes) * 60_000)

    def _network_drop(self, i: int, fault: Any, workdays: list[date]) -> None:
        counter = self._pick()
        counter.proxied = True
        start, end = self._outage(fault, workdays)
        self.add(start, "net_drop", counter.code, until=end)
        self.add(end, "net_restore", counter.code)

    def _power_cut(self, i: int, fault: Any, workdays: list[date]) -> None:
        # Button boxes only: a kiosk that is off cannot sign its official out, which is a different story.
        counter = self._pick(kinds=("button",), calm=True)
        start, end = self._outage(fault, workdays)
        self.off.setdefault(counter.code, []).append((start, end))
        self.add(start, "power_cut", counter.code)
        self.add(end, "power_on", counter.code)

    def _clock_skew(self, i: int, fault: Any, workdays: list[date]) -> None:
        counter = self._pick(kinds=("button",), calm=True, firmware=False)
        kind = SKEWS[i % len(SKEWS)]
        at = self._office_time(workdays)
        self.skewed[counter.code] = (at, kind)
        self.add(at, "clock_skew", counter.code, offset_ms=SKEW_MS[kind], skew=kind)

    def _unsynced_clock(self, i: int, fault: Any, workdays: list[date]) -> None:
        counter = self._pick(calm=True, firmware=False)
        counter.synced = True  # it had a clock until now
        self.add(self._office_time(workdays), "lose_sync", counter.code)
        self.skewed[counter.code] = (0, "unsynced")

    def _served_time(self, counter: str, workdays: list[date]) -> int | None:
        for _ in range(50):
            t = self._office_time(workdays)
            if self.official_at(counter, t) and not self._is_off(counter, t):
                return t
        return None

    def _button_mashing(self, i: int, fault: Any, workdays: list[date]) -> None:
        counter = self._pick()
        t = self._served_time(counter.code, workdays)
        if t is None:
            return
        who = self.official_at(counter.code, t)
        for _ in range(self.rng.randint(4, 8)):
            self.add(t, "press", counter.code, value=self.rng.randint(1, self.sc.scenario.levels), txn=None,
                     official=who, tag="mash")
            t += self.rng.randint(*MASH_GAP_MS)
        self.add(t, "fault", counter.code, name="button_mashing")

    def _message_fault(self, name: str, fault: Any, workdays: list[date], **args: Any) -> None:
        counter = self._pick(calm=name == "replay")
        self.add(self._office_time(workdays), name, counter.code, **args)

    def _duplicate_send(self, i: int, fault: Any, workdays: list[date]) -> None:
        self._message_fault("duplicate_send", fault, workdays)

    def _forged_signature(self, i: int, fault: Any, workdays: list[date]) -> None:
        self._message_fault("forged_signature", fault, workdays)

    def _replay(self, i: int, fault: Any, workdays: list[date]) -> None:
        self._message_fault("replay", fault, workdays, what="heartbeat" if i % 2 == 0 else "event")

    def _malformed_payload(self, i: int, fault: Any, workdays: list[date]) -> None:
        self._message_fault("malformed_payload", fault, workdays)

    def _unknown_device(self, i: int, fault: Any, workdays: list[date]) -> None:
        self._message_fault("unknown_device", fault, workdays, ghost=f"ghost-{i:04d}")

    def _camera_failure(self, i: int, fault: Any, workdays: list[date]) -> None:
        if not any(c.kind == "kiosk" for c in self.counters.values()):
            raise ScenarioError(f"{self.sc.name}: faults.camera_failure is on but no counter got a kiosk: raise "
                                "devices.kiosk_share (or change the seed)")
        counter = self._pick(kinds=("kiosk",))
        start, end = self._outage(fault, workdays)
        self.add(start, "camera_fail", counter.code, until=end)
        self.add(end, "camera_restore", counter.code)


def expectation(action: Action, device_state: dict[str, Any]) -> tuple[str, str | None]:
    """(expected status, expected official) of a genuine event, given its device's clock state now."""
    if device_state.get("skew") == "behind":
        # A plausible device time two hours from the anchor: the server cannot know which is wrong and
        # keeps the event for a person (protocol §4 rule 1), before it asks who served then.
        return "quarantined:clock_conflict", None
    if action.args.get("tag") == "unattended":
        return "quarantined:unattributed", None
    return "accepted", action.args.get("official")


def build_world(sc: Scenario, start: date | None = None) -> World:
    return _named(Builder(sc, start).build())


def _named(world: World) -> World:
    """The names `[office] unit_names` and `official_names` give (the demo's office has real-looking ones)."""
    o = world.scenario.office
    for i, (code, _default) in enumerate(world.units):
        if i < len(o.unit_names):
            world.units[i] = (code, o.unit_names[i])
        staff = [x for x in world.officials.values() if x.unit == code]
        for official, name in zip(staff, o.official_names, strict=False):
            official.name = name
    return world
