"""The month lifecycle per unit: open → provisional (live) → closed (frozen, version 1) → final (immutable),
then amendments (new versions with a reason). Every transition is audited and announced by webhook.

Why per unit: the unit is the scope of the scoring (the agency cap; similar-duty groups within it), so
units are independent, and one ward's review backlog does not hold up a province's month.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from server.audit import record
from server.db.models import OFFICIALS, SCORE_MONTHS, SCORE_SNAPSHOTS, MonthState
from server.evaluation import aggregate, snapshots, webhooks
from server.evaluation.compute import Scored, score_for_storage, score_unit, stored_form
from server.evaluation.errors import EvaluationError
from server.evaluation.periods import Phase, bounds, check_period, live_phase, review_deadline
from server.evaluation.policies import StoredPolicy, active_policy, stored_policy
from server.evaluation.units import all_units, month_rows, unit_ids_for
from server.settings import Settings

MIN_REASON = 10  # characters: an amendment or a forced close must say why, in words a reviewer can check

Progress = Callable[[str], None]


@dataclass(slots=True)
class CloseReport:
    """What `close_month` did, unit by unit."""

    period: str
    closed: list[str] = field(default_factory=list)
    reclosed: list[str] = field(default_factory=list)
    already_final: list[str] = field(default_factory=list)
    blocked: dict[str, list[int]] = field(default_factory=dict)  # unit -> undecided review ids
    failed: list[dict[str, Any]] = field(default_factory=list)
    officials: int = 0
    unresolved_reviews: int = 0
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return not (self.blocked or self.failed)


def _quiet(_: str) -> None:
    return None


def close_month(conn: Connection, *, settings: Settings, period: str, units: Sequence[str] | None, actor: str,
                now: datetime, force_reason: str | None = None, progress: Progress = _quiet) -> CloseReport:
    """Score and freeze the units' month (all units when `units` is None) as version 1, in the caller's transaction."""
    _check_closable(settings, period, now, force_reason)
    report, clock = CloseReport(period), time.perf_counter()
    chosen = unit_ids_for(conn, units)
    states = month_rows(conn, period=period, unit_ids=None if chosen is None else list(chosen))
    names = chosen or all_units(conn)
    report.already_final = [names[u] for u, r in states.items() if r.state == MonthState.FINAL]
    final = {u for u, r in states.items() if r.state == MonthState.FINAL}
    stored = active_policy(conn, settings=settings)
    progress(f"aggregating {period} in SQL")
    start, end = bounds(period, settings.zone)
    scope = None if chosen is None and not final else [u for u in names if u not in final]
    months = [m for m in aggregate.unit_months(conn, period=period, start=start, end=end, unit_ids=scope,
                                               policy=stored.policy, at_close=True) if m.unit_id not in final]
    report.seconds["aggregate"] = time.perf_counter() - clock
    months = _apply_pending_rule(stored, months, report)
    progress(f"scoring {sum(len(m.inputs) for m in months):,} officials in {len(months):,} units")
    scored, report.failed = score_for_storage(stored.policy, stored.data, months, period=period,
                                              outstanding=frozenset(settings.scoring.outstanding_units))
    report.seconds["score"] = time.perf_counter() - clock - report.seconds["aggregate"]
    progress("storing the snapshots")
    _store_closed(conn, period=period, months=[m for m in months if m.unit_id in scored], scored=scored,
                  states=states, stored=stored, report=report, actor=actor, now=now, force_reason=force_reason)
    report.seconds["total"] = time.perf_counter() - clock
    return report


def _check_closable(settings: Settings, period: str, now: datetime, force_reason: str | None) -> None:
    end = bounds(check_period(period), settings.zone)[1]
    if now < end:
        raise EvaluationError("conflict", f"{period} is not over yet (it ends {end.isoformat()}): a month closes "
                                          "after it ends and its review window has passed")
    deadline = review_deadline(period, settings.zone, settings.scoring.review_days)
    if now < deadline and force_reason is None:
        raise EvaluationError("conflict", f"{period}: flagged incidents may be reviewed until {deadline.isoformat()} "
                                          f"(scoring.review_days = {settings.scoring.review_days}); close after "
                                          "that, or force it with a reason (--force REASON)")
    if force_reason is not None and len(force_reason.strip()) < MIN_REASON:
        raise EvaluationError("invalid", f"say why the month is closed early, in at least {MIN_REASON} characters")


def _apply_pending_rule(stored: StoredPolicy, months: list[aggregate.UnitMonth],
                        report: CloseReport) -> list[aggregate.UnitMonth]:
    """incidents.pending_at_close: "block" holds back units with undecided reviews; "ignore" only counts them."""
    if stored.policy.spec.incidents.pending_at_close == "block":
        report.blocked = {m.unit_code: m.undecided_reviews for m in months if m.undecided_reviews}
        months = [m for m in months if not m.undecided_reviews]
    report.unresolved_reviews = sum(len(m.undecided_reviews) for m in months)
    return months


def _store_closed(conn: Connection, *, period: str, months: list[aggregate.UnitMonth], scored: dict[int, list[Scored]],
                  states: dict[int, Any], stored: StoredPolicy, report: CloseReport, actor: str, now: datetime,
                  force_reason: str | None) -> None:
    again = [m.unit_id for m in months if m.unit_id in states]
    snapshots.delete_unfinal(conn, period=period, unit_ids=again)
    if again:
        conn.execute(delete(SCORE_MONTHS).where(SCORE_MONTHS.c.period == period, SCORE_MONTHS.c.unit_id.in_(again)))
    rows: list[dict[str, Any]] = []
    for m in months:
        ids = {member.code: member.id for member in m.members}
        rows += snapshots.snapshot_rows(period=period, unit_id=m.unit_id, ids=ids, scored=scored[m.unit_id],
                                        version=1, policy_pk=stored.pk, now=now, actor=actor)
    snapshots.insert_snapshots(conn, rows)
    if months:
        conn.execute(insert(SCORE_MONTHS), [
            {"period": period, "unit_id": m.unit_id, "state": MonthState.CLOSED, "policy_pk": stored.pk,
             "officials": len(m.members), "pending_reviews": len(m.undecided_reviews), "closed_at": now,
             "closed_by": actor, "forced_reason": force_reason} for m in months])
    for m in months:
        (report.reclosed if m.unit_id in states else report.closed).append(m.unit_code)
        detail = {"period": period, "officials": len(m.members), "policy": stored.policy.ref.sha256,
                  "unresolved_reviews": m.undecided_reviews, "forced_reason": force_reason,
                  "again": m.unit_id in states}
        record(conn, actor=actor, action="month.close", target_type="unit_month",
               target_id=f"{m.unit_code}/{period}", detail=detail)
        webhooks.enqueue(conn, event="month.closed", unit_id=m.unit_id, now=now,
                         data=_month_data(period, m.unit_code, stored, scored[m.unit_id]))
    report.officials = len(rows)


def _month_data(period: str, unit_code: str, stored: StoredPolicy, scored: Sequence[Scored]) -> dict[str, Any]:
    """What a webhook says about a unit month; `digest` covers every official's result digest."""
    lines = sorted(f"{s.code} {s.digest}" for s in scored)
    return {"period": period, "unit": unit_code, "officials": len(scored),
            "policy": {"id": stored.policy.ref.id, "version": stored.policy.ref.version,
                       "sha256": stored.policy.ref.sha256},
            "digest": hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest(),
            "scores": f"/api/v1/hr/scores?period={period}&unit={unit_code}"}


