"""The service layer: every settlement-desk operation, once, for both faces (platform and REST).

Each function takes an open SQLAlchemy session inside the request's one transaction, the caller
(:class:`~yibao.service.auth.Principal`) and a :class:`Context`, and returns a JSON-able dict
named as the national platform names things (amounts as Decimal yuan). Errors are
:class:`~yibao.service.errors.ServiceError`; the caller rolls back, so nothing is half-written.
The engine stays pure: these functions read the store, call :func:`yibao.settlement.engine.settle`
or :func:`~yibao.settlement.engine.reverse`, and write what it returned.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Date, DateTime, bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from yibao.errors import Problem, YibaoError
from yibao.enrolment import mutual
from yibao.enrolment.asof import psn_type_on, retiree_on
from yibao.handling.effects import offsite_status, settled_med_type
from yibao.identifiers import identifier_problem
from yibao.institutions.in_force import pack_in_force
from yibao.institutions.standing import refuse_if_suspended
from yibao.money import fen_to_yuan, yuan_to_fen
from yibao.policy.compiled import CompiledPack
from yibao.service import ledger, precheck, registry
from yibao.service.auth import Principal
from yibao.service.desk import recheck
from yibao.service.errors import Conflict, NotFound, ServiceError, problem
from yibao.service.limits import Limits, configured
from yibao.service.packs import PackSet
from yibao.settlement import engine
from yibao.settlement.classify import classify_items
from yibao.settlement.model import SETLINFO_FIELDS, Accumulators
from yibao.settlement.model import FeeItem as EngineItem
from yibao.settlement.model import Person as EnginePerson
from yibao.settlement.model import Visit as EngineVisit
from yibao.settlement.statement import explain
from yibao.store import chain
from yibao.store.database import pipelined
from yibao.store.models import (
    AccumulatorBalance,
    AuditLog,
    Enrollment,
    FeeItem,
    Institution,
    Person,
    PersonCategory,
    Settlement,
    SettlementDetail,
    Visit,
)

FAULT_ENV = "YIBAO_FAULT"


@dataclass(frozen=True)
class Context:
    """What every write records: the request id (msgid / Idempotency-Key), operator, and time."""

    request_id: str
    opter: str
    at: datetime  # transaction time; its date picks the pack and the accumulator year


def fault_point(name: str) -> None:
    """Crash here (``os._exit``) when ``YIBAO_FAULT`` names this point: for the crash-safety test."""
    if os.environ.get(FAULT_ENV) == name:
        os._exit(70)


def new_id(prefix: str) -> str:
    return prefix + uuid.uuid4().hex[:24].upper()


# Core, not a unit of work: append-only rows nobody reads back; inline: no RETURNING of the generated id
_AUDIT = insert(AuditLog.__table__).inline()


def audit(session: Session, who: Principal, ctx: Context, action: str, entity: str, entity_id: str,
          detail: dict[str, Any]) -> None:
    row = {"at": datetime.now(), "actor": who.name, "role": who.role, "action": action,
           "request_id": ctx.request_id, "entity": entity, "entity_id": entity_id, "detail": detail}
    chain.seal_in_lane(session, chain.AUDIT, row)  # hash chain (yibao.store.chain)
    session.connection().execute(_AUDIT, row)


# --- 1101 person information -------------------------------------------------------------------


def person_info(session: Session, who: Principal, *, certno: str | None = None, psn_no: str | None = None,
                on: date) -> dict:
    who.require("person.read")
    if psn_no:
        p = registry.person(session, psn_no)
    elif certno:
        p = registry.person_by_certno(session, certno)
    else:
        raise ServiceError(Problem("REG012", "input.data.mdtrt_cert_no", "须给出证件号码(mdtrt_cert_no/certno)或人员编号 psn_no"))
    certno_out, name_out = who.identity(p.certno, p.psn_name)
    enrollments = session.scalars(select(Enrollment).where(Enrollment.psn_no == p.psn_no)).all()
    cats = session.scalars(select(PersonCategory).where(PersonCategory.psn_no == p.psn_no)).all()
    return {
        "baseinfo": {"psn_no": p.psn_no, "psn_cert_type": p.psn_cert_type, "certno": certno_out,
                     "psn_name": name_out, "gend": p.gend, "brdy": p.brdy.isoformat(),
                     "age": registry.age_on(p.brdy, on)},
        "insuinfo": [{"insutype": e.insutype, "insuplc_admdvs": e.insuplc_admdvs,
                      "psn_insu_stas": "1" if e.valid_from <= on <= e.valid_to else "0",
                      "psn_insu_date": e.valid_from.isoformat(), "paus_insu_date": e.valid_to.isoformat(),
                      "psn_type": psn_type_on(session, p.psn_no, e.insutype, on) or ("1102" if p.retiree else "1101"),
                      "balc": fen_to_yuan(p.acct_balc_fen) if e.insutype == "310" else fen_to_yuan(0)}
                     for e in enrollments],
        "idetinfo": [{"psn_idet_type": c.category, "issuing_dept": c.issuing_dept,
                      "begntime": c.valid_from.isoformat(), "endtime": c.valid_to.isoformat()} for c in cats],
        "mulaidinfo": mutual.holders_on(session, p.psn_no, on),  # 家庭共济: accounts that may pay (acct_mulaid_psn_no)
    }


# --- 2201 / 2401 register a visit ----------------------------------------------------------------


def register_visit(session: Session, who: Principal, ctx: Context, *, fixmedins_code: str, psn_no: str,
                   insutype: str, med_type: str, begntime: datetime, dise_codg: str = "",
                   ipt_otp_no: str = "", referral_from_level: str | None = None,
                   insuplc_admdvs: str | None = None, atddr_no: str | None = None) -> dict:
    who.require("visit.write", fixmedins_code)
    on = begntime.date()
    p = registry.person(session, psn_no)
    enrol = registry.enrollment(session, psn_no, insutype, on)
    if insuplc_admdvs and insuplc_admdvs != enrol.insuplc_admdvs:
        raise ServiceError(Problem("REG022", "insuplc_admdvs",
                                   f"参保地 {insuplc_admdvs} 与人员 {psn_no} 的参保地 {enrol.insuplc_admdvs} 不符"))
    registry.institution(session, fixmedins_code, on)
    refuse_if_suspended(session, fixmedins_code, on, med_type=med_type)  # 协议暂停/解除、协议范围 (#18)
    mdtrt_id = new_id("M")
    session.add(Visit(mdtrt_id=mdtrt_id, psn_no=p.psn_no, fixmedins_code=fixmedins_code, insutype=insutype,
                      insuplc_admdvs=enrol.insuplc_admdvs, med_type=med_type, begntime=begntime,
                      dise_codg=dise_codg, referral_from_level=referral_from_level,
                      ipt_otp_no=ipt_otp_no or mdtrt_id, atddr_no=atddr_no or None, status="registered",
                      created_at=ctx.at))
    audit(session, who, ctx, "register", "visit", mdtrt_id,
          {"psn_no": psn_no, "fixmedins_code": fixmedins_code, "med_type": med_type, "insutype": insutype})
    return {"mdtrt_id": mdtrt_id, "psn_no": psn_no, "ipt_otp_no": ipt_otp_no or mdtrt_id}


def visit_for(session: Session, who: Principal, mdtrt_id: str, action: str, psn_no: str | None = None,
              path: str = "mdtrt_id", lock: bool = False) -> Visit:
    """The visit, checked against the caller and psn_no; ``lock`` takes its row lock (PostgreSQL), so an
    upload and a settlement of one visit never interleave."""
    return _checked(session.get(Visit, mdtrt_id, with_for_update=lock or None), who, mdtrt_id, action, psn_no, path)


def _checked(v: Visit | None, who: Principal, mdtrt_id: str, action: str, psn_no: str | None,
             path: str = "mdtrt_id") -> Visit:
    if v is None:
        raise problem(NotFound, "VIS001", path, f"就诊 mdtrt_id {mdtrt_id} 不存在")
    who.require(action, v.fixmedins_code)
    if psn_no and psn_no != v.psn_no:
        raise ServiceError(Problem("VIS002", "psn_no", f"人员编号 {psn_no} 与就诊 {mdtrt_id} 的参保人不符"))
    return v


# --- 2204 / 2301 upload fee items --------------------------------------------------------------


def upload_items(session: Session, who: Principal, ctx: Context, packs: PackSet, *, mdtrt_id: str,
                 items: list, psn_no: str | None = None, limits: Limits | None = None) -> dict:
    """Store the lines (each validated by :class:`FeeItemIn`) and classify each under the pack; every line
    and the visit's new total within the plausibility ``limits`` (else nothing is stored)."""
    limits = limits or configured()
    out_of_bounds = [p for i, it in enumerate(items)
                     for p in limits.line_problems(pric=it.pric, cnt=it.cnt, amount_fen=yuan_to_fen(it.det_item_fee_sumamt),
                                                   path=f"input.feedetail[{i}]")]
    if out_of_bounds:
        raise ServiceError(out_of_bounds)
    v = visit_for(session, who, mdtrt_id, "visit.write", psn_no, lock=True)
    recheck(session)  # a duplicate of this request that committed while we waited for the visit: its answer
    if v.status == "settled":
        raise problem(Conflict, "VIS010", "mdtrt_id", f"就诊 {mdtrt_id} 已结算; 须先撤销结算才能再上传费用明细")
    stored = dict(session.execute(select(FeeItem.feedetl_sn, FeeItem.det_item_fee_sumamt_fen)
                                  .where(FeeItem.mdtrt_id == mdtrt_id)).tuples().all())
    over = limits.visit_problem(sum(stored.values()) + sum(yuan_to_fen(it.det_item_fee_sumamt) for it in items),
                                "input.feedetail")
    if over:
        raise ServiceError(over)
    existing = set(stored)
    pack = pack_in_force(session, packs.pick(v.insuplc_admdvs, ctx.at.date()), v.begntime.date())  # 目录版本 (#18)
    inst = session.get(Institution, v.fixmedins_code)
    if inst is not None:  # an offsite visit's lines are classified by the 就医地 catalogue, as settlement will (#16)
        pack = packs.catalogue_for(pack, inst.admdvs, ctx.at.date(),
                                   offsite_status(session, v.psn_no, v.insuplc_admdvs, inst.admdvs, v.begntime.date()))
    result = []
    for i, it in enumerate(items):
        if it.feedetl_sn in existing:
            raise problem(Conflict, "VIS011", f"input.feedetail[{i}].feedetl_sn",
                          f"费用明细流水号 {it.feedetl_sn} 已上传过")
        existing.add(it.feedetl_sn)
        row = FeeItem(mdtrt_id=mdtrt_id, feedetl_sn=it.feedetl_sn, med_list_codg=it.med_list_codg,
                      chrgitm_lv=it.chrgitm_lv, pric_fen=None if it.pric is None else yuan_to_fen(it.pric),
                      cnt=it.cnt, det_item_fee_sumamt_fen=yuan_to_fen(it.det_item_fee_sumamt),
                      preselfpay_ratio=it.preselfpay_ratio, fee_ocur_time=getattr(it, "fee_ocur_time", None),
                      med_chrgitm_type=getattr(it, "med_chrgitm_type", None))
        amounts = _classify(pack, [row], f"input.feedetail[{i}]")
        session.add(row)
        result.append({"feedetl_sn": it.feedetl_sn, "det_item_fee_sumamt": it.det_item_fee_sumamt,
                       "cnt": it.cnt, "pric": it.pric, "chrgitm_lv": it.chrgitm_lv or _catalog_level(pack, it),
                       "fulamt_ownpay_amt": fen_to_yuan(amounts.fulamt_ownpay_amt),
                       "overlmt_amt": fen_to_yuan(amounts.overlmt_selfpay),
                       "preselfpay_amt": fen_to_yuan(amounts.preselfpay_amt),
                       "inscp_scp_amt": fen_to_yuan(amounts.inscp_scp_amt)})
    audit(session, who, ctx, "upload", "visit", mdtrt_id, {"items": len(items)})
    return {"result": result}


