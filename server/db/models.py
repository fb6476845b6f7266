"""The relational model (SQLAlchemy 2). Migrations: server/db/migrations (Alembic).

Who is who: units hold counters and officials; a device sits at a counter; an official serves at a
counter during a session; an event is a signed press or incident from a device, attributed to the
session open on its counter at its event time.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, ClassVar, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Enum,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from server.db.types import BigIntPK, ExactDecimal, UTCDateTime, utcnow

# Stable constraint names, so Alembic migrations are the same on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime(), dict[str, Any]: JSON()}


def _enum(cls: type[StrEnum], name: str) -> Enum:
    return Enum(cls, name=name, native_enum=False, length=24, values_callable=lambda e: [m.value for m in e])


class DeviceKind(StrEnum):
    BUTTON = "button"  # ESP32 button box (device/micropython)
    KIOSK = "kiosk"  # Raspberry Pi touchscreen with camera (device/)
    SIMULATED = "simulated"  # simulator/ and the demo


class DeviceStatus(StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"


class EventStatus(StrEnum):
    ACCEPTED = "accepted"  # timed and attributed to an official
    QUARANTINED = "quarantined"  # stored, but waiting: see the open quarantine record for why


class TimeSource(StrEnum):
    ANCHOR = "anchor"  # server clock: heartbeat anchor + uptime (docs/protocol.md §4 rule 1)
    DEVICE = "device"  # the device's synced clock (rule 2)
    RECEIVE = "receive"  # placeholder: time unknown or implausible, event quarantined
    MANUAL = "manual"  # set by a supervisor when resolving a quarantine record


class Unit(Base):
    """An office with a one-stop section (ward, district, department)."""

    __tablename__ = "units"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Counter(Base):
    """A service desk ("quầy") in a unit's one-stop section."""

    __tablename__ = "counters"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    service_type: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Bumped when who serves here changes; a device's config revision is its own config_rev plus this.
    # On the counter row, which a sign-in holds locked anyway: bumping the devices' rows instead made
    # every sign-in wait for the ingest batch that held those rows (heartbeats), a lock convoy.
    config_rev: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class Official(Base):
    """A civil servant who serves citizens at counters and is evaluated monthly."""

    __tablename__ = "officials"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)  # employee number in the HR system
    full_name: Mapped[str] = mapped_column(String(200))
    post: Mapped[str] = mapped_column(String(200), default="")
    photo_url: Mapped[str | None] = mapped_column(String(500))
    duty_group: Mapped[str | None] = mapped_column(String(64))  # similar-duty group (scoring caps, priors)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Device(Base):
    """A provisioned terminal with its own HMAC key (docs/protocol.md §3.3)."""

    __tablename__ = "devices"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    counter_id: Mapped[int] = mapped_column(ForeignKey("counters.id"), index=True)
    kind: Mapped[DeviceKind] = mapped_column(_enum(DeviceKind, "device_kind"))
    secret_hex: Mapped[str] = mapped_column(String(64))
    status: Mapped[DeviceStatus] = mapped_column(_enum(DeviceStatus, "device_status"), default=DeviceStatus.ACTIVE)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]
    revoked_reason: Mapped[str | None] = mapped_column(String(500))
    # Retained config: bumped on every change that a device should show; the publisher catches up.
    config_rev: Mapped[int] = mapped_column(Integer, default=1)
    config_published_rev: Mapped[int] = mapped_column(Integer, default=0)
    online: Mapped[bool] = mapped_column(Boolean, default=False)
    last_seen_at: Mapped[datetime | None]
    health: Mapped[dict[str, Any] | None]
    duplicates: Mapped[int] = mapped_column(BigInteger, default=0)
    last_hb_epoch: Mapped[int | None] = mapped_column(Integer)
    last_hb_up: Mapped[int | None] = mapped_column(BigInteger)
    # Highest boot epoch the device has shown, and the floor it must not go below: set above it when
    # the device turns out to have been reset (protocol §4), and sent in its config as `ep_min`.
    max_epoch: Mapped[int | None] = mapped_column(Integer)
    epoch_floor: Mapped[int | None] = mapped_column(Integer)


