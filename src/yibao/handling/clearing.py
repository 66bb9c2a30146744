"""异地就医清算: monthly inter-region clearing statements from the settlements themselves.

A settlement is 异地 when the institution's 统筹区 (first four digits of its admdvs: the city) is
not the visit's 参保地 统筹区; 跨省 when the provinces differ. The 就医地 (treatment region) advanced
the fund and account payments to its hospitals (就医地垫付); the 参保地 (insured region) owes them
back (参保地清算). Amounts are the settlements' own fields, summed in fen; only settlements still
valid are counted, so a statement re-run after a reversal shows the reversal.

Once sent, a statement is **issued** (:func:`issue`): stored as it was, never edited. If the month's
settlements change afterwards (a reversal, a late settlement), the live statement differs from the issued
one; issuing again makes a new version, and a new version must say why (the correction).
"""

from __future__ import annotations

import json
from datetime import date, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from yibao.enrolment import mutual
from yibao.errors import Problem
from yibao.handling.catalogue import HandlingError
from yibao.handling.models import HdClearing
from yibao.money import fen_to_yuan
from yibao.service.auth import Principal
from yibao.service.transactions import Context, audit
from yibao.settlement.statement import compact_json
from yibao.store.models import Institution, Settlement, Visit

AMOUNTS = ("medfee_sumamt", "fund_pay_sumamt", "hifp_pay", "hifmi_pay", "maf_pay", "acct_pay", "acct_mulaid_pay",
           "psn_cash_pay")


def area(admdvs: str) -> str:
    """The 统筹区 of a region code: its city (``370102`` → ``370100``)."""
    return admdvs[:4] + "00"


def clearing_statement(session: Session, who: Principal, month: str) -> dict:
    who.require("handling.clearing")  # bureau staff only: it spans every institution
    try:
        first = datetime.strptime(month, "%Y-%m").date()
    except ValueError:
        raise HandlingError(Problem("HDL070", "month", f"月份应为 YYYY-MM, 实际为 {month!r}")) from None
    nxt = date(first.year + (first.month == 12), first.month % 12 + 1, 1)
    mulaid = mutual.paid_by_settlement()  # 家庭共济 account money the institution was paid with, like acct_pay
    q = (select(Settlement, Visit.insuplc_admdvs, Institution.admdvs, func.coalesce(mulaid.c.amount, 0))
         .join(Visit, Visit.mdtrt_id == Settlement.mdtrt_id)
         .join(Institution, Institution.fixmedins_code == Settlement.fixmedins_code)
         .outerjoin(mulaid, mulaid.c.ref == Settlement.setl_id)
         .where(Settlement.status == "valid", Settlement.setl_time >= datetime.combine(first, datetime.min.time()),
                Settlement.setl_time < datetime.combine(nxt, datetime.min.time()))
         .order_by(Settlement.setl_time, Settlement.setl_id))
    lines: dict[tuple[str, str], dict] = {}
    for s, insu, mdtrt, acct_mulaid in session.execute(q):
        insu_area, mdtrt_area = area(insu), area(mdtrt)
        if insu_area == mdtrt_area:
            continue
        line = lines.setdefault((mdtrt_area, insu_area), {"visits": 0, **{a: 0 for a in AMOUNTS}})
        line["visits"] += 1
        for a in AMOUNTS:
            line[a] += int(acct_mulaid) if a == "acct_mulaid_pay" else getattr(s, a)
    out_lines = []
    advanced: dict[str, int] = {}
    owed: dict[str, int] = {}
    for (mdtrt_area, insu_area), line in sorted(lines.items()):
        clear = line["fund_pay_sumamt"] + line["acct_pay"] + line["acct_mulaid_pay"]
        advanced[mdtrt_area] = advanced.get(mdtrt_area, 0) + clear
        owed[insu_area] = owed.get(insu_area, 0) + clear
        out_lines.append({"mdtrt_area": mdtrt_area, "insu_area": insu_area,
                          "scope": "跨省" if mdtrt_area[:2] != insu_area[:2] else "省内",
                          "visits": line["visits"], **{a: fen_to_yuan(line[a]) for a in AMOUNTS},
                          "clearing_amt": fen_to_yuan(clear)})
    return {"month": month, "lines": out_lines,
            "advanced_by_mdtrt_area": {k: fen_to_yuan(v) for k, v in sorted(advanced.items())},  # 就医地垫付
            "owed_by_insu_area": {k: fen_to_yuan(v) for k, v in sorted(owed.items())}}  # 参保地清算


class ClearingConflict(HandlingError):
    title = "清算单未变"
    status = 409


def _as_stored(statement: dict) -> dict:
    """The statement as JSON holds it (amounts as exact decimal strings), so issued and live compare equal."""
    return json.loads(compact_json(statement))


def issue(session: Session, who: Principal, ctx: Context, month: str, note: str = "") -> dict:
    """Freeze the month's statement as sent: version 1, or a new version when the settlements changed since
    the last one (``note`` then says why: HDL072); nothing changed → HDL071, nothing written."""
    who.require("handling.clearing_issue")
    live = _as_stored(clearing_statement(session, who, month))
    last = session.scalars(select(HdClearing).where(HdClearing.month == month)
                           .order_by(HdClearing.version.desc()).with_for_update().limit(1)).first()
    if last is not None and last.statement == live:
        raise ClearingConflict(Problem("HDL071", "month", f"{month} 的清算单与已出具的第 {last.version} 版相同, 无需再出具"))
    if last is not None and not note.strip():
        raise HandlingError(Problem("HDL072", "note", f"{month} 已出具第 {last.version} 版; 更正须写明原因(如撤销结算)"))
    row = HdClearing(month=month, version=1 if last is None else last.version + 1, statement=live,
                     note=note.strip()[:200], issued_by=who.name, issued_at=ctx.at)
    session.add(row)
    session.flush()
    audit(session, who, ctx, "handling.clearing_issue", "clearing", f"{month}#{row.version}",
          {"month": month, "version": row.version, "note": row.note})
    return issued_record(row)


def issued_record(row: HdClearing) -> dict:
    return {"month": row.month, "version": row.version, "note": row.note, "issued_by": row.issued_by,
            "issued_at": row.issued_at.isoformat(timespec="seconds"), "statement": row.statement}


def issued(session: Session, who: Principal, month: str) -> dict:
    """Every issued version of the month (oldest first) and whether the live statement still equals the latest."""
    who.require("handling.clearing")
    rows = session.scalars(select(HdClearing).where(HdClearing.month == month).order_by(HdClearing.version)).all()
    live = _as_stored(clearing_statement(session, who, month))
    return {"month": month, "versions": [issued_record(r) for r in rows],
            "live_equals_latest": bool(rows) and rows[-1].statement == live}
