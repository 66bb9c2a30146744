"""Monthly settlement applications, advances, year-end clearing and payments, in the store.

A month's applications are built by one SQL aggregation over ``settlements`` (per institution: the count
and each fund's share of the settlements made in the month, and of the reversals made in it), so a month
of a million settlements is one scan, not a million ORM objects (``yibao bench institutions`` compares
the two). Every payment out — an application paid, an advance — is an insert into ``ins_fund_ledger``.
Each function runs in the caller's transaction and writes nothing when it raises.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from sqlalchemy import and_, case, extract, func, or_, select
from sqlalchemy.orm import Session

from yibao.errors import Problem
from yibao.institutions.models import InsAdvance, InsAdvanceOffset, InsFundLedger, InsSettleApp
from yibao.institutions.payments import (ACTION_ZH, FLAG_ZH, FUNDS, STATUS_ZH, STEPS, PaymentConflict, PaymentError,
                                         PaymentNotFound, deadline, month_bounds, months_between, offset_due,
                                         step_problems, timeliness)
from yibao.money import fen_to_yuan, yuan_to_fen
from yibao.service.auth import Principal
from yibao.service.transactions import Context, audit, new_id
from yibao.store.models import Institution, Settlement

_S = Settlement.__table__


def month_totals_query(start: datetime, end: datetime, fixmedins_code: str | None = None):
    """Per institution: settlements and reversals in [start, end) and each fund's share of both."""
    in_setl = and_(_S.c.setl_time >= start, _S.c.setl_time < end)
    in_revs = and_(_S.c.revs_time >= start, _S.c.revs_time < end)
    cols = [_S.c.fixmedins_code.label("fixmedins_code"),
            func.sum(case((in_setl, 1), else_=0)).label("setl_cnt"),
            func.sum(case((in_revs, 1), else_=0)).label("revs_cnt")]
    for fund, (_name, fields) in FUNDS.items():
        amount = sum((_S.c[f] for f in fields[1:]), _S.c[fields[0]])
        cols += [func.sum(case((in_setl, amount), else_=0)).label(f"{fund}_settled"),
                 func.sum(case((in_revs, amount), else_=0)).label(f"{fund}_reversed")]
    q = select(*cols).where(or_(in_setl, in_revs))
    if fixmedins_code is not None:
        q = q.where(_S.c.fixmedins_code == fixmedins_code)
    return q.group_by(_S.c.fixmedins_code).order_by(_S.c.fixmedins_code)


def month_totals(session: Session, month: str, fixmedins_code: str | None = None) -> list[dict]:
    first, after = month_bounds(month)
    start, end = datetime.combine(first, datetime.min.time()), datetime.combine(after, datetime.min.time())
    return [{k: (int(v) if k != "fixmedins_code" else v) for k, v in r._mapping.items()}
            for r in session.execute(month_totals_query(start, end, fixmedins_code))]


def _outstanding(session: Session, code: str, fund: str, before: date) -> list[tuple[InsAdvance, int]]:
    """The institution's advances of the fund paid before ``before``, each with what has been offset so far
    (offsets on rejected applications do not count)."""
    advances = session.scalars(select(InsAdvance).where(InsAdvance.fixmedins_code == code, InsAdvance.fund == fund,
                                                        InsAdvance.paid_on < before)
                               .order_by(InsAdvance.paid_on, InsAdvance.id)).all()
    out = []
    for adv in advances:
        done = session.scalar(select(func.coalesce(func.sum(InsAdvanceOffset.amount_fen), 0))
                              .join(InsSettleApp, InsSettleApp.app_no == InsAdvanceOffset.app_no)
                              .where(InsAdvanceOffset.advance_no == adv.advance_no, InsSettleApp.status != "rejected"))
        if int(done) < adv.amount_fen:
            out.append((adv, int(done)))
    return out


def _offsets(session: Session, code: str, fund: str, month_first: date, gross: int, clearing: bool
             ) -> list[tuple[str, int]]:
    """(advance_no, amount) offsets for an application of ``gross`` fen: what is due (all of it at clearing)."""
    room = max(0, gross)
    out = []
    for adv, done in _outstanding(session, code, fund, month_first):
        due = adv.amount_fen if clearing else offset_due(adv.amount_fen, adv.offset_months,
                                                         months_between(adv.paid_on, month_first))
        take = min(due - done, room)
        if take > 0:
            out.append((adv.advance_no, take))
            room -= take
    return out


