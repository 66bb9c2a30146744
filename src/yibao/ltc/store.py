"""LTC in the service store: assessments, care institutions, uploaded records, person-month settlements.

The same functions as the files path (:mod:`yibao.ltc.assess`, :mod:`yibao.ltc.settle`,
:mod:`yibao.ltc.audit`) on rows of the store. A person-month is settled once; settling it again
needs its reversal first (LTC041), and a reversal marks the settlement reversed and frees its
records — nothing is deleted. Every write lands in the audit log. Enrolment comes from the
registry: the person's LTC scheme is the first of the pack's ``ltc.eligibility.insutypes`` they are
enrolled in on the month's first day, continuous enrolment counts from that enrolment's start.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, BigInteger, Date, DateTime, Integer, String, UniqueConstraint, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from yibao.errors import Problem
from yibao.ltc.assess import LtcError, assess, check_assessor, valid_until
from yibao.ltc.audit import audit_month
from yibao.ltc.settle import CarePerson, CareRecord, LevelSpan, month_bounds, record_problems, settle_month
from yibao.money import fen_to_yuan
from yibao.policy.model import LongTermCare
from yibao.service import registry
from yibao.service.packs import PackSet
from yibao.service.auth import Principal
from yibao.service.errors import Conflict, NotFound, problem
from yibao.service.transactions import Context, audit, new_id
from yibao.store.base import Base
from yibao.store.models import Enrollment, Visit


class LtcAssessment(Base):
    __tablename__ = "ltc_assessments"

    assessment_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    psn_no: Mapped[str] = mapped_column(String(40), index=True)
    level: Mapped[str] = mapped_column(String(40))
    begin: Mapped[date] = mapped_column(Date)
    end: Mapped[date] = mapped_column(Date)
    assessor: Mapped[str] = mapped_column(String(40))
    scores: Mapped[dict] = mapped_column(JSON)
    reason: Mapped[str] = mapped_column(String(400))
    recorded_by: Mapped[str] = mapped_column(String(80))
    recorded_at: Mapped[datetime] = mapped_column(DateTime)


class LtcInstitution(Base):
    """定点护理机构: the care modes it is designated for, its beds, and since/until when."""

    __tablename__ = "ltc_institutions"

    fixmedins_code: Mapped[str] = mapped_column(String(40), primary_key=True)
    fixmedins_name: Mapped[str] = mapped_column(String(200))
    admdvs: Mapped[str] = mapped_column(String(6))
    modes: Mapped[list] = mapped_column(JSON)
    beds: Mapped[int] = mapped_column(Integer)
    designated_from: Mapped[date] = mapped_column(Date)
    designated_to: Mapped[date] = mapped_column(Date)


class LtcRecord(Base):
    __tablename__ = "ltc_records"

    srv_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    psn_no: Mapped[str] = mapped_column(String(40), index=True)
    fixmedins_code: Mapped[str] = mapped_column(String(40))
    month: Mapped[str] = mapped_column(String(7), index=True)
    srv_date: Mapped[date] = mapped_column(Date)
    days: Mapped[int] = mapped_column(Integer)
    mode: Mapped[str] = mapped_column(String(16))
    item_class: Mapped[str] = mapped_column(String(16))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    srv_level: Mapped[str | None] = mapped_column(String(40), nullable=True)
    uploaded_at: Mapped[datetime] = mapped_column(DateTime)


class LtcSettlement(Base):
    __tablename__ = "ltc_settlements"
    __table_args__ = (UniqueConstraint("psn_no", "month", "valid_key"),)

    setl_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    psn_no: Mapped[str] = mapped_column(String(40), index=True)
    month: Mapped[str] = mapped_column(String(7))
    valid_key: Mapped[str] = mapped_column(String(40))  # "valid" while in force, the setl_id once reversed
    pack_id: Mapped[str] = mapped_column(String(40))
    pack_version: Mapped[str] = mapped_column(String(40))
    ltc_sumamt: Mapped[int] = mapped_column(BigInteger)
    excluded_amt: Mapped[int] = mapped_column(BigInteger)
    over_limit_amt: Mapped[int] = mapped_column(BigInteger)
    allowed_amt: Mapped[int] = mapped_column(BigInteger)
    fund_pay: Mapped[int] = mapped_column(BigInteger)
    psn_pay: Mapped[int] = mapped_column(BigInteger)
    detail: Mapped[dict] = mapped_column(JSON)  # lines, exclusions, explanation, audit hits (fen)
    status: Mapped[str] = mapped_column(String(10))  # settled / reversed
    settled_at: Mapped[datetime] = mapped_column(DateTime)
    reversed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    reverse_reason: Mapped[str | None] = mapped_column(String(400), nullable=True)


TABLES = [LtcAssessment.__table__, LtcInstitution.__table__, LtcRecord.__table__, LtcSettlement.__table__]


# --- writes ---------------------------------------------------------------------------------------


def record_assessment(session: Session, who: Principal, ctx: Context, ltc: LongTermCare, *, psn_no: str,
                      scores: dict, assessor: str, effective: date) -> dict:
    """评估结论: the level from the scores, valid from ``effective`` for the pack's months."""
    who.require("ltc.assess")
    registry.person(session, psn_no)
    previous = session.scalars(select(LtcAssessment).where(LtcAssessment.psn_no == psn_no)
                               .order_by(LtcAssessment.begin.desc(), LtcAssessment.recorded_at.desc())).first()
    check_assessor(ltc.assessment, previous.assessor if previous else None, assessor)
    result = assess(ltc.assessment, scores)
    end = valid_until(ltc.assessment, effective)
    if previous is not None and previous.end >= effective:  # a re-assessment ends the previous conclusion
        previous.end = date.fromordinal(effective.toordinal() - 1)
    aid = new_id("LA")
    session.add(LtcAssessment(assessment_id=aid, psn_no=psn_no, level=result.level, begin=effective, end=end,
                              assessor=assessor, scores=scores, reason=result.reason, recorded_by=who.name,
                              recorded_at=ctx.at))
    audit(session, who, ctx, "ltc.assess", "ltc_assessment", aid, {"psn_no": psn_no, "level": result.level})
    return {"assessment_id": aid, "psn_no": psn_no, "level": result.level, "level_name": result.level_name,
            "begin": effective.isoformat(), "end": end.isoformat(), "reason": result.reason, "totals": result.totals}


