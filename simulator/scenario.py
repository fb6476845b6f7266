"""Scenario files (TOML): what office or province to simulate, how people behave, which faults fire.

The schema is documented in docs/simulator.md ("Scenario files"); every key has a default except the
scenario's name. Loading validates everything and reports each problem as `file: key: what to fix`.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from simulator.clock import NIGHT_SPEEDUP

_STRICT = ConfigDict(extra="forbid", frozen=True)
Share = Annotated[float, Field(ge=0.0, le=1.0)]
Range = tuple[float, float]
BUILTIN_DIR = "scenarios"
# MicroPython counters' firmware runs on the simulated clock (docs/simulator.md "Time"); its CONNACK timeout
# (5 s, mqtt.py) is then 5 s / (compression x NIGHT_SPEEDUP) of real time at night: 2 ms here.
MAX_FIRMWARE_COMPRESSION = 500.0
# paho's network loop uses select(), which cannot watch a file descriptor numbered 1024 or above. A
# virtual device holds about six (its socket and wake-up pair, the outbox's SQLite files): 250 in one
# process left 80 of them reconnecting forever without a word. 150 keeps every descriptor below 1024.
MAX_DEVICES_PER_HOST = 150


class ScenarioError(ValueError):
    """A scenario file that cannot run; the message names the file, the key and the fix."""


def _check_range(value: Range, low: float = 0.0) -> Range:
    if not (low <= value[0] <= value[1]):
        raise ValueError(f"give [min, max] with {low:g} <= min <= max, not {list(value)}")
    return value


class Meta(BaseModel):
    model_config = _STRICT
    name: str = Field(min_length=1, max_length=40, pattern=r"^[a-z0-9-]+$")
    description: str = ""
    seed: int = 1
    start: str | None = Field(None, description="First simulated day, YYYY-MM-DD (default: so the run ends "
                                                "before now)")
    days: int = Field(1, ge=1, le=62)
    compression: float = Field(1.0, ge=1.0, le=20000.0, description="Simulated seconds per real second")
    warmup_s: float = Field(5.0, ge=1.0, le=120.0, description="Real seconds at compression 1 before the day "
                                                              "starts: devices connect and anchor their clocks")
    drain_s: float = Field(30.0, ge=1.0, le=600.0, description="Most real seconds to wait for outboxes to empty")
    levels: Literal[3, 4, 5] = 4


class Office(BaseModel):
    model_config = _STRICT
    units: int = Field(1, ge=1, le=2000)
    counters_per_unit: int = Field(4, ge=1, le=50)
    officials_per_unit: int = Field(6, ge=1, le=100)
    shifts: list[str] = Field(default_factory=lambda: ["07:30-11:30", "13:30-17:00"])
    workdays: list[int] = Field(default_factory=lambda: [0, 1, 2, 3, 4], description="0 = Monday")
    unit_prefix: str = Field("DV", pattern=r"^[A-Z0-9-]{1,12}$")
    unit_names: list[str] = Field(default_factory=list, description="Names of the units in order (default: "
                                                                    "'UBND <code> (mô phỏng)')")
    official_names: list[str] = Field(default_factory=list, description="Names of each unit's officials in order "
                                                                        "(default: 'Cán bộ <n> <unit>')")

    @field_validator("shifts")
    @classmethod
    def _shifts(cls, value: list[str]) -> list[str]:
        last = -1
        for shift in value:
            start, end = parse_shift(shift)
            if start <= last or end <= start:
                raise ValueError(f"shift {shift!r}: shifts are 'HH:MM-HH:MM', in order, not overlapping")
            last = end
        if not value:
            raise ValueError("give at least one shift, e.g. ['07:30-11:30']")
        return value

    @model_validator(mode="after")
    def _enough_officials(self) -> Office:
        if self.officials_per_unit < self.counters_per_unit:
            raise ValueError(f"officials_per_unit ({self.officials_per_unit}) must be at least counters_per_unit "
                             f"({self.counters_per_unit}): every counter needs someone to serve")
        return self


class Service(BaseModel):
    model_config = _STRICT
    code: str = Field(pattern=r"^[a-z0-9-]{1,40}$")
    name: str
    difficulty: float = Field(0.0, ge=0.0, le=0.5, description="Lowers every rating's expected value")
    service_minutes: Range = (5.0, 15.0)
    weight: float = Field(1.0, gt=0)

    _minutes = field_validator("service_minutes")(classmethod(lambda cls, v: _check_range(v, 0.5)))


class Devices(BaseModel):
    model_config = _STRICT
    kiosk_share: Share = Field(0.0, description="Counters with a kiosk (PIN sign-in, camera) instead of a box")
    unsynced_share: Share = Field(0.1, description="Devices without a synced clock (timed by heartbeat anchors)")
    hosts: int = Field(1, ge=1, le=16, description="Processes the virtual devices are spread over")
    heartbeat_s: float = Field(3.0, ge=0.5, le=60.0, description="Real seconds between heartbeats")
    resend_after_s: float = Field(3.0, ge=0.5, le=60.0, description="Real seconds before an unacked event is "
                                                                   "sent again")
    tick_s: float = Field(1.0, ge=0.05, le=5.0, description="Idle tick of each device link, real seconds")
    micropython: int = Field(0, ge=0, le=50, description="Button-box counters that run the real firmware as "
                                                         "MicroPython processes (simulator/firmware.py)")


class Kiosk(BaseModel):
    """The kiosk counters' camera and trigger config; small clips by default (hundreds share 2 cores)."""

    model_config = _STRICT
    camera: bool = Field(True, description="Kiosks have a (synthetic) camera and keep clips of incidents")
    clip_on_lowest: bool = Field(True, description="A clip on every lowest rating, not only on complaints")
    width: int = Field(160, ge=16, le=1920)
    height: int = Field(120, ge=16, le=1080)
    fps: float = Field(2.0, gt=0.0, le=30.0, description="Frames per simulated second")
    pre_roll_s: float = Field(2.0, ge=0.0, le=60.0, description="Simulated seconds of footage before a trigger")
    post_roll_s: float = Field(2.0, ge=1.0, le=120.0, description="Simulated seconds after the last trigger")


