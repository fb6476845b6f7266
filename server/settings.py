"""Typed settings: environment (MOTCUA_*, nested with __) over an optional TOML file over defaults.

Validated at start-up; an invalid or unsafe configuration stops the program with a message saying
what to set. Secrets have no defaults outside demo mode.
"""

from __future__ import annotations

import os
import secrets
from contextvars import ContextVar
from datetime import datetime, time
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

CONFIG_ENV = "MOTCUA_CONFIG"
# The file given to load_settings(), without touching the process environment.
_config_file: ContextVar[str | None] = ContextVar("motcua_config_file", default=None)
LOOPBACK = {"127.0.0.1", "::1", "localhost"}
_STRICT_SECTION = ConfigDict(extra="forbid")


class MqttSettings(BaseModel):
    model_config = _STRICT_SECTION
    url: str = Field("mqtt://127.0.0.1:1883", description="Broker URL: mqtt://host:port or mqtts://host:port")
    username: str | None = Field(None, description="MQTT user of the server (ACL: read all evt/hb/status)")
    password: SecretStr | None = Field(None, description="MQTT password of the server")
    client_id: str = Field("motcua-ingest", description="Client id; must be unique per ingest process")
    protocol: Literal[5, 311] = Field(5, description="5 enables shared subscriptions and manual PUBACKs at scale")
    shared_group: str | None = Field(
        None, description="Shared-subscription group ($share/<group>/...) to spread load over N ingest processes"
    )
    keepalive_s: int = Field(30, ge=5, le=600, description="MQTT keepalive in seconds")
    receive_maximum: int = Field(
        4000, ge=20, le=65535, description="Unacked QoS1 messages the broker may push (MQTT 5 Receive Maximum)"
    )
    ca_file: Path | None = Field(None, description="CA bundle for mqtts:// (system store when unset)")

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in {"mqtt", "mqtts"} or not parts.hostname:
            raise ValueError("use mqtt://host:port or mqtts://host:port")
        return value

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        parts = urlsplit(self.url)
        return parts.port or (8883 if parts.scheme == "mqtts" else 1883)

    @property
    def tls(self) -> bool:
        return urlsplit(self.url).scheme == "mqtts"


class IngestSettings(BaseModel):
    model_config = _STRICT_SECTION
    batch_max: int = Field(500, ge=1, le=10000, description="Most messages committed in one transaction")
    batch_wait_ms: int = Field(
        25, ge=0, le=2000, description="How long a batch waits to fill: throughput against ack latency"
    )
    max_payload_bytes: int = Field(4096, ge=512, le=262144, description="Larger payloads are quarantined")
    misuse_window_ms: int = Field(3000, ge=0, description="Presses this soon after another one are misuse")
    max_future_skew_ms: int = Field(120_000, ge=0, description="Device time this far ahead is implausible")
    max_event_age_days: int = Field(35, ge=1, description="Device time older than this is implausible")
    clock_conflict_ms: int = Field(
        600_000, ge=1000, description="A synced device clock this far from the heartbeat anchor: decided by hand"
    )
    epoch_reuse_gap_ms: int = Field(
        60_000, ge=1000,
        description="A heartbeat implying a boot this much after its epoch's anchor: the device was reset",
    )
    anchor_refresh_ms: int = Field(
        600_000, ge=10_000, description="Uptime after which a clock anchor is replaced, so drift cannot build up"
    )
    publish_config: bool = Field(True, description="Publish retained device configs from this process")


class DeviceDefaults(BaseModel):
    model_config = _STRICT_SECTION
    thanks_ms: int = Field(3000, ge=0, le=60000, description="Thank-you state after a press, in ms")
    heartbeat_s: int = Field(60, ge=5, le=3600, description="Heartbeat period asked of devices")
    scale_labels: list[str] = Field(
        ["Rất không hài lòng", "Không hài lòng", "Hài lòng", "Rất hài lòng"],
        min_length=2,
        max_length=10,
        description="Rating labels, worst first; the count is the number of buttons",
    )


class ApiSettings(BaseModel):
    model_config = _STRICT_SECTION
    host: str = Field("127.0.0.1", description="Address the HTTP API binds to")
    port: int = Field(8000, ge=0, le=65535, description="HTTP port (0 = any free port)")
    public_url: str | None = Field(None, description="URL people use to reach the API, shown in messages")