def _catalog_level(pack: CompiledPack, it) -> str | None:
    rule = pack.catalog.get(it.med_list_codg)
    return None if rule is None else rule.chrgitm_lv


def _engine_items(rows: list[FeeItem]) -> tuple[EngineItem, ...]:
    return tuple(EngineItem(feedetl_sn=r.feedetl_sn, med_list_codg=r.med_list_codg,
                            det_item_fee_sumamt=r.det_item_fee_sumamt_fen, cnt=Decimal(r.cnt), pric=r.pric_fen,
                            chrgitm_lv=r.chrgitm_lv,
                            preselfpay_ratio=None if r.preselfpay_ratio is None else Decimal(r.preselfpay_ratio))
                 for r in rows)


def _classify(pack: CompiledPack, rows: list[FeeItem], path: str):
    """Classification of uploaded lines; engine errors re-pointed at the request's field."""
    try:
        return classify_items(pack, _engine_items(rows))
    except YibaoError as exc:
        raise ServiceError([Problem(p.code, path + "." + p.path.rsplit(".", 1)[-1], p.message)
                            for p in exc.problems]) from None


# --- 2206/2303 pre-settle, 2207/2304 settle -------------------------------------------------------


_SETTLEMENTS = insert(Settlement.__table__)
_DETAILS = insert(SettlementDetail.__table__)
_FEE_ITEMS = FeeItem.__table__