class DeviceBoot(Base):
    """Per (device, epoch): when it booted on the server's clock, from live heartbeats (protocol §4)."""

    __tablename__ = "device_boots"
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), primary_key=True)
    epoch: Mapped[int] = mapped_column(Integer, primary_key=True)
    anchor_ms: Mapped[int] = mapped_column(BigInteger)  # estimated boot instant, Unix ms, server clock
    anchor_up: Mapped[int] = mapped_column(BigInteger)  # uptime of the heartbeat that set the anchor
    first_seen_at: Mapped[datetime] = mapped_column(default=utcnow)


class CounterSession(Base):
    """An official serving at a counter from `started_at` until `ended_at` (open while NULL)."""

    __tablename__ = "counter_sessions"
    __table_args__ = (
        # One open session per counter and per official: both backends support partial unique indexes.
        Index("uq_open_session_counter", "counter_id", unique=True,
              sqlite_where=text("ended_at IS NULL"), postgresql_where=text("ended_at IS NULL")),
        Index("uq_open_session_official", "official_id", unique=True,
              sqlite_where=text("ended_at IS NULL"), postgresql_where=text("ended_at IS NULL")),
        Index("ix_counter_sessions_counter_time", "counter_id", "started_at"),
        CheckConstraint("ended_at IS NULL OR ended_at > started_at", name="ends_after_start"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    counter_id: Mapped[int] = mapped_column(ForeignKey("counters.id"))
    official_id: Mapped[int] = mapped_column(ForeignKey("officials.id"), index=True)
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    opened_by: Mapped[str] = mapped_column(String(100))
    closed_by: Mapped[str | None] = mapped_column(String(100))


class Event(Base):
    """A verified event, stored exactly once per (device, epoch, seq), with its original signed bytes."""

    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("device_id", "epoch", "seq"),
        Index("ix_events_official_time", "official_id", "event_time"),
        Index("ix_events_counter_time", "counter_id", "event_time"),
        Index("ix_events_device_epoch_up", "device_id", "epoch", "uptime_ms"),
        Index("ix_events_txn_key", "txn_key"),
    )
    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"))
    epoch: Mapped[int] = mapped_column(Integer)
    seq: Mapped[int] = mapped_column(BigInteger)
    typ: Mapped[str] = mapped_column(String(16))
    status: Mapped[EventStatus] = mapped_column(_enum(EventStatus, "event_status"))
    received_at: Mapped[datetime]
    event_time: Mapped[datetime]
    time_source: Mapped[TimeSource] = mapped_column(_enum(TimeSource, "time_source"))
    device_ts: Mapped[int | None] = mapped_column(BigInteger)
    uptime_ms: Mapped[int] = mapped_column(BigInteger)
    counter_id: Mapped[int] = mapped_column(ForeignKey("counters.id"))
    official_id: Mapped[int | None] = mapped_column(ForeignKey("officials.id"))
    session_id: Mapped[int | None] = mapped_column(ForeignKey("counter_sessions.id"))
    rating: Mapped[int | None] = mapped_column(SmallInteger)
    levels: Mapped[int | None] = mapped_column(SmallInteger)
    txn_key: Mapped[str | None] = mapped_column(String(80))  # counter:local-day:ticket, one counted rating each
    misuse: Mapped[bool] = mapped_column(Boolean, default=False)
    txn_duplicate: Mapped[bool] = mapped_column(Boolean, default=False)
    attributed_by: Mapped[str | None] = mapped_column(String(100))  # a person's decision: never re-settled
    body: Mapped[dict[str, Any]]
    payload: Mapped[bytes] = mapped_column(LargeBinary)  # the signed bytes as received: re-verifiable evidence


class Quarantine(Base):
    """Something that could not be accepted as it stands, with why. Never deleted by ingest."""

    __tablename__ = "quarantine"
    __table_args__ = (
        UniqueConstraint("payload_sha256", "reason"),  # a re-send bumps `count` instead of a new row
        Index("ix_quarantine_open", "reason", "resolved_at"),
    )
    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    reason: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(String(500))
    topic: Mapped[str] = mapped_column(String(255))
    device_id: Mapped[str | None] = mapped_column(String(64), index=True)  # as claimed: may be unknown
    epoch: Mapped[int | None] = mapped_column(BigInteger)
    seq: Mapped[int | None] = mapped_column(BigInteger)
    payload: Mapped[bytes] = mapped_column(LargeBinary)  # truncated to the size limit when oversized
    payload_size: Mapped[int] = mapped_column(Integer)
    payload_sha256: Mapped[str] = mapped_column(String(64))
    event_id: Mapped[int | None] = mapped_column(ForeignKey("events.id"), index=True)
    count: Mapped[int] = mapped_column(Integer, default=1)
    first_received_at: Mapped[datetime]
    last_received_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]
    resolved_by: Mapped[str | None] = mapped_column(String(100))
    resolution: Mapped[str | None] = mapped_column(String(500))


