"""A month's scores as files for HR: CSV (UTF-8 with BOM, so Excel shows Vietnamese names) and XLSX."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from server.evaluation import reads
from server.settings import Settings

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
PAGE = 2000  # rows fetched per page while collecting an export
HEADER = ["Mã cán bộ", "Họ và tên", "Đơn vị", "Nhóm nhiệm vụ", "Kỳ", "Trạng thái", "Phiên bản", "Tổng điểm",
          "Xếp loại", "Xếp loại trước hạn mức", "Tiêu chí chung", "Kết quả nhiệm vụ", "Thưởng/trừ",
          "Số lượt đánh giá", "Điểm hài lòng", "Ghi chú", "Chính sách", "Mã băm (SHA-256)"]


def all_rows(conn: Connection, *, settings: Settings, period: str, units: dict[int, str], status: str | None,
             now: datetime, everything: bool = False) -> list[dict[str, Any]]:
    """Every row of the listing, page after page."""
    rows: list[dict[str, Any]] = []
    after: tuple[int, int] | None = (0, 0)
    while after is not None:
        page, after = reads.scores_page(conn, settings=settings, period=period, units=units, status=status,
                                        after=after, limit=PAGE, now=now, everything=everything)
        rows += page
    return rows


def _cells(r: dict[str, Any]) -> list[Any]:
    sat = r["satisfaction"] or {}
    c = r["components"]
    return [r["official"], r["name"], r["unit"], r["duty_group"] or "", r["period"], r["status"],
            r["version"] if r["version"] is not None else "", r["total"], r["grade"], r["grade_before_caps"],
            c.get("general", ""), c.get("tasks", ""), c.get("adjustments", ""), sat.get("ratings", ""),
            sat.get("score", ""), " ".join(r["notes"]), f"{r['policy']['id']} {r['policy']['version']}",
            r["digest"] or ""]


def to_csv(rows: list[dict[str, Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")  # RFC 4180 line ends, what Excel writes
    writer.writerow(HEADER)
    writer.writerows(_cells(r) for r in rows)
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def to_xlsx(rows: list[dict[str, Any]], period: str) -> bytes:
    from decimal import Decimal

    from openpyxl import Workbook

    book = Workbook(write_only=True)  # streams rows: constant memory for a province's month
    sheet = book.create_sheet(title=f"Điểm {period}")
    sheet.append(HEADER)
    numeric = {7, 10, 11, 12, 14}  # totals and components as numbers, so Excel can sum and sort them
    for r in rows:
        cells = _cells(r)
        sheet.append([Decimal(v) if i in numeric and v != "" else v for i, v in enumerate(cells)])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