def _visit_query(lock: bool):
    on = bindparam("on", type_=Date)
    cats = (select(func.aggregate_strings(PersonCategory.category, ","))
            .where(PersonCategory.psn_no == Visit.psn_no, PersonCategory.valid_from <= on,
                   PersonCategory.valid_to >= on).correlate(Visit).scalar_subquery())
    q = (select(Visit, Person, Institution, Enrollment, cats)
         .join(Person, Person.psn_no == Visit.psn_no)
         .join(Institution, Institution.fixmedins_code == Visit.fixmedins_code, isouter=True)
         .join(Enrollment, (Enrollment.psn_no == Visit.psn_no) & (Enrollment.insutype == Visit.insutype), isouter=True)
         .where(Visit.mdtrt_id == bindparam("mdtrt_id")).order_by(Enrollment.id)
         .execution_options(populate_existing=True))  # fresh under the lock even if read before
    return q.with_for_update(of=Visit) if lock else q


# built once: a statement object caches its own cache key, so executing it again costs no SQL construction
_VISIT_CONTEXT = {False: _visit_query(False), True: _visit_query(True)}
_ITEMS_OF_VISIT = select(_FEE_ITEMS).where(_FEE_ITEMS.c.mdtrt_id == bindparam("mdtrt_id")).order_by(_FEE_ITEMS.c.feedetl_sn)
_VISITS = Visit.__table__
_CLOSE_VISIT = (update(_VISITS).where(_VISITS.c.mdtrt_id == bindparam("m"))
                .values(status="settled", endtime=func.coalesce(_VISITS.c.endtime, bindparam("at", type_=DateTime))))


def _visit_context(session: Session, mdtrt_id: str, on: date, lock: bool):
    """One round trip for what a settlement reads besides its fee items: the visit (row-locked when
    ``lock``; only the visit row, never the shared person or institution rows), its person, its
    institution, the person's enrollments in the visit's insutype, and the categories valid on ``on``.
    Returns ``(visit, person, institution, enrollments, categories)`` or None when there is no visit."""
    rows = session.execute(_VISIT_CONTEXT[lock], {"mdtrt_id": mdtrt_id, "on": on}).all()
    if not rows:
        return None
    v, p, inst, _, cat_text = rows[0]
    enrollments = [r[3] for r in rows if r[3] is not None]
    return v, p, inst, enrollments, frozenset(c for c in (cat_text or "").split(",") if c)


_PERSONS = Person.__table__
_DEBIT_ACCOUNT = (update(_PERSONS).where(_PERSONS.c.psn_no == bindparam("debit_psn_no"),
                                         _PERSONS.c.acct_balc_fen >= bindparam("pay"))
                  .values(acct_balc_fen=_PERSONS.c.acct_balc_fen - bindparam("pay")))
_SETTLED_ON = (select(func.coalesce(func.sum(Settlement.medfee_sumamt), 0))
               .where(Settlement.psn_no == bindparam("psn_no"), Settlement.status == "valid",
                      Settlement.setl_time >= bindparam("since", type_=DateTime),
                      Settlement.setl_time < bindparam("until", type_=DateTime)))


def _settled_on(session: Session, psn_no: str, day: date) -> int:
    """The person's valid settled medical fees on ``day`` (fen): what the daily plausibility limit counts."""
    since = datetime.combine(day, datetime.min.time())
    return int(session.execute(_SETTLED_ON, {"psn_no": psn_no, "since": since,
                                             "until": since + timedelta(days=1)}).scalar_one())


