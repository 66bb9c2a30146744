"""Fee lines from a CSV or Excel file, checked line by line with the API's own model (FeeItemIn).

Columns are the platform's field names (``feedetl_sn, med_list_codg, chrgitm_lv, pric, cnt,
det_item_fee_sumamt``, optional ``preselfpay_ratio``) or their Chinese headings. The whole file is
refused when any line is wrong, with every wrong line's number and field, so nothing is half-uploaded.
"""

from __future__ import annotations

import csv
import io
from decimal import Decimal

from pydantic import ValidationError

from yibao.errors import Problem, pydantic_problems
from yibao.service.rest import FeeLineIn

HEADINGS = {
    "费用明细流水号": "feedetl_sn", "医疗目录编码": "med_list_codg", "收费项目等级": "chrgitm_lv", "单价": "pric",
    "数量": "cnt", "明细项目费用总额": "det_item_fee_sumamt", "金额": "det_item_fee_sumamt", "先行自付比例": "preselfpay_ratio",
}
COLUMNS = ("feedetl_sn", "med_list_codg", "chrgitm_lv", "pric", "cnt", "det_item_fee_sumamt", "preselfpay_ratio")
MAX_LINES = 5000
MAX_BYTES = 2_000_000


def read_rows(name: str, data: bytes) -> list[list[str]]:
    if len(data) > MAX_BYTES:
        raise ValueError(f"文件超过 {MAX_BYTES // 1_000_000} MB")
    if name.lower().endswith((".xlsx", ".xlsm")):
        from openpyxl import load_workbook
        try:
            sheet = load_workbook(io.BytesIO(data), read_only=True, data_only=True).worksheets[0]
        except Exception as exc:  # noqa: BLE001 - any unreadable workbook is the user's file, not our bug
            raise ValueError(f"无法读取 Excel 文件: {exc.__class__.__name__}") from None
        return [["" if v is None else str(v) for v in row] for row in sheet.iter_rows(values_only=True)]
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = data.decode("gb18030")
        except UnicodeDecodeError:
            raise ValueError("文件编码无法识别(应为 UTF-8 或 GB18030 的 CSV, 或 .xlsx)") from None
    return [row for row in csv.reader(io.StringIO(text))]


def parse(name: str, data: bytes) -> tuple[list[FeeLineIn], list[Problem]]:
    """(lines, problems): problems name the file's line number (header = 1) and the field."""
    try:
        rows = [r for r in read_rows(name, data) if any(c.strip() for c in r)]
    except ValueError as exc:
        return [], [Problem("WEB020", "file", str(exc))]
    if not rows:
        return [], [Problem("WEB021", "file", "文件为空")]
    header = [HEADINGS.get(h.strip(), h.strip()) for h in rows[0]]
    missing = [c for c in ("feedetl_sn", "med_list_codg", "det_item_fee_sumamt") if c not in header]
    if missing:
        return [], [Problem("WEB022", "file", f"表头缺少列 {', '.join(missing)}(第 1 行应为列名: {', '.join(COLUMNS)})")]
    unknown = [h for h in header if h and h not in COLUMNS]
    if unknown:
        return [], [Problem("WEB023", "file", f"未知列 {', '.join(unknown)}; 可用列: {', '.join(COLUMNS)}")]
    if len(rows) - 1 > MAX_LINES:
        return [], [Problem("WEB024", "file", f"最多 {MAX_LINES} 行明细, 实际 {len(rows) - 1} 行")]
    lines, problems = [], []
    for n, row in enumerate(rows[1:], start=2):
        raw = {h: (row[i].strip() if i < len(row) else "") for i, h in enumerate(header) if h}
        raw = {k: v for k, v in raw.items() if v != ""}
        try:
            lines.append(FeeLineIn(**raw))
        except ValidationError as exc:
            problems += [Problem(p.code, f"file:第{n}行.{p.path}", p.message) for p in pydantic_problems(exc, "WEB025")]
    return lines, problems


def line_from_form(form) -> FeeLineIn:
    raw = {c: str(form.get(c, "")).strip() for c in COLUMNS}
    raw = {k: v for k, v in raw.items() if v != ""}
    if "det_item_fee_sumamt" not in raw and "pric" in raw:
        try:  # the amount may be left to price × count
            raw["det_item_fee_sumamt"] = str((Decimal(raw["pric"]) * Decimal(raw.get("cnt", "1"))).quantize(Decimal("0.01")))
        except ArithmeticError:
            pass
    return FeeLineIn(**raw)