def designate_institution(session: Session, who: Principal, ctx: Context, *, fixmedins_code: str, fixmedins_name: str,
                          admdvs: str, modes: list[str], beds: int, designated_from: date, designated_to: date) -> dict:
    who.require("ltc.designate")
    if session.get(LtcInstitution, fixmedins_code) is not None:
        raise problem(Conflict, "LTC042", "fixmedins_code", f"护理机构 {fixmedins_code} 已登记")
    if designated_to < designated_from:
        raise LtcError(Problem("LTC043", "designated_to", "定点截止日期早于起始日期"))
    session.add(LtcInstitution(fixmedins_code=fixmedins_code, fixmedins_name=fixmedins_name, admdvs=admdvs,
                               modes=sorted(set(modes)), beds=beds, designated_from=designated_from,
                               designated_to=designated_to))
    audit(session, who, ctx, "ltc.designate", "ltc_institution", fixmedins_code, {"modes": sorted(set(modes))})
    return {"fixmedins_code": fixmedins_code, "modes": sorted(set(modes))}


def upload_records(session: Session, who: Principal, ctx: Context, *, fixmedins_code: str, month: str,
                   records: list[dict]) -> dict:
    """护理服务记录上传: one institution, one month; every problem at once, nothing written on any."""
    who.require("ltc.upload", fixmedins_code)
    inst = session.get(LtcInstitution, fixmedins_code)
    if inst is None:
        raise problem(NotFound, "LTC044", "fixmedins_code", f"护理机构 {fixmedins_code} 未登记为定点护理机构")
    care = [CareRecord(r["srv_id"], r["srv_date"], r["mode"], r["item_class"], r["amount_fen"], r.get("days", 1),
                       fixmedins_code) for r in records]
    problems = record_problems(care, month)
    first, last = month_bounds(month)
    seen: set[str] = set()
    known = set(session.scalars(select(LtcRecord.srv_id).where(LtcRecord.srv_id.in_([r.srv_id for r in care]))))
    for i, r in enumerate(care):
        if r.mode not in inst.modes or not (inst.designated_from <= first and last <= inst.designated_to):
            problems.append(Problem("LTC045", f"records[{i}].mode",
                                    f"机构 {fixmedins_code} 在 {month} 不是{r.mode}护理的定点机构(定点 {inst.designated_from}–"
                                    f"{inst.designated_to}, 方式 {inst.modes})"))
        if r.srv_id in seen or r.srv_id in known:
            problems.append(Problem("LTC046", f"records[{i}].srv_id", f"服务记录号 {r.srv_id} 重复"))
        seen.add(r.srv_id)
    psns = {r["psn_no"] for r in records}
    settled = set(session.scalars(select(LtcSettlement.psn_no).where(
        LtcSettlement.psn_no.in_(psns), LtcSettlement.month == month, LtcSettlement.status == "settled")))
    for i, r in enumerate(records):
        if r["psn_no"] in settled:
            problems.append(Problem("LTC041", f"records[{i}].psn_no", f"{r['psn_no']} 的 {month} 已结算; 须先撤销再补传"))
    if problems:
        raise LtcError(problems)
    for p in sorted(psns):
        registry.person(session, p, "records.psn_no")
    for r, c in zip(records, care):
        session.add(LtcRecord(srv_id=c.srv_id, psn_no=r["psn_no"], fixmedins_code=fixmedins_code, month=month,
                              srv_date=c.srv_date, days=c.days, mode=c.mode, item_class=c.item_class,
                              amount_fen=c.amount, srv_level=r.get("srv_level"), uploaded_at=ctx.at))
    audit(session, who, ctx, "ltc.upload", "ltc_records", f"{fixmedins_code}:{month}", {"records": len(records)})
    return {"fixmedins_code": fixmedins_code, "month": month, "records": len(records)}


