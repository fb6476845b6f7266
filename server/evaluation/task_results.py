"""Task results and the unit head's entries: validated row by row, written all or nothing.

One row format for the CSV import (`motcua tasks import FILE`), the JSON import of a task system and
the unit head's sheet (docs/scoring.md §17):

    period, official, kind, key, label, points, completed, quality_failures, delays, objective_cause, reference

kind = task (default) | bonus | penalty | general (key = criterion id) | discipline (key = measure id).
Every problem is reported with its row, column and what to write instead; if there is one, nothing
is written. "upsert" replaces rows with the same (official, period, kind, key); "replace" first
clears the whole sheet of every official-month the input names, so the input is the complete sheet.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from sqlalchemy import Connection, delete, insert, select, tuple_

from server.db.models import AUDIT, OFFICIALS, TASK_RESULTS, TaskResultKind
from server.db.types import utcnow
from server.evaluation.errors import EvaluationError
from server.evaluation.periods import PERIOD
from server.evaluation.units import all_units, month_rows
from server.scoring import Policy

COLUMNS = ("period", "official", "kind", "key", "label", "points", "completed", "quality_failures", "delays",
           "objective_cause", "reference")
REQUIRED = ("period", "official", "key")
TRUE, FALSE = {"1", "yes", "y", "true", "x", "có", "co"}, {"0", "no", "n", "false", "không", "khong"}
MAX_ROWS = 200_000  # one import; a province's month of task items is well under this
MAX_POINTS = Decimal(1000)
Mode = Literal["upsert", "replace"]


@dataclass(frozen=True, slots=True)
class ImportReport:
    rows: int
    officials: int
    periods: list[str]
    mode: str
    closed_months: list[str]  # "UNIT/PERIOD" already closed or final: these rows count only after re-close/amend
    sha256: str


class _Row:
    """Problems of one input row, collected while its fields are read."""

    def __init__(self, number: int, raw: Mapping[str, Any], problems: list[dict[str, Any]]) -> None:
        self.number, self.raw, self.problems = number, raw, problems

    def text(self, column: str) -> str:
        value = self.raw.get(column)
        return "" if value is None else str(value).strip()

    def fail(self, column: str, problem: str) -> None:
        self.problems.append({"row": self.number, "column": column, "value": self.text(column)[:80],
                              "problem": problem})

    def decimal(self, column: str, *, required: bool) -> Decimal | None:
        text = self.text(column)
        if text.count(",") == 1 and "." not in text:  # "2,5": a decimal comma, as Vietnamese Excel writes it
            text = text.replace(",", ".")
        if not text:
            if required:
                self.fail(column, "missing: write the points, e.g. 4 or 2.5")
            return None
        try:
            value = Decimal(text)
        except InvalidOperation:
            self.fail(column, "not a number: write points like 4 or 2.5")
            return None
        if not value.is_finite() or not 0 <= value <= MAX_POINTS or value != value.quantize(Decimal("0.0001")):
            self.fail(column, f"must be between 0 and {MAX_POINTS}, with at most 4 decimals")
            return None
        return value

    def count(self, column: str) -> int:
        text = self.text(column)
        if not text:
            return 0
        if not (text.isascii() and text.isdigit()) or int(text) > 1000:
            self.fail(column, "write a whole number from 0 to 1000 (0 when there were none)")
            return 0
        return int(text)

    def flag(self, column: str, default: bool) -> bool:
        text = self.text(column).lower()
        if not text:
            return default
        if text in TRUE | FALSE:
            return text in TRUE
        self.fail(column, "write yes or no (also accepted: 1/0, true/false, có/không)")
        return default


def parse_csv(data: bytes) -> list[dict[str, str]]:
    """Rows of a CSV file (UTF-8, with or without BOM; comma, semicolon or tab separated)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise EvaluationError("invalid", f"the file is not UTF-8 (byte {exc.start}): save it as 'CSV UTF-8' "
                                         "and import it again") from None
    first = text.split("\n", 1)[0]
    delimiter = max(",;\t", key=first.count)
    reader = csv.DictReader(io.StringIO(text), delimiter=delimiter)
    header = [h.strip().lower() for h in reader.fieldnames or []]
    unknown = [h for h in header if h not in COLUMNS]
    missing = [c for c in REQUIRED if c not in header]
    if unknown or missing:
        raise EvaluationError("invalid", f"header: {_header_problem(unknown, missing)}; the columns are "
                                         f"{', '.join(COLUMNS)} (docs/scoring.md §17)")
    reader.fieldnames = header
    rows = []
    for raw in reader:
        if None in raw:
            raise EvaluationError("invalid", f"row {reader.line_num}: more values than columns; quote values "
                                             "that contain the separator")
        rows.append({k: (v or "") for k, v in raw.items()})
    return rows