def _new_app(session: Session, who: Principal, ctx: Context, *, code: str, month: str, fund: str, kind: str,
             setl_cnt: int, revs_cnt: int, settled: int, reversed_: int, adjustment: int, offsets: list[tuple[str, int]],
             note: str = "") -> InsSettleApp:
    offset = sum(a for _, a in offsets)
    today = ctx.at.date()
    row = InsSettleApp(app_no=new_id("SA"), fixmedins_code=code, month=month, fund=fund, kind=kind, setl_cnt=setl_cnt,
                       revs_cnt=revs_cnt, settled_fen=settled, reversed_fen=reversed_, adjustment_fen=adjustment,
                       offset_fen=offset, payable_fen=settled - reversed_ + adjustment - offset, status="applied",
                       received_on=today, deadline=deadline(today), note=note, created_by=who.name, created_at=ctx.at)
    session.add(row)
    session.flush()
    for advance_no, amount in offsets:
        session.add(InsAdvanceOffset(advance_no=advance_no, app_no=row.app_no, amount_fen=amount))
    return row


def _existing(session: Session, month: str, code: str | None) -> set[tuple[str, str]]:
    q = select(InsSettleApp.fixmedins_code, InsSettleApp.fund).where(InsSettleApp.month == month,
                                                                    InsSettleApp.status != "rejected")
    if code is not None:
        q = q.where(InsSettleApp.fixmedins_code == code)
    return {(c, f) for c, f in session.execute(q)}


def build_month(session: Session, who: Principal, ctx: Context, *, month: str,
                fixmedins_code: str | None = None) -> dict:
    """月度结算申请: one application per institution and fund with money in the month (an institution
    builds only its own; staff may build every institution's at once). Pairs already applied are skipped."""
    if who.role == "institution":
        fixmedins_code = fixmedins_code or who.fixmedins_code
    who.require("payment.apply", fixmedins_code)
    first, after = month_bounds(month)
    if after > ctx.at.date():
        raise PaymentError(Problem("INS203", "month", f"{month} 尚未结束(今天 {ctx.at.date()}), 月度结算申请须在次月提出"))
    existing = _existing(session, month, fixmedins_code)
    made, skipped = [], []
    for t in month_totals(session, month, fixmedins_code):
        for fund in FUNDS:
            settled, reversed_ = t[f"{fund}_settled"], t[f"{fund}_reversed"]
            if not settled and not reversed_:
                continue
            if (t["fixmedins_code"], fund) in existing:
                skipped.append({"fixmedins_code": t["fixmedins_code"], "fund": fund})
                continue
            offsets = _offsets(session, t["fixmedins_code"], fund, first, settled - reversed_, clearing=False)
            made.append(_new_app(session, who, ctx, code=t["fixmedins_code"], month=month, fund=fund, kind="monthly",
                                 setl_cnt=t["setl_cnt"], revs_cnt=t["revs_cnt"], settled=settled, reversed_=reversed_,
                                 adjustment=0, offsets=offsets))
    if not made:
        raise PaymentConflict(Problem("INS202", "month", f"{month} 没有可申请的结算费用"
                                      + (f"(已申请 {len(skipped)} 项)" if skipped else "")))
    audit(session, who, ctx, "payment.apply", "settle_month", month,
          {"fixmedins_code": fixmedins_code, "applications": [r.app_no for r in made], "skipped": len(skipped)})
    return {"month": month, "applications": [app_record(r, ctx.at.date()) for r in made], "skipped": skipped}


def _app(session: Session, app_no: str, lock: bool = True) -> InsSettleApp:
    q = select(InsSettleApp).where(InsSettleApp.app_no == app_no)
    row = session.scalar(q.with_for_update(of=InsSettleApp) if lock else q)
    if row is None:
        raise PaymentNotFound(Problem("INS200", "app_no", f"结算申请 {app_no} 不存在"))
    return row