def _lock_household_of(session: Session, packs: PackSet, mdtrt_id: str, on: date) -> ledger.HouseholdState | None:
    """Lock the household-year of the visit's person when the pack for it has household caps — right after the
    person-year balance and before the accounts and the visit (read unlocked here to find them), so no lock
    this transaction holds is one another waits for while holding the household's (:mod:`yibao.service.ledger`).
    None when there is nothing to lock (no such visit, person or pack: the checks that follow say so)."""
    v = session.get(Visit, mdtrt_id)
    p = None if v is None else session.get(Person, v.psn_no)
    if p is None or not p.hh_no:
        return None
    try:
        pack = packs.pick(v.insuplc_admdvs, on)
    except ServiceError:
        return None
    return ledger.lock_household(session, p.hh_no, on.year) if pack.uses_households else None


@dataclass(frozen=True)
class EngineInputs:
    person: EnginePerson
    visit: EngineVisit
    catalogue: CompiledPack  # the pack whose catalogue classified the lines (the 就医地's for an offsite visit)
    med_type_note: str | None  # why the visit is settled under another 医疗类别 (HDL061), if it is


def engine_inputs(session: Session, packs: PackSet, pack: CompiledPack, v: Visit, p: Person, inst, cats, on: date,
                  rows, acct_balance: int) -> EngineInputs:
    """What the engine is given for a visit settled on ``on``: one definition for the settlement (2206/2207) and
    for its re-run (补差), so a re-run differs from the original only by what changed in the facts — the
    categories, 退休 and 门诊慢特病 certification as of the day, the 异地 status and 就医地 catalogue."""
    med_type, note = settled_med_type(session, pack.pack, v.psn_no, v.med_type, on)  # 门诊慢特病 认定 (#16)
    retiree = retiree_on(session, v.psn_no, v.insutype, v.begntime.date(), p.retiree)  # 退休 as of the visit (#15)
    person = EnginePerson(v.psn_no, v.insutype, frozenset(c for c in cats if c in pack.categories),
                          retiree, registry.age_on(p.brdy, on), p.gend, hh_no=p.hh_no)
    status = offsite_status(session, v.psn_no, v.insuplc_admdvs, inst.admdvs, v.begntime.date())  # 异地 ± 备案 (#16)
    catalogue = packs.catalogue_for(pack, inst.admdvs, on, status)  # 就医地目录、参保地政策 (#16)
    visit = EngineVisit(mdtrt_id=v.mdtrt_id, med_type=med_type, level=inst.level, setl_date=on,
                        fixmedins_code=v.fixmedins_code, dise_codg=v.dise_codg,
                        referral_from_level=v.referral_from_level, offsite_status=status,
                        items=_engine_items(rows) if catalogue is pack else None,
                        amounts=None if catalogue is pack else _classify(catalogue, rows, "mdtrt_id"),
                        acct_balance=acct_balance)
    return EngineInputs(person, visit, catalogue, note)


