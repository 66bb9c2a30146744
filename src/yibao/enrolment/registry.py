"""Registry transactions: 参保登记, 变更, 暂停/终止/恢复, 转移接续, category facts, and the as-of read.

Each transaction checks everything first, then appends facts (never updates one), rewrites the
person's projection in ``enrollments`` / ``person_categories`` (what settlement reads, see
:func:`project`), and writes one audit entry. The caller's transaction makes it all-or-nothing.

A person whose rows predate the facts (loaded by ``yibao service load`` or ``add_person``) gets
facts equal to those rows the first time one of their facts is recorded ("adopt"), so the fold
and the projection agree from then on; :func:`as_of` reads such a person the same way without
writing.
"""

from __future__ import annotations

from datetime import date
from typing import Iterable

from sqlalchemy import bindparam, delete, insert, select
from sqlalchemy.orm import Session

from yibao.codes import INSUTYPE_NAMES
from yibao.enrolment import facts as F
from yibao.enrolment import mutual
from yibao.enrolment.asof import fact_of
from yibao.enrolment.models import CategoryFact, EnrolmentFact, HouseholdLink
from yibao.errors import Problem
from yibao.service import registry
from yibao.service.auth import Principal
from yibao.service.errors import Conflict, NotFound, ServiceError, problem
from yibao.service.transactions import Context, audit
from yibao.store.models import Enrollment, Person, PersonCategory

INSUTYPES = {k: INSUTYPE_NAMES[k] for k in ("310", "390", "410")}  # what the registry enrols (410 长期照护保险)
PSN_TYPES = {"1101": "在职", "1102": "退休", "1301": "灵活就业", "1401": "城乡居民"}
_ENROLL = Enrollment.__table__
_CATS = PersonCategory.__table__


def _err(code: str, path: str, message: str) -> ServiceError:
    return ServiceError(Problem(code, path, message))


# --- reading facts --------------------------------------------------------------------------------


def _legacy_enrol(rows: Iterable) -> list[F.EnrolFact]:
    """Facts equal to projection rows written before facts existed (ids negative: before any real fact)."""
    out: list[F.EnrolFact] = []
    for r in sorted(rows, key=lambda r: (r.valid_from, r.id)):
        out.append(F.EnrolFact(-(10**9) + len(out), r.psn_no, r.insutype, r.valid_from, F.ACTIVE, r.insuplc_admdvs,
                               "adopt", "既有参保记录"))
        if r.valid_to < F.OPEN_END:
            out.append(F.EnrolFact(-(10**9) + len(out), r.psn_no, r.insutype, r.valid_to + F.ONE_DAY, F.TERMINATED,
                                   r.insuplc_admdvs, "adopt", "既有参保记录有效期届满"))
    return out


_EF = EnrolmentFact.__table__
_CF = CategoryFact.__table__
# built once (a statement caches its compiled form): the as-of read is two or three indexed round trips
_FACTS_OF = (select(_EF.c.id, _EF.c.psn_no, _EF.c.insutype, _EF.c.eff_date, _EF.c.status, _EF.c.admdvs, _EF.c.kind,
                    _EF.c.reason, _EF.c.psn_type, _EF.c.carried_months)
             .where(_EF.c.psn_no == bindparam("p")).order_by(_EF.c.id))
_ROWS_OF = select(_ENROLL).where(_ENROLL.c.psn_no == bindparam("p"))
_CATFACTS_OF = (select(_CF.c.id, _CF.c.psn_no, _CF.c.category, _CF.c.action, _CF.c.valid_from, _CF.c.valid_to,
                       _CF.c.dept, _CF.c.recognised_on).where(_CF.c.psn_no == bindparam("p")).order_by(_CF.c.id))
_CATROWS_OF = select(_CATS).where(_CATS.c.psn_no == bindparam("p")).order_by(_CATS.c.id)


