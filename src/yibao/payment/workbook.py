"""Excel workbooks of payment and fund reports: one sheet per table, money as exact numbers.

Rows are dicts; ``Decimal`` values are written as numbers (yuan with two decimals stay exact in
the cell's text form), everything else as is.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path


def write_sheets(path: Path, sheets: dict[str, list[dict]]) -> Path:
    from openpyxl import Workbook
    from openpyxl.styles import Font, PatternFill

    wb = Workbook()
    wb.remove(wb.active)
    for title, rows in sheets.items():
        ws = wb.create_sheet(title[:31])
        if not rows:
            ws.append(["(无 none)"])
            continue
        header = list(rows[0])
        ws.append(header)
        for cell in ws[1]:
            cell.font = Font(bold=True)
            cell.fill = PatternFill("solid", fgColor="DDE4EE")
        for row in rows:
            ws.append([row.get(h) for h in header])
        for idx, h in enumerate(header, start=1):
            if any(isinstance(r.get(h), Decimal) for r in rows[:50]):
                for (cell,) in ws.iter_rows(min_row=2, min_col=idx, max_col=idx):
                    cell.number_format = "#,##0.00"
            ws.column_dimensions[ws.cell(1, idx).column_letter].width = max(10, min(40, len(str(h)) + 4))
        ws.freeze_panes = "A2"
    wb.save(path)
    return path