class AuditEntry(Base):
    """Who did what to which record, and why. Written in the same transaction as the change.

    Append-only and hash-chained (server/audit.py): at commit each new entry gets the next `chain_seq`,
    the `hash` of the entry before it and its own hash over a canonical encoding, so any change,
    deletion or insertion afterwards breaks the chain at that entry (`motcua audit verify`).
    """

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[str] = mapped_column(String(64))
    detail: Mapped[dict[str, Any] | None]
    chain_seq: Mapped[int | None] = mapped_column(BigInteger, unique=True)  # set at commit, never NULL after
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    hash: Mapped[str | None] = mapped_column(String(64))
    __table_args__ = (Index("ix_audit_target", "target_type", "target_id"), Index("ix_audit_actor", "actor", "at"))


class AuditChain(Base):
    """The head of the audit chain (one row): appends lock it, so entries are chained one at a time."""

    __tablename__ = "audit_chain"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)  # always 1
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiToken(Base):
    """A bearer token for a machine client (queue system, HR system); only its SHA-256 is stored."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[str] = mapped_column(Text)  # space-separated, as in OAuth2
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]


class User(Base):
    """A person who signs in to the web console; passwords are Argon2id hashes."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(32))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    official_id: Mapped[int | None] = mapped_column(ForeignKey("officials.id"))  # role "official": whose record


class UserUnit(Base):
    """A unit a scoped user (supervisor, unit head) may see; a scoped user with no rows sees nothing."""

    __tablename__ = "user_units"
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), primary_key=True)


class TokenUnit(Base):
    """A unit a machine client's token is limited to (an HR system per unit); no rows = every unit."""

    __tablename__ = "token_units"
    token_id: Mapped[int] = mapped_column(ForeignKey("api_tokens.id"), primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), primary_key=True)


class ReviewStatus(StrEnum):
    PENDING = "pending"  # flagged, no verdict yet: no deduction, the month's score is provisional
    CONFIRMED = "confirmed"  # counts against the official per the scoring policy
    DISMISSED = "dismissed"  # unfounded: never deducts; the linked rating may be annulled
    CONTESTED = "contested"  # the official contests a confirmed verdict; a second reviewer decides


