"""Bodies of the HR, task-result and month APIs (they document the OpenAPI schema, with examples).

Points are decimal strings ("94.27"), never floats: they are exact, and the digest of a final score
is computed over exactly these digits.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

_IN = ConfigDict(extra="forbid", coerce_numbers_to_str=True)  # points may come as 4 or "4"
Decimal = str  # on the wire: a decimal string

POLICY_EXAMPLE: dict[str, Any] = {"id": "nd335", "version": "2026.1", "sha256": "3f9c…"}
ROW_EXAMPLE: dict[str, Any] = {
    "official": "CB-0042", "name": "Nguyễn Thị Lan", "unit": "P-MK", "duty_group": "tu_phap_ho_tich",
    "period": "2026-03", "status": "final", "version": 1, "total": "94.27", "grade": "HTT",
    "grade_before_caps": "HTXS",
    "components": {"general": "25.73", "tasks": "68.54", "adjustments": "0.00", "limits": "0.00"},
    "criteria": {"pham_chat": "9.00", "trach_nhiem": "5.00", "thai_do_phuc_vu": "3.73", "doi_moi": "8.00"},
    "satisfaction": {"ratings": 20, "score": "0.845833"}, "notes": [], "policy": POLICY_EXAMPLE,
    "digest": "9d4e…", "scored_at": "2026-04-20T03:00:00+00:00"}


class PolicyOut(BaseModel):
    id: str
    version: str
    sha256: str = Field(description="SHA-256 of the policy file's bytes")


class SatisfactionOut(BaseModel):
    ratings: int = Field(description="Valid ratings counted (misuse, repeats and annulled ones excluded)")
    score: Decimal = Field(description="The satisfaction score S in 0..1 after shrinkage and difficulty adjustment")


class ScoreRow(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [ROW_EXAMPLE]})
    official: str = Field(description="The official's code (employee number in the HR system)")
    name: str
    unit: str
    duty_group: str | None
    period: str = Field(description="YYYY-MM")
    status: Literal["provisional", "closed", "final", "amended"] = Field(
        description="provisional: computed live, will change; closed: frozen, awaiting finalisation; final: "
                    "immutable; amended: a final score corrected after the fact (version > 1)")
    version: int | None = Field(description="Version of the snapshot (1 at close, +1 per amendment); null: live")
    total: Decimal
    grade: str
    grade_before_caps: str = Field(description="The grade the points earn, before quota caps demoted it")
    components: dict[str, Decimal] = Field(description="general, tasks, adjustments, limits: they sum to total")
    criteria: dict[str, Decimal] = Field(description="General criteria: they sum to components.general")
    satisfaction: SatisfactionOut | None
    notes: list[str] = Field(description="What was missing or uncertain: few_ratings, missing_criterion:<id>, …")
    policy: PolicyOut
    digest: str | None = Field(description="SHA-256 of the canonical result JSON (null for live scores)")
    scored_at: str = Field(description="When this version was computed (ISO 8601)")


class ScorePage(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"items": [ROW_EXAMPLE], "next_cursor": None}]})
    items: list[ScoreRow]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page")


class Line(BaseModel):
    part: str
    rule: str = Field(description="The policy key applied, e.g. tasks.delay_deduction, caps[0], or input")
    subject: str = Field(description="The input behind it: task:T2, incident:412, ratings:ho_tich, …")
    text: str
    points: Decimal


class VersionOut(BaseModel):
    version: int
    total: Decimal
    grade: str
    digest: str
    reason: str | None = Field(description="Why this amendment was made (null for version 1)")
    created_at: str
    created_by: str
    current: bool


class ScoreDetail(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "official": "CB-0042", "name": "Nguyễn Thị Lan", "unit": "P-MK", "duty_group": "tu_phap_ho_tich",
        "period": "2026-03", "status": "final", "version": 1, "digest": "9d4e…", "policy": POLICY_EXAMPLE,
        "scored_at": "2026-04-20T03:00:00+00:00", "result": {"total": "94.27", "grade": "HTT", "lines": [
            {"part": "tasks", "rule": "tasks.delay_deduction", "subject": "task:T2",
             "text": "1 delay(s) × 25% of the item's progress points (0.3333 of it)", "points": "-1.46"}]},
        "versions": [{"version": 1, "total": "94.27", "grade": "HTT", "digest": "9d4e…", "reason": None,
                      "created_at": "2026-04-20T03:00:00+00:00", "created_by": "cli", "current": True}]}]})
    official: str
    name: str
    unit: str
    duty_group: str | None
    period: str
    status: Literal["provisional", "closed", "final", "amended"]
    version: int | None
    digest: str | None
    policy: PolicyOut | None
    scored_at: str | None
    result: dict[str, Any] | None = Field(
        description="The whole ScoreResult (docs/scoring.md §3): total, grade, components, criteria, "
                    "satisfaction, provisional_reasons and every explanation line; null if not scored")
    versions: list[VersionOut]


class MonthUnit(BaseModel):
    unit: str
    period: str
    phase: Literal["open", "provisional", "closed", "final"]
    review_deadline: str = Field(description="The month may be closed from then on")
    officials: int | None
    closed_at: str | None
    closed_by: str | None
    finalized_at: str | None
    finalized_by: str | None
    unresolved_reviews: int | None = Field(description="Reviews still undecided when the month closed")
    forced_reason: str | None = Field(description="Why it was closed before the review deadline, if it was")


class YearRow(BaseModel):
    official: str
    name: str
    unit: str
    duty_group: str | None
    year: str
    months: int = Field(description="Final months counted")
    monthly_totals: dict[str, Decimal]
    total: Decimal = Field(description="Mean of the final monthly totals, rounded down (NĐ 335)")
    grade: str
    grade_before_caps: str
    policy: PolicyOut
    lines: list[Line]


class YearPage(BaseModel):
    items: list[YearRow]
    next_cursor: str | None


# --- writes ------------------------------------------------------------------------------------


class TaskRowIn(BaseModel):
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True, json_schema_extra={"examples": [
        {"period": "2026-03", "official": "CB-0042", "kind": "task", "key": "T2", "label": "Hồ sơ hộ tịch",
         "points": "2", "completed": True, "delays": 1}]})
    period: str
    official: str
    kind: Literal["task", "bonus", "penalty", "general", "discipline"] = "task"
    key: str = Field(description="Task or item id; criterion id (general); measure id (discipline)")
    label: str = ""
    points: Decimal | None = Field(None, description="Converted points; none for a discipline measure")
    completed: bool | None = None
    quality_failures: int | None = None
    delays: int | None = None
    objective_cause: bool | None = None
    reference: str | None = Field(None, description="E.g. the number of the decision taking a measure")


class TaskImport(BaseModel):
    model_config = _IN
    mode: Literal["upsert", "replace"] = Field(
        "upsert", description="upsert: rows replace those with the same key; replace: each official-month named "
                              "is cleared first, so the rows are its complete sheet")
    rows: list[TaskRowIn] = Field(min_length=1, max_length=200_000)


class ImportOut(BaseModel):
    rows: int
    officials: int
    periods: list[str]
    mode: str
    closed_months: list[str] = Field(description="UNIT/PERIOD already closed or final: the rows count there only "
                                                 "after the month is closed again (closed) or amended (final)")
    sha256: str


class TaskItemOut(BaseModel):
    key: str
    label: str
    points: Decimal
    completed: bool
    quality_failures: int
    delays: int
    objective_cause: bool
    source: str
    updated_by: str
    updated_at: str


class AdjustmentOut(BaseModel):
    key: str
    label: str
    points: Decimal
    source: str
    updated_by: str
    updated_at: str


class MeasureOut(BaseModel):
    key: str
    label: str
    reference: str | None
    source: str
    updated_by: str
    updated_at: str


class Sheet(BaseModel):
    official: str
    period: str
    tasks: list[TaskItemOut]
    bonuses: list[AdjustmentOut]
    penalties: list[AdjustmentOut]
    general: dict[str, Decimal]
    discipline: list[MeasureOut]


class SheetTask(BaseModel):
    model_config = _IN
    key: str
    label: str = ""
    points: Decimal
    completed: bool = True
    quality_failures: int = 0
    delays: int = 0
    objective_cause: bool = False


class SheetItem(BaseModel):
    model_config = _IN
    key: str
    label: str = ""
    points: Decimal


class SheetMeasure(BaseModel):
    model_config = _IN
    key: str
    label: str = ""
    reference: str | None = None


class SheetIn(BaseModel):
    """The unit head's whole sheet for one official-month: it replaces what was there."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True, json_schema_extra={"examples": [
        {"tasks": [{"key": "T1", "label": "Hồ sơ", "points": "4"}], "general": {"pham_chat": "9"}}]})
    tasks: list[SheetTask] = []
    bonuses: list[SheetItem] = []
    penalties: list[SheetItem] = []
    general: dict[str, Decimal] = {}
    discipline: list[SheetMeasure] = []


class CloseIn(BaseModel):
    model_config = _IN
    units: list[str] | None = Field(None, description="Unit codes; default every unit")
    force_reason: str | None = Field(None, description="Close before the review deadline, saying why (audited)")


class CloseOut(BaseModel):
    period: str
    closed: list[str]
    reclosed: list[str]
    already_final: list[str]
    blocked: dict[str, list[int]] = Field(description="Units held back by undecided reviews (pending_at_close = "
                                                      "block), with the review ids")
    failed: list[dict[str, Any]]
    officials: int
    unresolved_reviews: int
    seconds: dict[str, float]


class FinalizeIn(BaseModel):
    model_config = _IN
    units: list[str] | None = None


class FinalizeOut(BaseModel):
    period: str
    finalized: list[str]


class AmendIn(BaseModel):
    model_config = _IN
    unit: str
    reason: str = Field(min_length=10, max_length=2000, description="Why the final month is corrected (audited)")
    officials: list[str] | None = Field(None, description="Only these officials; refused if others change too")


class AmendedOut(BaseModel):
    official: str
    version: int
    previous: dict[str, Any]
    current: dict[str, Any]