class Citizens(BaseModel):
    model_config = _STRICT
    per_counter_hour: dict[str, float] = Field(default_factory=lambda: {"7": 4.0, "8": 8.0, "9": 9.0, "10": 8.0,
                                                                        "13": 6.0, "14": 8.0, "15": 7.0, "16": 4.0},
                                               description="Citizens served per counter per local hour")
    rate_share: Share = Field(0.8, description="Citizens who press a button after service")
    noise: float = Field(0.8, ge=0.0, le=3.0, description="Spread of a rating around the official's quality, "
                                                          "in levels")
    complaint_share: Share = Field(0.2, description="Of citizens who gave the lowest rating, those who complain")
    unattended_share: Share = Field(0.0, description="Citizens who press at a counter nobody serves (per shift)")
    repeat_ticket_share: Share = Field(0.01, description="Citizens who rate one ticket twice")

    @field_validator("per_counter_hour")
    @classmethod
    def _hours(cls, value: dict[str, float]) -> dict[str, float]:
        for hour, rate in value.items():
            if not hour.isdigit() or not 0 <= int(hour) <= 23 or rate < 0:
                raise ValueError(f"{hour!r} = {rate}: keys are hours \"0\"..\"23\", values citizens per hour >= 0")
        return value


class Officials(BaseModel):
    model_config = _STRICT
    quality_mean: Share = 0.7
    quality_sd: float = Field(0.15, ge=0.0, le=0.5)


class Ingest(BaseModel):
    model_config = _STRICT
    workers: int = Field(1, ge=1, le=8)


class Fault(BaseModel):
    """One kind of fault: whether it fires, how often, and (where it applies) for how long."""

    model_config = _STRICT
    enabled: bool = False
    times: int = Field(1, ge=1, le=100000, description="How many times it fires over the run")
    minutes: Range = Field((5.0, 60.0), description="Simulated minutes an outage lasts")

    _minutes = field_validator("minutes")(classmethod(lambda cls, v: _check_range(v, 0.0)))


FAULTS = ("network_drop", "broker_restart", "server_restart", "power_cut", "clock_skew", "unsynced_clock",
          "duplicate_send", "button_mashing", "forged_signature", "replay", "malformed_payload", "unknown_device",
          "camera_failure")


class Faults(BaseModel):
    model_config = _STRICT
    network_drop: Fault = Fault()
    broker_restart: Fault = Fault()
    server_restart: Fault = Fault()
    power_cut: Fault = Fault()
    clock_skew: Fault = Fault()
    unsynced_clock: Fault = Fault()
    duplicate_send: Fault = Fault()
    button_mashing: Fault = Fault()
    forged_signature: Fault = Fault()
    replay: Fault = Fault()
    malformed_payload: Fault = Fault()
    unknown_device: Fault = Fault()
    camera_failure: Fault = Fault()

    def on(self) -> list[str]:
        return [name for name in FAULTS if getattr(self, name).enabled]