def settle(session: Session, who: Principal, ctx: Context, packs: PackSet, *, mdtrt_id: str,
           psn_no: str | None = None, medfee_sumamt: Decimal | None = None, acct_used: bool = False,
           write: bool = True, limits: Limits | None = None, mulaid_psn_no: str | None = None) -> dict:
    """Settle (``write=True``) or pre-settle (``write=False``: same answer, nothing written); the visit's
    total and the person's settled total of the day within the plausibility ``limits``. ``mulaid_psn_no``
    (with ``acct_used``): 家庭共济, the rest of the in-scope personal share paid from that holder's account
    (:mod:`yibao.enrolment.mutual`), debited in this transaction as the person's own account is."""
    limits = limits or configured()
    on = ctx.at.date()
    if mulaid_psn_no and not acct_used:
        raise ServiceError(Problem("ENR064", "input.data.acct_used_flag",
                                   f"使用家庭共济账户 acct_mulaid_psn_no={mulaid_psn_no} 须同时 acct_used_flag=1"))
    # locks are always taken in the order person-year balance → household-year (家庭年度限额 only) → person
    # (account) → visit; see yibao.service.ledger for why this order cannot deadlock
    owner = psn_no
    if write and not psn_no:  # whose balance to lock: read the visit once unlocked, then again under the lock
        owner = _checked(session.get(Visit, mdtrt_id), who, mdtrt_id, "settle", None).psn_no
    try:
        balance = ledger.lock_balance(session, owner, on.year) if write else None
    except IntegrityError:  # the balance row's one foreign key: there is no such person
        raise problem(NotFound, "REG010", "psn_no", f"人员编号 {owner} 不存在") from None
    hh_state = _lock_household_of(session, packs, mdtrt_id, on) if write and packs.uses_households else None
    locked: dict[str, int] = {}
    if write and acct_used:  # the personal accounts are one row for all years: lock them before reading a balance
        locked = mutual.lock_balances(session, {owner} | ({mulaid_psn_no} if mulaid_psn_no else set()))
    found = _visit_context(session, mdtrt_id, on, lock=write)
    v = _checked(found[0] if found else None, who, mdtrt_id, "settle", psn_no)
    if write:
        recheck(session)  # a duplicate that committed while we waited for the locks: answer as it did
    _, p, inst_row, enrollments, cats = found
    if write:
        acc = ledger.accumulators(balance)
    else:
        row = session.get(AccumulatorBalance, (v.psn_no, on.year))
        acc = ledger.accumulators(row) if row is not None else Accumulators(on.year)
    if v.status == "settled":
        raise problem(Conflict, "SET050", "mdtrt_id", f"就诊 {mdtrt_id} 已结算; 重复结算须先撤销(2208)")
    rows = session.execute(_ITEMS_OF_VISIT, {"mdtrt_id": mdtrt_id}).all()
    if not rows:
        raise ServiceError(Problem("SET051", "mdtrt_id", f"就诊 {mdtrt_id} 尚未上传费用明细(2204)"))
    total = sum(r.det_item_fee_sumamt_fen for r in rows)
    if medfee_sumamt is not None and yuan_to_fen(medfee_sumamt) != total:
        raise ServiceError(Problem("SET052", "input.data.medfee_sumamt",
                                   f"医疗费总额 medfee_sumamt={medfee_sumamt} 与已上传费用明细合计 {fen_to_yuan(total)} 不符"))
    over = limits.visit_problem(total, "mdtrt_id") or limits.day_problem(
        _settled_on(session, v.psn_no, on), total, on, "psn_no")
    if over:
        raise ServiceError(over)
    registry.enrollment_among(enrollments, v.psn_no, v.insutype, on)
    inst = registry.designated(inst_row, v.fixmedins_code, on)
    refuse_if_suspended(session, v.fixmedins_code, on)  # 协议暂停/解除 (#18)
    age = registry.age_on(p.brdy, on)
    pack = pack_in_force(session, packs.pick(v.insuplc_admdvs, on), v.begntime.date())  # 目录版本 (#18)
    if mulaid_psn_no:  # 家庭共济: the pack opens it and the link holds on the visit's date (#15)
        registry.person(session, mulaid_psn_no, "input.data.acct_mulaid_psn_no")
        mutual.check(session, pack.pack.financing, mulaid_psn_no, v.psn_no, v.begntime.date(),
                     "input.data.acct_mulaid_psn_no")
    checks = precheck.run(session, "during" if write else "pre", p, precheck.person_row(p, v.insutype, cats, age),
                          inst, v, ctx.at, list(rows))
    if write and checks["blocking"]:
        hit = checks["blocking"][0]
        raise ServiceError(Problem("SUP001", f"rule:{hit.get('rule_id')}",
                                   f"智能审核规则 {hit.get('rule_id')}({hit.get('rule_name')})拦截: {hit.get('message')}"))
    inputs = engine_inputs(session, packs, pack, v, p, inst, cats, on, rows, p.acct_balc_fen if acct_used else 0)
    person, visit, catalogue, med_type, med_type_note = (inputs.person, inputs.visit, inputs.catalogue,
                                                         inputs.visit.med_type, inputs.med_type_note)
    household = None
    if pack.uses_households and p.hh_no:  # 家庭年度限额: the household's year, locked second (ledger's lock order)
        if not write:
            household = ledger.household_accumulators(session, p.hh_no, on.year)
        elif hh_state is None or hh_state.hh_no != p.hh_no:  # the registry moved the person meanwhile
            raise problem(Conflict, "HHD002", "psn_no", f"参保人 {v.psn_no} 的家庭编号在本次结算过程中被修改, 请重新结算")
        else:
            household = Accumulators(on.year, {k: int(x) for k, x in hh_state.acc_values.items()})
    try:
        result = engine.settle(pack, person, visit, acc, household)
    except YibaoError as exc:
        raise ServiceError(exc.problems) from None
    setl_id = new_id("S") if write else ""
    info = result.setlinfo.as_dict()
    mulaid, mulaid_note = 0, []
    if mulaid_psn_no:
        held = locked.get(mulaid_psn_no, 0) if write else (mutual.balance(session, mulaid_psn_no) or 0)
        mulaid = mutual.payable(result.inscp_psn_part, info["psn_cash_pay"], held)
        mulaid_note = [f"【家庭共济】账户 {mulaid_psn_no} 余额 {fen_to_yuan(held)} 元; 可由共济账户支付的政策范围内个人负担 "
                       f"{fen_to_yuan(min(result.inscp_psn_part, info['psn_cash_pay']))} 元, 支付 {fen_to_yuan(mulaid)} 元; "
                       f"个人现金 {fen_to_yuan(info['psn_cash_pay'])} − {fen_to_yuan(mulaid)} = "
                       f"{fen_to_yuan(info['psn_cash_pay'] - mulaid)} 元。"]
        info["psn_cash_pay"] -= mulaid
    out = _setl_output(info, [_detail(d) for d in result.setldetail], setl_id=setl_id,
                       mdtrt_id=mdtrt_id, psn_no=v.psn_no, insutype=v.insutype, med_type=med_type,
                       setl_time=ctx.at, pack_id=pack.id, pack_version=pack.version,
                       balc=p.acct_balc_fen - (result.setlinfo.acct_pay if write else 0), mulaid=mulaid)
    out["warnings"] = checks["warnings"] + ([{"rule_id": "HDL061", "message": med_type_note}] if med_type_note else [])
    if catalogue is not pack:
        out["warnings"].append({"rule_id": "HDL062", "message": f"异地就医: 费用按就医地 {catalogue.id} 的目录分类, "
                                                                f"按参保地 {pack.id} 的待遇结算"})
    out["blocking"] = checks["blocking"]
    if not write:
        return out
    # Core statements, executed in order within the request's transaction (no unit of work to sort)
    conn = session.connection()
    if info["acct_pay"]:  # never below zero, whatever happened since the balance was read
        if conn.execute(_DEBIT_ACCOUNT, {"debit_psn_no": p.psn_no, "pay": info["acct_pay"]}).rowcount != 1:
            raise problem(Conflict, "ACC001", "input.data.acct_used_flag",
                          f"个人账户余额不足以支付 {fen_to_yuan(info['acct_pay'])}(余额已被同时进行的结算使用), 请重新预结算")
    if mulaid and not mutual.debit(session, mulaid_psn_no, mulaid, on=on, kind=mutual.PAY, ref=setl_id, at=ctx.at,
                                   by=ctx.opter):  # under the holder's row lock: never below zero
        raise problem(Conflict, "ENR063", "input.data.acct_mulaid_psn_no",
                      f"家庭共济账户 {mulaid_psn_no} 余额不足以支付 {fen_to_yuan(mulaid)}(余额已被同时进行的结算使用), 请重新预结算")
    with pipelined(conn):  # PostgreSQL: the writes below go out in one round trip
        row = {"setl_id": setl_id, "mdtrt_id": mdtrt_id, "psn_no": v.psn_no,
               "fixmedins_code": v.fixmedins_code, "insutype": v.insutype, "med_type": med_type,
               "setl_time": ctx.at, "year": on.year, "pack_id": pack.id,
               "pack_version": pack.version, "status": "valid", "revs_setl_id": None,
               "revs_time": None, "delta": dict(result.delta),
               "acc_after": dict(result.accumulators_after.values),
               "explanation": explain(result, pack) + mulaid_note, "opter": ctx.opter, **info}
        details = [{"setl_id": setl_id, "seq": seq, "fund_pay_type": d.fund_pay_type, "fund_payamt": d.fund_payamt,
                    "setl_field": d.setl_field, "rule_id": d.rule_id, "rule_name": d.rule_name}
                   for seq, d in enumerate(result.setldetail)]
        ledger.seal_settlement(balance, row, details)  # hash chain (yibao.store.chain)
        conn.execute(_SETTLEMENTS, row)
        if details:
            conn.execute(_DETAILS, details)
        fault_point("settle:after_settlement")
        ledger.post(session, balance, setl_id, "settle", result.delta, result.accumulators_after, ctx.at)
        if hh_state is not None and result.household_delta:
            ledger.post_household(session, hh_state, setl_id, v.psn_no, "settle", result.household_delta,
                                  result.household_after, ctx.at)
        conn.execute(_CLOSE_VISIT, {"m": mdtrt_id, "at": ctx.at})
        audit(session, who, ctx, "settle", "settlement", setl_id,
              {"mdtrt_id": mdtrt_id, "psn_no": v.psn_no, "medfee_sumamt": info["medfee_sumamt"],
               "fund_pay_sumamt": info["fund_pay_sumamt"], "pack": f"{pack.id}@{pack.version}",
               **({"acct_mulaid_pay": mulaid, "mulaid_psn_no": mulaid_psn_no} if mulaid else {})})
    fault_point("settle:before_commit")
    return out


