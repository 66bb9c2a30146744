"""Excel workbooks of payment and fund reports: one sheet per table, money as exact numbers.

Rows are dicts; ``Decimal`` values are written as numbers shown ``#,##0.00`` (yuan with two
decimals), everything else as is. openpyxl's write-only mode streams rows to the file instead of
keeping a cell object per value, so a report of thousands of institutions takes a fraction of a
second.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

MONEY = "#,##0.00"


def write_sheets(path: Path, sheets: dict[str, list[dict]]) -> Path:
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font, PatternFill
    from openpyxl.utils import get_column_letter

    wb = Workbook(write_only=True)
    bold, fill = Font(bold=True), PatternFill("solid", fgColor="DDE4EE")
    for title, rows in sheets.items():
        ws = wb.create_sheet(title[:31])
        if not rows:
            ws.append(["(无 none)"])
            continue
        header = list(rows[0])
        money = [any(isinstance(r.get(h), Decimal) for r in rows[:50]) for h in header]
        for i, h in enumerate(header, start=1):
            ws.column_dimensions[get_column_letter(i)].width = max(10, min(40, len(str(h)) + 4))
        ws.freeze_panes = "A2"
        head = []
        for h in header:
            cell = WriteOnlyCell(ws, value=h)
            cell.font, cell.fill = bold, fill
            head.append(cell)
        ws.append(head)
        for row in rows:
            out = []
            for h, m in zip(header, money):
                value = row.get(h)
                if m and isinstance(value, Decimal):
                    cell = WriteOnlyCell(ws, value=value)
                    cell.number_format = MONEY
                    out.append(cell)
                else:
                    out.append(value)
            ws.append(out)
    wb.save(path)
    return path
