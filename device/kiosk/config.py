"""The kiosk's configuration: a TOML file written by `motcua device provision --kind kiosk --out kiosk.toml`.

Unknown keys are refused, so a typo stops the kiosk at start-up with the key's name instead of
silently doing something else.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from motcua.protocol.topics import DEVICE_ID_PATTERN

DEFAULT_REASONS = {
    "slow": "Chậm trễ",
    "rude": "Thái độ chưa tốt",
    "unclear": "Hướng dẫn không rõ",
    "extra_papers": "Yêu cầu thêm giấy tờ",
    "fee": "Thu phí không đúng",
}


class KioskConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    device_id: str = Field(pattern=DEVICE_ID_PATTERN)
    secret_hex: str = Field(pattern=r"^[0-9a-f]{64}$")
    mqtt_host: str
    mqtt_port: int = Field(1883, ge=1, le=65535)
    mqtt_user: str | None = None
    mqtt_password: str | None = None
    server_url: str = Field(description="Where clips are uploaded, e.g. https://motcua.example.gov.vn")
    state_dir: Path = Path("/var/lib/motcua-kiosk")
    http_host: str = "127.0.0.1"
    http_port: int = Field(8080, ge=0, le=65535)
    camera: str = Field("0", description="Camera: a device index, a file, an rtsp:// URL, 'synthetic' or 'none'")
    width: int = 640
    height: int = 480
    fps: float = Field(15.0, gt=0, le=60)
    pre_roll_s: float = Field(10.0, ge=0, le=60)
    post_roll_s: float = Field(10.0, ge=1, le=120)
    ring_max_bytes: int = Field(16 * 1024 * 1024, ge=1024 * 1024)
    clip_on_lowest: bool = Field(True, description="Keep a clip when a citizen gives the lowest rating")
    clips_quota_bytes: int = Field(2 * 1024**3, ge=10 * 1024 * 1024, description="Disk for local clips")
    upload_chunk_bytes: int = Field(1024 * 1024, ge=1024)
    request_poll_s: float = Field(5.0, gt=0, description="How often to collect remote clip requests")
    blur_faces: bool = False
    mask_regions: list[list[float]] = Field(default_factory=list, description="[x, y, w, h] fractions to black out")
    reasons: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_REASONS))
    levels: int = Field(4, ge=2, le=10, description="Scale shown until the server's config arrives")
    labels: list[str] = Field(default_factory=lambda: ["Rất không hài lòng", "Không hài lòng", "Hài lòng",
                                                       "Rất hài lòng"])
    thanks_ms: int = Field(3000, ge=500, le=60000)
    heartbeat_s: float = Field(60.0, ge=5)
    resend_after_s: float = Field(15.0, ge=1)

    @field_validator("mask_regions")
    @classmethod
    def _fractions(cls, value: list[list[float]]) -> list[list[float]]:
        for r in value:
            if len(r) != 4 or not all(0 <= v <= 1 for v in r):
                raise ValueError("each mask region is [x, y, w, h] as fractions of the frame (0..1)")
        return value

    @property
    def secret(self) -> bytes:
        return bytes.fromhex(self.secret_hex)


def load_config(path: Path) -> KioskConfig:
    """Read and validate the kiosk's TOML file; raises ValueError naming what is wrong."""
    try:
        return KioskConfig.model_validate(tomllib.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file (write one with `motcua device provision --kind kiosk --out …`)") \
            from None
    except (tomllib.TOMLDecodeError, ValidationError) as exc:
        raise ValueError(f"{path}: {exc}") from None


def render_kiosk_toml(*, device_id: str, secret_hex: str, mqtt_host: str, mqtt_port: int, mqtt_password: str,
                      server_url: str) -> str:
    """The kiosk.toml that provisioning writes: identity and addresses; every other key has a default."""
    def q(value: str) -> str:
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'

    return "\n".join([
        "# motcua kiosk configuration, written by `motcua device provision --kind kiosk` (docs/kiosk.md).",
        "# It holds the device secret: keep it readable by the kiosk user only.",
        f"device_id = {q(device_id)}", f"secret_hex = {q(secret_hex)}", f"mqtt_host = {q(mqtt_host)}",
        f"mqtt_port = {mqtt_port}", f"mqtt_user = {q(device_id)}", f"mqtt_password = {q(mqtt_password)}",
        f"server_url = {q(server_url)}", 'state_dir = "/var/lib/motcua-kiosk"', 'camera = "0"',
        "# blur_faces = true", "# mask_regions = [[0.0, 0.0, 0.25, 0.3]]", ""])
