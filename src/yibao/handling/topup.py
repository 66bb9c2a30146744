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

from yibao.enrolment import mutual
from yibao.errors import Problem
from yibao.handling.catalogue import HandlingError
from yibao.handling.models import HdPayment, HdPaymentEvent, HdTopup, payment_status
from yibao.money import fen_to_yuan
from yibao.service import ledger
from yibao.service.auth import Principal
from yibao.service.packs import PackSet
from yibao.institutions.in_force import pack_in_force
from yibao.service.transactions import _ITEMS_OF_VISIT, Context, _visit_context, audit, engine_inputs, new_id
from yibao.settlement import engine
from yibao.settlement.model import SETLINFO_FIELDS, Accumulators
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
        pack = pack_in_force(session, packs.pick(v.insuplc_admdvs, on), v.begntime.date())
        rows = session.execute(_ITEMS_OF_VISIT, {"mdtrt_id": s.mdtrt_id}).all()
        # exactly what the settlement gave the engine, with the facts as they stand now; the account as it was drawn
        inputs = engine_inputs(session, packs, pack, v, p, inst, cats, on, rows, s.acct_pay)
        stored = ledger.household_of_settlement(session, s.setl_id) if pack.uses_households else None
        household = _household_before(stored, s) if pack.uses_households else None
        result = engine.settle(pack, inputs.person, inputs.visit, acc, household)
        if pack.uses_households:
            _same_household_count(stored, pack, s, result)
        acc = result.accumulators_after
        out.append((s, result.setlinfo.as_dict()))
    return out, acc


def _household_before(stored, s: Settlement) -> Accumulators:
    """The household's accumulators as the settlement found them (家庭年度限额): its household ledger row
    (``stored``: ledger.household_of_settlement) values less its delta; empty when it counted nothing against a
    household cap (its re-run must count nothing too)."""
    return Accumulators(s.year) if stored is None else stored[3].minus(stored[2])


def _same_household_count(stored, pack, s: Settlement, result) -> None:
    """补差 of a pack with household caps re-runs the person's settlements on the household state each one found,
    and is made only when the re-run counts against every household cap exactly what the settlement did: the
    household's later settlements (other members' too) were capped on top of those amounts, and a 补差 moves
    only this person's year. Otherwise refused (HHD001), nothing written: the settlements concerned are
    reversed (后结先撤, the household's later ones first) and settled again under the new facts."""
    was = {} if stored is None else {k: v for k, v in stored[2].items() if v}
    now = {k: v for k, v in result.household_delta.items() if v}
    if now != was:
        def say(d: dict) -> str:
            return ", ".join(f"{k} {fen_to_yuan(v)} 元" for k, v in sorted(d.items())) or "0"
        raise HandlingError(Problem(
            "HHD001", "psn_no",
            f"政策包 {pack.id} 有家庭年度限额: 按现在的人员类别重算, 结算 {s.setl_id} 计入家庭累计的金额将由 "
            f"[{say(was)}] 变为 [{say(now)}]; 同户此后的结算是在原金额之上计算限额的, 不能只对参保人 {s.psn_no} 补差。"
            f"须按后结先撤撤销同户自该结算起的结算, 再按新的人员类别重新结算"))


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
    _pay_back(session, row, who.name, at)
    return row


def _pay_back(session: Session, row: HdTopup, by: str, at: datetime) -> None:
    """What the person overpaid goes back the way it was paid: cash by a payment order (支付单, its ``setl_id``
    the 补差 number), account money to the account (journal kind ``topup_acct``). A re-run that asks more of
    the person (facts withdrawn since) is shown on the statement and not collected here."""
    cash, account = -row.totals["psn_cash_pay"], -row.totals["acct_pay"]
    if cash > 0:
        session.add(HdPayment(payment_no=new_id("PO"), case_no=row.case_no, psn_no=row.psn_no, setl_id=row.topup_no,
                              amount_fen=cash, created_by=by, created_at=at))
    if account > 0:
        mutual.lock_balances(session, {row.psn_no})
        mutual.credit(session, row.psn_no, account, on=at.date(), kind="topup_acct", ref=row.topup_no, at=at, by=by)


