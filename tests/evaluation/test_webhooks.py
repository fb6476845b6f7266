"""Signed webhooks to a real local HTTP receiver: the signature verifies, failures are retried with backoff."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import Engine, select, update

from server.db.models import WEBHOOK_DELIVERIES, DeliveryState
from server.db.types import utcnow
from server.evaluation import EvaluationError, lifecycle, webhooks
from server.settings import WebhookSettings
from tests.utils.evaluation import AFTER_MARCH_REVIEWS, make_unit, rate, settings


class Receiver:
    """An HTTP server on a free port that verifies each delivery as docs/api.md tells receivers to."""

    def __init__(self) -> None:
        self.secret = ""
        self.fail_next = 0  # answer 500 to this many requests first
        self.received: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                stamp = self.headers["X-Motcua-Timestamp"]
                expected = "sha256=" + hmac.new(receiver.secret.encode(), stamp.encode() + b"." + body,
                                                hashlib.sha256).hexdigest()
                receiver.received.append({
                    "valid": hmac.compare_digest(expected, self.headers["X-Motcua-Signature"]) and
                    abs(time.time() - int(stamp)) < 300,
                    "event": self.headers["X-Motcua-Event"], "delivery": self.headers["X-Motcua-Delivery"],
                    "body": json.loads(body)})
                status = 500 if receiver.fail_next > 0 else 204
                receiver.fail_next -= 1
                self.send_response(status)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/motcua"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    try:
        yield r
    finally:
        r.server.shutdown()


def _subscribe(engine: Engine, receiver: Receiver, events: list[str], unit_id: int | None = None) -> int:
    with engine.begin() as conn:
        sub_id, receiver.secret = webhooks.add_subscription(conn, name="hr", url=receiver.url, events=events,
                                                            unit_id=unit_id, actor="test")
    return sub_id


def _month(engine: Engine) -> None:
    unit = make_unit(engine, "P-MK", officials=2)
    with engine.begin() as conn:
        rate(conn, unit, "P-MK-CB001", [0, 1, 5])
        lifecycle.close_month(conn, settings=settings(), period="2026-03", units=None, actor="test",
                              now=AFTER_MARCH_REVIEWS)
        lifecycle.finalize_month(conn, period="2026-03", units=None, actor="test", now=AFTER_MARCH_REVIEWS)


def test_month_close_and_final_are_delivered_signed(engine: Engine, receiver: Receiver) -> None:
    _subscribe(engine, receiver, ["month.closed", "month.final"])
    _month(engine)
    assert webhooks.deliver_due(engine, settings=WebhookSettings()) == 2
    assert [r["event"] for r in receiver.received] == ["month.closed", "month.final"]
    assert all(r["valid"] for r in receiver.received)
    final = receiver.received[1]["body"]
    assert final["event"] == "month.final" and final["data"]["unit"] == "P-MK" and final["data"]["officials"] == 2
    assert len(final["data"]["digest"]) == 64 and final["data"]["scores"].startswith("/api/v1/hr/scores?")
    with engine.connect() as conn:
        states = conn.execute(select(WEBHOOK_DELIVERIES.c.state, WEBHOOK_DELIVERIES.c.last_status)).all()
    assert {(s, code) for s, code in states} == {(DeliveryState.DELIVERED, 204)}
    assert webhooks.deliver_due(engine, settings=WebhookSettings()) == 0  # nothing is sent twice


def test_a_forged_or_altered_body_does_not_verify(receiver: Receiver) -> None:
    body = b'{"event":"month.final"}'
    good = webhooks.sign("whsec_x", 1_700_000_000, body)
    assert good == webhooks.sign("whsec_x", 1_700_000_000, body)
    assert good != webhooks.sign("whsec_x", 1_700_000_000, body + b" ")
    assert good != webhooks.sign("whsec_y", 1_700_000_000, body)
    assert good != webhooks.sign("whsec_x", 1_700_000_001, body)  # the timestamp is signed too


def test_failures_are_retried_with_backoff_then_marked_failed(engine: Engine, receiver: Receiver) -> None:
    _subscribe(engine, receiver, ["month.final"])
    _month(engine)
    receiver.fail_next = 2
    quick = WebhookSettings(backoff_s=60, max_attempts=3)
    assert webhooks.deliver_due(engine, settings=quick) == 1
    with engine.connect() as conn:
        d = conn.execute(select(WEBHOOK_DELIVERIES)).one()
    assert (d.state, d.attempts, d.last_status, d.last_error) == (DeliveryState.PENDING, 1, 500, "HTTP 500")
    assert timedelta(seconds=55) < d.next_attempt_at - utcnow() <= timedelta(seconds=60)
    assert webhooks.deliver_due(engine, settings=quick) == 0  # not due yet
    later = utcnow() + timedelta(seconds=61)
    assert webhooks.deliver_due(engine, settings=quick, now=later) == 1
    with engine.connect() as conn:
        d = conn.execute(select(WEBHOOK_DELIVERIES)).one()
    assert d.attempts == 2 and timedelta(seconds=115) < d.next_attempt_at - utcnow() <= timedelta(seconds=120)
    assert webhooks.deliver_due(engine, settings=quick, now=utcnow() + timedelta(seconds=121)) == 1
    with engine.connect() as conn:
        d = conn.execute(select(WEBHOOK_DELIVERIES)).one()
    assert (d.state, d.attempts, d.last_status) == (DeliveryState.DELIVERED, 3, 204)
    ids = {r["delivery"] for r in receiver.received}
    assert len(receiver.received) == 3 and len(ids) == 1  # one delivery id: the receiver can deduplicate
    with engine.begin() as conn:  # a receiver that stays down: failed after max_attempts, kept with the error
        conn.execute(update(WEBHOOK_DELIVERIES).values(state=DeliveryState.PENDING, attempts=2,
                                                       next_attempt_at=utcnow()))
    receiver.fail_next = 1
    webhooks.deliver_due(engine, settings=quick)
    with engine.connect() as conn:
        assert conn.execute(select(WEBHOOK_DELIVERIES.c.state)).scalar_one() == DeliveryState.FAILED
    with engine.begin() as conn:
        assert webhooks.retry_failed(conn, delivery_ids=None, actor="test") == 1
    assert webhooks.deliver_due(engine, settings=quick) == 1 and receiver.received[-1]["valid"]


def test_an_unreachable_receiver_is_an_error_recorded_not_raised(engine: Engine) -> None:
    with engine.begin() as conn:
        webhooks.add_subscription(conn, name="down", url="http://127.0.0.1:9/nothing", events=["month.final"],
                                  unit_id=None, actor="test")
    _month(engine)
    assert webhooks.deliver_due(engine, settings=WebhookSettings(timeout_s=2)) == 1
    with engine.connect() as conn:
        d = conn.execute(select(WEBHOOK_DELIVERIES)).one()
    assert d.state == DeliveryState.PENDING and d.last_status is None and "ConnectError" in d.last_error


def test_a_unit_subscription_hears_only_its_unit(engine: Engine, receiver: Receiver) -> None:
    other = make_unit(engine, "P-XX", officials=1)
    _subscribe(engine, receiver, ["month.closed"], unit_id=other.id)
    _month(engine)  # closes P-MK and P-XX
    webhooks.deliver_due(engine, settings=WebhookSettings())
    assert [r["body"]["data"]["unit"] for r in receiver.received] == ["P-XX"]


def test_subscriptions_are_checked(engine: Engine) -> None:
    with engine.begin() as conn, pytest.raises(EvaluationError, match="unknown event"):
        webhooks.add_subscription(conn, name="x", url="https://hr.example/h", events=["month.opened"], unit_id=None,
                                  actor="test")
    with engine.begin() as conn, pytest.raises(EvaluationError, match="http"):
        webhooks.add_subscription(conn, name="x", url="ftp://hr.example/h", events=["month.final"], unit_id=None,
                                  actor="test")


def test_the_servers_deliverer_sends_when_woken(engine: Engine, receiver: Receiver) -> None:
    _subscribe(engine, receiver, ["month.final"])
    deliverer = webhooks.Deliverer(engine, WebhookSettings()).start()
    try:
        _month(engine)
        deliverer.wake()
        deadline = time.monotonic() + 10
        while not receiver.received and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        deliverer.stop()
    assert receiver.received and receiver.received[0]["valid"]