class ClipSettings(BaseModel):
    model_config = _STRICT_SECTION
    storage: Literal["local", "s3"] = Field("local", description="Where originals, renditions and thumbnails live")
    local_dir: Path | None = Field(None, description="Folder of the local store (default: <data_dir>/clips)")
    max_clip_bytes: int = Field(
        64 * 1024 * 1024, ge=1024, description="Largest clip a kiosk may upload (a 2-minute MJPEG clip is ~40 MB)"
    )
    max_chunk_bytes: int = Field(
        4 * 1024 * 1024, ge=1024, le=64 * 1024 * 1024, description="Largest upload request body (one resumable chunk)"
    )
    auth_window_s: int = Field(300, ge=10, le=3600, description="Device request signatures older than this are refused")
    rendition: Literal["mp4", "webm"] = Field("mp4", description="Browser rendition: H.264 MP4 (faststart) or VP8 WebM")
    transcode: bool = Field(True, description="Produce renditions and thumbnails in this process (background thread)")
    s3_endpoint_url: str | None = Field(None, description="S3-compatible endpoint (MinIO: http://minio:9000)")
    s3_bucket: str = Field("motcua-clips", description="Bucket of the S3 store (must exist)")
    s3_region: str = Field("us-east-1", description="Region name the S3 store expects")
    s3_access_key: str | None = Field(None, description="Access key of the S3 store")
    s3_secret_key: SecretStr | None = Field(None, description="Secret key of the S3 store")
    s3_prefix: str = Field("", description="Prefix for every key in the bucket (several deployments, one bucket)")

    @model_validator(mode="after")
    def _s3_complete(self) -> ClipSettings:
        if self.storage == "s3" and not (self.s3_endpoint_url and self.s3_access_key and self.s3_secret_key):
            raise ValueError("clips.storage = s3 needs s3_endpoint_url, s3_access_key and s3_secret_key "
                             "(MOTCUA_CLIPS__S3_ENDPOINT_URL, …)")
        return self


class ReviewSettings(BaseModel):
    model_config = _STRICT_SECTION
    dismissed_clip_days: int = Field(
        30, ge=1, le=3650, description="Clips of dismissed incidents are deleted this many days after the dismissal",
    )
    purge_every_h: float = Field(
        6.0, ge=0, le=168, description="Hours between the server's purges of clips past retention (0: only the CLI)",
    )


class AlertSettings(BaseModel):
    model_config = _STRICT_SECTION
    office_hours: str = Field("07:30-17:00", description="Local opening hours of the one-stop sections, HH:MM-HH:MM")
    office_days: list[int] = Field(
        [0, 1, 2, 3, 4],
        description="Opening days, 0 = Monday … 6 = Sunday (add 5 where the section opens on Saturdays)",
    )
    silent_after_min: int = Field(
        10, ge=1, le=1440, description="A device not heard from for this long during office hours raises an alert",
    )
    negative_streak: int = Field(
        3, ge=2, le=50, description="This many lowest ratings in a row at one counter raise an alert",
    )

    @field_validator("office_hours")
    @classmethod
    def _hours(cls, value: str) -> str:
        try:
            start, end = (datetime.strptime(part.strip(), "%H:%M").time() for part in value.split("-"))
        except ValueError:
            raise ValueError("use HH:MM-HH:MM, e.g. 07:30-17:00") from None
        if end <= start:
            raise ValueError("the closing time must come after the opening time")
        return value

    @field_validator("office_days")
    @classmethod
    def _days(cls, value: list[int]) -> list[int]:
        if not value or any(d not in range(7) for d in value):
            raise ValueError("list days as 0 (Monday) to 6 (Sunday), at least one")
        return sorted(set(value))

    @property
    def hours(self) -> tuple[time, time]:
        start, end = (datetime.strptime(part.strip(), "%H:%M").time() for part in self.office_hours.split("-"))
        return start, end


class LoginSettings(BaseModel):
    model_config = _STRICT_SECTION
    user_failures: int = Field(5, ge=1, le=100, description="Failed sign-ins in a row that lock a user name")
    address_failures: int = Field(
        20, ge=1, le=10000, description="Failed sign-ins from one client address that lock the address",
    )
    lock_s: int = Field(60, ge=1, le=86400, description="First lock, in seconds; each further failure doubles it")
    lock_max_s: int = Field(3600, ge=1, le=604800, description="Longest lock, in seconds")
    forget_after_h: int = Field(
        24, ge=1, le=720, description="Failures older than this are forgotten (the count starts again)",
    )


class ScoringSettings(BaseModel):
    model_config = _STRICT_SECTION
    policy: str = Field(
        "nd335", description="Scoring policy: a shipped one (nd335, hanoi-3814) or the path of a policy file"
    )
    review_days: int = Field(
        10, ge=0, le=90,
        description="Days after a month ends for reviewing flagged incidents; `month close` waits for them",
    )
    outstanding_units: list[str] = Field(
        [], description="Unit codes rated outstanding this year (caps with outstanding_ratio, e.g. Hà Nội 40%)"
    )


class WebhookSettings(BaseModel):
    model_config = _STRICT_SECTION
    deliver: bool = Field(True, description="Deliver webhooks from the server process (background thread)")
    timeout_s: float = Field(10.0, gt=0, le=120, description="How long a subscriber has to answer one delivery")
    max_attempts: int = Field(8, ge=1, le=30, description="Attempts before a delivery is marked failed")
    backoff_s: float = Field(
        30.0, ge=0, le=3600, description="Wait before the 2nd attempt; doubled each time (30 s, 1 min, 2 min…)"
    )


