"""Stage 2: one database transaction per batch — de-duplicate, time, attribute, store, flag.

Every message of the batch leaves with a Result; the caller commits, then acks. Correctness under
re-sends, replays and several concurrent ingest processes rests on the database: the unique key
(device, epoch, seq), upserts, and row locks on the batch's devices (taken in id order).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, and_, bindparam, case, delete, exists, func, select, update
from sqlalchemy.orm import aliased

from motcua.protocol import parse_topic
from motcua.protocol.errors import ProtocolError
from motcua.protocol.messages import RatingEvent
from server.db.bulk import any_of, insert_events, pairs_in, rating_neighbours, stored_payloads
from server.db.dialect import insert_for
from server.db.models import BOOTS, DEVICES, EVENTS, QUARANTINE, DeviceStatus, EventStatus, TimeSource
from server.db.types import from_ms
from server.ingest.attribution import (
    SessionIndex,
    quarantine_row,
    resolve_open,
    settle,
    upsert_quarantine,
)
from server.ingest.classify import (
    Classified,
    DeviceInfo,
    Rejected,
    Status,
    VerifiedEvent,
    VerifiedHeartbeat,
    classify,
)
from server.ingest.kiosk_sessions import apply_session_events
from server.ingest.messages import ACK_CODE, Fate, Incoming, Result
from server.ingest.reasons import RETIMED_BY_ANCHOR, Reason
from server.ingest.timing import TimeLimits, anchor_candidate, derive_time
from server.review.flagging import flag_stored_incidents
from server.settings import Settings

log = logging.getLogger("motcua.ingest")
INGEST = "ingest"
ANCHOR_SLACK_MS = 2000  # jitter a refreshed anchor may add beyond drift
DRIFT_DIVISOR = 5000  # 1/5000 = 200 ppm: well above a crystal's drift, far below a delayed heartbeat


@dataclass(frozen=True, slots=True)
class IngestRules:
    """The knobs of stage 1 and 2, taken from settings once."""

    max_payload: int
    misuse_window_ms: int
    anchor_refresh_ms: int
    epoch_reuse_gap_ms: int
    limits: TimeLimits
    zone: ZoneInfo

    @classmethod
    def from_settings(cls, settings: Settings) -> IngestRules:
        ing = settings.ingest
        return cls(max_payload=ing.max_payload_bytes, misuse_window_ms=ing.misuse_window_ms,
                   anchor_refresh_ms=ing.anchor_refresh_ms, epoch_reuse_gap_ms=ing.epoch_reuse_gap_ms,
                   zone=settings.zone,
                   limits=TimeLimits(ing.max_future_skew_ms, ing.max_event_age_days * 86_400_000,
                                     ing.clock_conflict_ms))


@dataclass(slots=True)
class _DeviceRow:
    info: DeviceInfo
    last_hb: tuple[int, int] | None
    max_epoch: int
    stored_max_epoch: int  # as loaded: only a device whose highest epoch rose is written back


def _topic_device(topic: str) -> str | None:
    try:
        return parse_topic(topic).device_id
    except ProtocolError:
        return None


def load_devices(conn: Connection, ids: set[str]) -> dict[str, _DeviceRow]:
    """The batch's devices, row-locked in id order so concurrent workers serialise per device.

    FOR NO KEY UPDATE: what a batch changes here is never a key, so inserts that only reference a
    device (clips, quarantine) need not wait for the batch to commit."""
    if not ids:
        return {}
    q = (select(DEVICES.c.id, DEVICES.c.secret_hex, DEVICES.c.status, DEVICES.c.counter_id,
                DEVICES.c.last_hb_epoch, DEVICES.c.last_hb_up, DEVICES.c.max_epoch)
         .where(any_of(conn, DEVICES.c.id, sorted(ids), "varchar")).order_by(DEVICES.c.id))
    rows = conn.execute(q.with_for_update(key_share=True))
    out = {}
    for r in rows:
        info = DeviceInfo(r.id, bytes.fromhex(r.secret_hex), r.status == DeviceStatus.ACTIVE, r.counter_id)
        last = (r.last_hb_epoch, r.last_hb_up) if r.last_hb_epoch is not None else None
        out[r.id] = _DeviceRow(info, last, r.max_epoch or 0, r.max_epoch or 0)
    return out


class BatchStore:
    """Applies one classified batch inside the caller's transaction."""

    def __init__(self, conn: Connection, rules: IngestRules) -> None:
        self.conn = conn
        self.rules = rules
        self.quarantine: list[dict[str, Any]] = []
        self.duplicates: defaultdict[str, int] = defaultdict(int)  # re-sends per device, saved on the row
        self.tell_epoch: set[str] = set()  # devices whose epoch floor is raised (and config re-sent)
        self.forget_anchors: dict[str, int] = {}  # device -> lowest epoch whose anchors are stale
        self.secrets: dict[str, bytes] = {}

    def run(self, batch: list[Incoming]) -> list[Result]:
        ids = {d for d in (_topic_device(m.topic) for m in batch) if d}
        devices = load_devices(self.conn, ids)
        infos = {k: v.info for k, v in devices.items()}
        self.secrets = {k: v.secret for k, v in infos.items() if v.active}
        classified = [classify(m, infos, self.rules.max_payload) for m in batch]
        results: list[Result | None] = [None] * len(batch)
        self._statuses(batch, classified, results, devices)
        self._rejections(batch, classified, results)
        timed_epochs = self._heartbeats(batch, classified, results, devices)
        self._events(batch, classified, results)
        self._retime_untimed(timed_epochs)
        upsert_quarantine(self.conn, self.quarantine)
        self._save_duplicate_counts()
        self._save_epochs(devices, classified)
        assert all(r is not None for r in results), "every message must leave the batch with a fate"
        return results  # type: ignore[return-value]

    # --- statuses and rejections -------------------------------------------------------------

    def _statuses(self, batch: list[Incoming], cls: list[Classified], results: list[Result | None],
                  devices: dict[str, _DeviceRow]) -> None:
        for i, c in enumerate(cls):
            if not isinstance(c, Status):
                continue
            if c.device_id not in devices or c.doc is None or not isinstance(c.doc.get("online"), bool):
                results[i] = Result(Fate.IGNORED, device_id=c.device_id)
                continue
            self.conn.execute(update(DEVICES).where(DEVICES.c.id == c.device_id)
                              .values(online=c.doc["online"], last_seen_at=from_ms(batch[i].received_ms)))
            results[i] = Result(Fate.STATUS, device_id=c.device_id)

    def _rejections(self, batch: list[Incoming], cls: list[Classified], results: list[Result | None]) -> None:
        for i, c in enumerate(cls):
            if isinstance(c, Rejected):
                self._reject(i, batch[i], c, results)

    def _reject(self, i: int, msg: Incoming, c: Rejected, results: list[Result | None]) -> None:
        self.quarantine.append(quarantine_row(
            reason=c.reason, detail=c.detail, topic=msg.topic, payload=msg.payload,
            received_at=from_ms(msg.received_ms), device_id=c.device_id, epoch=c.epoch, seq=c.seq,
            limit=self.rules.max_payload))
        ack = (c.epoch, c.seq, ACK_CODE[Fate.QUARANTINED]) if c.ackable and c.epoch and c.seq else None
        results[i] = Result(Fate.QUARANTINED, c.reason.value, c.device_id, ack)

    # --- heartbeats: health, replay protection, clock anchors --------------------------------

    def _heartbeats(self, batch: list[Incoming], cls: list[Classified], results: list[Result | None],
                    devices: dict[str, _DeviceRow]) -> set[tuple[str, int]]:
        anchors: dict[tuple[str, int], tuple[int, int]] = {}
        health: dict[str, dict[str, Any]] = {}
        beats = [(i, c) for i, c in enumerate(cls) if isinstance(c, VerifiedHeartbeat)]
        known = self._load_anchors({(c.device.id, c.heartbeat.ep) for _, c in beats}, with_up=True)
        for i, c in beats:
            hb, row, msg = c.heartbeat, devices[c.device.id], batch[i]
            if row.last_hb is not None and (hb.ep, hb.up) <= row.last_hb:
                self._not_newer(i, msg, c, row, results)
                continue
            row.last_hb = (hb.ep, hb.up)
            row.max_epoch = max(row.max_epoch, hb.ep)
            cand = anchor_candidate(received_ms=msg.received_ms, up=hb.up)
            self._check_same_life(c.device.id, cand, hb.up, known.get((c.device.id, hb.ep)))
            best = anchors.get((c.device.id, hb.ep))
            if best is None or cand < best[0]:
                anchors[(c.device.id, hb.ep)] = (cand, hb.up)
            health[c.device.id] = self._health(hb, msg.received_ms)
            results[i] = Result(Fate.HEARTBEAT, device_id=c.device.id)
        self._save_health(health)
        self._save_anchors(anchors)
        return set(anchors)

    def _check_same_life(self, device_id: str, cand: int, up: int, anchor: tuple[int, int] | None) -> None:
        """A boot instant far later than the epoch's anchor cannot be the same boot: the device was reset
        and re-uses an epoch number. Raise its floor (protocol §4); if it was only a long delay, the
        device merely starts one new epoch."""
        if anchor is None:
            return
        drift = max(0, up - anchor[1]) // DRIFT_DIVISOR
        if cand - anchor[0] > self.rules.epoch_reuse_gap_ms + drift:
            log.info("device %s: a heartbeat implies a boot %d s after its epoch's anchor; raising its epoch "
                     "floor", device_id, (cand - anchor[0]) // 1000)
            self.tell_epoch.add(device_id)

    def _not_newer(self, i: int, msg: Incoming, c: VerifiedHeartbeat, row: _DeviceRow,
                   results: list[Result | None]) -> None:
        """A heartbeat from before the last one accepted: replayed, or the device was reset.

        A replay carries the device time of its first sending; a device that lost its epoch (flash
        erased, re-installed) sends the present time. Either way the device gets an epoch floor above
        every epoch it has shown, sent in its config (`ep_min`): a reset device jumps to it, and a
        replay costs a device that was fine one harmless new epoch (protocol §4).
        """
        hb, last = c.heartbeat, row.last_hb
        assert last is not None
        self.tell_epoch.add(c.device.id)
        fresh = hb.ts is not None and abs(hb.ts - msg.received_ms) <= self.rules.limits.max_future_skew_ms
        if fresh:
            self.forget_anchors[c.device.id] = min(hb.ep, self.forget_anchors.get(c.device.id, hb.ep))
            reason, why = Reason.EPOCH_REGRESSION, "the device started over at an epoch it had used before"
        else:
            reason, why = Reason.REPLAY, "not newer than the last heartbeat accepted"
        detail = f"heartbeat (ep {hb.ep}, up {hb.up}) after (ep {last[0]}, up {last[1]}): {why}"
        self._reject(i, msg, Rejected(reason, detail, c.device.id, hb.ep, hb.seq), results)

    @staticmethod
    def _health(hb: Any, received_ms: int) -> dict[str, Any]:
        doc = hb.body.model_dump(exclude_none=True)
        doc.update(ep=hb.ep, seq=hb.seq, up=hb.up, received_ms=received_ms)
        if hb.ts is not None:
            doc["clock_offset_ms"] = hb.ts - received_ms  # device ahead > 0; includes network delay
        return doc

    def _save_health(self, health: dict[str, dict[str, Any]]) -> None:
        if not health:
            return
        stmt = update(DEVICES).where(DEVICES.c.id == bindparam("b_id")).values(
            health=bindparam("b_health"), online=True, last_seen_at=bindparam("b_seen"),
            last_hb_epoch=bindparam("b_ep"), last_hb_up=bindparam("b_up"))
        self.conn.execute(stmt, [
            {"b_id": dev, "b_health": h, "b_seen": from_ms(h["received_ms"]), "b_ep": h["ep"], "b_up": h["up"]}
            for dev, h in sorted(health.items())
        ])

    def _save_anchors(self, anchors: dict[tuple[str, int], tuple[int, int]]) -> None:
        if not anchors:
            return
        stmt = insert_for(self.conn, BOOTS)
        # A lower estimate is always better: network delay only ever adds. A higher one replaces the
        # anchor only after `anchor_refresh_ms` of uptime, and only within what crystal drift can
        # explain (200 ppm of the uptime since, plus 2 s): a heartbeat delayed by a backlog must not
        # shift every later event across a handover (protocol §4).
        since = stmt.excluded.anchor_up - BOOTS.c.anchor_up
        better = (stmt.excluded.anchor_ms < BOOTS.c.anchor_ms) | (
            (since > self.rules.anchor_refresh_ms)
            & (stmt.excluded.anchor_ms - BOOTS.c.anchor_ms <= ANCHOR_SLACK_MS + since / DRIFT_DIVISOR))
        stmt = stmt.on_conflict_do_update(index_elements=["device_id", "epoch"], set_={
            "anchor_ms": case((better, stmt.excluded.anchor_ms), else_=BOOTS.c.anchor_ms),
            "anchor_up": case((better, stmt.excluded.anchor_up), else_=BOOTS.c.anchor_up),
        })
        now = from_ms(max(a for a, _ in anchors.values()))
        self.conn.execute(stmt, [
            {"device_id": d, "epoch": ep, "anchor_ms": a, "anchor_up": up, "first_seen_at": now}
            for (d, ep), (a, up) in sorted(anchors.items())
        ])

    def _load_anchors(self, keys: set[tuple[str, int]], *, with_up: bool = False) -> dict[tuple[str, int], Any]:
        """Anchor (boot instant, ms) per (device, epoch); with `with_up`, (anchor, uptime it was set at)."""
        if not keys:
            return {}
        rows = self.conn.execute(select(BOOTS.c.device_id, BOOTS.c.epoch, BOOTS.c.anchor_ms, BOOTS.c.anchor_up)
                                 .where(pairs_in(self.conn, BOOTS.c.device_id, BOOTS.c.epoch, sorted(keys))))
        return {(r.device_id, r.epoch): (r.anchor_ms, r.anchor_up) if with_up else r.anchor_ms for r in rows}

    # --- events ------------------------------------------------------------------------------

    def _events(self, batch: list[Incoming], cls: list[Classified], results: list[Result | None]) -> None:
        todo = [(i, c) for i, c in enumerate(cls) if isinstance(c, VerifiedEvent)]
        if not todo:
            return
        anchors = self._load_anchors({(c.device.id, c.event.ep) for _, c in todo})
        rows, firsts = self._event_rows(batch, todo, anchors, results)
        apply_session_events(self.conn, rows, self.secrets)  # kiosk sign-ins first: later presses belong to them
        index = SessionIndex.load(self.conn, (r["counter_id"] for r in rows.values()),
                                  min(r["event_time"] for r in rows.values()),
                                  max(r["event_time"] for r in rows.values()))
        for row in rows.values():
            self._attribute(row, index)
        inserted = insert_events(self.conn, list(rows.values()))  # the rows' "_" keys are ignored there
        self._classify_conflicts(batch, rows, firsts, inserted, results)
        flag_stored_incidents(self.conn, [(event_id, rows[key]) for key, event_id in inserted.items()])
        self._flag_ratings([(k, inserted[k], rows[k]["uptime_ms"], rows[k]["txn_key"]) for k in inserted
                            if rows[k]["rating"] is not None])
        for key, event_id in inserted.items():
            row = rows[key]
            if row["_problem"] is not None:
                self.quarantine.append(quarantine_row(
                    reason=row["_problem"], detail=row["_detail"], topic=row["_topic"], payload=row["payload"],
                    received_at=row["received_at"], device_id=key[0], epoch=key[1], seq=key[2], event_id=event_id,
                    limit=self.rules.max_payload))

    def _event_rows(self, batch: list[Incoming], todo: list[tuple[int, VerifiedEvent]],
                    anchors: dict[tuple[str, int], int], results: list[Result | None]
                    ) -> tuple[dict[tuple[str, int, int], dict[str, Any]], dict[tuple[str, int, int], int]]:
        rows: dict[tuple[str, int, int], dict[str, Any]] = {}
        firsts: dict[tuple[str, int, int], int] = {}
        limits = self.rules.limits
        for i, c in todo:
            e, msg = c.event, batch[i]
            key = (c.device.id, e.ep, e.seq)
            if key in rows:
                self._same_key_again(i, msg, rows[key]["payload"], key, results)
                continue
            timed = derive_time(ts=e.ts, up=e.up, received_ms=msg.received_ms,
                                anchor_ms=anchors.get((c.device.id, e.ep)), limits=limits)
            firsts[key] = i
            rows[key] = self._row(c, msg, timed)
        return rows, firsts

    def _row(self, c: VerifiedEvent, msg: Incoming, timed: Any) -> dict[str, Any]:
        e = c.event
        at = from_ms(timed.at_ms)
        txn = e.body.txn if isinstance(e, RatingEvent) else None
        problem = timed.problem
        detail = {Reason.UNTIMED: "device clock not synced and no heartbeat anchor for this boot yet",
                  Reason.IMPLAUSIBLE_TIME: f"device time {e.ts} ms is implausible at receipt {msg.received_ms} ms",
                  Reason.CLOCK_CONFLICT: f"device time {e.ts} ms and the boot's heartbeat anchor disagree by "
                                         "more than the allowed margin (device reset, or a wrong clock)",
                  }.get(problem, "") if problem else ""
        return {
            "device_id": c.device.id, "epoch": e.ep, "seq": e.seq, "typ": e.typ,
            "status": EventStatus.QUARANTINED, "received_at": from_ms(msg.received_ms), "event_time": at,
            "time_source": timed.source, "device_ts": e.ts, "uptime_ms": e.up, "counter_id": c.device.counter_id,
            "official_id": None, "session_id": None,
            "rating": e.body.value if isinstance(e, RatingEvent) else None,
            "levels": e.body.levels if isinstance(e, RatingEvent) else None,
            "txn_key": self._txn_key(c.device.counter_id, at, txn) if (txn and problem is None) else None,
            "misuse": False, "txn_duplicate": False,
            "body": c.body, "payload": msg.payload,
            "_problem": problem, "_detail": detail, "_topic": msg.topic,
        }

    def _txn_key(self, counter_id: int, at: datetime, txn: str) -> str:
        return txn_key(counter_id, at, txn, self.rules.zone)

    @staticmethod
    def _attribute(row: dict[str, Any], index: SessionIndex) -> None:
        if row["_problem"] is not None or row["typ"] == "session":
            return  # a session event is applied, not attributed (kiosk_sessions.py)
        span = index.at(row["counter_id"], row["event_time"])
        if span is None:
            row["_problem"], row["_detail"] = Reason.UNATTRIBUTED, "no official was signed in at the counter then"
            return
        row.update(official_id=span.official_id, session_id=span.id, status=EventStatus.ACCEPTED)

    def _classify_conflicts(self, batch: list[Incoming], rows: dict[tuple[str, int, int], dict[str, Any]],
                            firsts: dict[tuple[str, int, int], int], inserted: dict[tuple[str, int, int], int],
                            results: list[Result | None]) -> None:
        for key in inserted:
            problem = rows[key]["_problem"]
            code = Fate.QUARANTINED if problem is not None else Fate.STORED
            # A quarantined-but-stored event is still durably kept: the device may delete it (ack "quar").
            results[firsts[key]] = Result(code, problem.value if problem else None, key[0],
                                          (key[1], key[2], ACK_CODE[code]))
        clashes = [k for k in rows if k not in inserted]
        if not clashes:
            return
        stored = stored_payloads(self.conn, clashes)
        for key in clashes:
            i = firsts[key]
            self._same_key_again(i, batch[i], stored[key], key, results)

    def _same_key_again(self, i: int, msg: Incoming, stored_payload: bytes, key: tuple[str, int, int],
                        results: list[Result | None]) -> None:
        """A (device, epoch, seq) seen before: a harmless re-send, or a re-used number (kept apart)."""
        if bytes(stored_payload) == msg.payload:
            self.duplicates[key[0]] += 1
            results[i] = Result(Fate.DUPLICATE, None, key[0], (key[1], key[2], ACK_CODE[Fate.DUPLICATE]))
            return
        detail = f"(ep {key[1]}, seq {key[2]}) is already stored with different bytes: the device re-used a number"
        self._reject(i, msg, Rejected(Reason.SEQ_CONFLICT, detail, key[0], key[1], key[2], True), results)

    def _save_epochs(self, devices: dict[str, _DeviceRow], cls: list[Classified]) -> None:
        """Raise each device's highest epoch seen; re-publish configs and drop stale anchors on a reset."""
        for c in cls:
            if isinstance(c, VerifiedEvent):
                row = devices[c.device.id]
                row.max_epoch = max(row.max_epoch, c.event.ep)
        raised = [{"b_id": d, "b_ep": r.max_epoch} for d, r in sorted(devices.items())
                  if r.max_epoch > r.stored_max_epoch]
        if raised:
            self.conn.execute(update(DEVICES).where(DEVICES.c.id == bindparam("b_id"),
                                                    func.coalesce(DEVICES.c.max_epoch, 0) < bindparam("b_ep"))
                              .values(max_epoch=bindparam("b_ep")), raised)
        for device_id, epoch in sorted(self.forget_anchors.items()):
            self.conn.execute(delete(BOOTS).where(BOOTS.c.device_id == device_id, BOOTS.c.epoch >= epoch))
        for device_id in sorted(self.tell_epoch):
            floor = devices[device_id].max_epoch + 1
            self.conn.execute(update(DEVICES).where(DEVICES.c.id == device_id)
                              .values(epoch_floor=floor, config_rev=DEVICES.c.config_rev + 1))

    def _save_duplicate_counts(self) -> None:
        """Count re-sends on the device row (the demo summary and the fleet view read it)."""
        if not self.duplicates:
            return
        stmt = update(DEVICES).where(DEVICES.c.id == bindparam("b_id")).values(
            duplicates=DEVICES.c.duplicates + bindparam("b_n"))
        self.conn.execute(stmt, [{"b_id": d, "b_n": n} for d, n in sorted(self.duplicates.items())])

    # --- misuse and one-rating-per-ticket ------------------------------------------------------

    def _flag_ratings(self, new: list[tuple[tuple[str, int, int], int, int, str | None]]) -> None:
        """Misuse and one-rating-per-ticket flags for newly stored ratings (and neighbours they affect)."""
        if not new:
            return
        window = self.rules.misuse_window_ms
        spans: dict[tuple[str, int], list[int]] = {}
        for (dev, ep, _seq), _id, up, _txn in new:
            lo_hi = spans.setdefault((dev, ep), [up, up])
            lo_hi[0], lo_hi[1] = min(lo_hi[0], up), max(lo_hi[1], up)
        rows = rating_neighbours(self.conn, [(d, ep, lo - window, hi + window) for (d, ep), (lo, hi) in spans.items()])
        flagged = misuse_to_flag(rows, window)
        if flagged:
            self.conn.execute(update(EVENTS).where(any_of(self.conn, EVENTS.c.id, flagged, "bigint"))
                              .values(misuse=True))
        # A press that just became misuse may have been the counted one of its ticket: recompute those too.
        newly_misuse = set(flagged)
        tickets = {txn for *_rest, txn in new if txn}
        tickets |= {r.txn_key for r in rows if r.id in newly_misuse and r.txn_key}
        if tickets:
            recompute_txn_duplicates(self.conn, sorted(tickets))

    # --- events waiting for a clock anchor ----------------------------------------------------

    def _retime_untimed(self, epochs: set[tuple[str, int]]) -> None:
        """Give `untimed` events of these (device, epoch) a time from the new anchor, then attribute."""
        if not epochs:
            return
        waiting = self.conn.execute(
            select(EVENTS.c.id, EVENTS.c.device_id, EVENTS.c.epoch, EVENTS.c.uptime_ms, EVENTS.c.received_at,
                   EVENTS.c.counter_id, EVENTS.c.body)
            .join(QUARANTINE, QUARANTINE.c.event_id == EVENTS.c.id)
            .where(QUARANTINE.c.reason.in_([r.value for r in RETIMED_BY_ANCHOR]), QUARANTINE.c.resolved_at.is_(None),
                   pairs_in(self.conn, EVENTS.c.device_id, EVENTS.c.epoch, sorted(epochs)))
        ).all()
        if not waiting:
            return
        anchors = self._load_anchors(epochs)
        ids = []
        for w in waiting:
            at_ms = min(anchors[(w.device_id, w.epoch)] + w.uptime_ms, round(w.received_at.timestamp() * 1000))
            at = from_ms(at_ms)
            txn = w.body.get("txn") if isinstance(w.body, dict) else None
            self.conn.execute(update(EVENTS).where(EVENTS.c.id == w.id).values(
                event_time=at, time_source=TimeSource.ANCHOR,
                txn_key=self._txn_key(w.counter_id, at, txn) if txn else None))
            ids.append(w.id)
        resolve_open(self.conn, ids, RETIMED_BY_ANCHOR, by=INGEST, how="timed from the boot's heartbeat anchor")
        settle(self.conn, ids, by=INGEST, why="timed from the boot's heartbeat anchor")
        keys = [k for k in self.conn.scalars(select(EVENTS.c.txn_key).where(
            EVENTS.c.id.in_(ids), EVENTS.c.txn_key.is_not(None)).distinct())]
        if keys:
            recompute_txn_duplicates(self.conn, keys)


def txn_key(counter_id: int, at: datetime, txn: str, zone: ZoneInfo) -> str:
    """Queue tickets restart every day, so a ticket identifies a transaction within a local day."""
    return f"{counter_id}:{at.astimezone(zone).date().isoformat()}:{txn}"


def misuse_to_flag(ratings: list[Any], window_ms: int) -> list[int]:
    """Ids of ratings pressed within `window_ms` after the previous press of the same device and boot,
    not yet flagged. Within a boot, seq order is press order and uptime is exact (protocol §8)."""
    by_boot: dict[tuple[str, int], list[Any]] = defaultdict(list)
    for r in ratings:
        by_boot[(r.device_id, r.epoch)].append(r)
    out = []
    for presses in by_boot.values():
        presses.sort(key=lambda r: r.seq)
        for before, this in pairwise(presses):
            if not this.misuse and 0 <= this.uptime_ms - before.uptime_ms <= window_ms:
                out.append(this.id)
    return out


def recompute_txn_duplicates(conn: Connection, keys: list[str]) -> None:
    """Within each ticket, only the earliest rating that is not misuse counts (protocol §8)."""
    first = aliased(EVENTS)
    earlier_valid = exists().where(
        first.c.txn_key == EVENTS.c.txn_key, first.c.id != EVENTS.c.id, first.c.misuse.is_(False),
        (first.c.event_time < EVENTS.c.event_time)
        | and_(first.c.event_time == EVENTS.c.event_time, first.c.id < EVENTS.c.id))
    conn.execute(update(EVENTS).where(EVENTS.c.txn_key.in_(keys)).values(txn_duplicate=earlier_valid))