def enrol_facts(session: Session, psn_no: str, insutype: str | None = None) -> dict[str, list[F.EnrolFact]]:
    """The person's enrolment facts by insutype (legacy rows read as facts where none are stored)."""
    conn = session.connection()
    out: dict[str, list[F.EnrolFact]] = {}
    for r in conn.execute(_FACTS_OF, {"p": psn_no}):
        if insutype is None or r.insutype == insutype:
            out.setdefault(r.insutype, []).append(F.EnrolFact(*r))
    legacy: dict[str, list] = {}
    for r in conn.execute(_ROWS_OF, {"p": psn_no}):
        if r.insutype not in out and (insutype is None or r.insutype == insutype):
            legacy.setdefault(r.insutype, []).append(r)
    for t, rows in legacy.items():
        out[t] = _legacy_enrol(rows)
    return out


def _cat(r: CategoryFact) -> F.CategoryFact:
    return F.CategoryFact(r.id, r.psn_no, r.category, r.action, r.valid_from, r.valid_to, r.dept, r.recognised_on)


def category_facts(session: Session, psn_no: str) -> list[F.CategoryFact]:
    conn = session.connection()
    stored = [F.CategoryFact(*r) for r in conn.execute(_CATFACTS_OF, {"p": psn_no})]
    if stored:
        return stored
    return [F.CategoryFact(-(10**9) + i, r.psn_no, r.category, "grant", r.valid_from, r.valid_to, r.issuing_dept)
            for i, r in enumerate(conn.execute(_CATROWS_OF, {"p": psn_no}))]


def as_of(session: Session, psn_no: str, on: date) -> dict:
    """The person's registry state on ``on``: each insutype's fact in force and the categories held."""
    enrol = []
    for insutype, fs in sorted(enrol_facts(session, psn_no).items()):
        st = F.state_on(fs, on)
        if st is None:
            continue
        enrol.append({"insutype": insutype, "psn_insu_stas": st.status, "status_name": F.STATUS_NAMES[st.status],
                      "insuplc_admdvs": st.admdvs, "psn_type": st.psn_type, "since": st.eff_date.isoformat(),
                      "kind": st.kind, "reason": st.reason, "continuous_months": F.covered_months(fs, on)})
    cats = category_facts(session, psn_no)
    held = []
    for c in sorted({f.category for f in cats}):
        g = F.member_on(cats, c, on)
        if g is not None:
            held.append({"category": c, "dept": g.dept, "valid_from": g.valid_from.isoformat(),
                         "valid_to": g.valid_to.isoformat()})
    return {"psn_no": psn_no, "on": on.isoformat(), "enrolments": enrol, "categories": held}


# --- writing facts --------------------------------------------------------------------------------


def _adopt_enrol(session: Session, psn_no: str, insutype: str, ctx: Context) -> list[F.EnrolFact]:
    """Stored facts of (person, insutype); legacy rows turned into stored facts first if there are none."""
    rows = [fact_of(r) for r in session.scalars(select(EnrolmentFact).where(
        EnrolmentFact.psn_no == psn_no, EnrolmentFact.insutype == insutype).order_by(EnrolmentFact.id))]
    if rows:
        return rows
    legacy = _legacy_enrol(session.scalars(select(Enrollment).where(Enrollment.psn_no == psn_no,
                                                                    Enrollment.insutype == insutype)))
    return [_append(session, f, ctx) for f in legacy]


def _append(session: Session, f: F.EnrolFact, ctx: Context) -> F.EnrolFact:
    row = EnrolmentFact(psn_no=f.psn_no, insutype=f.insutype, eff_date=f.eff_date, status=f.status, admdvs=f.admdvs,
                        kind=f.kind, reason=f.reason, psn_type=f.psn_type, carried_months=f.carried_months,
                        recorded_at=ctx.at, recorded_by=ctx.opter, request_id=ctx.request_id)
    session.add(row)
    session.flush()
    return fact_of(row)


def project(session: Session, psn_no: str, insutype: str, fs: list[F.EnrolFact]) -> None:
    """Rewrite the person's ``enrollments`` rows of this insutype as the fold's covered spells."""
    conn = session.connection()
    conn.execute(delete(_ENROLL).where(_ENROLL.c.psn_no == psn_no, _ENROLL.c.insutype == insutype))
    rows = [{"psn_no": psn_no, "insutype": insutype, "insuplc_admdvs": s.admdvs, "valid_from": s.start,
             "valid_to": s.end} for s in F.active_spells(fs)]
    if rows:
        conn.execute(insert(_ENROLL), rows)


