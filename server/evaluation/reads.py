"""Reading scores: an official's month (final snapshot or computed live), pages of a period, the year roll-up.

A unit month without a closed/final row is computed live on every read (it is provisional: ratings,
verdicts and task results may still change it). Pages follow one stable order, (unit id, official
id), so a cursor stays valid while units close between two pages.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from server.db.models import (
    OFFICIALS,
    SCORE_MONTHS,
    SCORE_SNAPSHOTS,
    SCORING_POLICIES,
    TASK_RESULTS,
    UNITS,
    MonthState,
    TaskResultKind,
)
from server.evaluation import aggregate, snapshots
from server.evaluation.compute import score_unit, summary_of
from server.evaluation.errors import EvaluationError
from server.evaluation.periods import bounds, check_period, check_year
from server.evaluation.policies import StoredPolicy, active_policy, stored_policy
from server.evaluation.units import all_units, month_rows, month_states
from server.scoring import OfficialYear, ScoreResult, score_year, to_plain
from server.settings import Settings

STATUSES = ("provisional", "closed", "final", "amended")


def _policy_refs(conn: Connection, pks: set[int]) -> dict[int, dict[str, str]]:
    rows = conn.execute(select(SCORING_POLICIES.c.id, SCORING_POLICIES.c.policy_id, SCORING_POLICIES.c.version,
                               SCORING_POLICIES.c.sha256).where(SCORING_POLICIES.c.id.in_(list(pks))))
    return {r.id: {"id": r.policy_id, "version": r.version, "sha256": r.sha256} for r in rows}


def _snapshot_head(r: Any, period: str, unit_code: str, state: str, policy: dict[str, str]) -> dict[str, Any]:
    """A snapshot's row without the fields of its stored summary."""
    status = "amended" if state == MonthState.FINAL and r.version > 1 else str(state)
    return {"official": r.code, "name": r.full_name, "unit": unit_code, "duty_group": r.duty_group,
            "period": period, "status": status, "version": r.version, "total": _text(r.total), "grade": r.grade,
            "policy": policy, "digest": r.digest, "scored_at": r.created_at.isoformat()}


def _snapshot_row(r: Any, period: str, unit_code: str, state: str, policy: dict[str, str]) -> dict[str, Any]:
    return {**_snapshot_head(r, period, unit_code, state, policy), **r.summary}  # summary_of's five keys


def _snapshot_json(r: Any, period: str, unit_code: str, state: str, policy: dict[str, str]) -> str:
    """_snapshot_row as JSON text, with the stored summary (raw JSON text, see current_page) spliced in."""
    head = _dumps(_snapshot_head(r, period, unit_code, state, policy))
    # The summary is a non-empty JSON object written at close (snapshots are immutable: a trigger).
    return head[:-1] + "," + r.summary.strip()[1:]


def _dumps(doc: Any) -> str:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"))


def _live_row(result: ScoreResult, member: aggregate.Member, period: str, now: datetime) -> dict[str, Any]:
    s = summary_of(result)
    ref = result.policy
    return {"official": member.code, "name": member.name, "unit": member.unit_code, "duty_group": member.duty_group,
            "period": period, "status": "provisional", "version": None, "total": str(result.total),
            "grade": result.grade, "grade_before_caps": s["grade_before_caps"], "components": s["components"],
            "criteria": s["criteria"], "satisfaction": s["satisfaction"], "notes": s["notes"],
            "policy": {"id": ref.id, "version": ref.version, "sha256": ref.sha256}, "digest": None,
            "scored_at": now.isoformat()}


def _text(value: Any) -> str:
    return str(value)


def live_unit(conn: Connection, *, settings: Settings, period: str, unit_id: int,
              stored: StoredPolicy) -> list[tuple[aggregate.Member, ScoreResult]]:
    """A unit's month computed now (provisional), in official id order."""
    start, end = bounds(period, settings.zone)
    months = aggregate.unit_months(conn, period=period, start=start, end=end, unit_ids=[unit_id],
                                   policy=stored.policy, at_close=False)
    if not months:
        return []
    results = score_unit(stored.policy, months[0], period=period,
                         outstanding=frozenset(settings.scoring.outstanding_units))
    return sorted(zip(months[0].members, results, strict=True), key=lambda p: p[0].id)


