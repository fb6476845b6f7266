"""The HR API contract: pagination, ETag/304, unit scoping, status and version in every row, exports (both backends)."""

from __future__ import annotations

import io
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from server import registry
from server.api.app import create_app
from server.evaluation import lifecycle, task_results
from server.evaluation.policies import active_policy
from tests.utils.evaluation import AFTER_MARCH_REVIEWS, make_unit, rate, settings


def token(engine: Engine, *scopes: str, units: list[str] | None = None) -> dict[str, str]:
    with engine.begin() as conn:
        value = registry.create_api_token(conn, name=f"hr-{'-'.join(units or ['all'])}", scopes=list(scopes),
                                          actor="test", units=units)
    return {"Authorization": f"Bearer {value}"}


@pytest.fixture
def client(engine: Engine) -> TestClient:
    """Unit A (7 officials) final for March 2026, unit B (4) still provisional."""
    a = make_unit(engine, "U-A", officials=7)
    b = make_unit(engine, "U-B", officials=4)
    with engine.begin() as conn:
        rows = []
        for unit in (a, b):
            for n, code in enumerate(unit.officials):
                rate(conn, unit, code, [0, n % 3, 8])
                rows.append({"period": "2026-03", "official": code, "key": "T1", "points": "3"})
                rows.append({"period": "2026-03", "official": code, "kind": "general", "key": "pham_chat",
                             "points": str(6 + n % 4)})
        task_results.import_rows(conn, rows=rows, policy=active_policy(conn, settings=settings()).policy,
                                 actor="test", source="api")
        lifecycle.close_month(conn, settings=settings(), period="2026-03", units=["U-A"], actor="test",
                              now=AFTER_MARCH_REVIEWS)
        lifecycle.finalize_month(conn, period="2026-03", units=["U-A"], actor="test", now=AFTER_MARCH_REVIEWS)
    return TestClient(create_app(settings(), engine))


