"""simulation.xlsx: one sheet per table of :mod:`yibao.simulation.tables`, Chinese headers.

Money cells are numbers in yuan with two decimals (exact: written from ``Decimal``), so a reader
can sum and chart them in Excel; percentages are numbers in percent.
"""

from __future__ import annotations

from pathlib import Path

from yibao.simulation.result import SimulationResult
from yibao.simulation.tables import Sheet, all_sheets

FORMATS = {"money": "#,##0.00", "delta": "+#,##0.00;-#,##0.00;0.00", "count": "#,##0", "pct": "0.00",
           "chg": "+0.00;-0.00;0.00", "points": "+0.00;-0.00;0.00"}


def _write_sheet(ws, sheet: Sheet) -> None:
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    ws.append([c.header for c in sheet.columns])
    for cell in ws[1]:
        cell.font = Font(bold=True)
        cell.fill = PatternFill("solid", fgColor="DDE4EE")
        cell.alignment = Alignment(wrap_text=True, vertical="center")
    for row in sheet.rows:
        ws.append(row)
    for idx, col in enumerate(sheet.columns, start=1):
        letter = get_column_letter(idx)
        fmt = FORMATS.get(col.kind)
        if fmt is None and col.kind == "any":
            fmt = "#,##0.00"
        if fmt:
            for (cell,) in ws.iter_rows(min_row=2, min_col=idx, max_col=idx):
                if isinstance(cell.value, (int, float)) or type(cell.value).__name__ == "Decimal":
                    cell.number_format = fmt if not (col.kind == "any" and isinstance(cell.value, int)) else "#,##0"
        width = max(len(col.header) * 2, *(len(str(r[idx - 1])) for r in sheet.rows)) if sheet.rows else len(col.header) * 2
        ws.column_dimensions[letter].width = min(48, max(10, width + 2))
    ws.freeze_panes = "C2" if len(sheet.columns) > 8 else "A2"
    if sheet.note:
        ws.append([])
        ws.append([f"说明: {sheet.note}"])


def write_workbook(result: SimulationResult, path: Path) -> Path:
    from openpyxl import Workbook

    wb = Workbook()
    wb.remove(wb.active)
    for sheet in all_sheets(result):
        _write_sheet(wb.create_sheet(sheet.title), sheet)
    wb.save(path)
    return path