# --- cursors -----------------------------------------------------------------------------------


def encode_cursor(after: tuple[int, int], query: str) -> str:
    """Opaque: the position and a fingerprint of the query it belongs to."""
    raw = json.dumps([after[0], after[1], _fingerprint(query)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None, query: str) -> tuple[int, int]:
    if cursor is None:
        return (0, 0)
    try:
        u, o, f = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not (isinstance(u, int) and isinstance(o, int) and isinstance(f, str)):
            raise ValueError
    except (ValueError, TypeError, UnicodeDecodeError):
        raise EvaluationError("invalid", "cursor: pass back next_cursor exactly as received") from None
    if f != _fingerprint(query):
        raise EvaluationError("invalid", "cursor: this cursor belongs to another query (period, unit or status "
                                         "changed); start again without a cursor")
    return (u, o)


def _fingerprint(query: str) -> str:
    return hashlib.sha256(query.encode()).hexdigest()[:12]


# --- pages of a period -------------------------------------------------------------------------


# rows (dicts, or JSON texts when encoded), and where the next page starts (None: the last page)
Page = tuple[list[Any], tuple[int, int] | None]


def scores_page(conn: Connection, *, settings: Settings, period: str, units: dict[int, str], status: str | None,
                after: tuple[int, int], limit: int, now: datetime, everything: bool = False,
                encoded: bool = False) -> Page:
    """Scores of `units` (id -> code, the caller's visible and chosen units) for a period, after `after`.

    Returns the rows and the position to continue from (None on the last page). `status` keeps
    provisional, closed, final (final and amended) or amended rows only. `everything`: `units` holds
    every unit of the database (the caller may read all of them). `encoded`: each row is its JSON
    text (what the HR API sends), not a dict.
    """
    check_period(period)
    if status is not None and status not in STATUSES:
        raise EvaluationError("invalid", f"status {status!r}: choose one of {', '.join(STATUSES)}")
    states = {u: state for u, state in month_states(conn, period=period).items() if u in units}
    ranked = sorted(units)
    position = {u: i for i, u in enumerate(ranked)}
    order = [u for u in ranked if u >= after[0] and _unit_matches(states.get(u), status)]
    rows: list[Any] = []
    live: StoredPolicy | None = None
    refs: dict[int, dict[str, str]] = {}
    i = 0
    while i < len(order) and len(rows) < limit:
        if order[i] in states:  # a run of closed/final units: one query
            j = i
            while j < len(order) and order[j] in states:
                j += 1
            # every unit of the database between the run's ends is in the run: a range, not a list
            whole = everything and position[order[j - 1]] - position[order[i]] == j - 1 - i
            got = snapshots.current_page(conn, period=period, unit_ids=order[i:j], after=after,
                                         limit=limit - len(rows), amended_only=status == "amended",
                                         whole_range=whole, raw_summary=encoded)
            refs.update(_policy_refs(conn, {r.policy_pk for r in got} - set(refs)))
            row: Any = _snapshot_json if encoded else _snapshot_row
            rows += [row(r, period, units[r.unit_id], states[r.unit_id], refs[r.policy_pk]) for r in got]
            after = (got[-1].unit_id, got[-1].official_id) if got else (order[j - 1], 2**31)
            i = j if len(rows) < limit else i
        else:
            live = live or active_policy(conn, settings=settings)
            pairs = [p for p in live_unit(conn, settings=settings, period=period, unit_id=order[i], stored=live)
                     if (order[i], p[0].id) > after]
            taken = pairs[: limit - len(rows)]
            lives = [_live_row(r, m, period, now) for m, r in taken]
            rows += [_dumps(x) for x in lives] if encoded else lives
            after = (order[i], taken[-1][0].id) if taken else (order[i], 2**31)
            i += 1 if len(taken) == len(pairs) else 0
    return rows, (after if len(rows) >= limit else None)


def _unit_matches(state: str | None, status: str | None) -> bool:
    if status is None:
        return True
    if status == "provisional":
        return state is None
    if status == "closed":
        return state == MonthState.CLOSED
    return state == MonthState.FINAL  # final and amended rows live in final months


# --- one official ------------------------------------------------------------------------------


def month_score(conn: Connection, *, settings: Settings, official_code: str, period: str,
                now: datetime, version: int | None = None) -> dict[str, Any] | None:
    """An official's month with its full explanation (inputs and lines): the final snapshot (or `version`)
    when the unit month is closed, else computed live. None when the official is unknown."""
    check_period(period)
    who = conn.execute(select(OFFICIALS.c.id, OFFICIALS.c.code, OFFICIALS.c.full_name, OFFICIALS.c.duty_group,
                              OFFICIALS.c.unit_id, UNITS.c.code.label("unit_code"))
                       .join(UNITS, UNITS.c.id == OFFICIALS.c.unit_id).where(OFFICIALS.c.code == official_code)).first()
    if who is None:
        return None
    state = month_rows(conn, period=period, unit_ids=[who.unit_id]).get(who.unit_id)
    base = {"official": who.code, "name": who.full_name, "unit": who.unit_code, "duty_group": who.duty_group,
            "unit_id": who.unit_id, "period": period}
    if state is None:
        return _live_detail(conn, settings=settings, who=who, base=base, now=now, version=version)
    all_versions = snapshots.versions(conn, period=period, official_id=who.id)
    if not all_versions:
        return {**base, "status": str(state.state), "version": None, "result": None, "versions": [],
                "digest": None, "policy": None, "scored_at": None}
    chosen = [v for v in all_versions if (version is None and v.superseded_by is None) or v.version == version]
    if not chosen:
        raise EvaluationError("not_found", f"{official_code} {period} has versions "
                                           f"{', '.join(str(v.version) for v in all_versions)}, not {version}")
    snap = chosen[0]
    status = "amended" if state.state == MonthState.FINAL and snap.version > 1 else str(state.state)
    return {**base, "status": status, "version": snap.version, "digest": snap.digest,
            "policy": _policy_refs(conn, {snap.policy_pk})[snap.policy_pk], "scored_at": snap.created_at.isoformat(),
            "result": json.loads(snap.result), "versions": [_version(v) for v in all_versions]}


def _live_detail(conn: Connection, *, settings: Settings, who: Any, base: dict[str, Any], now: datetime,
                 version: int | None) -> dict[str, Any] | None:
    if version is not None:
        raise EvaluationError("not_found", f"{who.code} {base['period']} is not closed: it has no versions yet")
    stored = active_policy(conn, settings=settings)
    mine = [r for m, r in live_unit(conn, settings=settings, period=base["period"], unit_id=who.unit_id,
                                    stored=stored) if m.id == who.id]
    ref = stored.policy.ref
    return {**base, "status": "provisional", "version": None, "digest": None, "scored_at": now.isoformat(),
            "policy": {"id": ref.id, "version": ref.version, "sha256": ref.sha256},
            "result": to_plain(mine[0]) if mine else None, "versions": []}


def _version(v: Any) -> dict[str, Any]:
    return {"version": v.version, "total": str(v.total), "grade": v.grade, "digest": v.digest, "reason": v.reason,
            "created_at": v.created_at.isoformat(), "created_by": v.created_by, "current": v.superseded_by is None}


# --- the year ----------------------------------------------------------------------------------


def year_unit(conn: Connection, *, settings: Settings, year: str, unit_id: int, unit_code: str) -> list[dict[str, Any]]:
    """A unit's year: the mean of each official's final monthly totals, graded (NĐ 335), in official id order."""
    check_year(year)
    q = (select(SCORE_SNAPSHOTS.c.official_id, SCORE_SNAPSHOTS.c.period, SCORE_SNAPSHOTS.c.total,
                SCORE_SNAPSHOTS.c.policy_pk, OFFICIALS.c.code, OFFICIALS.c.full_name, OFFICIALS.c.duty_group)
         .join(SCORE_MONTHS, (SCORE_MONTHS.c.period == SCORE_SNAPSHOTS.c.period) &
               (SCORE_MONTHS.c.unit_id == SCORE_SNAPSHOTS.c.unit_id))
         .join(OFFICIALS, OFFICIALS.c.id == SCORE_SNAPSHOTS.c.official_id)
         .where(SCORE_MONTHS.c.state == MonthState.FINAL, SCORE_SNAPSHOTS.c.unit_id == unit_id, snapshots.CURRENT,
                SCORE_SNAPSHOTS.c.period.like(f"{year}-%")))
    months: dict[int, dict[str, Any]] = {}
    last_policy = 0
    for r in conn.execute(q):
        m = months.setdefault(r.official_id, {"code": r.code, "name": r.full_name, "group": r.duty_group,
                                               "totals": {}})
        m["totals"][r.period] = r.total
        last_policy = max(last_policy, r.policy_pk)
    if not months:
        return []
    stored = stored_policy(conn, last_policy)  # the rules of the latest month: a year is graded once, at its end
    spec = stored.policy.spec
    measures = _year_discipline(conn, year=year, official_ids=list(months), order=spec.discipline.measures)
    people = sorted(months.items())
    inputs = [OfficialYear(p["code"], unit_code, f"{unit_code}/{p['group']}" if p["group"] else unit_code,
                           p["totals"], measures.get(oid)) for oid, p in people]
    outstanding = frozenset(settings.scoring.outstanding_units)
    results = score_year(stored.policy, inputs, year=year, outstanding_units=outstanding)
    return [{"official": p["code"], "name": p["name"], "unit": unit_code, "duty_group": p["group"], "year": year,
             "months": r.months, "monthly_totals": {k: str(v) for k, v in sorted(p["totals"].items())},
             "total": str(r.total), "grade": r.grade, "grade_before_caps": r.grade_before_caps,
             "policy": {"id": r.policy.id, "version": r.policy.version, "sha256": r.policy.sha256},
             "lines": to_plain(r.lines), "_key": (unit_id, oid)}
            for (oid, p), r in zip(people, results, strict=True)]


def _year_discipline(conn: Connection, *, year: str, official_ids: Sequence[int],
                     order: Sequence[str]) -> dict[int, str]:
    """The most severe discipline measure recorded for each official in the year."""
    rows = conn.execute(select(TASK_RESULTS.c.official_id, TASK_RESULTS.c.key)
                        .where(TASK_RESULTS.c.kind == TaskResultKind.DISCIPLINE,
                               TASK_RESULTS.c.period.like(f"{year}-%"),
                               TASK_RESULTS.c.official_id.in_(list(official_ids))))
    worst: dict[int, str] = {}
    for oid, key in rows:
        if key in order and (oid not in worst or order.index(key) > order.index(worst[oid])):
            worst[oid] = key
    return worst


def year_page(conn: Connection, *, settings: Settings, year: str, units: dict[int, str], after: tuple[int, int],
              limit: int) -> Page:
    """Year results of `units` after `after`, unit by unit."""
    rows: list[dict[str, Any]] = []
    for uid in [u for u in sorted(units) if u >= after[0]]:
        mine = [r for r in year_unit(conn, settings=settings, year=year, unit_id=uid, unit_code=units[uid])
                if r["_key"] > after]
        rows += mine[: limit - len(rows)]
        if len(rows) >= limit:
            break
    if rows:
        after = rows[-1]["_key"]
    for r in rows:
        del r["_key"]
    return rows, (after if len(rows) >= limit else None)


def visible_units(conn: Connection, *, visible: frozenset[int] | None, unit: str | None) -> dict[int, str]:
    """The units a caller may read, narrowed to `unit` when given (a unit outside the caller's is forbidden)."""
    units = all_units(conn, visible)
    if unit is None:
        return units
    found = conn.execute(select(UNITS.c.id).where(UNITS.c.code == unit)).scalar()
    if found is None:
        raise EvaluationError("not_found", f"no unit {unit!r}")
    if found not in units:
        raise EvaluationError("forbidden", f"this token may not read unit {unit!r}")
    return {found: unit}
