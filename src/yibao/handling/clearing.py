"""异地就医清算: monthly inter-region clearing statements from the settlements themselves.

A settlement is 异地 when the institution's 统筹区 (first four digits of its admdvs: the city) is
not the visit's 参保地 统筹区; 跨省 when the provinces differ. The 就医地 (treatment region) advanced
the fund and account payments to its hospitals (就医地垫付); the 参保地 (insured region) owes them
back (参保地清算). Amounts are the settlements' own fields, summed in fen; only settlements still
valid are counted, so a statement re-run after a reversal shows the reversal.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from yibao.errors import Problem
from yibao.handling.catalogue import HandlingError
from yibao.money import fen_to_yuan
from yibao.service.auth import Principal
from yibao.store.models import Institution, Settlement, Visit

AMOUNTS = ("medfee_sumamt", "fund_pay_sumamt", "hifp_pay", "hifmi_pay", "maf_pay", "acct_pay", "psn_cash_pay")


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
    q = (select(Settlement, Visit.insuplc_admdvs, Institution.admdvs)
         .join(Visit, Visit.mdtrt_id == Settlement.mdtrt_id)
         .join(Institution, Institution.fixmedins_code == Settlement.fixmedins_code)
         .where(Settlement.status == "valid", Settlement.setl_time >= datetime.combine(first, datetime.min.time()),
                Settlement.setl_time < datetime.combine(nxt, datetime.min.time()))
         .order_by(Settlement.setl_time, Settlement.setl_id))
    lines: dict[tuple[str, str], dict] = {}
    for s, insu, mdtrt in session.execute(q):
        insu_area, mdtrt_area = area(insu), area(mdtrt)
        if insu_area == mdtrt_area:
            continue
        line = lines.setdefault((mdtrt_area, insu_area), {"visits": 0, **{a: 0 for a in AMOUNTS}})
        line["visits"] += 1
        for a in AMOUNTS:
            line[a] += getattr(s, a)
    out_lines = []
    advanced: dict[str, int] = {}
    owed: dict[str, int] = {}
    for (mdtrt_area, insu_area), line in sorted(lines.items()):
        clear = line["fund_pay_sumamt"] + line["acct_pay"]
        advanced[mdtrt_area] = advanced.get(mdtrt_area, 0) + clear
        owed[insu_area] = owed.get(insu_area, 0) + clear
        out_lines.append({"mdtrt_area": mdtrt_area, "insu_area": insu_area,
                          "scope": "跨省" if mdtrt_area[:2] != insu_area[:2] else "省内",
                          "visits": line["visits"], **{a: fen_to_yuan(line[a]) for a in AMOUNTS},
                          "clearing_amt": fen_to_yuan(clear)})
    return {"month": month, "lines": out_lines,
            "advanced_by_mdtrt_area": {k: fen_to_yuan(v) for k, v in sorted(advanced.items())},  # 就医地垫付
            "owed_by_insu_area": {k: fen_to_yuan(v) for k, v in sorted(owed.items())}}  # 参保地清算
