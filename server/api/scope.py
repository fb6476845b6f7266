"""Unit scoping in the API: who may see which unit's records. Out of scope is 403 on direct access;
lists and counts leave such records out (the data layer filters by `Principal.units`)."""

from __future__ import annotations

from sqlalchemy import Connection, select

from server.api.auth import Principal
from server.api.errors import ApiError
from server.db.models import CLIPS, COUNTERS, DEVICES, OFFICIALS, UNITS

OUT_OF_SCOPE = "this belongs to a unit outside your scope; ask an administrator if you need it"


def require_unit(who: Principal, unit_id: int | None) -> None:
    """403 unless the caller may see `unit_id`."""
    if not who.sees_unit(unit_id):
        raise ApiError(403, "forbidden", OUT_OF_SCOPE)


def can_see_review(who: Principal, unit_id: int, official_id: int | None) -> bool:
    """Reviewers see their units' reviews; an official sees the incidents attributed to them."""
    if who.has("review:read") and who.sees_unit(unit_id):
        return True
    return who.has("own:read") and who.official_id is not None and who.official_id == official_id


def may_read_official(who: Principal, official_id: int, unit_id: int) -> bool:
    """Readers of the official's unit, or the official themself."""
    if who.has("read") and who.sees_unit(unit_id):
        return True
    return who.has("own:read") and who.official_id == official_id


def unit_of_code(conn: Connection, code: str) -> int | None:
    return conn.execute(select(UNITS.c.id).where(UNITS.c.code == code)).scalar()


def unit_of_counter(conn: Connection, code: str) -> int | None:
    return conn.execute(select(COUNTERS.c.unit_id).where(COUNTERS.c.code == code)).scalar()


def unit_of_device(conn: Connection, device_id: str) -> int | None:
    return conn.execute(select(COUNTERS.c.unit_id).join(DEVICES, DEVICES.c.counter_id == COUNTERS.c.id)
                        .where(DEVICES.c.id == device_id)).scalar()


def unit_of_official(conn: Connection, code: str) -> int | None:
    return conn.execute(select(OFFICIALS.c.unit_id).where(OFFICIALS.c.code == code)).scalar()


def unit_of_clip(conn: Connection, clip_id: str) -> int | None:
    return conn.execute(select(COUNTERS.c.unit_id).join(CLIPS, CLIPS.c.counter_id == COUNTERS.c.id)
                        .where(CLIPS.c.id == clip_id)).scalar()
