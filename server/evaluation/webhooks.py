"""Signed webhooks to HR systems: an outbox written with the change that caused it, delivered with retries.

Each delivery is POSTed with the exact body bytes that were stored, and signed with the subscriber's
own secret: X-Motcua-Signature = "sha256=" + hex HMAC-SHA256(secret, timestamp + "." + body), the
timestamp (Unix seconds) in X-Motcua-Timestamp, so a receiver can refuse replays of old deliveries.
Any 2xx is success; anything else (or no answer) is retried after backoff_s · 2^(attempt − 1).
docs/api.md has the receiver's verification recipe.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import Connection, Engine, insert, or_, select, update

from server.audit import record
from server.db.models import WEBHOOK_DELIVERIES, WEBHOOK_SUBSCRIPTIONS, DeliveryState
from server.db.types import utcnow
from server.evaluation.errors import EvaluationError
from server.settings import WebhookSettings

log = logging.getLogger("motcua.webhooks")
EVENTS = {
    "month.closed": "a unit's month was scored and frozen (version 1); it may still be closed again before final",
    "month.final": "a unit's month is final: immutable scores, fetch them from /api/v1/hr/scores",
    "score.amended": "a final month was corrected: new versions of some officials' scores, with the reason",
}
SIGNATURE_HEADER, TIMESTAMP_HEADER = "X-Motcua-Signature", "X-Motcua-Timestamp"
BATCH = 50  # deliveries claimed per pass: a slow subscriber delays at most this many others
POLL_S = 5.0  # how often the server looks for due deliveries (also woken by enqueue in-process)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header value for a body sent at `timestamp`."""
    mac = hmac.new(secret.encode("utf-8"), str(timestamp).encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def add_subscription(conn: Connection, *, name: str, url: str, events: list[str], unit_id: int | None,
                     actor: str) -> tuple[int, str]:
    """A new subscriber and its secret (returned once to be given to the receiver)."""
    unknown = sorted(set(events) - set(EVENTS))
    if unknown or not events:
        raise EvaluationError("invalid", f"unknown event(s) {unknown}; choose from {sorted(EVENTS)}")
    if not url.startswith(("https://", "http://")):
        raise EvaluationError("invalid", f"url {url!r}: give an http:// or https:// URL")
    secret = "whsec_" + secrets.token_urlsafe(32)
    new_id = int(conn.execute(insert(WEBHOOK_SUBSCRIPTIONS).values(
        name=name, url=url, secret=secret, events=" ".join(sorted(set(events))), unit_id=unit_id, active=True,
        created_at=utcnow(), created_by=actor).returning(WEBHOOK_SUBSCRIPTIONS.c.id)).scalar_one())
    record(conn, actor=actor, action="webhook.subscribe", target_type="webhook", target_id=new_id,
           detail={"name": name, "url": url, "events": events, "unit_id": unit_id})
    return new_id, secret


def enqueue(conn: Connection, *, event: str, unit_id: int, data: dict[str, Any], now: datetime) -> int:
    """One pending delivery per active subscriber of `event` for this unit, in the caller's transaction."""
    subs = conn.execute(select(WEBHOOK_SUBSCRIPTIONS.c.id, WEBHOOK_SUBSCRIPTIONS.c.events)
                        .where(WEBHOOK_SUBSCRIPTIONS.c.active.is_(True),
                               or_(WEBHOOK_SUBSCRIPTIONS.c.unit_id.is_(None),
                                   WEBHOOK_SUBSCRIPTIONS.c.unit_id == unit_id))).all()
    rows = []
    for sub in subs:
        if event not in sub.events.split():
            continue
        payload = {"id": str(uuid.uuid4()), "event": event, "created_at": now.isoformat(), "data": data}
        body = json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")
        rows.append({"subscription_id": sub.id, "event": event, "body": body, "state": DeliveryState.PENDING,
                     "attempts": 0, "next_attempt_at": now, "created_at": now})
    if rows:
        conn.execute(insert(WEBHOOK_DELIVERIES), rows)
    return len(rows)


def deliver_due(engine: Engine, *, settings: WebhookSettings, client: httpx.Client | None = None,
                now: datetime | None = None) -> int:
    """Attempt every due delivery once; returns how many were attempted."""
    attempted = 0
    own = client is None
    http = client or httpx.Client(timeout=settings.timeout_s, follow_redirects=False)
    try:
        while True:
            due = _claim(engine, now or utcnow())
            for d in due:
                _attempt(engine, http, d, settings)
            attempted += len(due)
            if len(due) < BATCH:
                return attempted
    finally:
        if own:
            http.close()


def _claim(engine: Engine, now: datetime) -> list[Any]:
    with engine.begin() as conn:
        q = (select(WEBHOOK_DELIVERIES.c.id, WEBHOOK_DELIVERIES.c.event, WEBHOOK_DELIVERIES.c.body,
                    WEBHOOK_DELIVERIES.c.attempts, WEBHOOK_SUBSCRIPTIONS.c.url, WEBHOOK_SUBSCRIPTIONS.c.secret)
             .join(WEBHOOK_SUBSCRIPTIONS, WEBHOOK_SUBSCRIPTIONS.c.id == WEBHOOK_DELIVERIES.c.subscription_id)
             .where(WEBHOOK_DELIVERIES.c.state == DeliveryState.PENDING, WEBHOOK_DELIVERIES.c.next_attempt_at <= now)
             .order_by(WEBHOOK_DELIVERIES.c.id).limit(BATCH))
        if conn.dialect.name == "postgresql":
            q = q.with_for_update(of=WEBHOOK_DELIVERIES, skip_locked=True)  # several servers never double-send
        rows = list(conn.execute(q))
        if rows:  # lease the claimed rows for a while, so another deliverer skips them after this commit
            lease = now + timedelta(minutes=5)
            conn.execute(update(WEBHOOK_DELIVERIES).where(WEBHOOK_DELIVERIES.c.id.in_([r.id for r in rows]))
                         .values(next_attempt_at=lease))
        return rows


def _attempt(engine: Engine, http: httpx.Client, d: Any, settings: WebhookSettings) -> None:
    """POST one delivery and record the outcome; the next attempt waits backoff_s · 2^(attempts − 1)."""
    timestamp = int(time.time())
    headers = {"Content-Type": "application/json", "X-Motcua-Event": d.event, "X-Motcua-Delivery": str(d.id),
               TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: sign(d.secret, timestamp, bytes(d.body))}
    status: int | None = None
    error: str | None = None
    try:
        status = http.post(d.url, content=bytes(d.body), headers=headers).status_code
        if not 200 <= status < 300:
            error = f"HTTP {status}"
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"[:500]
    attempts = d.attempts + 1
    now = utcnow()
    values: dict[str, Any] = {"attempts": attempts, "last_status": status, "last_error": error}
    if error is None:
        values |= {"state": DeliveryState.DELIVERED, "delivered_at": now}
    elif attempts >= settings.max_attempts:
        values |= {"state": DeliveryState.FAILED}
        log.warning("webhook delivery %s to %s failed for good after %s attempts: %s", d.id, d.url, attempts, error)
    else:
        values |= {"next_attempt_at": now + timedelta(seconds=settings.backoff_s * 2 ** (attempts - 1))}
    with engine.begin() as conn:
        conn.execute(update(WEBHOOK_DELIVERIES).where(WEBHOOK_DELIVERIES.c.id == d.id).values(**values))


def retry_failed(conn: Connection, *, delivery_ids: list[int] | None, actor: str) -> int:
    """Put failed deliveries back in the queue (after the receiver is fixed)."""
    q = update(WEBHOOK_DELIVERIES).where(WEBHOOK_DELIVERIES.c.state == DeliveryState.FAILED)
    if delivery_ids is not None:
        q = q.where(WEBHOOK_DELIVERIES.c.id.in_(delivery_ids))
    done = conn.execute(q.values(state=DeliveryState.PENDING, attempts=0, next_attempt_at=utcnow())).rowcount
    record(conn, actor=actor, action="webhook.retry", target_type="webhook_delivery",
           target_id="failed" if delivery_ids is None else ",".join(map(str, delivery_ids))[:64],
           detail={"count": done})
    return int(done)


class Deliverer:
    """The server's background delivery loop: every POLL_S, or at once when woken."""

    def __init__(self, engine: Engine, settings: WebhookSettings) -> None:
        self.engine, self.settings = engine, settings
        self._stop, self._wake = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._run, name="webhooks", daemon=True)

    def start(self) -> Deliverer:
        self._thread.start()
        return self

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(10)

    def _run(self) -> None:
        with httpx.Client(timeout=self.settings.timeout_s, follow_redirects=False) as http:
            while not self._stop.is_set():
                try:
                    deliver_due(self.engine, settings=self.settings, client=http)
                except Exception:  # the loop must outlive a database hiccup; the rows stay pending
                    log.exception("webhook delivery pass failed; retrying in %s s", POLL_S)
                self._wake.wait(POLL_S)
                self._wake.clear()
