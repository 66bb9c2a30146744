"""The statement (结算单) as a PDF: the same view as the HTML page, laid out on A4 for archiving.

Text is set in Adobe's CID font STSong-Light, which PDF viewers supply themselves, so the file
needs no embedded font (the machine has no CJK TrueType font) and stays a few kilobytes.
``invariant`` fixes the creation date and document id: one settlement, one byte-identical file.
"""

from __future__ import annotations

from functools import cache
from io import BytesIO
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER, TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.platypus import Paragraph, SimpleDocTemplate, Table, TableStyle

from yibao.service.statement_page import (DETAIL_AMOUNT, DETAIL_COLUMNS, DETAIL_HEADING, EXPLANATION_HEADING,
                                          SETLINFO_AMOUNT, SETLINFO_COLUMNS, SETLINFO_HEADING, TITLE,
                                          statement_view)

FONT = "STSong-Light"
MARGIN = 18 * mm
WIDTH = A4[0] - 2 * MARGIN
SETLINFO_WIDTHS = (0.30, 0.48, 0.22)  # shares of the text width
DETAIL_WIDTHS = (0.17, 0.17, 0.22, 0.44)


@cache
def styles() -> dict[str, ParagraphStyle]:
    """Registers the CID font once; ``wordWrap="CJK"`` lets Chinese lines break between any characters."""
    pdfmetrics.registerFont(UnicodeCIDFont(FONT))
    body = ParagraphStyle("body", fontName=FONT, fontSize=9.5, leading=13.5, wordWrap="CJK")
    return {
        "body": body,
        "title": ParagraphStyle("title", body, fontSize=16, leading=22, alignment=TA_CENTER, spaceAfter=4 * mm),
        "h2": ParagraphStyle("h2", body, fontSize=12, leading=16, spaceBefore=4 * mm, spaceAfter=2 * mm),
        "notice": ParagraphStyle("notice", body, textColor=colors.HexColor("#bb0000"), spaceAfter=2 * mm),
        "cell": ParagraphStyle("cell", body, fontSize=9, leading=12),
        "amount": ParagraphStyle("amount", body, fontSize=9, leading=12, alignment=TA_RIGHT),
        "item": ParagraphStyle("item", body, leftIndent=7 * mm, bulletIndent=0, spaceAfter=1.2 * mm),
    }


def _table(columns: tuple[str, ...], rows, amount: int, shares: tuple[float, ...]) -> Table:
    st = styles()
    body = [[Paragraph(escape(c), st["amount"] if i == amount else st["cell"]) for i, c in enumerate(row)]
            for row in (columns, *rows)]
    table = Table(body, colWidths=[WIDTH * s for s in shares], repeatRows=1)
    table.setStyle(TableStyle([
        ("GRID", (0, 0), (-1, -1), 0.5, colors.HexColor("#999999")),
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eeeeee")),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
    ]))
    return table


def render_pdf(record: dict, person: dict, institution: dict) -> bytes:
    """``person`` as in :func:`~yibao.service.statement_page.statement_view`: already masked for the caller."""
    v = statement_view(record, person, institution)
    st = styles()
    story = [Paragraph(TITLE, st["title"])]
    if v.reversed_notice is not None:
        story.append(Paragraph(escape(v.reversed_notice), st["notice"]))
    story += [Paragraph(escape(line), st["body"]) for line in v.header]
    story += [Paragraph(escape(SETLINFO_HEADING), st["h2"]),
              _table(SETLINFO_COLUMNS, v.setlinfo, SETLINFO_AMOUNT, SETLINFO_WIDTHS),
              Paragraph(escape(DETAIL_HEADING), st["h2"]),
              _table(DETAIL_COLUMNS, v.details, DETAIL_AMOUNT, DETAIL_WIDTHS),
              Paragraph(EXPLANATION_HEADING, st["h2"])]
    story += [Paragraph(escape(line), st["item"], bulletText=f"{n}.") for n, line in enumerate(v.explanation, 1)]

    def footer(canvas, doc) -> None:
        canvas.saveState()
        canvas.setFont(FONT, 8)
        canvas.drawRightString(A4[0] - MARGIN, 10 * mm, f"结算单 {v.setl_id} · 第 {doc.page} 页")
        canvas.restoreState()

    out = BytesIO()
    doc = SimpleDocTemplate(out, pagesize=A4, leftMargin=MARGIN, rightMargin=MARGIN, topMargin=MARGIN,
                            bottomMargin=MARGIN, title=f"结算单 {v.setl_id}", author="yibao", creator="yibao",
                            subject=TITLE, invariant=1)
    doc.build(story, onFirstPage=footer, onLaterPages=footer)
    return out.getvalue()