def project_categories(session: Session, psn_no: str, fs: list[F.CategoryFact]) -> None:
    conn = session.connection()
    conn.execute(delete(_CATS).where(_CATS.c.psn_no == psn_no))
    rows = [{"psn_no": psn_no, "category": m.category, "issuing_dept": m.dept, "valid_from": m.start,
             "valid_to": m.end} for m in F.memberships(fs)]
    if rows:
        conn.execute(insert(_CATS), rows)


def _lock(session: Session, psn_no: str) -> None:
    """Serialise writers of one person's facts (PostgreSQL row lock on the person; SQLite has one writer):
    two transactions each appending a fact must not each project without the other's."""
    session.connection().execute(select(Person.psn_no).where(Person.psn_no == psn_no).with_for_update())


def _check_insutype(insutype: str, path: str = "insutype") -> None:
    if insutype not in INSUTYPES:
        raise _err("ENR003", path, f"险种 {insutype!r} 不在 {sorted(INSUTYPES)} 之内")


def _check_admdvs(admdvs: str, path: str = "insuplc_admdvs") -> None:
    if not (len(admdvs) == 6 and admdvs.isdigit()):
        raise _err("ENR004", path, f"参保地区划 {admdvs!r} 须为 6 位数字")


def _record(session: Session, who: Principal, ctx: Context, psn_no: str, insutype: str, new: list[F.EnrolFact],
            action: str) -> dict:
    """Check order against the stored facts, append ``new``, project, audit; the answer."""
    _lock(session, psn_no)
    fs = _adopt_enrol(session, psn_no, insutype, ctx)
    # a scheduled end (an adopted row's expiry) may be preceded; any other later fact would silently win
    last = max((f.eff_date for f in fs if not (f.kind == "adopt" and f.status == F.TERMINATED)), default=None)
    if last is not None and new[0].eff_date < last:
        raise _err("ENR014", "begndate", f"生效日期 {new[0].eff_date} 早于该险种最近一条参保事实的日期 {last}; "
                   "登记不能插到已有事实之前(如须更正请按同一日期或其后登记)")
    for f in new:
        fs.append(_append(session, f, ctx))
    project(session, psn_no, insutype, fs)
    st = F.state_on(fs, new[-1].eff_date)
    assert st is not None
    audit(session, who, ctx, action, "enrolment", psn_no,
          {"insutype": insutype, "eff_date": new[0].eff_date.isoformat(), "status": st.status,
           "insuplc_admdvs": st.admdvs, "reason": new[-1].reason, "facts": [f.kind for f in new]})
    return {"psn_no": psn_no, "insutype": insutype, "eff_date": new[0].eff_date.isoformat(),
            "psn_insu_stas": st.status, "status_name": F.STATUS_NAMES[st.status], "insuplc_admdvs": st.admdvs,
            "continuous_months": F.covered_months(fs, new[-1].eff_date),
            "spells": [{"begndate": s.start.isoformat(), "enddate": s.end.isoformat(), "insuplc_admdvs": s.admdvs,
                        "psn_insu_stas": s.status} for s in F.spells(fs)]}


