"""Cases in the store: the case row (with a version for optimistic locking), its events, and the
dated entitlement facts (认定/登记/备案/救助) a completed case records.

Every function runs inside the caller's one transaction: on any error the caller rolls back, so
bad input writes nothing. Each write also goes to the audit log through
:func:`yibao.service.transactions.audit`. The engine (:mod:`yibao.handling.workflow`) decides; this
module only loads the state, asks it, and writes the answer if nobody else wrote first.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from yibao.enrolment import registry as enrolment
from yibao.errors import Problem, YibaoError, pydantic_problems
from yibao.handling.calendar import calendar
from yibao.handling.catalogue import (
    CHANNELS,
    STEPS,
    HandlingError,
    catalogue,
    missing_materials,
    unknown_materials,
    validate_form,
)
from yibao.handling.models import (  # noqa: F401
    TABLES,
    HdCase,
    HdEvent,
    HdFact,
    HdPayment,
    HdPaymentEvent,
    HdTopup,
    facts_on,
    payment_status,
)
from yibao.handling.topup import statement, topup
from yibao.handling.workflow import (
    ACTION_ZH,
    STATUS_ZH,
    STEP_OF_STATUS,
    Action,
    CaseState,
    apply,
    timeliness,
)
from yibao.ltc import store as ltc_store
from yibao.money import fen_to_yuan, round_half_up, yuan_to_fen
from yibao.service import ledger, registry
from yibao.service import transactions as tx
from yibao.service.auth import Principal
from yibao.service.transactions import Context, audit, new_id
from yibao.settlement.request import FeeItemIn
from yibao.store.models import PersonCategory

FOREVER = date(9999, 12, 31)
AGENT_KINDS = {"proxy": "代办", "helper": "帮办"}


class HandlingConflict(HandlingError):
    title = "经办案件状态冲突"
    status = 409


class HandlingNotFound(HandlingError):
    title = "未找到"
    status = 404



# item effect → the fact kind a completed case records; the other effects are below
FACT_KINDS = {"chronic_certification": "chronic", "two_diseases_registration": "two_diseases",
              "offsite_filing": "offsite_filing", "assistance_approval": "assistance"}
STEP_PERMISSION = {"accept": "handling.accept", "review": "handling.review", "recheck": "handling.recheck"}


def _fail(cls, code: str, path: str, message: str):
    return cls(Problem(code, path, message))


def apply_for(session: Session, who: Principal, ctx: Context, *, item_code: str, psn_no: str | None = None,
              certno: str | None = None, channel: str, service_point: str, form: dict[str, Any],
              materials: list[str], agent: dict[str, str] | None = None, packs=None,
              fee_items: list[dict] | None = None) -> dict:
    """A new case (申请), status 待受理; every problem in the input is answered at once."""
    who.require("handling.apply")
    item = catalogue().item(item_code)
    problems: list[Problem] = []
    if channel not in CHANNELS:
        problems.append(Problem("HDL018", "channel", f"渠道须为 {'/'.join(CHANNELS)}({'/'.join(CHANNELS.values())})"))
    elif channel not in item.channels:
        problems.append(Problem("HDL018", "channel", f"{item.name} 不能通过{CHANNELS[channel]}办理"))
    if not service_point.strip() or len(service_point) > 60:
        problems.append(Problem("HDL019", "service_point", "服务网点须填写, 不超过 60 个字符"))
    problems += unknown_materials(item, materials)
    problems += _agent_problems(agent)
    if psn_no:
        person = registry.person(session, psn_no)
    elif certno:
        person = registry.person_by_certno(session, certno)
    else:
        raise _fail(HandlingError, "HDL002", "psn_no", "须给出人员编号 psn_no 或证件号码 certno")
    try:
        starts = _starts(form, ctx.at.date())
        values = validate_form(item, form, chronic_diseases(packs, person.admdvs, starts),
                               person_categories(packs, person.admdvs, starts))
    except HandlingError as exc:
        problems += exc.problems
        values = {}
    lines = _fee_lines(item.effect, fee_items or [], values, problems)
    if item.effect == "offsite_filing" and values.get("valid_to") and date.fromisoformat(values["valid_to"]) < ctx.at.date():
        problems.append(Problem("HDL084", "form.valid_to", f"备案截止日期 {values['valid_to']} 已过, 备案已过期, 不能申请"))
    if problems:
        raise HandlingError(problems, item.code)
    now = ctx.at
    row = HdCase(case_no=new_id("HD"), item_code=item.code, psn_no=person.psn_no, status="submitted", version=1,
                 channel=channel, service_point=service_point.strip(), applied_by=who.name,
                 agent_kind=(agent or {}).get("kind"), agent_name=(agent or {}).get("name"),
                 agent_relation=(agent or {}).get("relation"), authorization_no=(agent or {}).get("authorization_no"),
                 form=values, materials=list(dict.fromkeys(materials)), fee_items=lines, notice=[], step_actors=[], reason=None,
                 applied_on=now.date(), created_at=now, updated_at=now)
    session.add(row)
    session.flush()
    _event(session, row, who, now, "apply", None, "submitted", "", {"channel": channel})
    audit(session, who, ctx, "handling.apply", "hd_case", row.case_no,
          {"item_code": item.code, "psn_no": person.psn_no, "channel": channel, "service_point": row.service_point,
           "agent_kind": row.agent_kind})
    return case_record(session, who, row.case_no, now.date(), row=row)


def _starts(form: dict, default: date) -> date:
    """The date an entitlement starts (its pack's disease list applies), else today."""
    try:
        return date.fromisoformat(str(form.get("valid_from")))
    except ValueError:
        return default


def chronic_diseases(packs, admdvs: str, on: date) -> dict[str, str] | None:
    """The 门诊慢特病 list (code → name) of the pack in force for the region on the date, if it has one."""
    if packs is None:
        return None
    try:
        handling = packs.pick(admdvs, on).pack.handling
    except YibaoError:  # no pack for that region/date: the disease field then says so (HDL014)
        return None
    if handling is None or not handling.chronic_diseases:
        return None
    return {d.code: d.name for d in handling.chronic_diseases}


def person_categories(packs, admdvs: str, on: date) -> dict[str, str] | None:
    """The pack's 人员类别 (code → name) for the region on the date, if a pack is in force."""
    if packs is None:
        return None
    try:
        return dict(packs.pick(admdvs, on).pack.categories)
    except YibaoError:
        return None


def _fee_lines(effect: str | None, fee_items: list[dict], values: dict, problems: list[Problem]) -> list[dict]:
    """零星报销's receipt lines, each checked as a settlement fee line; their sum must be the receipt total."""
    if effect != "manual_reimbursement":
        if fee_items:
            problems.append(Problem("HDL083", "fee_items", "只有零星报销事项录入费用明细"))
        return []
    if not fee_items:
        problems.append(Problem("HDL080", "fee_items", "零星报销须录入票据的费用明细"))
        return []
    lines = []
    for i, raw in enumerate(fee_items):
        try:
            lines.append(FeeItemIn.model_validate(raw).model_dump(mode="json"))
        except ValidationError as exc:
            problems += pydantic_problems(exc, "HDL081", f"fee_items[{i}]")
    total = sum(yuan_to_fen(Decimal(str(x["det_item_fee_sumamt"]))) for x in lines)
    if lines and len(lines) == len(fee_items) and "medfee_sumamt" in values and total != yuan_to_fen(Decimal(values["medfee_sumamt"])):
        problems.append(Problem("HDL082", "form.medfee_sumamt",
                                f"票据金额 {values['medfee_sumamt']} 与费用明细合计 {fen_to_yuan(total)} 不符"))
    return lines


def _agent_problems(agent: dict[str, str] | None) -> list[Problem]:
    if not agent:
        return []
    out = []
    extra = set(agent) - {"kind", "name", "relation", "authorization_no"}
    if extra:
        out.append(Problem("HDL003", "agent", f"帮办代办信息不认识的字段: {', '.join(sorted(extra))}"))
    if agent.get("kind") not in AGENT_KINDS:
        out.append(Problem("HDL003", "agent.kind", "须为 proxy(代办, 亲属或受托人) 或 helper(帮办, 工作人员)"))
    if not (agent.get("name") or "").strip():
        out.append(Problem("HDL003", "agent.name", "须写明代办人/帮办人"))
    if agent.get("kind") == "proxy" and not (agent.get("authorization_no") or "").strip():
        out.append(Problem("HDL004", "agent.authorization_no", "代办须有授权委托书编号"))
    if agent.get("kind") == "proxy" and not (agent.get("relation") or "").strip():
        out.append(Problem("HDL004", "agent.relation", "代办须写明与申请人的关系"))
    return out


def _state(row: HdCase) -> CaseState:
    return CaseState(item_code=row.item_code, status=row.status, materials=tuple(row.materials),
                     step_actors=tuple((s, a) for s, a in row.step_actors), accepted_on=row.accepted_on,
                     deadline=row.deadline, completed_on=row.completed_on, notice=tuple(row.notice),
                     reason=row.reason, rating=row.rating)


def _row(session: Session, case_no: str) -> HdCase:
    row = session.scalars(select(HdCase).where(HdCase.case_no == case_no)).first()
    if row is None:
        raise _fail(HandlingNotFound, "HDL005", "case_no", f"经办案件 {case_no} 不存在")
    return row


def act(session: Session, who: Principal, ctx: Context, *, case_no: str, kind: str, version: int | None,
        materials: list[str] | None = None, notice: list[str] | None = None, reason: str | None = None,
        rating: int | None = None, comment: str | None = None, packs=None) -> dict:
    """One action on a case. ``version`` is the one the caller read: if the case moved since,
    the action is refused (HDL040) and nothing is written."""
    row = _row(session, case_no)
    item = catalogue().item(row.item_code)
    who.require("handling.read")
    if version is not None and row.version != version:  # before the step's role: the case moved under the caller
        raise _fail(HandlingConflict, "HDL040", "version",
                    f"案件已被他人办理(当前版本 {row.version}, 你看到的是 {version}), 请刷新后重试")
    step = STEP_OF_STATUS.get(row.status)
    if kind in ("accept", "review", "recheck", "return", "refuse", "reject") and step:
        who.require(STEP_PERMISSION[step])
    else:
        who.require("handling.apply")
    if materials:
        bad = unknown_materials(item, materials)
        if bad:
            raise HandlingError(bad, item.code)
    before = _state(row)
    after = apply(item, before, Action(kind, who.name, ctx.at.date(), materials=tuple(materials or ()),
                                       notice=tuple(notice or ()), reason=reason, rating=rating, comment=comment),
                  calendar())
    values = {"status": after.status, "materials": list(after.materials), "notice": list(after.notice),
              "step_actors": [list(p) for p in after.step_actors], "reason": after.reason,
              "accepted_on": after.accepted_on, "deadline": after.deadline, "completed_on": after.completed_on,
              "rating": after.rating, "updated_at": ctx.at, "version": row.version + 1}
    if kind == "rate":
        values["rating_comment"] = (comment or "").strip()[:500] or None
    done = session.execute(update(HdCase).where(HdCase.id == row.id, HdCase.version == row.version).values(**values)
                           .execution_options(synchronize_session=False))
    if done.rowcount != 1:
        raise _fail(HandlingConflict, "HDL040", "version", "案件已被他人同时办理, 请刷新后重试")
    session.expire(row)
    note = reason or "；".join(n["name"] for n in after.notice if kind == "return") or (comment or "")
    _event(session, row, who, ctx.at, kind, before.status, after.status, note,
           {"step": step, "rating": rating, "materials": materials or []})
    effect = None
    if after.status == "completed" and before.status != "completed":
        effect = _record_effect(session, who, ctx, row, item.effect, packs)
    audit(session, who, ctx, f"handling.{kind}", "hd_case", row.case_no,
          {"item_code": row.item_code, "from": before.status, "to": after.status, "step": step, "effect": effect})
    return case_record(session, who, case_no, ctx.at.date())


def _event(session, row, who, at, action, from_status, to_status, note, detail) -> None:
    session.add(HdEvent(case_id=row.id, at=at, actor=who.name, role=who.role, action=action,
                        from_status=from_status, to_status=to_status, note=note or "", detail=detail))


def _record_effect(session: Session, who: Principal, ctx: Context, row: HdCase, effect: str | None,
                   packs=None) -> str | None:
    """What a completed case changes: a dated fact, a settlement and payment order, a 补差, or
    (enrolment items) a hook for yibao.enrolment."""
    if effect in ("manual_reimbursement", "assistance_approval", "ltc_assessment") and packs is None:
        raise _fail(HandlingError, "HDL085", "packs", "办结此事项要按政策包结算, 调用方未提供政策包")
    if effect == "manual_reimbursement":
        return _reimburse(session, ctx, row, packs)
    if effect == "maternity_allowance":
        return _maternity(session, ctx, row)
    if effect in ("enrolment_registration", "enrolment_change"):
        return _enrolment(session, ctx, row, effect)
    if effect == "ltc_assessment":
        return _ltc_assessment(session, ctx, row, packs)
    kind = FACT_KINDS.get(effect or "")
    if kind is None:
        return None
    form = row.form
    code = {"chronic": form.get("dise_codg"), "two_diseases": form.get("disease"),
            "offsite_filing": form.get("filing_type"), "assistance": form.get("category")}[kind]
    valid_from = date.fromisoformat(form["valid_from"])
    valid_to = date.fromisoformat(form["valid_to"]) if form.get("valid_to") else FOREVER
    detail = {"mdtrt_admdvs": form["mdtrt_admdvs"]} if kind == "offsite_filing" else {}
    session.add(HdFact(psn_no=row.psn_no, kind=kind, code=code, valid_from=valid_from, valid_to=valid_to,
                       detail=detail, case_no=row.case_no, recorded_by=who.name, recorded_at=ctx.at))
    if kind == "assistance":  # the approved person is in that 人员类别 from now on: later settlements pay 救助
        session.add(PersonCategory(psn_no=row.psn_no, category=code, issuing_dept="医保依申请救助",
                                   valid_from=valid_from, valid_to=valid_to))
        session.flush()
        # 补差 of the years already settled since the approval's start; every year's balance is locked first, in
        # year order, before any year pays back to the account: a settlement locks its year, then the account, so
        # taking the next year's after the account would wait on it in the opposite order (and the re-run reads
        # the year's settlements only once nothing can be added to them)
        years = range(valid_from.year, ctx.at.year + 1)
        for y in years:
            ledger.lock_balance(session, row.psn_no, y)
        done = [t.topup_no for y in years
                if (t := topup(session, who, packs, case_no=row.case_no, psn_no=row.psn_no, year=y, at=ctx.at))]
        return f"fact:{kind}:{code}" + "".join(f" topup:{n}" for n in done)
    return f"fact:{kind}:{code}"


ENROLMENT_ACTIONS = {"暂停参保": "suspend", "恢复参保": "resume", "终止参保": "terminate"}


def _enrolment(session: Session, ctx: Context, row: HdCase, effect: str) -> str:
    """参保登记 / 参保变更: the enrolment registry records the dated fact (yibao.enrolment), on the case's behalf."""

    form = row.form
    system = Principal(f"handling:{row.case_no}", "clerk")
    on = date.fromisoformat(form["valid_from"])
    reason = f"经办案件 {row.case_no}"
    if effect == "enrolment_registration":
        enrolment.register(session, system, ctx, psn_no=row.psn_no, insutype=form["insutype"], admdvs=form["admdvs"],
                           begndate=on, reason=reason)
        return f"enrolment:register:{form['insutype']}"
    action = ENROLMENT_ACTIONS.get(form["change"])
    if action is None:  # 信息变更: the same status from that day, recorded as a change
        enrolment.change(session, system, ctx, psn_no=row.psn_no, insutype=form["insutype"], eff_date=on, reason=reason)
        return f"enrolment:change:{form['insutype']}"
    enrolment.change_status(session, system, ctx, psn_no=row.psn_no, insutype=form["insutype"], action=action,
                            eff_date=on, reason=reason)
    return f"enrolment:{action}:{form['insutype']}"


def _ltc_assessment(session: Session, ctx: Context, row: HdCase, packs) -> str:
    """失能等级评估: the scores on the form through the pack's LTC scale and rules (yibao.ltc), recorded as the
    person's assessment conclusion from ``valid_from`` (the assessor rule and validity are the pack's)."""

    if packs is None:
        raise _fail(HandlingError, "HDL085", "packs", "办结此事项要按政策包评定, 调用方未提供政策包")
    form = row.form
    on = date.fromisoformat(form["valid_from"])
    ltc = ltc_store.pack_for(session, packs, row.psn_no, on).pack.ltc
    scores = {dim: {it.code: int(form[it.code]) for it in getattr(ltc.assessment, dim) if it.code in form}
              for dim in ("adl", "cognition", "perception")}
    system = Principal(f"handling:{row.case_no}", "clerk")
    done = ltc_store.record_assessment(session, system, ctx, ltc, psn_no=row.psn_no, scores=scores,
                                       assessor=form["assessor"], effective=on)
    return f"ltc:{done['assessment_id']}:level:{done['level']}"


def _reimburse(session: Session, ctx: Context, row: HdCase, packs) -> str:
    """零星报销: the receipts settled by the same engine as a visit at the institution on the care date
    (so that date's pack and year apply), and a payment order for the fund's share to the person."""
    form = row.form
    day = datetime.combine(date.fromisoformat(form["begndate"]), datetime.min.time()).replace(hour=8)
    system = Principal(f"handling:{row.case_no}", "clerk")  # the desk settles on the case's behalf
    at = Context(request_id=row.case_no, opter=system.name, at=day)
    visit = tx.register_visit(session, system, at, fixmedins_code=form["fixmedins_code"], psn_no=row.psn_no,
                              insutype=form["insutype"], med_type=form["med_type"], begntime=day)
    tx.upload_items(session, system, at, packs, mdtrt_id=visit["mdtrt_id"],
                    items=[FeeItemIn.model_validate(x) for x in row.fee_items])
    setl = tx.settle(session, system, at, packs, mdtrt_id=visit["mdtrt_id"])["setlinfo"]
    amount = yuan_to_fen(Decimal(str(setl["fund_pay_sumamt"])))
    pay = HdPayment(payment_no=new_id("PO"), case_no=row.case_no, psn_no=row.psn_no, setl_id=setl["setl_id"],
                    amount_fen=amount, created_by=ctx.opter, created_at=ctx.at)
    session.add(pay)
    return f"settlement:{setl['setl_id']} payment:{pay.payment_no}"


PAYMENT_STATUS = {"pending": "待支付", "paid": "已支付", "returned": "已退回"}
# the moves a payment order may make: a returned order (wrong account, say) may be paid again; a paid one is final
PAYMENT_MOVES = {"pending": ("paid", "returned"), "returned": ("paid",), "paid": ()}


def record_payment(session: Session, who: Principal, ctx: Context, *, payment_no: str, status: str, on: date,
                   note: str = "") -> dict:
    """已支付 (the date the money left) or 退回 (why) for a payment order; recorded, never edited; audited."""
    who.require("payment.pay")
    pay = session.scalars(select(HdPayment).where(HdPayment.payment_no == payment_no).with_for_update()).first()
    if pay is None:
        raise _fail(HandlingNotFound, "HDL093", "payment_no", f"支付单 {payment_no} 不存在")
    current, _ = payment_status(session, payment_no)
    if status not in ("paid", "returned"):
        raise _fail(HandlingError, "HDL090", "status", "状态须为 paid(已支付) 或 returned(退回)")
    if status not in PAYMENT_MOVES[current]:
        raise _fail(HandlingConflict, "HDL090", "status",
                    f"支付单 {payment_no} 当前为{PAYMENT_STATUS[current]}, 不能登记为{PAYMENT_STATUS[status]}")
    if status == "returned" and not note.strip():
        raise _fail(HandlingError, "HDL091", "note", "退回须写明原因(如账户信息有误)")
    if not pay.created_at.date() <= on <= ctx.at.date():
        raise _fail(HandlingError, "HDL092", "on",
                    f"日期 {on} 须在支付单开具日 {pay.created_at.date()} 与今天 {ctx.at.date()} 之间")
    session.add(HdPaymentEvent(payment_no=payment_no, status=status, on=on, note=note.strip()[:200], actor=who.name,
                               at=ctx.at))
    audit(session, who, ctx, f"handling.payment_{status}", "payment", payment_no,
          {"case_no": pay.case_no, "amount_fen": pay.amount_fen, "on": on.isoformat(), "note": note.strip()[:200]})
    session.flush()
    return payment_record(session, pay)


def payment_record(session: Session, p: HdPayment) -> dict:
    status, last = payment_status(session, p.payment_no)
    return {"payment_no": p.payment_no, "case_no": p.case_no, "setl_id": p.setl_id, "amount": fen_to_yuan(p.amount_fen),
            "status": status, "status_name": PAYMENT_STATUS[status],
            "status_on": last.on.isoformat() if last is not None else None, "note": last.note if last is not None else ""}


def maternity_allowance_fen(avg_wage: str, leave_days: int) -> int:
    """生育津贴 = 用人单位上年度职工月平均工资 ÷ 30 × 产假天数, half-up to the fen (one rounding).

    >>> maternity_allowance_fen("8000.00", 158)
    4213333
    """
    return round_half_up(Decimal(yuan_to_fen(Decimal(avg_wage))) * leave_days / 30)


def _maternity(session: Session, ctx: Context, row: HdCase) -> str:
    amount = maternity_allowance_fen(row.form["avg_wage"], int(row.form["leave_days"]))
    pay = HdPayment(payment_no=new_id("PO"), case_no=row.case_no, psn_no=row.psn_no, setl_id="",
                    amount_fen=amount, created_by=ctx.opter, created_at=ctx.at)
    session.add(pay)
    return f"payment:{pay.payment_no}"


def case_record(session: Session, who: Principal, case_no: str, today: date, row: HdCase | None = None) -> dict:
    who.require("handling.read")
    row = row or _row(session, case_no)
    if who.role == "institution" and row.applied_by != who.name:  # a hospital sees the cases it filed
        raise _fail(HandlingNotFound, "HDL005", "case_no", f"经办案件 {case_no} 不存在")
    item = catalogue().item(row.item_code)
    state = _state(row)
    _, agent_name = who.identity(None, row.agent_name)
    events = session.scalars(select(HdEvent).where(HdEvent.case_id == row.id).order_by(HdEvent.id)).all()
    return {
        "case_no": row.case_no, "item_code": row.item_code, "item_name": item.name, "psn_no": row.psn_no,
        "status": row.status, "status_name": STATUS_ZH[row.status], "version": row.version,
        "channel": row.channel, "channel_name": CHANNELS[row.channel], "service_point": row.service_point,
        "applied_by": row.applied_by, "applied_on": row.applied_on.isoformat(),
        "agent": None if not row.agent_kind else {
            "kind": row.agent_kind, "kind_name": AGENT_KINDS[row.agent_kind], "name": agent_name,
            "relation": row.agent_relation, "authorization_no": row.authorization_no},
        "form": row.form, "materials": row.materials,
        "missing_materials": missing_materials(item, row.materials),
        "notice": row.notice, "reason": row.reason,
        "steps": [{"step": s, "step_name": STEPS[s], "actor": a} for s, a in row.step_actors],
        "accepted_on": row.accepted_on.isoformat() if row.accepted_on else None,
        "completed_on": row.completed_on.isoformat() if row.completed_on else None,
        "timeliness": timeliness(state, today, calendar()) if row.deadline else None,
        "rating": row.rating, "rating_comment": row.rating_comment,
        "payments": [payment_record(session, p) for p in session.scalars(
            select(HdPayment).where(HdPayment.case_no == row.case_no).order_by(HdPayment.id))],
        "fee_items": row.fee_items,
        "topups": [statement(t) for t in session.scalars(select(HdTopup).where(HdTopup.case_no == row.case_no)
                                                          .order_by(HdTopup.id))],
        "events": [{"at": e.at.isoformat(timespec="seconds"), "actor": e.actor, "role": e.role, "action": e.action,
                    "action_name": ACTION_ZH.get(e.action, "申请"), "from": e.from_status, "to": e.to_status,
                    "note": e.note} for e in events],
    }


def worklist(session: Session, who: Principal, today: date, *, status: str | None = None,
             item_code: str | None = None, overdue_only: bool = False, limit: int = 200) -> list[dict]:
    """Open cases, oldest first, with their deadline flag (已超期 / 即将超期 / 正常)."""
    who.require("handling.read")
    q = select(HdCase).order_by(HdCase.id).limit(limit)
    if status:
        if status not in STATUS_ZH:
            raise _fail(HandlingError, "HDL006", "status", f"状态须为 {'/'.join(STATUS_ZH)}")
        q = q.where(HdCase.status == status)
    else:
        q = q.where(HdCase.status.in_(["submitted", "accepted", "reviewed", "returned"]))
    if item_code:
        catalogue().item(item_code)
        q = q.where(HdCase.item_code == item_code)
    if who.role == "institution":
        q = q.where(HdCase.applied_by == who.name)
    out = []
    cal = calendar()
    for row in session.scalars(q):
        t = timeliness(_state(row), today, cal) if row.deadline else None
        if overdue_only and not (t and t["flag"] in ("已超期", "即将超期")):
            continue
        out.append({"case_no": row.case_no, "item_code": row.item_code, "status": row.status,
                    "status_name": STATUS_ZH[row.status], "version": row.version, "psn_no": row.psn_no,
                    "applied_on": row.applied_on.isoformat(), "timeliness": t})
    return out