def _header_problem(unknown: list[str], missing: list[str]) -> str:
    parts = []
    if unknown:
        parts.append(f"unknown column(s) {', '.join(unknown)}")
    if missing:
        parts.append(f"missing column(s) {', '.join(missing)}")
    return " and ".join(parts)


def import_rows(conn: Connection, *, rows: Sequence[Mapping[str, Any]], policy: Policy, actor: str, source: str,
                mode: Mode = "upsert", units: frozenset[int] | None = None, first_row: int = 2,
                digest: str | None = None) -> ImportReport:
    """Validate every row, then write them all (in the caller's transaction) or raise with every problem.

    `units` limits the officials a caller may write for; `first_row` is the number of the first data
    row in the file (2 for a CSV with a header), so problems point at the line a person sees.
    """
    if len(rows) > MAX_ROWS:
        raise EvaluationError("invalid", f"{len(rows):,} rows: split the import into files of at most {MAX_ROWS:,}")
    if not rows:
        raise EvaluationError("invalid", "no rows to import")
    officials = _officials(conn, {str(r.get("official") or "").strip() for r in rows}, units)
    problems: list[dict[str, Any]] = []
    values = [_validate(_Row(first_row + i, r, problems), policy, officials) for i, r in enumerate(rows)]
    _duplicates(values, rows, first_row, problems)
    if problems:
        raise EvaluationError("invalid", f"{len(problems)} problem(s) in the input, nothing was imported; "
                                         f"first: row {problems[0]['row']}, {problems[0]['column']}: "
                                         f"{problems[0]['problem']}", problems)
    good = [v for v in values if v is not None]
    return _write(conn, good, mode=mode, actor=actor, source=source, officials=officials,
                  digest=digest or hashlib.sha256(repr(rows).encode()).hexdigest())


def _officials(conn: Connection, codes: set[str], units: frozenset[int] | None) -> dict[str, tuple[int, int]]:
    """Official code -> (id, unit id) for the codes the caller may write for."""
    q = select(OFFICIALS.c.code, OFFICIALS.c.id, OFFICIALS.c.unit_id).where(OFFICIALS.c.code.in_(sorted(codes)))
    return {r.code: (r.id, r.unit_id) for r in conn.execute(q) if units is None or r.unit_id in units}


def _validate(row: _Row, policy: Policy, officials: Mapping[str, tuple[int, int]]) -> dict[str, Any] | None:
    """The row as task_results values, or None after recording its problems."""
    before = len(row.problems)
    for column in REQUIRED:
        if not row.text(column):
            row.fail(column, f"missing: every row needs {', '.join(REQUIRED)}")
    if row.text("period") and not PERIOD.match(row.text("period")):
        row.fail("period", "write the month as YYYY-MM, e.g. 2026-03")
    code = row.text("official")
    if code and code not in officials:
        row.fail("official", "unknown official, or not in your units: use the employee code from `motcua admin list`")
    kind_text = row.text("kind").lower() or "task"
    if kind_text not in {k.value for k in TaskResultKind}:
        row.fail("kind", f"write one of {', '.join(k.value for k in TaskResultKind)}")
        return None
    kind = TaskResultKind(kind_text)
    if len(row.text("key")) > 64 or len(row.text("label")) > 300 or len(row.text("reference")) > 200:
        row.fail("key", "too long: key at most 64 characters, label 300, reference 200")
    values = _kind_values(row, kind, policy)
    if len(row.problems) > before:
        return None
    official_id, _unit = officials[code]
    return {"official_id": official_id, "period": row.text("period"), "kind": kind, "key": row.text("key"),
            "label": row.text("label"), "reference": row.text("reference") or None, **values}