def register(session: Session, who: Principal, ctx: Context, *, insutype: str, admdvs: str, begndate: date,
             psn_type: str = "", reason: str = "参保登记", psn_no: str | None = None, certno: str | None = None,
             psn_name: str | None = None, gend: str | None = None, retiree: bool = False,
             new_psn_no: str | None = None) -> dict:
    """参保登记: a new person (certno + name) or an existing one (psn_no) enrolls in ``insutype``."""
    who.require("enrol.write")
    _check_insutype(insutype)
    _check_admdvs(admdvs)
    if psn_type and psn_type not in PSN_TYPES:
        raise _err("ENR005", "psn_type", f"人员类别 {psn_type!r} 不在 {sorted(PSN_TYPES)} 之内")
    if psn_no is None:
        if not certno or not psn_name:
            raise _err("ENR001", "certno", "新参保人须给出证件号码 certno 和姓名 psn_name(已有人员给出 psn_no)")
        registry.check_certno(certno, "certno")
        try:
            found = registry.person_by_certno(session, certno)
        except NotFound:
            found = None
        if found is not None:
            raise problem(Conflict, "ENR010", "certno", f"证件号码已登记为人员 {found.psn_no}; 请按 psn_no 办理参保或变更")
        psn_no = new_psn_no or _new_psn_no()
        if session.get(Person, psn_no) is not None:
            raise problem(Conflict, "ENR010", "psn_no", f"人员编号 {psn_no} 已存在")
        registry.add_person(session, psn_no=psn_no, certno=certno, psn_name=psn_name, insutype=insutype,
                            admdvs=admdvs, valid_from=begndate, valid_to=begndate, gend=gend, retiree=retiree)
        session.flush()
        # add_person writes one enrollment row; the projection below replaces it with the fold's
        session.connection().execute(delete(_ENROLL).where(_ENROLL.c.psn_no == psn_no))
    else:
        registry.person(session, psn_no)
        st = F.state_on(enrol_facts(session, psn_no, insutype).get(insutype, []), begndate)
        if st is not None and st.status == F.ACTIVE:
            raise problem(Conflict, "ENR011", "insutype", f"人员 {psn_no} 在 {begndate} 已参加险种 {insutype}"
                          f"(参保地 {st.admdvs}); 请办理变更或转移接续")
    fact = F.EnrolFact(0, psn_no, insutype, begndate, F.ACTIVE, admdvs, "register", reason, psn_type)
    return _record(session, who, ctx, psn_no, insutype, [fact], "enrol.register")


def _new_psn_no() -> str:
    import uuid

    return "P" + uuid.uuid4().hex[:16].upper()


_ALLOWED = {  # action → statuses it may start from
    "change": {F.ACTIVE, F.SUSPENDED},
    "suspend": {F.ACTIVE},
    "terminate": {F.ACTIVE, F.SUSPENDED},
    "resume": {F.SUSPENDED, F.TERMINATED},
    "transfer_out": {F.ACTIVE},
}
_TARGET = {"suspend": F.SUSPENDED, "terminate": F.TERMINATED, "resume": F.ACTIVE}


def _current(session: Session, psn_no: str, insutype: str, on: date, action: str) -> F.EnrolFact:
    registry.person(session, psn_no)
    _check_insutype(insutype)
    st = F.state_on(enrol_facts(session, psn_no, insutype).get(insutype, []), on)
    if st is None:
        raise _err("ENR012", "insutype", f"人员 {psn_no} 在 {on} 没有险种 {insutype} 的参保记录")
    if st.status not in _ALLOWED[action]:
        raise problem(Conflict, "ENR013", "psn_insu_stas",
                      f"人员 {psn_no} 在 {on} 的参保状态为{F.STATUS_NAMES[st.status]}, 不能办理{F.KINDS[action]}")
    return st


def change_status(session: Session, who: Principal, ctx: Context, *, psn_no: str, insutype: str, action: str,
                  eff_date: date, reason: str) -> dict:
    """暂停 / 终止 / 恢复 from ``eff_date`` on (the day the new status first holds)."""
    who.require("enrol.write")
    if not reason.strip():
        raise _err("ENR006", "reason", "须说明办理原因 reason")
    st = _current(session, psn_no, insutype, eff_date, action)
    fact = F.EnrolFact(0, psn_no, insutype, eff_date, _TARGET[action], st.admdvs, action, reason, st.psn_type)
    return _record(session, who, ctx, psn_no, insutype, [fact], f"enrol.{action}")


def change(session: Session, who: Principal, ctx: Context, *, psn_no: str, insutype: str, eff_date: date,
           reason: str, psn_type: str | None = None) -> dict:
    """变更 (e.g. 在职 → 退休): the same status from ``eff_date`` with the changed attributes."""
    who.require("enrol.write")
    if not reason.strip():
        raise _err("ENR006", "reason", "须说明办理原因 reason")
    if psn_type is not None and psn_type not in PSN_TYPES:
        raise _err("ENR005", "psn_type", f"人员类别 {psn_type!r} 不在 {sorted(PSN_TYPES)} 之内")
    st = _current(session, psn_no, insutype, eff_date, "change")
    fact = F.EnrolFact(0, psn_no, insutype, eff_date, st.status, st.admdvs, "change", reason,
                       st.psn_type if psn_type is None else psn_type)
    if psn_type == "1102":
        person = registry.person(session, psn_no)
        person.retiree = True
    return _record(session, who, ctx, psn_no, insutype, [fact], "enrol.change")