def finalize_month(conn: Connection, *, period: str, units: Sequence[str] | None, actor: str,
                   now: datetime) -> list[str]:
    """Closed unit months become final (immutable); returns the units finalised. Open ones are an error."""
    check_period(period)
    chosen = unit_ids_for(conn, units)
    states = month_rows(conn, period=period, unit_ids=None if chosen is None else list(chosen))
    if chosen is not None:
        unclosed = [code for uid, code in chosen.items() if uid not in states]
        if unclosed:
            raise EvaluationError("conflict", f"{period} is not closed for {', '.join(unclosed)}: run "
                                              f"`motcua month close {period}` first")
    targets = [u for u, r in states.items() if r.state == MonthState.CLOSED]
    names = all_units(conn)
    for uid in targets:
        conn.execute(update(SCORE_MONTHS).where(SCORE_MONTHS.c.period == period, SCORE_MONTHS.c.unit_id == uid)
                     .values(state=MonthState.FINAL, finalized_at=now, finalized_by=actor))
        record(conn, actor=actor, action="month.finalize", target_type="unit_month",
               target_id=f"{names[uid]}/{period}", detail={"period": period})
        current = snapshots.current_of_unit(conn, period=period, unit_id=uid)
        codes = _codes(conn, list(current))
        scored = [Scored(codes[oid], r.total, r.grade, r.summary, "", r.digest) for oid, r in current.items()]
        stored = stored_policy(conn, states[uid].policy_pk)
        webhooks.enqueue(conn, event="month.final", unit_id=uid, now=now,
                         data=_month_data(period, names[uid], stored, scored))
    return sorted(names[u] for u in targets)


def _codes(conn: Connection, official_ids: list[int]) -> dict[int, str]:
    if not official_ids:
        return {}
    return {r[0]: r[1] for r in conn.execute(select(OFFICIALS.c.id, OFFICIALS.c.code)
                             .where(OFFICIALS.c.id.in_(official_ids)))}


@dataclass(frozen=True, slots=True)
class Amended:
    official: str
    version: int
    previous: dict[str, Any]  # total, grade, digest of the version it replaces (None for a new official)
    current: dict[str, Any]