class Review(Base):
    """A flagged event (an incident, or a lowest rating with a clip) and the supervisors' verdict on it.

    The scoring reads this table: confirmed → an incident deducting per policy with `severity`;
    pending/contested → the month stays provisional; dismissed → no deduction, and the rating named by
    `annulled_event_id` is left out of the satisfaction component.
    """

    __tablename__ = "reviews"
    __table_args__ = (Index("ix_reviews_queue", "status", "flagged_at"),
                      Index("ix_reviews_official", "official_id", "event_time"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id"), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # protocol §3.2: complaint, manual, remote, lowest_rating
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    counter_id: Mapped[int] = mapped_column(ForeignKey("counters.id"))
    official_id: Mapped[int | None] = mapped_column(ForeignKey("officials.id"))  # follows the event's attribution
    event_time: Mapped[datetime]  # the event's time: which month the verdict counts in
    flagged_at: Mapped[datetime] = mapped_column(default=utcnow)
    status: Mapped[ReviewStatus] = mapped_column(_enum(ReviewStatus, "review_status"), default=ReviewStatus.PENDING)
    severity: Mapped[str | None] = mapped_column(String(32))  # a policy severity id, set on confirm
    annulled_event_id: Mapped[int | None] = mapped_column(ForeignKey("events.id"))  # rating annulled on dismissal
    decided_by: Mapped[str | None] = mapped_column(String(100))
    decided_at: Mapped[datetime | None]
    reason: Mapped[str | None] = mapped_column(Text)


class ReviewStep(Base):
    """One step of a review, kept forever: a verdict, a contest, a second reviewer's decision, a re-attribution."""

    __tablename__ = "review_steps"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    review_id: Mapped[int] = mapped_column(ForeignKey("reviews.id"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(24))  # confirm, dismiss, contest, uphold, overturn, reattribute
    from_status: Mapped[str] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    severity: Mapped[str | None] = mapped_column(String(32))
    annulled_event_id: Mapped[int | None] = mapped_column(ForeignKey("events.id"))
    reason: Mapped[str] = mapped_column(Text)


class ReviewView(Base):
    """Who has opened a review, kept apart from the verdict (Frigate's per-user "reviewed" state)."""

    __tablename__ = "review_views"
    review_id: Mapped[int] = mapped_column(ForeignKey("reviews.id"), primary_key=True)
    viewer: Mapped[str] = mapped_column(String(100), primary_key=True)  # the principal's audit name
    first_viewed_at: Mapped[datetime]
    last_viewed_at: Mapped[datetime]
    views: Mapped[int] = mapped_column(Integer, default=1)


class IncidentHealth(Base):
    """The device's health when an incident was stored: its latest heartbeat at that moment."""

    __tablename__ = "incident_health"
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id"), primary_key=True)
    device_id: Mapped[str] = mapped_column(String(40))
    online: Mapped[bool] = mapped_column(Boolean)
    last_seen_at: Mapped[datetime | None]
    health: Mapped[dict[str, Any] | None]


class LoginThrottle(Base):
    """Failed sign-ins per user name and per client address, and the lock they earned (with backoff)."""

    __tablename__ = "login_throttle"
    __table_args__ = (Index("ix_login_throttle_last", "last_failure_at"),)
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)  # "user" | "address"
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)
    first_failure_at: Mapped[datetime]
    last_failure_at: Mapped[datetime]
    locked_until: Mapped[datetime | None]


class OfficialCredential(Base):
    """A kiosk sign-in credential: only the PBKDF2 verifier of a PIN or badge code (docs/protocol.md §3.4)."""

    __tablename__ = "official_credentials"
    __table_args__ = (UniqueConstraint("official_id", "method"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    official_id: Mapped[int] = mapped_column(ForeignKey("officials.id"))
    method: Mapped[str] = mapped_column(String(8))  # "pin" | "badge"
    verifier_hex: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(100))


class ClipState(StrEnum):
    RECEIVING = "receiving"  # manifest accepted, bytes arriving (resumable)
    COMPLETE = "complete"  # every byte here and the SHA-256 matches the signed manifest
    REJECTED = "rejected"  # the bytes did not match the manifest; see reject_reason and the audit log


class RenditionState(StrEnum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


class Clip(Base):
    """An evidence clip from a kiosk camera: the original is kept unmodified, its hash signed by the device."""

    __tablename__ = "clips"
    __table_args__ = (Index("ix_clips_counter_start", "counter_id", "started_at"),
                      Index("ix_clips_rendition", "state", "rendition_state"))
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), index=True)
    counter_id: Mapped[int] = mapped_column(ForeignKey("counters.id"))
    state: Mapped[ClipState] = mapped_column(_enum(ClipState, "clip_state"))
    manifest: Mapped[bytes] = mapped_column(LargeBinary)  # the signed manifest as received
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    received: Mapped[int] = mapped_column(BigInteger, default=0)  # bytes so far: the resume offset
    epoch: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    frames: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    privacy: Mapped[str] = mapped_column(String(16))
    original_key: Mapped[str | None] = mapped_column(String(300))
    rendition_key: Mapped[str | None] = mapped_column(String(300))
    thumbnail_key: Mapped[str | None] = mapped_column(String(300))
    rendition_state: Mapped[RenditionState] = mapped_column(_enum(RenditionState, "rendition_state"),
                                                            default=RenditionState.PENDING)
    rendition_error: Mapped[str | None] = mapped_column(String(500))
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    reject_reason: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[datetime | None]
    # Retention: the media were deleted (the row, its hashes and the audit trail stay as the record).
    purged_at: Mapped[datetime | None]
    purge_reason: Mapped[str | None] = mapped_column(String(200))


class ClipEvent(Base):
    """An event (by device, epoch, seq) that a clip's signed manifest says it shows."""

    __tablename__ = "clip_events"
    __table_args__ = (Index("ix_clip_events_event", "device_id", "epoch", "seq"),)
    clip_id: Mapped[str] = mapped_column(ForeignKey("clips.id"), primary_key=True)
    device_id: Mapped[str] = mapped_column(String(40))
    epoch: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)