def transfer(session: Session, who: Principal, ctx: Context, *, psn_no: str, insutype: str, eff_date: date,
             to_admdvs: str, reason: str = "转移接续") -> dict:
    """转移接续: the spell here ends the day before ``eff_date`` and the receiving region's opens on it,
    carrying the continuous months so far; both facts share the date, so no day is missed or doubled."""
    who.require("enrol.write")
    _check_admdvs(to_admdvs, "to_admdvs")
    st = _current(session, psn_no, insutype, eff_date, "transfer_out")
    if st.admdvs == to_admdvs:
        raise _err("ENR015", "to_admdvs", f"转入地 {to_admdvs} 与现参保地相同, 无须转移")
    months = F.covered_months(enrol_facts(session, psn_no, insutype)[insutype], eff_date - F.ONE_DAY)
    out = F.EnrolFact(0, psn_no, insutype, eff_date, F.TERMINATED, st.admdvs, "transfer_out",
                      f"{reason}: 转往 {to_admdvs}", st.psn_type)
    into = F.EnrolFact(0, psn_no, insutype, eff_date, F.ACTIVE, to_admdvs, "transfer_in",
                       f"{reason}: 自 {st.admdvs} 转入", st.psn_type, months)
    answer = _record(session, who, ctx, psn_no, insutype, [out, into], "enrol.transfer")
    answer["carried_months"] = months
    answer["from_admdvs"] = st.admdvs
    return answer


def transfer_in(session: Session, who: Principal, ctx: Context, *, psn_no: str, insutype: str, eff_date: date,
                admdvs: str, carried_months: int, from_admdvs: str, psn_type: str = "") -> dict:
    """转入 from a region outside this store: opens here with the months its 参保凭证 states."""
    who.require("enrol.write")
    _check_admdvs(admdvs)
    if not 0 <= carried_months <= 1200:
        raise _err("ENR016", "carried_months", f"累计缴费月数 {carried_months} 须在 0 到 1200 之间")
    registry.person(session, psn_no)
    st = F.state_on(enrol_facts(session, psn_no, insutype).get(insutype, []), eff_date)
    if st is not None and st.status == F.ACTIVE:
        raise problem(Conflict, "ENR011", "insutype", f"人员 {psn_no} 在 {eff_date} 已参加险种 {insutype}")
    into = F.EnrolFact(0, psn_no, insutype, eff_date, F.ACTIVE, admdvs, "transfer_in",
                       f"转移接续: 自 {from_admdvs} 转入", psn_type, carried_months)
    return _record(session, who, ctx, psn_no, insutype, [into], "enrol.transfer_in")


def history(session: Session, who: Principal, psn_no: str) -> dict:
    """Every stored fact of the person, in recording order, with who recorded it and why."""
    who.require("enrol.read")
    registry.person(session, psn_no)
    enrol = [{"id": r.id, "insutype": r.insutype, "eff_date": r.eff_date.isoformat(), "psn_insu_stas": r.status,
              "insuplc_admdvs": r.admdvs, "kind": r.kind, "kind_name": F.KINDS.get(r.kind, r.kind),
              "reason": r.reason, "psn_type": r.psn_type, "carried_months": r.carried_months,
              "recorded_at": r.recorded_at.isoformat(), "recorded_by": r.recorded_by}
             for r in session.scalars(select(EnrolmentFact).where(EnrolmentFact.psn_no == psn_no)
                                      .order_by(EnrolmentFact.id))]
    cats = [{"id": r.id, "category": r.category, "action": r.action, "valid_from": r.valid_from.isoformat(),
             "valid_to": r.valid_to.isoformat(), "dept": r.dept, "reason": r.reason,
             "recorded_at": r.recorded_at.isoformat(), "recorded_by": r.recorded_by}
            for r in session.scalars(select(CategoryFact).where(CategoryFact.psn_no == psn_no)
                                     .order_by(CategoryFact.id))]
    return {"psn_no": psn_no, "enrolment_facts": enrol, "category_facts": cats}


# --- categories and households --------------------------------------------------------------------