def _detail(d) -> dict:
    return {"fund_pay_type": d.fund_pay_type, "fund_payamt": d.fund_payamt, "setl_field": d.setl_field,
            "rule_id": d.rule_id, "rule_name": d.rule_name}


def _setl_output(info_fen: dict[str, int], details: list[dict], *, setl_id: str, mdtrt_id: str, psn_no: str,
                 insutype: str, med_type: str, setl_time: datetime, pack_id: str, pack_version: str,
                 balc: int, sign: int = 1, mulaid: int = 0) -> dict:
    """``mulaid``: what a 家庭共济 account paid (``acct_mulaid_pay``; ``psn_cash_pay`` is already net of it)."""
    setlinfo: dict[str, Any] = {"setl_id": setl_id, "mdtrt_id": mdtrt_id, "psn_no": psn_no, "insutype": insutype,
                                "med_type": med_type, "setl_time": setl_time.strftime("%Y-%m-%d %H:%M:%S")}
    for f in SETLINFO_FIELDS:
        setlinfo[f] = fen_to_yuan(sign * info_fen[f])
        if f == "acct_pay":
            setlinfo["acct_mulaid_pay"] = fen_to_yuan(sign * mulaid)
    setlinfo["balc"] = fen_to_yuan(balc)
    setlinfo["pack_id"] = pack_id
    setlinfo["pack_version"] = pack_version
    return {"setlinfo": setlinfo,
            "setldetail": [{"fund_pay_type": d["fund_pay_type"], "fund_payamt": fen_to_yuan(sign * d["fund_payamt"]),
                            "setl_field": d["setl_field"], "rule_id": d["rule_id"], "rule_name": d["rule_name"]}
                           for d in details]}


# --- 2208 / 2305 reverse --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Stored:
    """What :func:`yibao.settlement.engine.reverse` needs of a stored settlement."""

    mdtrt_id: str
    delta: dict
    accumulators_after: Accumulators
    accumulators_before: Accumulators


def reverse(session: Session, who: Principal, ctx: Context, *, setl_id: str, mdtrt_id: str | None = None,
            psn_no: str | None = None) -> dict:
    s = session.get(Settlement, setl_id)
    if s is None:
        raise problem(NotFound, "REV001", "input.data.setl_id", f"结算 setl_id {setl_id} 不存在")
    who.require("reverse", s.fixmedins_code)
    if mdtrt_id and mdtrt_id != s.mdtrt_id:
        raise ServiceError(Problem("REV002", "input.data.mdtrt_id", f"就诊 {mdtrt_id} 与结算 {setl_id} 不符"))
    if psn_no and psn_no != s.psn_no:
        raise ServiceError(Problem("REV003", "input.data.psn_no", f"人员编号 {psn_no} 与结算 {setl_id} 不符"))
    balance = ledger.lock_balance(session, s.psn_no, s.year)
    recheck(session)
    session.refresh(s)
    if s.status != "valid":
        raise problem(Conflict, "REV004", "input.data.setl_id", f"结算 {setl_id} 已于 {s.revs_time} 撤销, 不能重复撤销")
    last = ledger.last_entry(session, balance)
    if last is not None and last[0] == "topup":  # 补差 moved the year's accumulators after this settlement
        raise problem(Conflict, "REV005", "input.data.setl_id",
                      f"参保人 {s.psn_no} {s.year} 年度在此结算之后做过补差(依申请救助重算); 须先撤销补差单"
                      f"(yibao handling topup-reverse), 再按后结先撤撤销结算")
    after = Accumulators(s.year, {k: int(x) for k, x in s.acc_after.items()})
    delta = {k: int(x) for k, x in s.delta.items()}
    stored = _Stored(s.mdtrt_id, delta, after, after.minus(delta))
    try:
        restored = engine.reverse(stored, ledger.accumulators(balance))  # type: ignore[arg-type]
    except YibaoError as exc:
        raise problem(Conflict, exc.problems[0].code, "input.data.setl_id", exc.problems[0].message) from None
    _reverse_household(session, s, ctx)  # second lock: the household-year's, before the accounts and the visit
    revs_id = new_id("R")
    ledger.post(session, balance, setl_id, "reverse", {k: -x for k, x in delta.items()}, restored, ctx.at)
    s.status, s.revs_setl_id, s.revs_time = "reversed", revs_id, ctx.at
    mulaid = mutual.paid_for(session, setl_id)  # (holder, fen) when a 家庭共济 account paid
    if mulaid:  # both accounts locked in psn_no order, as settlement locks them
        mutual.lock_balances(session, {s.psn_no, mulaid[0]})
    if s.acct_pay:
        session.execute(update(Person).where(Person.psn_no == s.psn_no)
                        .values(acct_balc_fen=Person.acct_balc_fen + s.acct_pay))
    if mulaid:
        mutual.refund(session, setl_id, on=ctx.at.date(), at=ctx.at, by=ctx.opter)
    v = session.get(Visit, s.mdtrt_id)
    assert v is not None
    v.status = "reversed"
    audit(session, who, ctx, "reverse", "settlement", setl_id, {"revs_setl_id": revs_id, "mdtrt_id": s.mdtrt_id,
                                                                "psn_no": s.psn_no,
                                                                **({"acct_mulaid_pay": mulaid[1], "mulaid_psn_no": mulaid[0]}
                                                                   if mulaid else {})})
    p = session.get(Person, s.psn_no)
    out = _setl_output({f: getattr(s, f) for f in SETLINFO_FIELDS}, _details(session, setl_id), setl_id=revs_id,
                       mdtrt_id=s.mdtrt_id, psn_no=s.psn_no, insutype=s.insutype, med_type=s.med_type,
                       setl_time=ctx.at, pack_id=s.pack_id, pack_version=s.pack_version,
                       balc=(p.acct_balc_fen if p else 0), sign=-1, mulaid=mulaid[1] if mulaid else 0)
    out["setlinfo"]["refd_setl_id"] = setl_id
    return out


