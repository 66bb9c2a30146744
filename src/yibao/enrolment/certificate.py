"""参保证明 (certificate of enrolment) as an A4 PDF: the person's spells and contributions as of a date.

Same approach as the settlement statement (:mod:`yibao.service.statement_pdf`): the CID font
STSong-Light supplied by viewers, ``invariant`` so one input gives one byte-identical file. The
person's 证件号 and name come in already masked or not, as the caller may see them.
"""

from __future__ import annotations

from datetime import date
from io import BytesIO
from xml.sax.saxutils import escape

from reportlab.lib.pagesizes import A4
from reportlab.platypus import Paragraph, SimpleDocTemplate
from sqlalchemy import select
from sqlalchemy.orm import Session

from yibao.enrolment import facts as F
from yibao.enrolment import registry as er
from yibao.enrolment.models import Contribution
from yibao.money import fen_to_yuan
from yibao.service import registry
from yibao.service.auth import Principal
from yibao.service.statement_pdf import MARGIN, _table, styles

TITLE = "参保证明"


def certificate_view(session: Session, who: Principal, psn_no: str, on: date) -> dict:
    """What the certificate shows: identity (as ``who`` may see it), spells up to ``on``, contributions."""
    who.require("enrol.read")
    p = registry.person(session, psn_no)
    certno, name = who.identity(p.certno, p.psn_name)
    spells = []
    for insutype, fs in sorted(er.enrol_facts(session, psn_no).items()):
        for s in F.spells([f for f in fs if f.eff_date <= on]):
            if s.status != F.ACTIVE:
                continue
            spells.append((er.INSUTYPES.get(insutype, insutype), s.admdvs, s.start.isoformat(),
                           "至今" if s.end >= on else s.end.isoformat()))
        months = F.covered_months(fs, on)
        spells.append((er.INSUTYPES.get(insutype, insutype), "", f"截至 {on} 连续参保", f"{months} 个月"))
    paid = session.execute(select(Contribution.period, Contribution.scheme, Contribution.total_fen).where(
        Contribution.psn_no == psn_no, Contribution.status == "paid").order_by(Contribution.period)).all()
    return {"psn_no": psn_no, "certno": certno, "psn_name": name, "on": on.isoformat(), "spells": spells,
            "contributions": [(period, scheme, str(fen_to_yuan(total))) for period, scheme, total in paid]}


def render_certificate(view: dict) -> bytes:
    st = styles()
    story = [Paragraph(TITLE, st["title"]),
             Paragraph(escape(f"姓名: {view['psn_name']}    证件号码: {view['certno']}    人员编号: {view['psn_no']}"),
                       st["body"]),
             Paragraph(escape(f"兹证明该参保人截至 {view['on']} 的参保情况如下。"), st["body"]),
             Paragraph("参保记录", st["h2"]),
             _table(("险种", "参保地", "起", "止"), view["spells"] or [("—", "", "", "")], -1, (0.34, 0.16, 0.25, 0.25)),
             Paragraph("缴费记录", st["h2"]),
             _table(("所属期", "类别", "金额(元)"), view["contributions"] or [("—", "", "")], 2, (0.3, 0.4, 0.3))]
    out = BytesIO()
    doc = SimpleDocTemplate(out, pagesize=A4, leftMargin=MARGIN, rightMargin=MARGIN, topMargin=MARGIN,
                            bottomMargin=MARGIN, title=f"{TITLE} {view['psn_no']}", author="yibao", creator="yibao",
                            subject=TITLE, invariant=1)
    doc.build(story)
    return out.getvalue()