def record_category(session: Session, who: Principal, ctx: Context, *, psn_no: str, category: str, action: str,
                    valid_from: date, valid_to: date, dept: str, known: Iterable[str],
                    recognised_on: date | None = None, reason: str = "") -> dict:
    """认定 (grant) or 退出 (revoke) a population category over a period; ``known``: the pack's codes."""
    who.require("enrol.write")
    registry.person(session, psn_no)
    known = set(known)
    if category not in known:
        raise _err("ENR020", "category", f"人员类别 {category!r} 不在政策包声明的类别之内: {sorted(known)}")
    if action not in ("grant", "revoke"):
        raise _err("ENR025", "action", f"action 须为 grant(认定) 或 revoke(退出), 实际为 {action!r}")
    if valid_to < valid_from:
        raise _err("ENR021", "valid_to", f"有效期止 {valid_to} 早于有效期起 {valid_from}")
    _lock(session, psn_no)
    fs = category_facts(session, psn_no)
    if fs and fs[0].id < 0:  # adopt legacy rows as stored facts
        adopted = []
        for f in fs:
            adopted.append(_append_cat(session, f, ctx, "既有类别记录"))
        fs = adopted
    fs.append(_append_cat(session, F.CategoryFact(0, psn_no, category, action, valid_from, valid_to, dept,
                                                  recognised_on), ctx, reason))
    project_categories(session, psn_no, fs)
    audit(session, who, ctx, f"category.{action}", "person_category", psn_no,
          {"category": category, "valid_from": valid_from.isoformat(), "valid_to": valid_to.isoformat(),
           "dept": dept, "reason": reason})
    return {"psn_no": psn_no, "categories": [{"category": m.category, "valid_from": m.start.isoformat(),
                                              "valid_to": m.end.isoformat(), "dept": m.dept}
                                             for m in F.memberships(fs)]}


def _append_cat(session: Session, f: F.CategoryFact, ctx: Context, reason: str) -> F.CategoryFact:
    row = CategoryFact(psn_no=f.psn_no, category=f.category, action=f.action, valid_from=f.valid_from,
                       valid_to=f.valid_to, dept=f.dept, recognised_on=f.recognised_on, reason=reason,
                       recorded_at=ctx.at, recorded_by=ctx.opter)
    session.add(row)
    session.flush()
    return _cat(row)


def link_household(session: Session, who: Principal, ctx: Context, *, holder_psn_no: str, member_psn_no: str,
                   relation: str, valid_from: date, valid_to: date = F.OPEN_END, action: str = "grant",
                   reason: str = "") -> dict:
    """家庭共济 link: ``member`` may be paid from ``holder``'s personal account over the period."""
    who.require("enrol.write")
    registry.person(session, holder_psn_no, "holder_psn_no")
    registry.person(session, member_psn_no, "member_psn_no")
    if holder_psn_no == member_psn_no:
        raise _err("ENR030", "member_psn_no", "共济成员不能是账户本人")
    if valid_to < valid_from:
        raise _err("ENR021", "valid_to", f"有效期止 {valid_to} 早于有效期起 {valid_from}")
    session.add(HouseholdLink(holder_psn_no=holder_psn_no, member_psn_no=member_psn_no, relation=relation,
                              action=action, valid_from=valid_from, valid_to=valid_to, recorded_at=ctx.at,
                              recorded_by=ctx.opter, reason=reason))
    audit(session, who, ctx, f"household.{action}", "household_link", holder_psn_no,
          {"member_psn_no": member_psn_no, "relation": relation, "valid_from": valid_from.isoformat(),
           "valid_to": valid_to.isoformat()})
    return {"holder_psn_no": holder_psn_no, "member_psn_no": member_psn_no, "relation": relation,
            "valid_from": valid_from.isoformat(), "valid_to": valid_to.isoformat(), "action": action}


def linked_on(session: Session, holder_psn_no: str, member_psn_no: str, on: date) -> bool:
    """Whether the member is linked to the holder on ``on`` (:func:`yibao.enrolment.mutual.link_state`)."""
    return mutual.link_state(session, holder_psn_no, member_psn_no, on) == "valid"


__all__ = ["as_of", "change", "change_status", "enrol_facts", "history", "record_category", "register", "transfer",
           "transfer_in"]