def act(session: Session, who: Principal, ctx: Context, *, app_no: str, action: str, note: str = "",
        paid_on: date | None = None) -> dict:
    """初审 review / 退回 reject → 审批 approve (not by the reviewer) → 支付指令 order → 拨付 pay (posted to the ledger)."""
    if action not in STEPS:
        raise PaymentError(step_problems(action, "", {}, who.name))
    who.require(STEPS[action][2])
    row = _app(session, app_no)
    problems = step_problems(action, row.status, {"reviewed_by": row.reviewed_by}, who.name)
    if problems:
        raise PaymentConflict(problems)
    today = ctx.at.date()
    if action in ("review", "reject"):
        row.reviewed_by, row.reviewed_on = who.name, today
    elif action == "approve":
        row.approved_by, row.approved_on = who.name, today
    elif action == "order":
        row.order_no, row.ordered_on = new_id("PO"), today
    elif action == "pay":
        paid_on = paid_on or today
        if paid_on > today or (row.ordered_on is not None and paid_on < row.ordered_on):
            raise PaymentError(Problem("INS213", "paid_on", f"拨付日期 {paid_on} 须在支付指令日期 {row.ordered_on} 与今天 {today} 之间"))
        row.paid_on = paid_on
        session.add(InsFundLedger(posted_on=paid_on, fund=row.fund, fixmedins_code=row.fixmedins_code,
                                  kind="retention" if row.kind == "retention" else "payment",
                                  amount_fen=row.payable_fen, ref=row.app_no, actor=who.name, at=ctx.at))
    row.status = STEPS[action][1]
    if note:
        row.note = (row.note + "\n" if row.note else "") + f"{ACTION_ZH[action]}: {note}"
    audit(session, who, ctx, f"payment.{action}", "settle_app", app_no,
          {"fixmedins_code": row.fixmedins_code, "month": row.month, "fund": row.fund, "payable_fen": row.payable_fen,
           "note": note})
    return app_record(row, today)


def app_record(r: InsSettleApp, today: date) -> dict:
    t = timeliness(r.received_on, r.paid_on, today)
    return {"app_no": r.app_no, "fixmedins_code": r.fixmedins_code, "month": r.month, "fund": r.fund,
            "fund_name": FUNDS[r.fund][0], "kind": r.kind, "setl_cnt": r.setl_cnt, "revs_cnt": r.revs_cnt,
            "settled": fen_to_yuan(r.settled_fen), "reversed": fen_to_yuan(r.reversed_fen),
            "adjustment": fen_to_yuan(r.adjustment_fen), "offset": fen_to_yuan(r.offset_fen),
            "payable": fen_to_yuan(r.payable_fen), "status": r.status, "status_name": STATUS_ZH[r.status],
            "received_on": str(r.received_on), "deadline": str(t.deadline), "deadline_provisional": t.provisional,
            "working_days_left": t.working_days_left, "flag": t.flag, "flag_name": FLAG_ZH[t.flag],
            "reviewed_by": r.reviewed_by, "approved_by": r.approved_by, "order_no": r.order_no,
            "paid_on": None if r.paid_on is None else str(r.paid_on), "note": r.note}


def application(session: Session, who: Principal, app_no: str, today: date) -> dict:
    row = _app(session, app_no, lock=False)
    who.require("institution.read", row.fixmedins_code)
    return app_record(row, today)


def worklist(session: Session, who: Principal, today: date, *, month: str | None = None,
             fixmedins_code: str | None = None, status: str | None = None, warnings_only: bool = False,
             limit: int = 500) -> dict:
    """Applications (an institution sees its own), each with its deadline flag; ``warnings_only``: the open
    ones overdue or due within 5 working days (超期预警)."""
    if who.role == "institution":
        fixmedins_code = fixmedins_code or who.fixmedins_code
    who.require("institution.read", fixmedins_code)
    if status is not None and status not in STATUS_ZH:
        raise PaymentError(Problem("INS214", "status", f"状态须为 {'/'.join(STATUS_ZH)} 之一"))
    q = select(InsSettleApp)
    for col, value in ((InsSettleApp.month, month), (InsSettleApp.fixmedins_code, fixmedins_code),
                       (InsSettleApp.status, status)):
        if value is not None:
            q = q.where(col == value)
    if warnings_only:
        q = q.where(InsSettleApp.status.not_in(("paid", "rejected")))
    rows = session.scalars(q.order_by(InsSettleApp.deadline, InsSettleApp.app_no).limit(limit)).all()
    items = [app_record(r, today) for r in rows]
    if warnings_only:
        items = [i for i in items if i["flag"] in ("overdue", "due_soon")]
    return {"today": str(today), "applications": items,
            "overdue": sum(1 for i in items if i["flag"] == "overdue"),
            "due_soon": sum(1 for i in items if i["flag"] == "due_soon")}