class ClipRequest(Base):
    """A supervisor asks a kiosk to keep a clip of now; the kiosk collects it over HTTP."""

    __tablename__ = "clip_requests"
    __table_args__ = (Index("ix_clip_requests_open", "device_id", "taken_at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"))
    requested_by: Mapped[str] = mapped_column(String(100))
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    note: Mapped[str | None] = mapped_column(String(280))
    taken_at: Mapped[datetime | None]


# --- monthly evaluation (issue 6): server/evaluation reads and writes these -------------------------


class ScoringPolicy(Base):
    """A scoring policy file exactly as used: its text is kept so any score can be recomputed and checked."""

    __tablename__ = "scoring_policies"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    policy_id: Mapped[str] = mapped_column(String(40))
    version: Mapped[str] = mapped_column(String(40))
    sha256: Mapped[str] = mapped_column(String(64), unique=True)  # of the file's bytes (server.scoring.PolicyRef)
    source: Mapped[str] = mapped_column(String(500))  # where it was loaded from
    text: Mapped[str] = mapped_column(Text)  # the file (UTF-8, as TOML requires): its bytes hash to sha256
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TaskResultKind(StrEnum):
    TASK = "task"  # an assigned product/work item (NĐ 335: quantity, quality, progress)
    BONUS = "bonus"  # a bonus item (early completion, hard task, commendation)
    PENALTY = "penalty"  # a penalty item (violation)
    GENERAL = "general"  # points the unit head entered for a general criterion; key = criterion id
    DISCIPLINE = "discipline"  # a discipline measure taken in the period; key = the policy's measure id


class TaskResult(Base):
    """One input of an official's month besides the ratings: from the unit's task system or the unit head."""

    __tablename__ = "task_results"
    __table_args__ = (UniqueConstraint("official_id", "period", "kind", "key"),
                      Index("ix_task_results_period", "period", "official_id"))
    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    official_id: Mapped[int] = mapped_column(ForeignKey("officials.id"))
    period: Mapped[str] = mapped_column(String(7))  # YYYY-MM
    kind: Mapped[TaskResultKind] = mapped_column(_enum(TaskResultKind, "task_result_kind"))
    key: Mapped[str] = mapped_column(String(64))  # item id, criterion id or measure id
    label: Mapped[str] = mapped_column(String(300), default="")
    points: Mapped[Decimal | None] = mapped_column(ExactDecimal())  # None for a discipline measure
    completed: Mapped[bool] = mapped_column(Boolean, default=True)
    quality_failures: Mapped[int] = mapped_column(Integer, default=0)
    delays: Mapped[int] = mapped_column(Integer, default=0)
    objective_cause: Mapped[bool] = mapped_column(Boolean, default=False)
    reference: Mapped[str | None] = mapped_column(String(200))  # e.g. the decision number of a measure
    source: Mapped[str] = mapped_column(String(16))  # csv | api | unit_head
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(100))


class MonthState(StrEnum):
    CLOSED = "closed"  # scored and frozen as version 1; may still be re-closed before it is final
    FINAL = "final"  # immutable; corrections only by amendment (a new version with a reason)


class ScoreMonth(Base):
    """A unit's month once closed. No row: open (the month runs) or provisional (scores computed live)."""

    __tablename__ = "score_months"
    period: Mapped[str] = mapped_column(String(7), primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), primary_key=True)
    state: Mapped[MonthState] = mapped_column(_enum(MonthState, "month_state"))
    policy_pk: Mapped[int] = mapped_column(ForeignKey("scoring_policies.id"))
    officials: Mapped[int] = mapped_column(Integer)
    pending_reviews: Mapped[int] = mapped_column(Integer, default=0)  # still under review at close
    closed_at: Mapped[datetime]
    closed_by: Mapped[str] = mapped_column(String(100))
    finalized_at: Mapped[datetime | None]
    finalized_by: Mapped[str | None] = mapped_column(String(100))
    forced_reason: Mapped[str | None] = mapped_column(Text)  # closed before the review deadline, and why