def _kind_values(row: _Row, kind: TaskResultKind, policy: Policy) -> dict[str, Any]:
    """The fields each kind takes, checked against the policy where it names the allowed keys."""
    spec = policy.spec
    if kind is TaskResultKind.GENERAL:
        criteria = {c.id: c for c in spec.general.criteria if c.source == "entered"}
        c = criteria.get(row.text("key"))
        points = row.decimal("points", required=True)
        if c is None:
            row.fail("key", f"not a criterion the unit head enters; the policy's are {', '.join(criteria)}")
        elif points is not None and points > c.max:
            row.fail("points", f"above the criterion's maximum of {c.max}")
        return {"points": points}
    if kind is TaskResultKind.DISCIPLINE:
        if row.text("key") not in spec.discipline.measures:
            row.fail("key", f"not a discipline measure of the policy: {', '.join(spec.discipline.measures)}")
        if row.text("points"):
            row.fail("points", "leave empty for a discipline measure")
        return {"points": None}
    points = row.decimal("points", required=True)
    if kind is not TaskResultKind.TASK and points is not None and points == 0:
        row.fail("points", f"a {kind.value} item needs points above 0")
    if kind is not TaskResultKind.TASK:
        return {"points": points}
    return {"points": points, "completed": row.flag("completed", True), "quality_failures": row.count(
        "quality_failures"), "delays": row.count("delays"), "objective_cause": row.flag("objective_cause", False)}


def _duplicates(values: list[dict[str, Any] | None], rows: Sequence[Mapping[str, Any]], first_row: int,
                problems: list[dict[str, Any]]) -> None:
    seen: dict[tuple[Any, ...], int] = {}
    for i, v in enumerate(values):
        if v is None:
            continue
        key = (v["official_id"], v["period"], v["kind"], v["key"])
        if key in seen:
            problems.append({"row": first_row + i, "column": "key", "value": str(v["key"])[:80],
                             "problem": f"same official, period, kind and key as row {seen[key]}: merge the two"})
        seen.setdefault(key, first_row + i)


def _write(conn: Connection, values: list[dict[str, Any]], *, mode: Mode, actor: str, source: str,
           officials: Mapping[str, tuple[int, int]], digest: str) -> ImportReport:
    sheets = sorted({(v["official_id"], v["period"]) for v in values})
    keys = [(v["official_id"], v["period"], v["kind"].value, v["key"]) for v in values]
    target = tuple_(TASK_RESULTS.c.official_id, TASK_RESULTS.c.period)
    for chunk in _chunks(sheets if mode == "replace" else keys, 500):
        if mode == "replace":
            conn.execute(delete(TASK_RESULTS).where(target.in_(chunk)))
        else:
            conn.execute(delete(TASK_RESULTS).where(tuple_(TASK_RESULTS.c.official_id, TASK_RESULTS.c.period,
                                                           TASK_RESULTS.c.kind, TASK_RESULTS.c.key).in_(chunk)))
    now = utcnow()
    defaults = {"completed": True, "quality_failures": 0, "delays": 0, "objective_cause": False}
    conn.execute(insert(TASK_RESULTS), [{**defaults, **v, "source": source, "updated_at": now, "updated_by": actor}
                                        for v in values])
    codes = {oid: code for code, (oid, _u) in officials.items()}
    per_sheet = Counter((v["official_id"], v["period"]) for v in values)
    conn.execute(insert(AUDIT), [
        {"at": now, "actor": actor, "action": "tasks.write", "target_type": "official_month",
         "target_id": f"{codes[oid]}/{period}",
         "detail": {"mode": mode, "source": source, "import": digest, "rows": per_sheet[(oid, period)]}}
        for oid, period in sheets])  # server.audit.record's row, in one statement for a province's import
    return ImportReport(len(values), len({o for o, _p in sheets}), sorted({p for _o, p in sheets}), mode,
                        _closed(conn, sheets, officials), digest)