class Settings(BaseSettings):
    """Everything the server reads at start-up. See docs/configuration.md."""

    model_config = SettingsConfigDict(
        env_prefix="MOTCUA_", env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    mode: Literal["production", "demo"] = Field("production", description="demo relaxes secret checks only")
    database_url: str = Field(
        "sqlite:///data/motcua.sqlite3", description="SQLAlchemy URL; postgresql+psycopg://... in production"
    )
    secret_key: SecretStr | None = Field(None, description="Signs session cookies; ≥ 32 random characters")
    timezone: str = Field("Asia/Ho_Chi_Minh", description="Local time of the offices (service days, months)")
    data_dir: Path = Field(Path("data"), description="Where SQLite, clips and other local state live")
    mqtt: MqttSettings = Field(default_factory=lambda: MqttSettings())
    ingest: IngestSettings = Field(default_factory=lambda: IngestSettings())
    devices: DeviceDefaults = Field(default_factory=lambda: DeviceDefaults())
    api: ApiSettings = Field(default_factory=lambda: ApiSettings())
    clips: ClipSettings = Field(default_factory=lambda: ClipSettings())
    review: ReviewSettings = Field(default_factory=lambda: ReviewSettings())
    alerts: AlertSettings = Field(default_factory=lambda: AlertSettings())
    login: LoginSettings = Field(default_factory=lambda: LoginSettings())
    scoring: ScoringSettings = Field(default_factory=lambda: ScoringSettings())
    webhooks: WebhookSettings = Field(default_factory=lambda: WebhookSettings())

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = _config_file.get() or os.environ.get(CONFIG_ENV)
        if config_file:
            if not Path(config_file).is_file():
                raise FileNotFoundError(f"{CONFIG_ENV}={config_file}: no such file")
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)

    @field_validator("timezone")
    @classmethod
    def _real_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name like Asia/Ho_Chi_Minh)") from None
        return value

    @model_validator(mode="after")
    def _no_default_secrets(self) -> Settings:
        if self.mode == "demo":
            if self.api.host not in LOOPBACK:
                raise ValueError(f"mode: demo mode only serves this machine (api.host 127.0.0.1), not "
                                 f"{self.api.host!r}; set MOTCUA_MODE=production and a real MOTCUA_SECRET_KEY")
            if self.secret_key is None:
                # Random per process: a key written in the source would let anyone forge session cookies.
                self.secret_key = SecretStr(secrets.token_urlsafe(32))
            return self
        key = self.secret_key.get_secret_value() if self.secret_key else ""
        if len(key) < 32:
            raise ValueError(
                "secret_key: set MOTCUA_SECRET_KEY to at least 32 random characters, e.g. the output of "
                "`python -c 'import secrets; print(secrets.token_urlsafe(32))'` (only demo mode has a default)"
            )
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def clips_dir(self) -> Path:
        """The local clip store, and where uploads in progress are kept (whatever the store)."""
        return self.clips.local_dir or self.data_dir / "clips"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Settings from MOTCUA_* variables, then `config_file` (or $MOTCUA_CONFIG), then defaults."""
    token = _config_file.set(str(config_file) if config_file is not None else None)
    try:
        return Settings(**overrides)
    finally:
        _config_file.reset(token)


def reference_markdown() -> str:
    """The settings table of docs/configuration.md, generated from the model (a test keeps them equal)."""
    rows = ["| environment variable | TOML key | default | meaning |", "|---|---|---|---|"]

    def walk(model: type[BaseModel], env: str, key: str) -> None:
        for name, field in model.model_fields.items():
            sub = field.annotation
            if isinstance(sub, type) and issubclass(sub, BaseModel):
                walk(sub, f"{env}{name.upper()}__", f"{key}{name}.")
                continue
            default = field.get_default(call_default_factory=True)
            shown = "(none)" if default is None else f"`{default}`"
            rows.append(f"| `{env}{name.upper()}` | `{key}{name}` | {shown} | {field.description or ''} |")

    walk(Settings, "MOTCUA_", "")
    return "\n".join(rows)


def write_reference(doc: Path) -> None:
    """Replace the generated table in docs/configuration.md (`python -m server.settings docs/configuration.md`)."""
    text = doc.read_text(encoding="utf-8")
    marker = "<!-- generated by server.settings.reference_markdown()"
    head = text[: text.index(marker)]
    line = text[text.index(marker):].split("\n", 1)[0]
    doc.write_text(f"{head}{line}\n{reference_markdown()}\n", encoding="utf-8")


if __name__ == "__main__":
    import sys

    write_reference(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/configuration.md"))
