"""Schemathesis against the app's own OpenAPI schema, for every /api/v1/hr operation.

Generated requests (valid and invalid) go through the ASGI app in process, with an HR token, over a
database holding a final month, a provisional one and an amendment. Each response must match the
schema: status codes, content types, bodies, headers; no server error.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import positive_data_acceptance

from server import registry
from server.api.app import create_app
from server.db.engine import upgrade
from server.evaluation import lifecycle, task_results
from server.evaluation.policies import active_policy
from tests.utils import db
from tests.utils.evaluation import AFTER_MARCH_REVIEWS, make_unit, rate
from tests.utils.evaluation import settings as motcua_settings

TOKEN: dict[str, str] = {}
# Loaded at import (schemathesis' fixture-based loading breaks on pytest 9: it reads a private
# attribute pytest removed), so the app's database is a file made now and filled by the fixture below.
DB_URL = f"sqlite:///{Path(tempfile.mkdtemp(prefix='motcua-schemathesis-')) / 'hr.sqlite3'}"
ENGINE = db.engine_for(DB_URL)
schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(motcua_settings(), ENGINE)).include(
    path_regex=r"^/api/v1/hr/")



@pytest.fixture(scope="module", autouse=True)
def hr_data() -> Iterator[None]:
    """A final month (U-A, with an amendment) and a provisional one (U-B)."""
    upgrade(DB_URL)
    engine = ENGINE
    a, b = make_unit(engine, "U-A", officials=4), make_unit(engine, "U-B", officials=2)
    s = motcua_settings()
    with engine.begin() as conn:
        for unit in (a, b):
            for code in unit.officials:
                rate(conn, unit, code, [0, 1, 6])
        task_results.import_rows(conn, rows=[{"period": "2026-03", "official": "U-A-CB001", "key": "T1",
                                              "points": "2"}], policy=active_policy(conn, settings=s).policy,
                                 actor="test", source="api")
        lifecycle.close_month(conn, settings=s, period="2026-03", units=["U-A"], actor="test", now=AFTER_MARCH_REVIEWS)
        lifecycle.finalize_month(conn, period="2026-03", units=["U-A"], actor="test", now=AFTER_MARCH_REVIEWS)
        task_results.import_rows(conn, rows=[{"period": "2026-03", "official": "U-A-CB002", "key": "T1",
                                              "points": "3"}], policy=active_policy(conn, settings=s).policy,
                                 actor="test", source="api")
        lifecycle.amend_month(conn, settings=s, period="2026-03", unit="U-A", actor="test",
                              reason="task T1 of CB002 was missing", now=AFTER_MARCH_REVIEWS)
        TOKEN["value"] = registry.create_api_token(conn, name="hr", scopes=["read:scores"], actor="test")
    try:
        yield
    finally:
        ENGINE.dispose()


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_hr_api_conforms_to_its_own_schema(case: Any) -> None:
    # Cursors are opaque: a made-up one is refused (422) by design, which the positive-data check
    # would report; tests/evaluation/test_hr_api.py holds cursors to their contract instead.
    made_up_cursor = bool(case.query and "cursor" in case.query)
    case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN['value']}"},
                           excluded_checks=[positive_data_acceptance] if made_up_cursor else [])
