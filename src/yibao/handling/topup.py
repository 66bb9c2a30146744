"""补差: when 依申请救助 is approved late, the year's earlier visits are re-settled as a difference.

The person's valid settlements of the year are run again through the same engine, in settlement
order, from the year's empty accumulators, with the person's categories as they stand now (the new
one included). Each visit's difference (new − paid) goes on a statement of its own (``hd_topups``);
the settlements are never edited. The accumulator balance moves to the re-run year's end by one
ledger entry (kind ``topup``, against the year's last settlement), so later visits continue from the corrected year. Account payments
are re-run with the balance each visit drew on then.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from yibao.handling.models import HdTopup
from yibao.money import fen_to_yuan
from yibao.service import ledger
from yibao.service.auth import Principal
from yibao.service.packs import PackSet
from yibao.service.transactions import _ITEMS_OF_VISIT, _engine_items, _visit_context, new_id
from yibao.settlement import engine
from yibao.settlement.model import SETLINFO_FIELDS, Accumulators
from yibao.settlement.model import Person as EnginePerson
from yibao.settlement.model import Visit as EngineVisit
from yibao.service import registry
from yibao.store.models import Settlement

MONEY = tuple(f for f in SETLINFO_FIELDS)


def rerun_year(session: Session, packs: PackSet, psn_no: str, year: int) -> tuple[list[tuple[Settlement, dict]], Accumulators]:
    """Each valid settlement of the year with what it would pay now (fen, setlinfo names), and the
    accumulators at the re-run year's end."""
    rows = session.scalars(select(Settlement).where(Settlement.psn_no == psn_no, Settlement.year == year,
                                                    Settlement.status == "valid")
                           .order_by(Settlement.setl_time, Settlement.setl_id)).all()
    acc = Accumulators(year)
    out = []
    for s in rows:
        on = s.setl_time.date()
        v, p, inst, _, cats = _visit_context(session, s.mdtrt_id, on, lock=False)
        pack = packs.pick(v.insuplc_admdvs, on)
        person = EnginePerson(v.psn_no, v.insutype, frozenset(c for c in cats if c in pack.categories),
                              p.retiree, registry.age_on(p.brdy, on), p.gend)
        visit = EngineVisit(mdtrt_id=s.mdtrt_id, med_type=s.med_type, level=inst.level, setl_date=on,
                            fixmedins_code=v.fixmedins_code, dise_codg=v.dise_codg,
                            referral_from_level=v.referral_from_level,
                            items=_engine_items(session.execute(_ITEMS_OF_VISIT, {"mdtrt_id": s.mdtrt_id}).all()),
                            acct_balance=s.acct_pay)
        result = engine.settle(pack, person, visit, acc)
        acc = result.accumulators_after
        out.append((s, result.setlinfo.as_dict()))
    return out, acc


def topup(session: Session, who: Principal, packs: PackSet, *, case_no: str, psn_no: str, year: int,
          at: datetime) -> HdTopup | None:
    """The 补差 statement of the year (None when nothing changes)."""
    redone, acc_after = rerun_year(session, packs, psn_no, year)
    lines, totals = [], {f: 0 for f in MONEY}
    for s, new in redone:
        diff = {f: new[f] - getattr(s, f) for f in MONEY}
        if any(diff.values()):
            lines.append({"setl_id": s.setl_id, "mdtrt_id": s.mdtrt_id, "setl_time": s.setl_time.isoformat(),
                          "before": {f: getattr(s, f) for f in MONEY}, "after": new, "diff": diff})
        for f in MONEY:
            totals[f] += diff[f]
    if not lines:
        return None
    row = HdTopup(topup_no=new_id("TU"), case_no=case_no, psn_no=psn_no, year=year, lines=lines, totals=totals,
                  created_by=who.name, created_at=at)
    session.add(row)
    balance = ledger.lock_balance(session, psn_no, year)
    before = ledger.accumulators(balance).values
    delta = {k: acc_after.values.get(k, 0) - before.get(k, 0) for k in set(before) | set(acc_after.values)}
    # the ledger names a settlement: the year's last re-run one (the correction applies after it)
    ledger.post(session, balance, redone[-1][0].setl_id, "topup", {k: d for k, d in delta.items() if d}, acc_after, at)
    return row


def statement(row: HdTopup) -> dict:
    """The 补差 statement in yuan: each visit's difference and the total to pay."""
    def yuan(d: dict) -> dict:
        return {k: fen_to_yuan(v) for k, v in d.items()}
    return {"topup_no": row.topup_no, "case_no": row.case_no, "psn_no": row.psn_no, "year": row.year,
            "lines": [{"setl_id": ln["setl_id"], "mdtrt_id": ln["mdtrt_id"], "setl_time": ln["setl_time"],
                       "diff": yuan(ln["diff"])} for ln in row.lines],
            "totals": yuan(row.totals)}
