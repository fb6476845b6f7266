"""Console pages through their forms (TestClient, both databases): verdicts, contests, the second reviewer,
unattributed events, user administration, the audit trail per user and per item, CSV export; languages."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from server.api.app import create_app
from server.api.i18n import LOCALE_DIR
from server.db.models import AUDIT, QUARANTINE, REVIEWS, USERS
from server.settings import Settings
from tests.utils.console import Browser, complaint, make_user, review_of, sign_in
from tests.utils.factories import Office, make_office
from tests.utils.factories import sign_in as sign_in_official

SETTINGS = Settings(mode="demo")
NOW = datetime.now(UTC).replace(microsecond=0)
ROOT = Path(__file__).resolve().parents[1]
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None, "tr": (2,), "PageError": (2,)}
PLACEHOLDER = re.compile(r"%\(\w+\)s|\{\w+\}")


def _messages() -> set[str]:
    """Every message the console's templates and code mark for translation (as `pybabel extract` finds them)."""
    method_map = [("server/api/**.py", "python"), ("server/api/templates/**.html", "jinja2")]
    options = {"server/api/templates/**.html": {"extensions": "jinja2.ext.i18n"}}
    found = extract_from_dir(str(ROOT), method_map, options, keywords=KEYWORDS)  # type: ignore[arg-type]
    return {m[2] if isinstance(m[2], str) else m[2][0] for m in found}


def test_every_console_message_has_its_vietnamese_translation() -> None:
    wanted = _messages()
    assert len(wanted) > 200
    for locale in ("vi", "en"):
        with (LOCALE_DIR / locale / "LC_MESSAGES" / "messages.po").open("rb") as f:
            catalog = read_po(f, locale=locale)
        missing = sorted(m for m in wanted if m not in catalog)
        assert not missing, f"{locale}: not in the catalog (pybabel extract + update, docs/console.md): {missing}"
        if locale == "vi":
            bad = [m.id for m in catalog if m.id and (not m.string or m.fuzzy)]
            assert not bad, f"untranslated or fuzzy: {bad}"
            shifted = [m.id for m in catalog if m.id and sorted(PLACEHOLDER.findall(str(m.id)))
                       != sorted(PLACEHOLDER.findall(str(m.string)))]
            assert not shifted, f"placeholders differ from the English: {shifted}"


@pytest.fixture
def office(engine: Engine) -> Office:
    made = make_office(engine, counters=2, officials=3, code="PA")
    sign_in_official(engine, made.counters[0], made.officials[0], NOW - timedelta(hours=2))
    return made


@pytest.fixture
def app(engine: Engine, office: Office) -> FastAPI:
    for name, role, extra in (("gs1", "supervisor", {"units": ("PA",)}), ("gs2", "supervisor", {"units": ("PA",)}),
                              ("cb1", "official", {"official": "PA-CB001"}), ("admin", "admin", {})):
        make_user(engine, name, role, **extra)  # type: ignore[arg-type]
    return create_app(SETTINGS, engine)


def _review(engine: Engine, rid: int) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(REVIEWS).where(REVIEWS.c.id == rid)).one()


def test_vietnamese_by_default_english_on_request_and_remembered(app: FastAPI) -> None:
    client = TestClient(app)
    assert "Đăng nhập" in client.get("/login").text
    english = client.get("/login?lang=en")
    assert "Sign in" in english.text and '<html lang="en">' in english.text
    assert "motcua_lang=en" in english.headers["set-cookie"]
    assert "User name" in client.get("/login").text  # the cookie keeps the choice
    assert "Tên đăng nhập" in client.get("/login?lang=vi").text


def test_verdict_forms_explain_refusals_and_the_contest_goes_to_a_second_reviewer(
        engine: Engine, office: Office, app: FastAPI) -> None:
    rid = review_of(engine, complaint(engine, SETTINGS, office.devices[0], at=NOW - timedelta(minutes=9))).id
    gs1, gs2, cb1 = sign_in(app, "gs1"), sign_in(app, "gs2"), sign_in(app, "cb1")
    res = gs1.form(f"/reviews/{rid}/confirm", {"severity": "minor", "reason": "ok"})
    assert res.status_code == 303 and res.headers["location"].endswith("error=reason_required")
    page = gs1.client.get(res.headers["location"])
    assert "Hãy ghi lý do của quyết định" in page.text and _review(engine, rid).status == "pending"
    done = gs1.form(f"/reviews/{rid}/confirm", {"severity": "serious", "reason": "ignored the citizen's request"})
    assert done.headers["location"].endswith("done=confirmed")
    contest_page = cb1.client.get(f"/reviews/{rid}").text
    assert 'id="contest-form"' in contest_page and 'id="confirm-form"' not in contest_page
    cb1.form(f"/reviews/{rid}/contest", {"reason": "the system was down, I asked them to wait"})
    assert _review(engine, rid).status == "contested"
    mine = gs1.client.get(f"/reviews/{rid}").text
    assert 'id="contest-decision-form"' not in mine and "người xem xét thứ hai phải quyết định" in mine
    assert 'id="contest-decision-form"' in gs2.client.get(f"/reviews/{rid}").text
    gs2.form(f"/reviews/{rid}/contest-decision", {"outcome": "overturn", "reason": "the outage is confirmed",
                                                  "annul": "true"})
    review = _review(engine, rid)
    assert (review.status, review.decided_by) == ("dismissed", "user:gs2") and review.annulled_event_id is not None
    history = gs2.client.get(f"/reviews/{rid}").text
    assert "Chấp nhận khiếu nại: hủy kết luận" in history and "Cán bộ khiếu nại" in history


