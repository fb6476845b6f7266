"""The `motcua` command as an administrator uses it."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest


def motcua(*args: str, env: dict[str, str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "motcua", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env}, input=stdin)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"MOTCUA_MODE": "production", "MOTCUA_SECRET_KEY": "x" * 40,
            "MOTCUA_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite3'}"}


def test_first_setup_from_the_command_line(env: dict[str, str], tmp_path: Path) -> None:
    refused = motcua("admin", "list", env=env)
    assert refused.returncode == 2 and "motcua db upgrade" in refused.stderr
    assert motcua("db", "upgrade", env=env).returncode == 0
    assert motcua("db", "status", env=env).stdout.strip() == "current"
    assert motcua("admin", "unit-add", "P-MK", "UBND phường Minh Khai", env=env).returncode == 0
    assert motcua("admin", "counter-add", "--unit", "P-MK", "MK-01", "Quầy 1", env=env).returncode == 0
    assert motcua("admin", "official-add", "--unit", "P-MK", "CB-1", "Nguyễn Văn A", "--post", "Tư pháp",
                  env=env).returncode == 0
    listing = motcua("admin", "list", env=env).stdout
    assert "MK-01" in listing and "Nguyễn Văn A" in listing
    out = tmp_path / "dev" / "config_local.py"
    made = motcua("device", "provision", "--counter", "MK-01", "--kind", "button", "--id", "esp32-mk-01",
                  "--out", str(out), "--mqtt-host", "10.1.2.3", env=env)
    assert made.returncode == 0, made.stderr
    assert "mpremote" in made.stdout
    text = out.read_text()
    assert "esp32-mk-01" in text and "10.1.2.3" in text
    assert stat.S_IMODE(out.stat().st_mode) == 0o600  # it holds the device key
    assert motcua("admin", "sign-in", "--counter", "MK-01", "--official", "CB-1", env=env).returncode == 0
    assert motcua("device", "revoke", "esp32-mk-01", "--reason", "lost", env=env).returncode == 0
    assert "revoked" in motcua("device", "list", env=env).stdout
    token = motcua("admin", "token-create", "queue", "--scope", "sessions:write", env=env)
    assert token.stdout.startswith("mc_")
    bad = motcua("admin", "token-create", "queue", "--scope", "everything", env=env)
    assert bad.returncode == 2 and "unknown scope" in bad.stderr


def test_configuration_errors_are_readable(tmp_path: Path) -> None:
    res = motcua("db", "upgrade", env={"MOTCUA_MODE": "production", "MOTCUA_SECRET_KEY": ""})
    assert res.returncode == 2
    assert "invalid configuration" in res.stderr and "MOTCUA_SECRET_KEY" in res.stderr
    assert "Traceback" not in res.stderr


def test_kiosk_provisioning_credentials_and_a_bad_kiosk_file(env: dict[str, str], tmp_path: Path) -> None:
    from device.kiosk.config import load_config

    assert motcua("db", "upgrade", env=env).returncode == 0
    motcua("admin", "unit-add", "P-MK", "UBND phường Minh Khai", env=env)
    motcua("admin", "counter-add", "--unit", "P-MK", "MK-01", "Quầy 1", env=env)
    motcua("admin", "official-add", "--unit", "P-MK", "CB-1", "Nguyễn Văn A", env=env)
    out = tmp_path / "kiosk.toml"
    made = motcua("device", "provision", "--counter", "MK-01", "--kind", "kiosk", "--id", "kiosk-mk-01",
                  "--out", str(out), "--server-url", "https://motcua.example", env=env)
    assert made.returncode == 0 and "motcua kiosk" in made.stdout, made.stderr
    cfg = load_config(out)
    assert (cfg.device_id, cfg.server_url, cfg.mqtt_user) == ("kiosk-mk-01", "https://motcua.example", "kiosk-mk-01")
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    pin = motcua("admin", "credential-set", "CB-1", "--method", "pin", env=env, stdin="2468\n")
    assert pin.returncode == 0 and "2468" not in pin.stdout
    short = motcua("admin", "credential-set", "CB-1", env=env, stdin="12\n")
    assert short.returncode == 2 and "4 to 12 digits" in short.stderr
    out.write_text(out.read_text() + "camra = \"0\"\n")
    bad = motcua("kiosk", str(out), env=env)
    assert bad.returncode == 2 and "camra" in bad.stderr