def amend_month(conn: Connection, *, settings: Settings, period: str, unit: str, reason: str, actor: str,
                now: datetime, officials: Sequence[str] | None = None) -> list[Amended]:
    """Re-score a final unit month from today's inputs under its own policy; every official whose result
    changed gets a new version with the reason. Limiting to `officials` is refused if others change too."""
    if len(reason.strip()) < MIN_REASON:
        raise EvaluationError("invalid", f"an amendment needs a reason of at least {MIN_REASON} characters")
    [(uid, code)] = (unit_ids_for(conn, [unit]) or {}).items()
    state = month_rows(conn, period=check_period(period), unit_ids=[uid]).get(uid)
    if state is None or state.state != MonthState.FINAL:
        phase = "closed" if state is not None else "not closed"
        raise EvaluationError("conflict", f"{code} {period} is {phase}, not final: "
                                          + ("close it again instead of amending" if state is not None else
                                             "amendments correct final months only"))
    stored = stored_policy(conn, state.policy_pk)
    start, end = bounds(period, settings.zone)
    [month] = aggregate.unit_months(conn, period=period, start=start, end=end, unit_ids=[uid], policy=stored.policy,
                                    at_close=True) or [aggregate.UnitMonth(uid, code, [], [], [])]
    fresh = {r.official_id: stored_form(r) for r in score_unit(stored.policy, month, period=period,
                                                               outstanding=frozenset(settings.scoring.outstanding_units))}
    current = snapshots.current_of_unit(conn, period=period, unit_id=uid)
    ids = {m.code: m.id for m in month.members}
    by_code = {c: current.get(i) for c, i in ids.items()}
    changed = [c for c, s in fresh.items() if getattr(by_code.get(c), "digest", None) != s.digest]
    _check_amendment(code, period, changed, officials)
    return [_write_amendment(conn, period=period, unit_id=uid, unit_code=code, official_id=ids[c], scored=fresh[c],
                             old=by_code.get(c), stored=stored, reason=reason, actor=actor, now=now)
            for c in sorted(changed)]


def _check_amendment(unit: str, period: str, changed: list[str], officials: Sequence[str] | None) -> None:
    if not changed:
        raise EvaluationError("conflict", f"nothing to amend: today's inputs give {unit} {period} exactly the "
                                          "final results; correct the inputs (task results, verdicts) first")
    others = sorted(set(changed) - set(officials)) if officials is not None else []
    if others:
        raise EvaluationError("conflict", f"the correction also changes {', '.join(others)} (caps and group means "
                                          "are shared): amend them too, or leave --official out")


def _write_amendment(conn: Connection, *, period: str, unit_id: int, unit_code: str, official_id: int, scored: Scored,
                     old: Any, stored: StoredPolicy, reason: str, actor: str, now: datetime) -> Amended:
    version = (old.version + 1) if old is not None else 1
    [row] = snapshots.snapshot_rows(period=period, unit_id=unit_id, ids={scored.code: official_id}, scored=[scored],
                                    version=version, policy_pk=stored.pk, now=now, actor=actor, reason=reason)
    new_id = int(conn.execute(insert(SCORE_SNAPSHOTS).values(**row).returning(SCORE_SNAPSHOTS.c.id)).scalar_one())
    previous = None if old is None else {"version": old.version, "total": str(old.total), "grade": old.grade,
                                         "digest": old.digest}
    if old is not None:
        snapshots.supersede(conn, old_id=old.id, new_id=new_id)
    current = {"version": version, "total": str(scored.total), "grade": scored.grade, "digest": scored.digest}
    record(conn, actor=actor, action="score.amend", target_type="official_month",
           target_id=f"{scored.code}/{period}", detail={"reason": reason, "previous": previous, "current": current})
    webhooks.enqueue(conn, event="score.amended", unit_id=unit_id, now=now,
                     data={"period": period, "unit": unit_code, "official": scored.code, "reason": reason,
                           "previous": previous, "current": current,
                           "score": f"/api/v1/hr/scores/{scored.code}?period={period}"})
    return Amended(scored.code, version, previous or {}, current)


def month_status(conn: Connection, *, settings: Settings, period: str, unit_ids: Sequence[int] | None,
                 now: datetime) -> list[dict[str, Any]]:
    """Each unit's phase for the period, with who closed and finalised it and when."""
    names = all_units(conn, None if unit_ids is None else frozenset(unit_ids))
    states = month_rows(conn, period=check_period(period), unit_ids=list(names))
    live = live_phase(period, settings.zone, now)
    deadline = review_deadline(period, settings.zone, settings.scoring.review_days)
    out = []
    for uid, code in names.items():
        r = states.get(uid)
        out.append({"unit": code, "period": period, "phase": Phase(r.state) if r is not None else live,
                    "review_deadline": deadline.isoformat(), "officials": r.officials if r is not None else None,
                    "closed_at": r.closed_at.isoformat() if r is not None else None,
                    "closed_by": r.closed_by if r is not None else None,
                    "finalized_at": r.finalized_at.isoformat() if r is not None and r.finalized_at else None,
                    "finalized_by": r.finalized_by if r is not None else None,
                    "unresolved_reviews": r.pending_reviews if r is not None else None,
                    "forced_reason": r.forced_reason if r is not None else None})
    return out