def reverse_topup(session: Session, who: Principal, ctx: Context, topup_no: str) -> HdTopup:
    """撤销补差: undo a 补差 that is still the person-year's latest ledger movement — the accumulators move back,
    a reversing statement is added (insert-only), the account credit is taken back and a pending payment order
    is marked returned. Refused when anything was settled or reversed since (HDL102: undo those first), when the
    order was already paid (HDL103: recover it first), or when the account no longer holds the credit (HDL104)."""
    who.require("handling.topup_reverse")
    row = session.scalars(select(HdTopup).where(HdTopup.topup_no == topup_no)).first()
    if row is None or row.reverses:
        raise HandlingError(Problem("HDL100", "topup_no", f"补差单 {topup_no} 不存在"))
    if session.scalars(select(HdTopup).where(HdTopup.reverses == topup_no)).first() is not None:
        raise HandlingError(Problem("HDL101", "topup_no", f"补差单 {topup_no} 已撤销"))
    balance = ledger.lock_balance(session, row.psn_no, row.year)
    last = ledger.last_entry(session, balance)
    if last is None or last[0] != "topup":
        raise HandlingError(Problem("HDL102", "topup_no", f"补差单 {topup_no} 之后该参保人 {row.year} 年度又有结算或撤销; "
                                                          "须先按后结先撤撤销之后的结算"))
    orders = session.scalars(select(HdPayment).where(HdPayment.setl_id == topup_no)).all()
    for order in orders:
        status, _ = payment_status(session, order.payment_no)
        if status == "paid":
            raise HandlingError(Problem("HDL103", "topup_no", f"补差支付单 {order.payment_no} 已支付, 不能撤销补差; 须先追回"))
    account = -row.totals["acct_pay"]
    if account > 0:
        mutual.lock_balances(session, {row.psn_no})
        if not mutual.debit(session, row.psn_no, account, on=ctx.at.date(), kind="topup_rev", ref=topup_no,
                            at=ctx.at, by=who.name):
            raise HandlingError(Problem("HDL104", "topup_no", f"个人账户余额已不足以收回补差退回的 {fen_to_yuan(account)} 元"))
    undo = {k: -v for k, v in last[2].items()}
    ledger.post(session, balance, last[1], "topup_rev", undo, ledger.accumulators(balance).minus(last[2]), ctx.at)
    for order in orders:
        session.add(HdPaymentEvent(payment_no=order.payment_no, status="returned", on=ctx.at.date(),
                                   note=f"补差单 {topup_no} 已撤销", actor=who.name, at=ctx.at))
    back = HdTopup(topup_no=new_id("TU"), case_no=row.case_no, psn_no=row.psn_no, year=row.year,
                   lines=[{**ln, "diff": {k: -v for k, v in ln["diff"].items()}} for ln in row.lines],
                   totals={k: -v for k, v in row.totals.items()}, created_by=who.name, created_at=ctx.at,
                   reverses=topup_no)
    session.add(back)
    session.flush()
    audit(session, who, ctx, "handling.topup_reverse", "topup", topup_no, {"reversed_by": back.topup_no,
                                                                             "totals": back.totals})
    return back


def statement(row: HdTopup) -> dict:
    """The 补差 statement in yuan: each visit's difference and the total to pay."""
    def yuan(d: dict) -> dict:
        return {k: fen_to_yuan(v) for k, v in d.items()}
    return {"topup_no": row.topup_no, "case_no": row.case_no, "psn_no": row.psn_no, "year": row.year,
            "reverses": row.reverses,
            "lines": [{"setl_id": ln["setl_id"], "mdtrt_id": ln["mdtrt_id"], "setl_time": ln["setl_time"],
                       "diff": yuan(ln["diff"])} for ln in row.lines],
            "totals": yuan(row.totals)}