class ScoreSnapshot(Base):
    """One official's month as scored: the canonical result JSON and its SHA-256. Never updated (a trigger
    refuses it), except for the pointer to the amendment that superseded it."""

    __tablename__ = "score_snapshots"
    __table_args__ = (UniqueConstraint("period", "official_id", "version"),
                      Index("ix_score_snapshots_current", "period", "unit_id", "official_id",
                            sqlite_where=text("superseded_by IS NULL"),
                            postgresql_where=text("superseded_by IS NULL")))
    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    period: Mapped[str] = mapped_column(String(7))
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"))
    official_id: Mapped[int] = mapped_column(ForeignKey("officials.id"))
    version: Mapped[int] = mapped_column(Integer)  # 1 at close; +1 per amendment
    policy_pk: Mapped[int] = mapped_column(ForeignKey("scoring_policies.id"))
    total: Mapped[Decimal] = mapped_column(ExactDecimal())
    grade: Mapped[str] = mapped_column(String(16))
    summary: Mapped[dict[str, Any]]  # components, criteria, satisfaction, notes: what a list shows
    result: Mapped[str] = mapped_column(Text)  # server.scoring.canonical_json(result), UTF-8
    digest: Mapped[str] = mapped_column(String(64))  # SHA-256 of `result`'s bytes
    reason: Mapped[str | None] = mapped_column(Text)  # why this amendment was made
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(100))
    superseded_by: Mapped[int | None] = mapped_column(BigInteger)  # the amendment's snapshot id


class WebhookSubscription(Base):
    """An HR system that wants to hear when months close; each has its own signing secret."""

    __tablename__ = "webhook_subscriptions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    url: Mapped[str] = mapped_column(String(500))
    secret: Mapped[str] = mapped_column(String(100))  # HMAC-SHA256 key; needed to sign, so kept as is
    events: Mapped[str] = mapped_column(String(200))  # space-separated event types
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))  # None: every unit
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(100))


class DeliveryState(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"  # every attempt failed; kept with the last error, can be retried by hand


class WebhookDelivery(Base):
    """One event for one subscriber, written in the transaction that caused it (an outbox), with its attempts."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_due", "state", "next_attempt_at"),)
    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    subscription_id: Mapped[int] = mapped_column(ForeignKey("webhook_subscriptions.id"), index=True)
    event: Mapped[str] = mapped_column(String(40))
    body: Mapped[bytes] = mapped_column(LargeBinary)  # the exact bytes sent and signed
    state: Mapped[DeliveryState] = mapped_column(_enum(DeliveryState, "delivery_state"))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]


def _table(model: type[Base]) -> Table:
    return cast(Table, model.__table__)


# Core handles for the hot paths (ingest, aggregation), typed as Table for the type checker.
UNITS = _table(Unit)
COUNTERS = _table(Counter)
OFFICIALS = _table(Official)
DEVICES = _table(Device)
BOOTS = _table(DeviceBoot)
SESSIONS = _table(CounterSession)
EVENTS = _table(Event)
QUARANTINE = _table(Quarantine)
AUDIT = _table(AuditEntry)
TOKENS = _table(ApiToken)
USERS = _table(User)
CREDENTIALS = _table(OfficialCredential)
CLIPS = _table(Clip)
CLIP_EVENTS = _table(ClipEvent)
CLIP_REQUESTS = _table(ClipRequest)
USER_UNITS = _table(UserUnit)
TOKEN_UNITS = _table(TokenUnit)
REVIEWS = _table(Review)
AUDIT_CHAIN = _table(AuditChain)
REVIEW_STEPS = _table(ReviewStep)
REVIEW_VIEWS = _table(ReviewView)
INCIDENT_HEALTH = _table(IncidentHealth)
LOGIN_THROTTLE = _table(LoginThrottle)
SCORING_POLICIES = _table(ScoringPolicy)
TASK_RESULTS = _table(TaskResult)
SCORE_MONTHS = _table(ScoreMonth)
SCORE_SNAPSHOTS = _table(ScoreSnapshot)
WEBHOOK_SUBSCRIPTIONS = _table(WebhookSubscription)
WEBHOOK_DELIVERIES = _table(WebhookDelivery)