@dataclass(frozen=True)
class _StoredHousehold:
    """What :func:`yibao.settlement.engine.reverse_household` needs of a stored settlement."""

    mdtrt_id: str
    household_delta: dict
    household_after: Accumulators


def _reverse_household(session: Session, s: Settlement, ctx: Context) -> None:
    """The household part of 2208: a settlement that counted against a household cap (家庭年度限额) comes off the
    household's balance, under the household's lock taken right after the person's (the order of
    :mod:`yibao.service.ledger`), and only if it is the household's latest such settlement (SET041)."""
    stored = ledger.household_of_settlement(session, s.setl_id)
    if stored is None:  # no household-capped tier let anything through: reverses as any settlement
        return
    hh_no, year, delta, after = stored
    state = ledger.lock_household(session, hh_no, year)
    current = Accumulators(year, {k: int(x) for k, x in state.acc_values.items()})
    try:
        restored = engine.reverse_household(_StoredHousehold(s.mdtrt_id, delta, after), current)  # type: ignore[arg-type]
    except YibaoError as exc:
        raise problem(Conflict, exc.problems[0].code, "input.data.setl_id", exc.problems[0].message) from None
    ledger.post_household(session, state, s.setl_id, s.psn_no, "reverse", {k: -x for k, x in delta.items()},
                          restored, ctx.at)


def _details(session: Session, setl_id: str) -> list[dict]:
    return [_detail(d) for d in session.scalars(select(SettlementDetail).where(
        SettlementDetail.setl_id == setl_id).order_by(SettlementDetail.seq))]


# --- lookups --------------------------------------------------------------------------------------


def settlement_record(session: Session, who: Principal, setl_id: str) -> tuple[Settlement, dict]:
    s = session.get(Settlement, setl_id)
    if s is None:
        raise problem(NotFound, "SET060", "setl_id", f"结算 setl_id {setl_id} 不存在")
    who.require("settlement.read", s.fixmedins_code)
    out = _setl_output({f: getattr(s, f) for f in SETLINFO_FIELDS}, _details(session, setl_id), setl_id=setl_id,
                       mdtrt_id=s.mdtrt_id, psn_no=s.psn_no, insutype=s.insutype, med_type=s.med_type,
                       setl_time=s.setl_time, pack_id=s.pack_id, pack_version=s.pack_version, balc=0,
                       mulaid=(mutual.paid_for(session, setl_id) or ("", 0))[1])
    del out["setlinfo"]["balc"]
    out["setlinfo"]["setl_stas"] = s.status
    out["setlinfo"]["revs_setl_id"] = s.revs_setl_id
    out["explanation"] = s.explanation
    return s, out


LIST_AMOUNTS = ("medfee_sumamt", "fund_pay_sumamt", "hifp_pay", "hifmi_pay", "maf_pay", "acct_pay", "psn_cash_pay")


