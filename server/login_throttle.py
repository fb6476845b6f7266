"""Sign-in rate limiting: locks per user name and per client address, with exponential backoff.

OWASP's authentication guidance: count failures per account *and* per source, lock for a while
rather than for good (a permanent lock lets anyone shut a colleague out), and grow the lock with
each further failure. Kept in the database so every server process and a restart see the same counts.
While locked, the password is not even checked, so guessing cannot go on behind the lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, delete, select, update

from server.audit import record
from server.db.dialect import insert_for
from server.db.models import LOGIN_THROTTLE
from server.settings import LoginSettings


@dataclass(frozen=True, slots=True)
class Lock:
    kind: str  # "user" | "address"
    until: datetime

    def seconds_left(self, now: datetime) -> int:
        return max(1, int((self.until - now).total_seconds() + 0.999))


def _keys(username: str, address: str | None) -> list[tuple[str, str, str]]:
    keys = [("user", username.strip().lower()[:200], "user_failures")]
    if address:
        keys.append(("address", address[:200], "address_failures"))
    return keys


def active_lock(conn: Connection, *, username: str, address: str | None, now: datetime) -> Lock | None:
    """The lock, if any, that refuses this sign-in now (the longer one when both are locked)."""
    found = []
    for kind, key, _limit in _keys(username, address):
        until = conn.execute(select(LOGIN_THROTTLE.c.locked_until).where(
            LOGIN_THROTTLE.c.kind == kind, LOGIN_THROTTLE.c.key == key)).scalar()
        if until is not None and until > now:
            found.append(Lock(kind, until))
    return max(found, key=lambda lock: lock.until) if found else None


def _lock_for(failures: int, limit: int, rules: LoginSettings) -> timedelta | None:
    if failures < limit:
        return None
    return timedelta(seconds=min(rules.lock_s * 2 ** min(failures - limit, 30), rules.lock_max_s))


def record_failure(conn: Connection, *, username: str, address: str | None, now: datetime,
                   rules: LoginSettings) -> Lock | None:
    """Count a failed sign-in for the name and the address; returns the lock it starts, if any (audited)."""
    started = None
    forget = now - timedelta(hours=rules.forget_after_h)
    conn.execute(delete(LOGIN_THROTTLE).where(LOGIN_THROTTLE.c.last_failure_at < forget,
                                              (LOGIN_THROTTLE.c.locked_until.is_(None))
                                              | (LOGIN_THROTTLE.c.locked_until < now)))
    for kind, key, limit_name in _keys(username, address):
        conn.execute(insert_for(conn, LOGIN_THROTTLE).values(kind=kind, key=key, failures=0, first_failure_at=now,
                                                            last_failure_at=now)
                     .on_conflict_do_nothing(index_elements=["kind", "key"]))
        where = (LOGIN_THROTTLE.c.kind == kind) & (LOGIN_THROTTLE.c.key == key)
        failures = int(conn.execute(select(LOGIN_THROTTLE.c.failures).where(where).with_for_update()).scalar_one())
        failures += 1
        pause = _lock_for(failures, getattr(rules, limit_name), rules)
        conn.execute(update(LOGIN_THROTTLE).where(where).values(
            failures=failures, last_failure_at=now, locked_until=now + pause if pause else None))
        if pause:
            started = Lock(kind, now + pause)
            record(conn, actor="server", action="auth.lockout", target_type=kind, target_id=key,
                   detail={"failures": failures, "locked_s": int(pause.total_seconds())})
    return started


def record_success(conn: Connection, *, username: str) -> None:
    """A right password ends the name's failure count (the address keeps its own: one valid account
    must not let a guesser reset the count of the address it guesses from)."""
    conn.execute(delete(LOGIN_THROTTLE).where(LOGIN_THROTTLE.c.kind == "user",
                                              LOGIN_THROTTLE.c.key == username.strip().lower()[:200]))


def unlock(conn: Connection, *, username: str, actor: str) -> None:
    """Lift the lock and forget the failures of a user name (audited)."""
    record_success(conn, username=username)
    record(conn, actor=actor, action="auth.unlock", target_type="user", target_id=username)