def _chunks(items: Sequence[Any], size: int) -> Iterable[list[Any]]:
    for i in range(0, len(items), size):
        yield list(items[i:i + size])


def _closed(conn: Connection, sheets: list[tuple[int, str]], officials: Mapping[str, tuple[int, int]]) -> list[str]:
    """Unit months among those written that are already closed or final."""
    unit_of = {oid: unit for oid, unit in officials.values()}
    found = []
    for period in sorted({p for _o, p in sheets}):
        units = {unit_of[o] for o, p in sheets if p == period}
        closed = month_rows(conn, period=period, unit_ids=sorted(units))
        found += [f"{code}/{period}" for uid, code in all_units(conn, frozenset(closed)).items()]
    return found


def sheet(conn: Connection, *, official_id: int, period: str) -> dict[str, Any]:
    """An official-month's task results as the unit head's sheet (the shape PUT takes back)."""
    rows = conn.execute(select(TASK_RESULTS).where(TASK_RESULTS.c.official_id == official_id,
                                                   TASK_RESULTS.c.period == period).order_by(TASK_RESULTS.c.kind,
                                                                                             TASK_RESULTS.c.key))
    out: dict[str, Any] = {"tasks": [], "bonuses": [], "penalties": [], "general": {}, "discipline": []}
    for r in rows:
        kind = TaskResultKind(r.kind)
        base = {"key": r.key, "label": r.label, "source": r.source, "updated_by": r.updated_by,
                "updated_at": r.updated_at.isoformat()}
        if kind is TaskResultKind.TASK:
            out["tasks"].append({**base, "points": str(r.points), "completed": r.completed,
                                 "quality_failures": r.quality_failures, "delays": r.delays,
                                 "objective_cause": r.objective_cause})
        elif kind is TaskResultKind.GENERAL:
            out["general"][r.key] = str(r.points)
        elif kind is TaskResultKind.DISCIPLINE:
            out["discipline"].append({**base, "reference": r.reference})
        else:
            out["bonuses" if kind is TaskResultKind.BONUS else "penalties"].append({**base, "points": str(r.points)})
    return out


def sheet_rows(*, official: str, period: str, body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The unit head's sheet (tasks, bonuses, penalties, general, discipline) as import rows."""
    rows: list[dict[str, Any]] = []
    base = {"period": period, "official": official}
    for item in body.get("tasks", []):
        rows.append({**base, "kind": "task", **{k: _cell(v) for k, v in item.items()}})
    for name, kind in (("bonuses", "bonus"), ("penalties", "penalty"), ("discipline", "discipline")):
        rows += [{**base, "kind": kind, **{k: _cell(v) for k, v in item.items()}} for item in body.get(name, [])]
    for criterion, points in body.get("general", {}).items():
        rows.append({**base, "kind": "general", "key": criterion, "points": _cell(points)})
    return rows


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return "" if value is None else str(value)


def clear_sheet(conn: Connection, *, official_id: int, official: str, period: str, actor: str) -> int:
    """Remove every task result of an official-month (an empty sheet from the unit head)."""
    from server.audit import record

    done = conn.execute(delete(TASK_RESULTS).where(TASK_RESULTS.c.official_id == official_id,
                                                   TASK_RESULTS.c.period == period)).rowcount
    record(conn, actor=actor, action="tasks.write", target_type="official_month", target_id=f"{official}/{period}",
           detail={"mode": "replace", "source": "unit_head", "rows": 0, "removed": done})
    return int(done)
