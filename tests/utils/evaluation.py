"""Test data for the evaluation layer: units with officials at typed counters, ratings and reviews written
straight into the tables (the ingest pipeline has its own tests), and settings for scoring."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, insert, select

from server import registry
from server.db.models import EVENTS, OFFICIALS, REVIEWS, DeviceKind, EventStatus, ReviewStatus, TimeSource
from server.settings import Settings

_seq = itertools.count(1)
MARCH = datetime(2026, 3, 10, 3, 0, tzinfo=UTC)  # 10:00 in Hà Nội, well inside March 2026
AFTER_MARCH_REVIEWS = datetime(2026, 4, 20, 3, 0, tzinfo=UTC)  # after the default 10-day review window


def settings(**scoring: Any) -> Settings:
    return Settings(mode="demo", scoring=scoring)  # type: ignore[arg-type]


@dataclass
class Unit:
    id: int
    code: str
    counters: dict[str, int] = field(default_factory=dict)  # service type -> counter id
    devices: dict[int, str] = field(default_factory=dict)  # counter id -> device id
    officials: dict[str, int] = field(default_factory=dict)  # code -> id


def make_unit(engine: Engine, code: str, *, officials: int = 3, services: tuple[str, ...] = ("ho_tich",),
              duty_group: str | None = None) -> Unit:
    """A unit with one counter (and device) per service type and `officials` officials CODE-CB001…"""
    with engine.begin() as conn:
        unit = Unit(registry.create_unit(conn, code=code, name=f"UBND {code}"), code)
        for n, service in enumerate(services, start=1):
            cid = registry.create_counter(conn, unit_id=unit.id, code=f"{code}-Q{n}", name=f"Quầy {service}",
                                          service_type=service)
            unit.counters[service] = cid
            unit.devices[cid] = registry.provision_device(conn, counter_id=cid, kind=DeviceKind.SIMULATED,
                                                          actor="test", device_id=f"{code.lower()}-d{n}").id
        for n in range(1, officials + 1):
            ocode = f"{code}-CB{n:03d}"
            unit.officials[ocode] = registry.create_official(conn, unit_id=unit.id, code=ocode,
                                                             full_name=f"Nguyễn Văn {n}", duty_group=duty_group)
    return unit


def rate(conn: Connection, unit: Unit, official: str, levels_counts: list[int], *, service: str = "ho_tich",
         at: datetime = MARCH, misuse: int = 0, duplicate: int = 0, quarantined: int = 0) -> list[int]:
    """Ratings for an official: levels_counts[i] ratings at level i + 1 on a len(levels_counts)-level scale,
    plus `misuse` and `duplicate` excluded ones and `quarantined` ones (at the best level). Returns the ids."""
    levels = len(levels_counts)
    plan = [(lv + 1, False, False, EventStatus.ACCEPTED) for lv, n in enumerate(levels_counts) for _ in range(n)]
    plan += [(levels, True, False, EventStatus.ACCEPTED)] * misuse + [(levels, False, True, EventStatus.ACCEPTED)] * \
        duplicate + [(levels, False, False, EventStatus.QUARANTINED)] * quarantined
    counter = unit.counters[service]
    ids = []
    for i, (value, is_misuse, is_dup, status) in enumerate(plan):
        ids.append(int(conn.execute(insert(EVENTS).values(
            device_id=unit.devices[counter], epoch=1, seq=next(_seq), typ="rating", status=status,
            received_at=at, event_time=at + timedelta(seconds=i), time_source=TimeSource.DEVICE, device_ts=None,
            uptime_ms=1000 + i, counter_id=counter, official_id=unit.officials[official], session_id=None,
            rating=value, levels=levels, txn_key=None, misuse=is_misuse, txn_duplicate=is_dup, body={},
            payload=b"{}")).inserted_primary_key[0]))
    return ids


def review(conn: Connection, unit: Unit, official: str, status: ReviewStatus, *, severity: str | None = None,
           kind: str = "complaint", at: datetime = MARCH, annul: int | None = None) -> int:
    """A review of a fresh incident event of the official (the console's row, written directly)."""
    counter = next(iter(unit.counters.values()))
    event_id = conn.execute(insert(EVENTS).values(
        device_id=unit.devices[counter], epoch=1, seq=next(_seq), typ="incident", status=EventStatus.ACCEPTED,
        received_at=at, event_time=at, time_source=TimeSource.DEVICE, device_ts=None, uptime_ms=5, counter_id=counter,
        official_id=unit.officials[official], session_id=None, rating=None, levels=None, txn_key=None, misuse=False,
        txn_duplicate=False, body={"kind": kind}, payload=b"{}")).inserted_primary_key[0]
    return int(conn.execute(insert(REVIEWS).values(
        event_id=event_id, kind=kind, unit_id=unit.id, counter_id=counter, official_id=unit.officials[official],
        event_time=at, flagged_at=at, status=status, severity=severity, annulled_event_id=annul,
        decided_by="user:sup" if status != ReviewStatus.PENDING else None)).inserted_primary_key[0])


def official_id(conn: Connection, code: str) -> int:
    return int(conn.execute(select(OFFICIALS.c.id).where(OFFICIALS.c.code == code)).scalar_one())