def settlement_list(session: Session, who: Principal, *, psn_no: str | None = None,
                    fixmedins_code: str | None = None, mdtrt_id: str | None = None, begndate: date | None = None,
                    enddate: date | None = None, status: str | None = None, limit: int = 100,
                    cursor: str | None = None) -> dict:
    """Settlements matching every given filter, newest first, ``limit`` at a time: what a desk
    looks up before a reversal or a reprint. An institution sees only its own (its code is the
    default filter; another's is refused). ``next_cursor`` continues the list (None at its end)."""
    if who.role == "institution":
        fixmedins_code = fixmedins_code or who.fixmedins_code
    who.require("settlement.read", fixmedins_code)
    if begndate and enddate and enddate < begndate:
        raise ServiceError(Problem("SET062", "enddate", f"结束日期 {enddate} 早于开始日期 {begndate}"))
    q = select(Settlement)
    for column, value in ((Settlement.psn_no, psn_no), (Settlement.fixmedins_code, fixmedins_code),
                          (Settlement.mdtrt_id, mdtrt_id), (Settlement.status, status)):
        if value is not None:
            q = q.where(column == value)
    if begndate:
        q = q.where(Settlement.setl_time >= datetime.combine(begndate, datetime.min.time()))
    if enddate:
        q = q.where(Settlement.setl_time <= datetime.combine(enddate, datetime.max.time()))
    if cursor:
        at, setl_id = _cursor(cursor)
        q = q.where((Settlement.setl_time < at) | ((Settlement.setl_time == at) & (Settlement.setl_id < setl_id)))
    rows = session.scalars(q.order_by(Settlement.setl_time.desc(), Settlement.setl_id.desc()).limit(limit + 1)).all()
    page = rows[:limit]
    mulaid = mutual.paid_by_settlement()  # 家庭共济 account money, kept in the account journal (not on the row)
    paid = dict(session.execute(select(mulaid.c.ref, mulaid.c.amount).where(
        mulaid.c.ref.in_([r.setl_id for r in page]))).tuples().all()) if page else {}
    items = [{"setl_id": r.setl_id, "mdtrt_id": r.mdtrt_id, "psn_no": r.psn_no, "fixmedins_code": r.fixmedins_code,
              "insutype": r.insutype, "med_type": r.med_type, "setl_time": r.setl_time.strftime("%Y-%m-%d %H:%M:%S"),
              "setl_stas": r.status, "revs_setl_id": r.revs_setl_id,
              **{f: fen_to_yuan(getattr(r, f)) for f in LIST_AMOUNTS},
              "acct_mulaid_pay": fen_to_yuan(int(paid.get(r.setl_id, 0)))} for r in page]
    last = page[-1] if page and len(rows) > limit else None
    return {"settlements": items,
            "next_cursor": None if last is None else f"{last.setl_time.isoformat()}|{last.setl_id}"}


def _cursor(text: str) -> tuple[datetime, str]:
    at, sep, setl_id = text.partition("|")
    try:
        when = datetime.fromisoformat(at)
        if not sep or not setl_id or when.tzinfo is not None or identifier_problem(setl_id):  # a naive time, an id
            raise ValueError(text)
        return when, setl_id
    except ValueError:
        raise ServiceError(Problem("SET061", "cursor", f"翻页游标 {text!r} 无效: 请使用上一页应答中的 next_cursor")) from None


def visit_record(session: Session, who: Principal, mdtrt_id: str) -> dict:
    v = visit_for(session, who, mdtrt_id, "settlement.read")
    items = session.scalars(select(FeeItem).where(FeeItem.mdtrt_id == mdtrt_id).order_by(FeeItem.feedetl_sn)).all()
    setls = session.scalars(select(Settlement.setl_id).where(Settlement.mdtrt_id == mdtrt_id)
                            .order_by(Settlement.setl_time)).all()
    return {"mdtrt_id": v.mdtrt_id, "psn_no": v.psn_no, "fixmedins_code": v.fixmedins_code, "insutype": v.insutype,
            "med_type": v.med_type, "begntime": v.begntime.strftime("%Y-%m-%d %H:%M:%S"), "dise_codg": v.dise_codg,
            "status": v.status, "medfee_sumamt": fen_to_yuan(sum(i.det_item_fee_sumamt_fen for i in items)),
            "feedetail": [{"feedetl_sn": i.feedetl_sn, "med_list_codg": i.med_list_codg, "chrgitm_lv": i.chrgitm_lv,
                           "det_item_fee_sumamt": fen_to_yuan(i.det_item_fee_sumamt_fen)} for i in items],
            "setl_ids": list(setls)}


# --- 3201 totals reconciliation -------------------------------------------------------------------


def totals(session: Session, who: Principal, *, fixmedins_code: str, begndate: date, enddate: date,
           insutype: str | None = None, declared: dict[str, Decimal | int] | None = None) -> dict:
    """对总账: valid settlements of the institution in [begndate, enddate] against what it declares."""
    who.require("totals.read", fixmedins_code)
    if enddate < begndate:
        raise ServiceError(Problem("TOT001", "input.data.stmt_enddate", "对账结束日期早于开始日期"))
    mulaid = mutual.paid_by_settlement()
    q = select(func.count(), func.coalesce(func.sum(Settlement.medfee_sumamt), 0),
               func.coalesce(func.sum(Settlement.fund_pay_sumamt), 0),
               func.coalesce(func.sum(Settlement.acct_pay), 0),
               func.coalesce(func.sum(mulaid.c.amount), 0)).outerjoin(
        mulaid, mulaid.c.ref == Settlement.setl_id).where(
        Settlement.fixmedins_code == fixmedins_code, Settlement.status == "valid",
        Settlement.setl_time >= datetime.combine(begndate, datetime.min.time()),
        Settlement.setl_time <= datetime.combine(enddate, datetime.max.time()))
    if insutype:
        q = q.where(Settlement.insutype == insutype)
    cnt, medfee, fund, acct, acct_mulaid = session.execute(q).one()
    ours = {"fixmedins_setl_cnt": int(cnt), "medfee_sumamt": fen_to_yuan(int(medfee)),
            "fund_pay_sumamt": fen_to_yuan(int(fund)), "acct_pay": fen_to_yuan(int(acct)),
            "acct_mulaid_pay": fen_to_yuan(int(acct_mulaid))}
    out: dict[str, Any] = {"setl_optins": fixmedins_code, "totals": ours}
    if declared is not None:
        diffs = [f"{k} 机构 {declared[k]} / 中心 {ours[k]}" for k in ours
                 if k in declared and declared[k] is not None and Decimal(str(declared[k])) != Decimal(ours[k])]
        out["stmt_rslt"] = "1" if diffs else "0"
        out["stmt_rslt_dscr"] = ("对账不平: " + "; ".join(diffs)) if diffs else "对账平"
    return out