def payments(session: Session, who: Principal, *, year: int | None = None, fixmedins_code: str | None = None,
             fund: str | None = None, limit: int = 1000) -> dict:
    """拨付记录 for the payments page: the fund ledger's rows (applications paid, advances, 集采结余留用; insert-only,
    what ``yibao fund outflows`` sums), newest first, amounts in yuan, with the total in fen. An institution sees
    its own."""
    if who.role == "institution":
        fixmedins_code = fixmedins_code or who.fixmedins_code
    who.require("institution.read", fixmedins_code)
    if fund is not None and fund not in FUNDS:
        raise PaymentError(Problem("INS221", "fund", f"基金须为 {'/'.join(FUNDS)}"))
    q = select(InsFundLedger).order_by(InsFundLedger.posted_on.desc(), InsFundLedger.id.desc()).limit(limit)
    if year is not None:
        q = q.where(InsFundLedger.posted_on >= date(year, 1, 1), InsFundLedger.posted_on <= date(year, 12, 31))
    for col, value in ((InsFundLedger.fixmedins_code, fixmedins_code), (InsFundLedger.fund, fund)):
        if value is not None:
            q = q.where(col == value)
    rows = session.scalars(q).all()
    return {"payments": [{"posted_on": str(r.posted_on), "fixmedins_code": r.fixmedins_code, "fund": r.fund,
                          "fund_name": FUNDS[r.fund][0], "kind": r.kind, "amount": fen_to_yuan(r.amount_fen),
                          "ref": r.ref, "actor": r.actor} for r in rows],
            "total_fen": sum(r.amount_fen for r in rows)}


# --- advances, clearing ----------------------------------------------------------------------------


def grant_advance(session: Session, who: Principal, ctx: Context, *, fixmedins_code: str, fund: str,
                  amount: Decimal | str, offset_months: int, paid_on: date | None = None, reason: str) -> dict:
    """预付金: paid now (a ledger outflow), recovered over ``offset_months`` from later applications of the fund."""
    who.require("payment.approve")
    problems = []
    if fund not in FUNDS:
        problems.append(Problem("INS221", "fund", f"基金须为 {'/'.join(FUNDS)} 之一"))
    try:
        amount_fen = yuan_to_fen(Decimal(str(amount)))
    except (InvalidOperation, ValueError, TypeError):
        amount_fen = 0
    if amount_fen <= 0:
        problems.append(Problem("INS222", "amount", f"预付金额须为正数, 至多两位小数, 实际为 {amount!r}"))
    if not 1 <= offset_months <= 36:
        problems.append(Problem("INS223", "offset_months", "冲抵月数须为 1–36"))
    if not reason.strip():
        problems.append(Problem("INS224", "reason", "须写明预付原因(如定点救治医疗机构预付金、疫情预拨)"))
    if session.get(Institution, fixmedins_code) is None:
        problems.append(Problem("INS220", "fixmedins_code", f"定点机构 {fixmedins_code} 不存在"))
    paid_on = paid_on or ctx.at.date()
    if paid_on > ctx.at.date():
        problems.append(Problem("INS213", "paid_on", f"拨付日期 {paid_on} 不能晚于今天"))
    if problems:
        raise PaymentError(problems)
    row = InsAdvance(advance_no=new_id("AD"), fixmedins_code=fixmedins_code, fund=fund, amount_fen=amount_fen,
                     offset_months=offset_months, paid_on=paid_on, reason=reason.strip(), created_by=who.name,
                     created_at=ctx.at)
    session.add(row)
    session.add(InsFundLedger(posted_on=paid_on, fund=fund, fixmedins_code=fixmedins_code, kind="advance",
                              amount_fen=amount_fen, ref=row.advance_no, actor=who.name, at=ctx.at))
    audit(session, who, ctx, "payment.advance", "advance", row.advance_no,
          {"fixmedins_code": fixmedins_code, "fund": fund, "amount_fen": amount_fen, "offset_months": offset_months})
    return {"advance_no": row.advance_no, "fixmedins_code": fixmedins_code, "fund": fund,
            "amount": fen_to_yuan(amount_fen), "offset_months": offset_months, "paid_on": str(paid_on)}