def care_person(session: Session, ltc: LongTermCare, psn_no: str, on: date) -> CarePerson:
    """The person as the month function needs them, from the registry and the assessments."""
    registry.person(session, psn_no)
    spells = session.scalars(select(Enrollment).where(Enrollment.psn_no == psn_no)).all()
    spell = next((e for t in ltc.eligibility.insutypes for e in spells
                  if e.insutype == t and e.valid_from <= on <= e.valid_to), None)
    spans = tuple(LevelSpan(a.level, a.begin, a.end, a.assessment_id) for a in session.scalars(
        select(LtcAssessment).where(LtcAssessment.psn_no == psn_no).order_by(LtcAssessment.begin)))
    if spell is None:
        return CarePerson(psn_no, "", spans, None, None)
    return CarePerson(psn_no, spell.insutype, spans, spell.valid_from, None)


def pack_for(session: Session, packs: PackSet, psn_no: str, on: date):
    """The pack in force on ``on`` where the person is insured (their first enrolment valid that day)."""
    registry.person(session, psn_no)
    spell = session.scalars(select(Enrollment).where(Enrollment.psn_no == psn_no, Enrollment.valid_from <= on,
                                                     Enrollment.valid_to >= on).order_by(Enrollment.insutype)).first()
    if spell is None:
        raise LtcError(Problem("LTC051", "psn_no", f"人员 {psn_no} 在 {on} 没有有效的参保"))
    pack = packs.pick(spell.insuplc_admdvs, on)
    if pack.pack.ltc is None:
        raise LtcError(Problem("LTC006", "ltc", f"政策包 {pack.id} 没有 ltc(长期护理保险)一节"))
    return pack


