"""A supervisor settles a quarantined event by hand: which official it belongs to (and, if the device
could not tell, when it happened). Audited with the reason given."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, select, update

from server.audit import record
from server.db.models import COUNTERS, EVENTS, OFFICIALS, QUARANTINE, EventStatus, TimeSource
from server.ingest.attribution import SessionIndex, resolve_open
from server.ingest.reasons import STORED_AS_EVENT, Reason
from server.ingest.store import recompute_txn_duplicates, txn_key
from server.registry import RegistryError
from server.review.flagging import sync_reviews


def attribute_quarantined(conn: Connection, *, quarantine_id: int, official_code: str, reason: str, actor: str,
                          zone: ZoneInfo, event_time: datetime | None = None) -> dict[str, object]:
    """Attribute the event behind an open quarantine record to `official_code`; returns the change."""
    q = conn.execute(select(QUARANTINE.c.id, QUARANTINE.c.reason, QUARANTINE.c.event_id, QUARANTINE.c.resolved_at)
                     .where(QUARANTINE.c.id == quarantine_id)).first()
    if q is None:
        raise RegistryError("not_found", f"no quarantine record {quarantine_id}")
    if q.resolved_at is not None:
        raise RegistryError("conflict", f"quarantine record {quarantine_id} is already resolved")
    if q.event_id is None or Reason(q.reason) not in STORED_AS_EVENT:
        raise RegistryError("invalid", f"a {q.reason!r} record holds no stored event to attribute; "
                                       "only unattributed, untimed and implausible_time ones do")
    event = conn.execute(select(EVENTS.c.id, EVENTS.c.counter_id, EVENTS.c.event_time, EVENTS.c.official_id,
                                EVENTS.c.time_source, EVENTS.c.body, EVENTS.c.txn_key, COUNTERS.c.unit_id)
                         .join(COUNTERS, COUNTERS.c.id == EVENTS.c.counter_id).where(EVENTS.c.id == q.event_id)).one()
    official = conn.execute(select(OFFICIALS.c.id, OFFICIALS.c.unit_id)
                            .where(OFFICIALS.c.code == official_code)).first()
    if official is None:
        raise RegistryError("not_found", f"no official {official_code!r}")
    if official.unit_id != event.unit_id:
        raise RegistryError("invalid", f"official {official_code!r} does not work in the unit of this counter")
    untrusted_time = event.time_source == TimeSource.RECEIVE
    if untrusted_time and event_time is None:
        raise RegistryError("invalid", "this event has no trustworthy time: give event_time as well")
    when = event_time or event.event_time
    span = SessionIndex.load(conn, [event.counter_id], when, when).at(event.counter_id, when)
    session_id = span.id if span and span.official_id == official.id else None
    values: dict[str, object] = {"official_id": official.id, "session_id": session_id,
                                 "status": EventStatus.ACCEPTED, "attributed_by": actor}
    txn = event.body.get("txn") if isinstance(event.body, dict) else None
    if event_time is not None:
        values.update(event_time=event_time, time_source=TimeSource.MANUAL)
    if txn:
        # The ticket identifies a transaction within a local day: the (new) time decides which day.
        values["txn_key"] = txn_key(event.counter_id, when, txn, zone)
    conn.execute(update(EVENTS).where(EVENTS.c.id == event.id).values(**values))
    resolve_open(conn, [event.id], STORED_AS_EVENT, by=actor, how=f"attributed to {official_code}: {reason}")
    if txn:
        keys = {str(values["txn_key"])} | ({event.txn_key} if event.txn_key else set())
        recompute_txn_duplicates(conn, sorted(keys))
    sync_reviews(conn, event_ids=[event.id], actor=actor)  # an incident attributed now is flagged now
    change = {"event_id": event.id, "quarantine_id": quarantine_id, "official": official_code,
              "previous_official_id": event.official_id, "event_time": when.isoformat(), "reason": reason}
    record(conn, actor=actor, action="event.attribute", target_type="event", target_id=event.id, detail=change)
    return change