def post_clearing(session: Session, who: Principal, ctx: Context, *, year: int, result: dict) -> dict:
    """年终清算: the DIP/DRG point-value settlement of the year (``yibao dip|drg settle --json`` or its
    settlement.json) posted per institution as the basic fund's final adjustment (its ``difference_vs_item``:
    point-value payment − what the pool paid item by item), with every advance still outstanding offset."""
    who.require("payment.apply")
    kind = str(result.get("kind", ""))
    if kind not in ("yibao.dip.settlement", "yibao.drg.settlement") or str(result.get("period")) != str(year):
        raise PaymentError(Problem("INS230", "result", f"须为 {year} 年度的 DIP/DRG 结算结果(kind yibao.dip.settlement / "
                                   f"yibao.drg.settlement, period {year}); 实际为 {kind or '?'} / {result.get('period')}"))
    month = f"{year}-CL"
    done = {c for c, in session.execute(select(InsSettleApp.fixmedins_code).where(InsSettleApp.month == month,
                                                                                  InsSettleApp.status != "rejected"))}
    rows, problems = [], []
    for i, inst in enumerate(result.get("institutions") or []):
        code = inst.get("fixmedins_code")
        try:
            diff = yuan_to_fen(Decimal(str(inst["difference_vs_item"])))
        except (KeyError, InvalidOperation, ValueError, TypeError):
            problems.append(Problem("INS231", f"institutions[{i}].difference_vs_item", "缺少或不是金额"))
            continue
        if code in done:
            problems.append(Problem("INS232", f"institutions[{i}].fixmedins_code", f"机构 {code} 的 {year} 年度清算已入账"))
        rows.append((code, diff))
    if problems:
        raise PaymentConflict(problems) if all(p.code == "INS232" for p in problems) else PaymentError(problems)
    first_after = date(year + 1, 1, 1)
    made = []
    for code, diff in rows:
        offsets = _offsets(session, code, "basic", first_after, diff, clearing=True)
        made.append(_new_app(session, who, ctx, code=code, month=month, fund="basic", kind="clearing", setl_cnt=0,
                             revs_cnt=0, settled=0, reversed_=0, adjustment=diff, offsets=offsets,
                             note=f"{kind.split('.')[1].upper()} 年终清算 {result.get('catalog') or ''}".strip()))
    audit(session, who, ctx, "payment.clearing", "settle_month", month,
          {"kind": kind, "applications": [r.app_no for r in made]})
    return {"year": year, "applications": [app_record(r, ctx.at.date()) for r in made]}


def institution_year(session: Session, who: Principal, fixmedins_code: str, year: int) -> dict:
    """对账: an institution's year, in fen — settlement shares, reversals, clearing, offsets, paid, advances."""
    who.require("institution.read", fixmedins_code)
    like = f"{year}-%"
    apps = select(func.coalesce(func.sum(InsSettleApp.settled_fen), 0), func.coalesce(func.sum(InsSettleApp.reversed_fen), 0),
                  func.coalesce(func.sum(InsSettleApp.adjustment_fen), 0), func.coalesce(func.sum(InsSettleApp.offset_fen), 0),
                  func.coalesce(func.sum(case((InsSettleApp.status == "paid", InsSettleApp.payable_fen), else_=0)), 0),
                  func.coalesce(func.sum(InsSettleApp.payable_fen), 0)).where(
        InsSettleApp.fixmedins_code == fixmedins_code, InsSettleApp.month.like(like), InsSettleApp.status != "rejected")
    settled, reversed_, adjustment, offset, paid, payable = (int(x) for x in session.execute(apps).one())
    ledger = dict(session.execute(select(InsFundLedger.kind, func.sum(InsFundLedger.amount_fen)).where(
        InsFundLedger.fixmedins_code == fixmedins_code, extract("year", InsFundLedger.posted_on) == year)
        .group_by(InsFundLedger.kind)).all())
    return {"fixmedins_code": fixmedins_code, "year": year, "settled_fen": settled, "reversed_fen": reversed_,
            "adjustment_fen": adjustment, "offset_fen": offset, "payable_fen": payable, "paid_fen": paid,
            "ledger_fen": {k: int(v) for k, v in ledger.items()}}