class Scenario(BaseModel):
    model_config = _STRICT
    scenario: Meta
    office: Office = Office()
    services: list[Service] = Field(default_factory=lambda: [Service(code="ho-tich", name="Tư pháp - Hộ tịch")],
                                    min_length=1)
    devices: Devices = Devices()
    kiosk: Kiosk = Kiosk()
    citizens: Citizens = Citizens()
    officials: Officials = Officials()
    ingest: Ingest = Ingest()
    faults: Faults = Faults()
    policy: str = Field("nd335", description="Scoring policy for the fairness report (built-in id or file)")

    @model_validator(mode="after")
    def _camera_for_camera_faults(self) -> Scenario:
        if self.faults.camera_failure.enabled and not (self.kiosk.camera and self.devices.kiosk_share > 0):
            raise ValueError("faults.camera_failure needs kiosks with cameras: set devices.kiosk_share > 0 and "
                             "kiosk.camera = true, or disable the fault")
        return self

    @model_validator(mode="after")
    def _hosts_fit(self) -> Scenario:
        per_host = -(-self.counters // self.devices.hosts)
        if per_host > MAX_DEVICES_PER_HOST:
            need = -(-self.counters // MAX_DEVICES_PER_HOST)
            raise ValueError(f"devices.hosts = {self.devices.hosts} puts {per_host} devices in one process; at most "
                             f"{MAX_DEVICES_PER_HOST} fit (paho's select() cannot watch more sockets): set "
                             f"devices.hosts >= {need}")
        return self

    @model_validator(mode="after")
    def _firmware_fits(self) -> Scenario:
        n = self.devices.micropython
        if n > self.counters:
            raise ValueError(f"devices.micropython ({n}) is more than the office's {self.counters} counters")
        if n and self.scenario.compression > MAX_FIRMWARE_COMPRESSION:
            raise ValueError(
                f"devices.micropython needs scenario.compression <= {MAX_FIRMWARE_COMPRESSION:g}, not "
                f"{self.scenario.compression:g}: the firmware's fixed timeouts (5 s for the broker's CONNACK) run "
                f"on the simulated clock, and at night ({NIGHT_SPEEDUP:g}x faster) they would shrink below what a "
                "loaded machine answers in; lower the compression or set micropython = 0")
        return self

    @property
    def name(self) -> str:
        return self.scenario.name

    @property
    def counters(self) -> int:
        return self.office.units * self.office.counters_per_unit


def parse_shift(text: str) -> tuple[int, int]:
    """'07:30-11:30' -> (450, 690) minutes after midnight."""
    try:
        a, b = text.split("-")
        return _minutes(a), _minutes(b)
    except ValueError:
        raise ValueError(f"shift {text!r}: write it as 'HH:MM-HH:MM'") from None


def _minutes(text: str) -> int:
    h, m = text.strip().split(":")
    if not (0 <= int(h) <= 23 and 0 <= int(m) <= 59):
        raise ValueError(text)
    return int(h) * 60 + int(m)


def builtin_names() -> list[str]:
    folder = resources.files("simulator").joinpath(BUILTIN_DIR)
    return sorted(p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml"))


def resolve(name_or_path: str | Path) -> Path:
    """A scenario file path, or the path of a shipped scenario named like 'chaos'."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        return path
    shipped = Path(str(resources.files("simulator").joinpath(BUILTIN_DIR, f"{name_or_path}.toml")))
    if not shipped.exists():
        raise ScenarioError(f"{name_or_path}: no such scenario file, and not a shipped scenario "
                            f"(shipped: {', '.join(builtin_names())})")
    return shipped


def load_scenario(name_or_path: str | Path) -> Scenario:
    """Read and validate a scenario; every problem is reported as `file: key: what to fix`."""
    path = resolve(name_or_path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ScenarioError(f"{path}: no such file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: not valid TOML ({exc}); fix the syntax at that line") from None
    return parse_scenario(data, source=str(path))


def parse_scenario(data: dict[str, object], *, source: str) -> Scenario:
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        lines = [f"{source}: {_key(e['loc'])}: {_message(e)}" for e in exc.errors()]
        raise ScenarioError("invalid scenario:\n  " + "\n  ".join(lines)) from None


def _key(loc: tuple[int | str, ...]) -> str:
    parts = [f"[{p}]" if isinstance(p, int) else str(p) for p in loc]
    return ".".join(parts).replace(".[", "[") or "(top level)"


def _message(error: object) -> str:
    e = dict(error)  # type: ignore[call-overload]
    if e["type"] == "extra_forbidden":
        return "unknown key: remove it or check its spelling (docs/simulator.md lists every key)"
    if e["type"] == "missing":
        return "required: add it"
    return str(e["msg"]).removeprefix("Value error, ")
