"""Kiosk `session` events (docs/protocol.md §3.4): an official signs in or out at the kiosk itself.

Called by the batch store inside the batch transaction, under the row locks of the batch's devices,
after the events are timed and before they are attributed and inserted.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from motcua.protocol.credentials import proof_matches
from server.credentials import verifier_for
from server.db.bulk import Key, stored_payloads
from server.db.models import COUNTERS, OFFICIALS, EventStatus
from server.db.types import utcnow
from server.ingest.reasons import Reason
from server.sessions import SessionError, SessionView, serving, sign_in, sign_out


class Refused(Exception):
    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def apply_session_events(conn: Connection, rows: dict[Key, dict[str, Any]], secrets: dict[str, bytes]) -> None:
    """Sign officials in or out for the batch's new session events, in (device, epoch, seq) order.

    Runs before the batch's events are attributed and inserted, so the batch's later presses are
    attributed to the new session. An event already stored (a re-send) is left alone: the insert will
    call it a duplicate. A refused event gets `_problem`/`_detail`, which the store turns into a
    quarantine record and a "quar" ack, so the kiosk can tell the official it failed.
    """
    todo = sorted(k for k, row in rows.items() if row["typ"] == "session" and row["_problem"] is None)
    if not todo:
        return
    already = stored_payloads(conn, todo)
    for key in todo:
        if key in already:
            continue
        row = rows[key]
        try:
            with conn.begin_nested():  # a refused sign-in leaves no half-closed sessions behind
                view = _apply(conn, row, secrets[row["device_id"]])
        except Refused as refused:
            row["_problem"], row["_detail"] = refused.reason, refused.detail
            continue
        row.update(status=EventStatus.ACCEPTED, official_id=view.official_id, session_id=view.id)


def _official(conn: Connection, row: dict[str, Any]) -> Any:
    body = row["body"]
    official = conn.execute(select(OFFICIALS.c.id, OFFICIALS.c.unit_id, OFFICIALS.c.active)
                            .where(OFFICIALS.c.code == body["official"])).first()
    if official is None:
        raise Refused(Reason.BAD_CREDENTIAL, f"no official {body['official']!r}")
    unit = conn.execute(select(COUNTERS.c.unit_id).where(COUNTERS.c.id == row["counter_id"])).scalar()
    if official.unit_id != unit:
        raise Refused(Reason.SESSION_REFUSED, f"{body['official']} does not work in this counter's unit")
    return official


def _check_proof(conn: Connection, row: dict[str, Any], official_id: int, secret: bytes) -> None:
    body = row["body"]
    verifier = verifier_for(conn, official_id=official_id, method=body["method"])
    if verifier is None:
        raise Refused(Reason.BAD_CREDENTIAL, f"{body['official']} has no {body['method']} enrolled "
                                             "(`motcua admin credential-set`)")
    if not proof_matches(secret, body["proof"], dev=row["device_id"], action=body["action"],
                         official=body["official"], method=body["method"], nonce=body["nonce"],
                         verifier_hex=verifier):
        raise Refused(Reason.BAD_CREDENTIAL, f"wrong {body['method']} for {body['official']}")


def _apply(conn: Connection, row: dict[str, Any], secret: bytes) -> SessionView:
    official = _official(conn, row)
    _check_proof(conn, row, official.id, secret)
    actor, at, now = f"device:{row['device_id']}", row["event_time"], utcnow()
    try:
        if row["body"]["action"] == "in":
            return sign_in(conn, counter_id=row["counter_id"], official_id=official.id, at=at, now=now,
                           actor=actor)
        return _sign_out_self(conn, row, official.id, actor)
    except SessionError as exc:
        raise Refused(Reason.SESSION_REFUSED, str(exc)) from None


def _sign_out_self(conn: Connection, row: dict[str, Any], official_id: int, actor: str) -> SessionView:
    # Only the official serving may end the session: a PIN of someone else must not empty the counter.
    current = serving(conn, counter_id=row["counter_id"])
    if current is None or current.official_id != official_id:
        raise Refused(Reason.SESSION_REFUSED, f"{row['body']['official']} is not signed in at this counter")
    return sign_out(conn, counter_id=row["counter_id"], at=row["event_time"], now=utcnow(), actor=actor)
