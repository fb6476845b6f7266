"""Task results in: CSV and JSON rows checked row by row, all or nothing; the unit head's sheet; the CLI."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from server import registry
from server.api.app import create_app
from server.db.models import AUDIT, TASK_RESULTS
from server.evaluation import EvaluationError, task_results
from server.evaluation.policies import active_policy
from tests.utils.evaluation import make_unit, settings

GOOD = ("period,official,kind,key,label,points,completed,quality_failures,delays,objective_cause\r\n"
        "2026-03,P-MK-CB001,task,T1,Hồ sơ hộ tịch,4,yes,0,0,no\r\n"
        "2026-03,P-MK-CB001,task,T2,Chứng thực,\"2,5\",có,1,1,không\r\n"
        "2026-03,P-MK-CB001,general,pham_chat,,9.5,,,,\r\n"
        "2026-03,P-MK-CB002,bonus,B1,Hoàn thành sớm,1,,,,\r\n"
        "2026-03,P-MK-CB002,discipline,khien_trach,,,,,,\r\n")


def _import(engine: Engine, data: bytes, **kw: object) -> task_results.ImportReport:
    with engine.begin() as conn:
        rows = task_results.parse_csv(data)
        return task_results.import_rows(conn, rows=rows, policy=active_policy(conn, settings=settings()).policy,
                                        actor="test", source="csv", **kw)  # type: ignore[arg-type]


def _count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(TASK_RESULTS)).scalar_one())


def test_a_good_file_with_bom_decimal_comma_and_vietnamese_yes_no(engine: Engine) -> None:
    make_unit(engine, "P-MK", officials=2)
    report = _import(engine, ("\ufeff" + GOOD).encode("utf-8"))
    assert (report.rows, report.officials, report.periods) == (5, 2, ["2026-03"])
    with engine.connect() as conn:
        rows = {r.key: r for r in conn.execute(select(TASK_RESULTS))}
        audit = conn.execute(select(func.count()).select_from(AUDIT).where(AUDIT.c.action == "tasks.write")).scalar()
    assert str(rows["T2"].points) == "2.5" and rows["T2"].completed and rows["T2"].delays == 1
    assert rows["T2"].objective_cause is False and rows["T1"].label == "Hồ sơ hộ tịch"
    assert audit == 2  # one entry per official-month written


def test_every_bad_row_is_named_and_nothing_is_written(engine: Engine) -> None:
    make_unit(engine, "P-MK", officials=2)
    bad = ("period,official,kind,key,points,delays,completed\n"
           "2026-3,P-MK-CB001,task,T1,4,0,yes\n"          # row 2: period
           "2026-03,NOBODY,task,T1,4,0,yes\n"              # row 3: official
           "2026-03,P-MK-CB001,task,T2,abc,0,yes\n"        # row 4: points
           "2026-03,P-MK-CB001,task,T3,4,-1,yes\n"         # row 5: delays
           "2026-03,P-MK-CB001,general,thai_do_phuc_vu,3,,\n"  # row 6: not entered by the unit head
           "2026-03,P-MK-CB001,general,pham_chat,11,,\n"   # row 7: above max 10
           "2026-03,P-MK-CB001,discipline,tu_hinh,,,\n"    # row 8: no such measure
           "2026-03,P-MK-CB001,task,T9,1,0,maybe\n"        # row 9: completed
           "2026-03,P-MK-CB002,task,T1,1,0,yes\n"
           "2026-03,P-MK-CB002,task,T1,2,0,yes\n"          # row 11: duplicate of row 10
           "2026-03,P-MK-CB002,fine,T1,2,0,yes\n")         # row 12: kind
    with pytest.raises(EvaluationError) as caught:
        _import(engine, bad.encode())
    where = {(d["row"], d["column"]) for d in caught.value.details}
    assert where == {(2, "period"), (3, "official"), (4, "points"), (5, "delays"), (6, "key"), (7, "points"),
                     (8, "key"), (9, "completed"), (11, "key"), (12, "kind")}
    assert "nothing was imported" in str(caught.value) and "row 2" in str(caught.value)
    assert all(d["problem"] for d in caught.value.details)
    assert _count(engine) == 0


@pytest.mark.parametrize(("data", "problem"), [
    (b"period;official;key;points\n2026-03;P-MK-CB001;T1;4\n", None),  # semicolons (Excel in a comma-decimal locale)
    (b"period,official,key,colour\n", "unknown column(s) colour"),
    (b"official,key\n", "missing column(s) period"),
    ("period,official,key\n2026-03,Nguyễn,T1\n".encode("cp1258", errors="replace") + b"\xff", "not UTF-8"),
    (b"period,official,key\n2026-03,P-MK-CB001,T1,extra\n", "more values than columns"),
])
def test_file_level_problems(engine: Engine, data: bytes, problem: str | None) -> None:
    make_unit(engine, "P-MK", officials=1)
    if problem is None:
        assert _import(engine, data).rows == 1
        return
    with pytest.raises(EvaluationError, match=re.escape(problem)):
        _import(engine, data)


def test_upsert_replaces_same_keys_and_replace_clears_the_sheet(engine: Engine) -> None:
    make_unit(engine, "P-MK", officials=2)
    _import(engine, GOOD.encode())
    _import(engine, b"period,official,key,points\n2026-03,P-MK-CB001,T1,6\n")
    assert _count(engine) == 5
    _import(engine, b"period,official,key,points\n2026-03,P-MK-CB001,T7,1\n", mode="replace")
    with engine.connect() as conn:
        keys = sorted(conn.execute(select(TASK_RESULTS.c.key)).scalars())
    assert keys == ["B1", "T7", "khien_trach"]  # CB001's sheet is now just T7; CB002 untouched


def test_tasks_api_scoped_to_the_callers_units(engine: Engine) -> None:
    make_unit(engine, "P-MK", officials=2)
    make_unit(engine, "P-XX", officials=1)
    with engine.begin() as conn:
        mine = registry.create_api_token(conn, name="task-system", scopes=["tasks:write"], actor="test",
                                         units=["P-MK"])
        reader = registry.create_api_token(conn, name="hr", scopes=["read:scores"], actor="test")
    client = TestClient(create_app(settings(), engine))
    h = {"Authorization": f"Bearer {mine}"}
    ok = client.post("/api/v1/tasks", json={"rows": [{"period": "2026-03", "official": "P-MK-CB001", "key": "T1",
                                                     "points": "4"}]}, headers=h)
    assert ok.status_code == 200 and ok.json()["rows"] == 1
    other = client.post("/api/v1/tasks", json={"rows": [{"period": "2026-03", "official": "P-XX-CB001", "key": "T1",
                                                        "points": "4"}]}, headers=h)
    assert other.status_code == 422 and other.json()["error"]["details"][0]["column"] == "official"
    csv_res = client.post("/api/v1/tasks/csv?mode=upsert", content=GOOD.encode(), headers={**h,
                                                                                      "Content-Type": "text/csv"})
    assert csv_res.status_code == 200 and csv_res.json()["rows"] == 5
    assert client.post("/api/v1/tasks", json={"rows": []}, headers=h).status_code == 422
    assert client.post("/api/v1/tasks", json={"rows": [{"period": "2026-03", "official": "P-MK-CB001", "key": "T1",
                                                       "points": "4"}]},
                       headers={"Authorization": f"Bearer {reader}"}).status_code == 403
    sheet = {"tasks": [{"key": "T1", "label": "Hồ sơ", "points": "4"}, {"key": "T2", "points": "1", "delays": 2}],
             "general": {"pham_chat": "8"}, "discipline": [{"key": "khien_trach", "reference": "QĐ 12/2026"}]}
    put = client.put("/api/v1/tasks/2026-03/officials/P-MK-CB002", json=sheet, headers=h)
    assert put.status_code == 200, put.text
    body = put.json()
    assert [t["key"] for t in body["tasks"]] == ["T1", "T2"] and body["general"] == {"pham_chat": "8"}
    assert body["discipline"][0]["reference"] == "QĐ 12/2026" and body["tasks"][0]["source"] == "unit_head"
    assert client.get("/api/v1/tasks/2026-03/officials/P-MK-CB002", headers=h).json() == body
    assert client.put("/api/v1/tasks/2026-03/officials/P-MK-CB002", json={}, headers=h).json()["tasks"] == []
    assert client.get("/api/v1/tasks/2026-03/officials/P-XX-CB001", headers=h).status_code == 403
    assert client.put("/api/v1/tasks/2026-03/officials/P-MK-CB002", json={"general": {"pham_chat": "12"}},
                      headers=h).status_code == 422


def test_cli_import_reports_rows_to_fix(tmp_path: Path) -> None:
    from tests.evaluation.test_cli_months import Ran

    env = {"MOTCUA_MODE": "production", "MOTCUA_SECRET_KEY": "x" * 40,
           "MOTCUA_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite3'}"}

    def motcua(*args: str) -> Ran:
        return Ran(args, env)

    assert motcua("db", "upgrade").returncode == 0
    assert motcua("admin", "unit-add", "P-MK", "UBND phường Minh Khai").returncode == 0
    for code in ("P-MK-CB001", "P-MK-CB002"):
        assert motcua("admin", "official-add", "--unit", "P-MK", code, "Nguyễn Văn A").returncode == 0
    good = tmp_path / "tasks.csv"
    good.write_text(GOOD, encoding="utf-8-sig")
    done = motcua("tasks", "import", str(good))
    assert done.returncode == 0 and "imported 5 row(s) for 2 official(s), 2026-03" in done.stdout
    bad = tmp_path / "bad.csv"
    bad.write_text("period,official,key,points\n2026-03,P-MK-CB001,T1,four\n", encoding="utf-8")
    refused = motcua("tasks", "import", str(bad))
    assert refused.returncode == 2 and '"row": 2' in refused.stderr and "write points like 4" in refused.stderr
    shown = motcua("tasks", "show", "2026-03", "P-MK-CB001")
    assert '"T2"' in shown.stdout and '"2.5"' in shown.stdout