def _walk(client: TestClient, headers: dict[str, str], limit: int, **params: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cursor = None
    for _ in range(50):
        query = {"period": "2026-03", "limit": str(limit), **params, **({"cursor": cursor} if cursor else {})}
        res = client.get("/api/v1/hr/scores", params=query, headers=headers)
        assert res.status_code == 200, res.text
        rows += res.json()["items"]
        cursor = res.json()["next_cursor"]
        if cursor is None:
            return rows
    raise AssertionError("the cursor never ended")


def test_cursor_pages_cover_every_official_once_in_a_stable_order(client: TestClient, engine: Engine) -> None:
    hr = token(engine, "read:scores")
    whole = _walk(client, hr, 500)
    assert len(whole) == 11
    for limit in (1, 2, 3, 7, 10):
        assert [r["official"] for r in _walk(client, hr, limit)] == [r["official"] for r in whole]
    assert {r["unit"]: r["status"] for r in whole} == {"U-A": "final", "U-B": "provisional"}
    assert {(r["status"], r["version"]) for r in whole} == {("final", 1), ("provisional", None)}
    final = [r for r in whole if r["status"] == "final"]
    assert all(len(r["digest"]) == 64 and r["policy"]["id"] == "nd335" for r in final)
    assert all(r["digest"] is None for r in whole if r["status"] == "provisional")
    assert sum(Decimal(v) for v in whole[0]["components"].values()) == Decimal(whole[0]["total"])


def test_the_api_sends_exactly_the_rows_the_export_reads(client: TestClient, engine: Engine) -> None:
    """The API splices stored summaries into JSON text; the export decodes them: both must be one row."""
    import json

    from server.db.types import utcnow
    from server.evaluation import reads

    with engine.connect() as conn:
        units = reads.visible_units(conn, visible=None, unit=None)
        now = utcnow()
        rows, _ = reads.scores_page(conn, settings=settings(), period="2026-03", units=units, status=None,
                                    after=(0, 0), limit=500, now=now, everything=True)
        texts, _ = reads.scores_page(conn, settings=settings(), period="2026-03", units=units, status=None,
                                     after=(0, 0), limit=500, now=now, everything=True, encoded=True)
    assert {r["status"] for r in rows} == {"final", "provisional"}  # both kinds of row are compared
    assert [json.loads(t) for t in texts] == rows
    served = _walk(client, token(engine, "read:scores"), 500)
    for row in (*served, *rows):  # live rows are stamped with the time of the request
        if row["status"] == "provisional":
            row.pop("scored_at")
    assert served == rows


def test_a_cursor_survives_a_unit_closing_between_two_pages(client: TestClient, engine: Engine) -> None:
    hr = token(engine, "read:scores")
    first = client.get("/api/v1/hr/scores", params={"period": "2026-03", "limit": "8"}, headers=hr).json()
    with engine.begin() as conn:
        lifecycle.close_month(conn, settings=settings(), period="2026-03", units=["U-B"], actor="test",
                              now=AFTER_MARCH_REVIEWS)
    rest = client.get("/api/v1/hr/scores", params={"period": "2026-03", "limit": "8", "cursor": first["next_cursor"]},
                      headers=hr).json()
    codes = [r["official"] for r in first["items"] + rest["items"]]
    assert len(codes) == len(set(codes)) == 11
    assert {r["status"] for r in rest["items"] if r["unit"] == "U-B"} == {"closed"}


def test_status_filter_and_cursor_misuse(client: TestClient, engine: Engine) -> None:
    hr = token(engine, "read:scores")
    assert {r["unit"] for r in _walk(client, hr, 3, status="final")} == {"U-A"}
    assert {r["unit"] for r in _walk(client, hr, 3, status="provisional")} == {"U-B"}
    assert _walk(client, hr, 3, status="amended") == []
    page = client.get("/api/v1/hr/scores", params={"period": "2026-03", "limit": "2"}, headers=hr).json()
    other = client.get("/api/v1/hr/scores", params={"period": "2026-03", "limit": "2", "status": "final",
                                                    "cursor": page["next_cursor"]}, headers=hr)
    assert other.status_code == 422 and "another query" in other.json()["error"]["message"]
    for bad in ("garbage", "eyJ4IjoxfQ", "W1ssMV0"):
        res = client.get("/api/v1/hr/scores", params={"period": "2026-03", "cursor": bad}, headers=hr)
        assert res.status_code == 422 and res.json()["error"]["code"] == "invalid"
    assert client.get("/api/v1/hr/scores", params={"period": "2026-13"}, headers=hr).status_code == 422


def test_etag_and_if_none_match(client: TestClient, engine: Engine) -> None:
    hr = token(engine, "read:scores")
    url, params = "/api/v1/hr/scores", {"period": "2026-03", "unit": "U-A"}
    first = client.get(url, params=params, headers=hr)
    tag = first.headers["etag"]
    assert tag.startswith('"') and first.headers["cache-control"] == "private, no-cache"
    again = client.get(url, params=params, headers={**hr, "If-None-Match": tag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == tag
    assert client.get(url, params=params, headers={**hr, "If-None-Match": f'"x", W/{tag}'}).status_code == 304
    assert client.get(url, params=params, headers={**hr, "If-None-Match": '"other"'}).status_code == 200
    detail = client.get("/api/v1/hr/scores/U-A-CB001", params={"period": "2026-03"}, headers=hr)
    assert client.get("/api/v1/hr/scores/U-A-CB001", params={"period": "2026-03"},
                      headers={**hr, "If-None-Match": detail.headers["etag"]}).status_code == 304
    with engine.begin() as conn:  # the amendment changes the body, so the tag
        task_results.import_rows(conn, rows=[{"period": "2026-03", "official": "U-A-CB001", "kind": "general",
                                              "key": "doi_moi", "points": "5"}],
                                 policy=active_policy(conn, settings=settings()).policy, actor="test", source="api")
        lifecycle.amend_month(conn, settings=settings(), period="2026-03", unit="U-A", actor="test",
                              reason="doi_moi points were missing", now=AFTER_MARCH_REVIEWS)
    changed = client.get(url, params=params, headers={**hr, "If-None-Match": tag})
    assert changed.status_code == 200 and changed.headers["etag"] != tag
    row = next(r for r in changed.json()["items"] if r["official"] == "U-A-CB001")
    assert (row["status"], row["version"]) == ("amended", 2)


def test_a_unit_token_never_sees_another_unit(client: TestClient, engine: Engine) -> None:
    only_a = token(engine, "read:scores", units=["U-A"])
    assert {r["unit"] for r in _walk(client, only_a, 2)} == {"U-A"}
    forbidden = client.get("/api/v1/hr/scores", params={"period": "2026-03", "unit": "U-B"}, headers=only_a)
    assert forbidden.status_code == 403 and forbidden.json()["error"]["code"] == "forbidden"
    assert client.get("/api/v1/hr/scores/U-B-CB001", params={"period": "2026-03"}, headers=only_a).status_code == 403
    assert client.get("/api/v1/hr/scores/U-A-CB001", params={"period": "2026-03"}, headers=only_a).status_code == 200
    months = client.get("/api/v1/hr/months/2026-03", headers=only_a).json()
    assert [m["unit"] for m in months] == ["U-A"] and months[0]["phase"] == "final"
    export = client.get("/api/v1/hr/scores/export", params={"period": "2026-03"}, headers=only_a)
    assert "U-B" not in export.content.decode("utf-8-sig")
    assert client.get("/api/v1/hr/years/2026", params={"unit": "U-B"}, headers=only_a).status_code == 403


def test_scopes(client: TestClient, engine: Engine) -> None:
    assert client.get("/api/v1/hr/scores", params={"period": "2026-03"}).status_code == 401
    reader = token(engine, "read")
    res = client.get("/api/v1/hr/scores", params={"period": "2026-03"}, headers=reader)
    assert res.status_code == 403 and "read:scores" in res.json()["error"]["message"]
    assert client.get("/api/v1/hr/scores", params={"period": "2026-03"},
                      headers=token(engine, "admin")).status_code == 200


def test_detail_explains_every_point(client: TestClient, engine: Engine) -> None:
    hr = token(engine, "read:scores")
    body = client.get("/api/v1/hr/scores/U-A-CB002", params={"period": "2026-03"}, headers=hr).json()
    result = body["result"]
    assert body["status"] == "final" and body["version"] == 1 and len(body["digest"]) == 64
    assert sum(Decimal(line["points"]) for line in result["lines"]) == Decimal(result["total"])
    subjects = {line["subject"] for line in result["lines"]}
    assert {"ratings:ho_tich", "task:T1", "input:general", "total"} <= subjects
    assert [v["version"] for v in body["versions"]] == [1]
    live = client.get("/api/v1/hr/scores/U-B-CB001", params={"period": "2026-03"}, headers=hr).json()
    assert live["status"] == "provisional" and live["version"] is None and live["result"]["lines"]
    assert client.get("/api/v1/hr/scores/NOBODY", params={"period": "2026-03"}, headers=hr).status_code == 404
    assert client.get("/api/v1/hr/scores/U-A-CB002", params={"period": "2026-03", "version": "9"},
                      headers=hr).status_code == 404


def test_csv_has_a_bom_and_xlsx_opens_with_openpyxl(client: TestClient, engine: Engine) -> None:
    from openpyxl import load_workbook

    hr = token(engine, "read:scores")
    csv_res = client.get("/api/v1/hr/scores/export", params={"period": "2026-03"}, headers=hr)
    assert csv_res.status_code == 200 and csv_res.headers["content-type"].startswith("text/csv")
    assert csv_res.content.startswith(b"\xef\xbb\xbf")  # UTF-8 BOM: Excel reads Vietnamese names right
    lines = csv_res.content.decode("utf-8-sig").splitlines()
    assert lines[0].startswith("Mã cán bộ,Họ và tên") and len(lines) == 12 and "Nguyễn Văn" in lines[1]
    assert 'filename="diem-danh-gia-2026-03.csv"' in csv_res.headers["content-disposition"]
    xlsx = client.get("/api/v1/hr/scores/export", params={"period": "2026-03", "format": "xlsx", "unit": "U-A"},
                      headers=hr)
    sheet = load_workbook(io.BytesIO(xlsx.content), read_only=True).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][:2] == ("Mã cán bộ", "Họ và tên") and len(rows) == 8
    assert isinstance(rows[1][7], float | int) and rows[1][5] == "final"  # totals are numbers Excel can sum


def test_year_endpoint_rolls_up_final_months(client: TestClient, engine: Engine) -> None:
    hr = token(engine, "read:scores")
    body = client.get("/api/v1/hr/years/2026", headers=hr).json()
    assert {r["unit"] for r in body["items"]} == {"U-A"}  # U-B has no final month yet
    first = body["items"][0]
    assert first["months"] == 1 and first["monthly_totals"] == {"2026-03": first["total"]}
    paged = client.get("/api/v1/hr/years/2026", params={"limit": "3"}, headers=hr).json()
    assert len(paged["items"]) == 3 and paged["next_cursor"]


def test_months_api_closes_finalizes_and_amends_for_admins_only(client: TestClient, engine: Engine) -> None:
    hr, admin = token(engine, "read:scores"), token(engine, "admin")
    refused = client.post("/api/v1/months/2026-03/close", json={"units": ["U-B"]}, headers=hr)
    assert refused.status_code == 403
    closed = client.post("/api/v1/months/2026-03/close", json={"units": ["U-B"]}, headers=admin)
    assert closed.status_code == 200 and closed.json()["closed"] == ["U-B"] and closed.json()["officials"] == 4
    assert client.post("/api/v1/months/2026-04/finalize", json={"units": ["U-B"]}, headers=admin).status_code == 409
    final = client.post("/api/v1/months/2026-03/finalize", json={}, headers=admin)
    assert final.json() == {"period": "2026-03", "finalized": ["U-B"]}
    nothing = client.post("/api/v1/months/2026-03/amendments", json={"unit": "U-B", "reason": "a check, no change"},
                          headers=admin)
    assert nothing.status_code == 409 and "nothing to amend" in nothing.json()["error"]["message"]
    too_early = client.post("/api/v1/months/2099-01/close", json={}, headers=admin)
    assert too_early.status_code == 409 and "not over yet" in too_early.json()["error"]["message"]
    tasks = token(engine, "tasks:write")
    numbers = client.post("/api/v1/tasks", json={"rows": [{"period": "2026-03", "official": "U-B-CB001",
                                                          "key": "T9", "points": 2.5}]}, headers=tasks)
    assert numbers.status_code == 200 and numbers.json()["closed_months"] == ["U-B/2026-03"]
    amended = client.post("/api/v1/months/2026-03/amendments", json={"unit": "U-B", "reason": "T9 came late"},
                          headers=admin)
    assert amended.status_code == 201 and {a["official"] for a in amended.json()} >= {"U-B-CB001"}
