"""Typed settings: validated at start-up, no default secrets outside demo mode."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from server.settings import Settings, load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("MOTCUA_"):
            monkeypatch.delenv(key)


def test_production_refuses_to_start_without_a_secret_and_says_how_to_make_one() -> None:
    with pytest.raises(ValidationError) as err:
        Settings()
    assert "MOTCUA_SECRET_KEY" in str(err.value) and "token_urlsafe" in str(err.value)
    with pytest.raises(ValidationError):
        Settings(secret_key="short")


def test_demo_mode_has_a_random_secret_and_stays_on_this_machine() -> None:
    a, b = Settings(mode="demo").secret_key, Settings(mode="demo").secret_key
    assert a is not None and b is not None and a.get_secret_value() != b.get_secret_value()
    with pytest.raises(ValidationError, match="demo mode only serves this machine"):
        Settings(mode="demo", api={"host": "0.0.0.0"})  # type: ignore[arg-type]


def test_environment_with_nested_sections(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOTCUA_MODE", "demo")
    monkeypatch.setenv("MOTCUA_MQTT__URL", "mqtts://broker.example:8883")
    monkeypatch.setenv("MOTCUA_INGEST__BATCH_MAX", "250")
    s = Settings()
    assert (s.mqtt.host, s.mqtt.port, s.mqtt.tls, s.ingest.batch_max) == ("broker.example", 8883, True, 250)


def test_toml_file_under_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "motcua.toml"
    cfg.write_text('mode = "demo"\ntimezone = "Asia/Bangkok"\n[ingest]\nmisuse_window_ms = 5000\n'
                   '[mqtt]\nurl = "mqtt://10.0.0.5:1883"\n', encoding="utf-8")
    monkeypatch.setenv("MOTCUA_INGEST__MISUSE_WINDOW_MS", "4000")
    s = load_settings(cfg)
    assert (s.timezone, s.mqtt.host, s.ingest.misuse_window_ms) == ("Asia/Bangkok", "10.0.0.5", 4000)


@pytest.mark.parametrize("bad", [{"timezone": "Mars/Olympus"}, {"mqtt": {"url": "http://x"}},
                                 {"ingest": {"batch_max": 0}}, {"unknown_option": 1}, {"mqtt": {"hostname": "x"}}])
def test_invalid_values_are_refused(bad: dict) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValidationError):
        Settings(mode="demo", **bad)


def test_missing_config_file_is_reported(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_settings(tmp_path / "absent.toml")


def test_configuration_doc_lists_every_setting() -> None:
    from server.settings import reference_markdown

    doc = (Path(__file__).parents[1] / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert reference_markdown() in doc, "regenerate it: python -m server.settings docs/configuration.md"
