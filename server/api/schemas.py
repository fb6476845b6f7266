"""Request and response bodies of the JSON API (they also document it in the OpenAPI schema)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

_IN = ConfigDict(extra="forbid")


class SignInRequest(BaseModel):
    model_config = _IN
    official: str = Field(description="The official's code (employee number)", examples=["PX-CB001"])
    at: AwareDatetime | None = Field(None, description="When it happened (ISO 8601 with offset); default now")


class SignOutRequest(BaseModel):
    model_config = _IN
    at: AwareDatetime | None = Field(None, description="When it happened; default now")


class SessionOut(BaseModel):
    id: int
    counter: str
    official: str
    started_at: datetime
    ended_at: datetime | None


class SessionChange(BaseModel):
    model_config = _IN
    counter: str = Field(description="The counter's code", examples=["PX-Q1"])
    action: Literal["sign_in", "sign_out"]
    official: str | None = Field(None, description="The official's code (sign_in only)", examples=["PX-CB001"])
    at: AwareDatetime | None = Field(None, description="When it happened (ISO 8601 with offset); default now")


class SessionBatchRequest(BaseModel):
    model_config = _IN
    changes: list[SessionChange] = Field(min_length=1, max_length=500,
                                         description="Applied in this order, each on its own: one that fails "
                                                     "does not undo the others")


class ChangeError(BaseModel):
    code: str
    message: str


class SessionChangeResult(BaseModel):
    status: int = Field(description="What the single call would have answered: 201, 200, 403, 404, 409, 422")
    session: SessionOut | None = None
    error: ChangeError | None = None


class SessionBatchOut(BaseModel):
    results: list[SessionChangeResult] = Field(description="One per change, in the order sent")


class AttributeRequest(BaseModel):
    model_config = _IN
    official: str = Field(description="Code of the official the event belongs to")
    reason: str = Field(min_length=5, max_length=500, description="Why: kept in the audit log")
    event_time: AwareDatetime | None = Field(None, description="Required when the device could not tell the time")


class ProvisionRequest(BaseModel):
    model_config = _IN
    counter: str = Field(description="Counter code")
    kind: str = Field("button", pattern="^(button|kiosk|simulated)$")
    id: str | None = Field(None, description="Device id; generated when absent")


class ProvisionOut(BaseModel):
    id: str
    counter: str
    kind: str
    secret_hex: str = Field(description="The device key: shown only in this response")


class RevokeRequest(BaseModel):
    model_config = _IN
    reason: str = Field(min_length=3, max_length=500)


class ScaleSummary(BaseModel):
    levels: int
    by_level: list[int] = Field(description="Counted ratings per level, worst first")
    counted: int
    mean: float | None
    excluded_misuse: int
    excluded_txn_duplicate: int


class RatingOut(BaseModel):
    id: int
    event_time: datetime
    rating: int
    levels: int
    counter: str
    device_id: str
    epoch: int
    seq: int
    time_source: str
    counts: bool = Field(description="False when excluded as misuse or a second rating of one ticket")
    body: dict[str, Any]


class OfficialRatings(BaseModel):
    official: dict[str, Any]
    period: str
    summary: list[ScaleSummary]
    items: list[RatingOut]
    next_cursor: str | None


class QuarantineOut(BaseModel):
    id: int
    reason: str
    detail: str
    topic: str
    device_id: str | None
    epoch: int | None
    seq: int | None
    payload_size: int
    payload_sha256: str
    event_id: int | None
    count: int
    first_received_at: datetime
    last_received_at: datetime
    resolved_at: datetime | None
    resolved_by: str | None
    resolution: str | None


class QuarantinePage(BaseModel):
    items: list[QuarantineOut]
    next_cursor: str | None
    open_by_reason: dict[str, int]