def settle(session: Session, who: Principal, ctx: Context, packs: PackSet, *, psn_no: str, month: str) -> dict:
    """结算一个人月: every uploaded record of the month, once."""
    who.require("ltc.settle")
    first, _ = month_bounds(month)
    pack = pack_for(session, packs, psn_no, first)
    ltc = pack.pack.ltc
    person = care_person(session, ltc, psn_no, first)
    rows = session.scalars(select(LtcRecord).where(LtcRecord.psn_no == psn_no, LtcRecord.month == month)
                           .order_by(LtcRecord.srv_date, LtcRecord.srv_id)).all()
    if not rows:
        raise problem(NotFound, "LTC047", "month", f"{psn_no} 在 {month} 没有护理服务记录")
    if session.scalars(select(LtcSettlement).where(LtcSettlement.psn_no == psn_no, LtcSettlement.month == month,
                                                   LtcSettlement.status == "settled")).first() is not None:
        raise problem(Conflict, "LTC041", "month", f"{psn_no} 的 {month} 已结算; 重新结算须先撤销")
    recs = [CareRecord(r.srv_id, r.srv_date, r.mode, r.item_class, r.amount_fen, r.days, r.fixmedins_code) for r in rows]
    s = settle_month(ltc, person, month, recs)
    first_day, last_day = month_bounds(month)
    stays = [(b.date(), e.date()) for b, e in session.execute(
        select(Visit.begntime, Visit.endtime).where(Visit.psn_no == psn_no, Visit.med_type == "21",
                                                    Visit.endtime.is_not(None), Visit.begntime <= datetime.combine(last_day, datetime.max.time()),
                                                    Visit.endtime >= datetime.combine(first_day, datetime.min.time())))]
    hits = audit_month(ltc, person, month, recs, {r.srv_id: r.srv_level for r in rows if r.srv_level}, stays)
    setl_id = new_id("LS")
    detail = {"lines": [ln.__dict__ for ln in s.lines], "excluded": [list(x) for x in s.excluded],
              "explanation": list(s.steps), "month_cap": s.month_cap,
              "hits": [{"rule_id": h.rule_id, "rule_name": h.rule_name, "srv_ids": list(h.srv_ids), "amount": h.amount,
                        "reason": h.reason} for h in hits]}
    session.add(LtcSettlement(setl_id=setl_id, psn_no=psn_no, month=month, valid_key="valid", pack_id=pack.id,
                              pack_version=pack.version, ltc_sumamt=s.ltc_sumamt, excluded_amt=s.excluded_amt,
                              over_limit_amt=s.over_limit_amt, allowed_amt=s.allowed_amt, fund_pay=s.fund_pay,
                              psn_pay=s.psn_pay, detail=detail, status="settled", settled_at=ctx.at))
    audit(session, who, ctx, "ltc.settle", "ltc_settlement", setl_id,
          {"psn_no": psn_no, "month": month, "fund_pay": s.fund_pay})
    session.flush()
    return statement(session, who, setl_id)


def reverse(session: Session, who: Principal, ctx: Context, *, setl_id: str, reason: str) -> dict:
    """撤销: the settlement stays, marked reversed with the reason; the month can be settled again."""
    who.require("ltc.settle")
    row = _settlement(session, setl_id, lock=True)
    if row.status != "settled":
        raise problem(Conflict, "LTC048", "setl_id", f"结算 {setl_id} 已于 {row.reversed_at} 撤销")
    if not reason.strip():
        raise LtcError(Problem("LTC049", "reason", "撤销须写明原因"))
    row.status, row.valid_key, row.reversed_at, row.reverse_reason = "reversed", setl_id, ctx.at, reason
    audit(session, who, ctx, "ltc.reverse", "ltc_settlement", setl_id, {"reason": reason})
    session.flush()
    return statement(session, who, setl_id)


# --- reads ----------------------------------------------------------------------------------------


def _settlement(session: Session, setl_id: str, lock: bool = False) -> LtcSettlement:
    q = select(LtcSettlement).where(LtcSettlement.setl_id == setl_id)
    row = session.scalars(q.with_for_update() if lock else q).first()
    if row is None:
        raise problem(NotFound, "LTC050", "setl_id", f"长护结算 {setl_id} 不存在")
    return row


def statement(session: Session, who: Principal, setl_id: str) -> dict:
    """One person-month's statement in yuan, explained line by line."""
    who.require("ltc.read")
    row = _settlement(session, setl_id)
    y = lambda fen: str(fen_to_yuan(fen))  # noqa: E731
    d = row.detail
    return {"setl_id": row.setl_id, "psn_no": row.psn_no, "month": row.month, "status": row.status,
            "pack": f"{row.pack_id}@{row.pack_version}", "ltc_sumamt": y(row.ltc_sumamt),
            "excluded_amt": y(row.excluded_amt), "over_limit_amt": y(row.over_limit_amt),
            "allowed_amt": y(row.allowed_amt), "fund_pay": y(row.fund_pay), "psn_pay": y(row.psn_pay),
            "month_cap": y(d["month_cap"]),
            "lines": [{"benefit_id": ln["benefit_id"], "name": ln["name"], "ratio": ln["ratio"], "units": ln["units"],
                       "limit": y(ln["limit"]), "covered": y(ln["covered"]), "allowed": y(ln["allowed"]),
                       "pay": y(ln["pay"])} for ln in d["lines"]],
            "excluded": [{"srv_id": sid, "reason": why, "amount": y(fen)} for sid, why, fen in d["excluded"]],
            "explanation": d["explanation"],
            "hits": [{**h, "amount": y(h["amount"])} for h in d["hits"]],
            "reverse_reason": row.reverse_reason}