def test_an_unattributed_incident_is_assigned_from_its_page(engine: Engine, office: Office, app: FastAPI) -> None:
    event_id = complaint(engine, SETTINGS, office.devices[1], at=NOW - timedelta(minutes=4))
    with engine.connect() as conn:
        qid = conn.execute(select(QUARANTINE.c.id).where(QUARANTINE.c.event_id == event_id)).scalar_one()
    gs = sign_in(app, "gs1")
    page = gs.client.get("/unattributed").text
    assert f'data-quarantine="{qid}"' in page and "Phản ánh" in page
    short = gs.form(f"/unattributed/{qid}", {"official": "PA-CB002", "reason": "no"})
    assert short.headers["location"].endswith("error=reason_required")
    gs.form(f"/unattributed/{qid}", {"official": "PA-CB002", "reason": "the camera shows her at counter 2"})
    review = review_of(engine, event_id)
    assert review is not None and review.official_id == office.officials[1]
    assert f'data-quarantine="{qid}"' not in gs.client.get("/unattributed").text


def test_role_changes_and_disabling_are_audited(engine: Engine, app: FastAPI) -> None:
    admin = sign_in(app, "admin")
    assert 'data-user="gs2"' in admin.client.get("/admin/users").text
    admin.form("/admin/users/gs2/role", {"role": "unit_head", "units": "PA"})
    refused = admin.form("/admin/users/gs2/role", {"role": "official"})
    assert "error=" in refused.headers["location"]
    admin.form("/admin/users/gs2/state", {"disabled": "true", "reason": "moved to another ward"})
    with engine.connect() as conn:
        user = conn.execute(select(USERS.c.role, USERS.c.disabled).where(USERS.c.username == "gs2")).one()
        entries = {r.action: r.detail for r in conn.execute(select(AUDIT.c.action, AUDIT.c.detail).where(
            AUDIT.c.target_type == "user", AUDIT.c.target_id == "gs2", AUDIT.c.actor == "user:admin"))}
    assert (user.role, user.disabled) == ("unit_head", True)
    assert entries["user.role"]["from"]["role"] == "supervisor" and entries["user.role"]["to"]["role"] == "unit_head"
    assert entries["user.disable"]["reason"] == "moved to another ward"


def test_audit_trail_per_user_per_item_export_and_check(engine: Engine, office: Office, app: FastAPI) -> None:
    rid = review_of(engine, complaint(engine, SETTINGS, office.devices[0], at=NOW - timedelta(minutes=7))).id
    sign_in(app, "gs1").form(f"/reviews/{rid}/dismiss", {"reason": "the citizen withdrew the complaint"})
    admin: Browser = sign_in(app, "admin")
    per_user = admin.client.get("/audit?actor=user:gs1").text
    assert "review.dismiss" in per_user and "user.create" not in per_user
    per_item = admin.client.get(f"/audit?target_type=review&target_id={rid}").text
    assert "review.dismiss" in per_item and "the citizen withdrew the complaint" in per_item
    assert "nguyên vẹn" in admin.client.get("/audit?check=1").text
    export = admin.client.get("/api/v1/audit/export.csv?actor=user:gs1")
    assert export.headers["content-type"].startswith("text/csv") and "attachment" in export.headers[
        "content-disposition"]
    rows = list(csv.DictReader(io.StringIO(export.text)))
    assert [r["action"] for r in rows] == ["review.dismiss"] and len(rows[0]["hash"]) == 64
    with engine.connect() as conn:
        logged = conn.execute(select(AUDIT.c.actor, AUDIT.c.detail).where(AUDIT.c.action == "audit.export")).one()
    assert logged.actor == "user:admin" and logged.detail == {"filter": {"actor": "user:gs1"}, "rows": 1,
                                                              "format": "csv"}
    api = admin.client.get(f"/api/v1/audit?target_type=review&target_id={rid}").json()["items"]
    assert [e["action"] for e in api] == ["review.dismiss"]
