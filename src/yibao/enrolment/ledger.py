"""The contribution ledger and personal-account credits: insert-only rows, amounts from :mod:`rules`.

A period is paid when a ``paid`` row exists for it; a ``due`` row without one is arrears (a
``deferred`` row under 缓缴 is not, until its moved due date). Paying arrears (补缴) adds a paid
row; nothing is updated. Credits to a personal account add an :class:`AccountEntry` and raise the
balance on ``persons`` with one relative UPDATE (the settlement path debits the same column under
its own lock; a credit never needs the old value).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from yibao.enrolment import facts as F
from yibao.enrolment import mutual, rules
from yibao.enrolment import registry as er
from yibao.enrolment.importer import _bulk_insert
from yibao.enrolment.models import AccountEntry, Contribution, EnrolmentFact
from yibao.errors import Problem
from yibao.money import fen_to_yuan
from yibao.policy.model import Financing
from yibao.service import registry
from yibao.service.auth import Principal
from yibao.service.errors import ServiceError
from yibao.service.transactions import Context, audit
from yibao.store.models import Enrollment, Person, PersonCategory, Settlement
from yibao.synth import enrolment as synth_enrolment


def _err(code: str, path: str, message: str) -> ServiceError:
    return ServiceError(Problem(code, path, message))


def _row(psn_no: str, insutype: str, scheme: str, period: str, admdvs: str, line: rules.Line, status: str,
         ctx: Context, *, emp_no: str = "", sector: str = "", declared_fen: int = 0, paid_date: date | None = None):
    return Contribution(psn_no=psn_no, insutype=insutype, scheme=scheme, period=period, admdvs=admdvs, emp_no=emp_no,
                        sector=sector, declared_base_fen=declared_fen, base_fen=line.base_fen,
                        employer_fen=line.employer_fen, employee_fen=line.employee_fen, personal_fen=line.personal_fen,
                        fiscal_fen=line.fiscal_fen, assistance_fen=line.assistance_fen, relief_fen=line.relief_fen,
                        total_fen=line.total_fen, account_fen=line.account_fen, status=status,
                        due_date=line.due_date, paid_date=paid_date, category=line.category,
                        recorded_at=ctx.at, recorded_by=ctx.opter)


def credit_account(session: Session, ctx: Context, psn_no: str, on: date, amount_fen: int, kind: str, ref: str) -> None:
    session.add(AccountEntry(psn_no=psn_no, on=on, kind=kind, amount_fen=amount_fen, ref=ref, recorded_at=ctx.at,
                             recorded_by=ctx.opter))
    session.execute(update(Person).where(Person.psn_no == psn_no)
                    .values(acct_balc_fen=Person.acct_balc_fen + amount_fen))


def declare_employer(session: Session, who: Principal, ctx: Context, fin: Financing, *, emp_no: str, sector: str,
                     admdvs: str, period: date, lines: list[tuple[str, int]], paid: bool) -> dict:
    """职工 monthly declaration of one employer: each employee's declared wage (fen) → ledger rows;
    paid rows credit the personal account. Every listed person must be enrolled in 310 that month."""
    who.require("enrol.write")
    period = period.replace(day=1)
    label = period.strftime("%Y-%m")
    out = []
    for i, (psn_no, declared) in enumerate(lines):
        p = registry.person(session, psn_no, f"lines[{i}].psn_no")
        if declared < 0:
            raise _err("ENR053", f"lines[{i}].declared_base", "申报工资不能为负数")
        st = F.state_on(er.enrol_facts(session, psn_no, "310").get("310", []), rules.month_end(period))
        if st is None or st.status != F.ACTIVE:
            raise _err("ENR054", f"lines[{i}].psn_no", f"人员 {psn_no} 在 {label} 未参加职工医保(310), 不能申报缴费")
        if session.scalar(select(func.count()).select_from(Contribution).where(
                Contribution.psn_no == psn_no, Contribution.period == label, Contribution.scheme == "employee")):
            raise _err("ENR055", f"lines[{i}].psn_no", f"人员 {psn_no} 的 {label} 缴费已申报过; 补缴请用 pay")
        line = rules.employee_month(fin, declared, period, p.retiree)
        status = "paid" if paid else ("deferred" if line.deferred else "due")
        session.add(_row(psn_no, "310", "employee", label, admdvs, line, status, ctx, emp_no=emp_no, sector=sector,
                         declared_fen=declared, paid_date=ctx.at.date() if paid else None))
        if paid and line.account_fen:
            credit_account(session, ctx, psn_no, ctx.at.date(), line.account_fen, "credit", f"{emp_no}:{label}")
        out.append({"psn_no": psn_no, "base": fen_to_yuan(line.base_fen), "employer": fen_to_yuan(line.employer_fen),
                    "employee": fen_to_yuan(line.employee_fen), "relief": fen_to_yuan(line.relief_fen),
                    "account": fen_to_yuan(line.account_fen), "status": status})
    audit(session, who, ctx, "contribution.declare", "employer", emp_no, {"period": label, "lines": len(lines),
                                                                          "paid": paid})
    return {"emp_no": emp_no, "period": label, "lines": out}


ARREARS_REASON = "连续欠费"


def pay_arrears(session: Session, who: Principal, ctx: Context, *, psn_no: str, period: str,
                fin: Financing | None = None) -> dict:
    """补缴: a paid row for a period that has only a due/deferred row; credits the account then. With
    ``fin``, a person suspended for arrears and now clear resumes after the pack's waiting period."""
    who.require("enrol.write")
    rows = session.scalars(select(Contribution).where(Contribution.psn_no == psn_no, Contribution.period == period)
                           .order_by(Contribution.id)).all()
    if not rows:
        raise _err("ENR056", "period", f"人员 {psn_no} 没有 {period} 的缴费记录")
    if any(r.status == "paid" for r in rows):
        raise _err("ENR057", "period", f"人员 {psn_no} 的 {period} 缴费已缴清")
    r = rows[0]
    line = rules.Line(base_fen=r.base_fen, employer_fen=r.employer_fen, employee_fen=r.employee_fen,
                      personal_fen=r.personal_fen, fiscal_fen=r.fiscal_fen, assistance_fen=r.assistance_fen,
                      relief_fen=r.relief_fen, account_fen=r.account_fen, due_date=r.due_date, category=r.category)
    session.add(_row(psn_no, r.insutype, r.scheme, period, r.admdvs, line, "paid", ctx, emp_no=r.emp_no,
                     sector=r.sector, declared_fen=r.declared_base_fen, paid_date=ctx.at.date()))
    if r.account_fen:
        credit_account(session, ctx, psn_no, ctx.at.date(), r.account_fen, "credit", f"补缴:{period}")
    audit(session, who, ctx, "contribution.pay", "contribution", psn_no, {"period": period, "total": r.total_fen})
    resumed = _resume_if_cleared(session, who, ctx, fin, psn_no, r.insutype)
    return {"psn_no": psn_no, "period": period, "total": fen_to_yuan(r.total_fen),
            "resumed_from": None if resumed is None else resumed.isoformat()}


def _resume_if_cleared(session: Session, who: Principal, ctx: Context, fin: Financing | None, psn_no: str,
                       insutype: str) -> date | None:
    """A person suspended for arrears whose arrears are now cleared resumes after the pack's waiting period."""
    today = ctx.at.date()
    fs = er.enrol_facts(session, psn_no, insutype).get(insutype, [])
    st = F.state_on(fs, today)
    if fin is None or fin.employee is None or st is None or st.status != F.SUSPENDED or st.kind != "suspend" \
            or not st.reason.startswith(ARREARS_REASON) or arrears_months(session, psn_no, today) > 0:
        return None
    wait = fin.employee.arrears.waiting_months
    y, m = divmod(today.month - 1 + wait, 12)
    start = date(today.year + y, m + 1, min(today.day, 28)) if wait else today
    er.change_status(session, who, ctx, psn_no=psn_no, insutype=insutype, action="resume", eff_date=start,
                     reason=f"补缴欠费后恢复(等待期 {wait} 个月)")
    return start


def arrears_months(session: Session, psn_no: str, on: date) -> int:
    """Consecutive unpaid months ending at the latest month fallen due by ``on`` (缓缴: due at its moved date)."""
    rows = session.execute(select(Contribution.period, Contribution.status, Contribution.due_date).where(
        Contribution.psn_no == psn_no, Contribution.scheme.in_(("employee", "flexible")))).all()
    paid = {p for p, s, _ in rows if s == "paid"}
    fallen_due = sorted({p for p, s, d in rows if d < on}, reverse=True)  # newest first
    count, expect = 0, None
    for p in fallen_due:
        y, m = map(int, p.split("-"))
        if p in paid or (expect is not None and (y, m) != expect):
            break
        count += 1
        expect = (y - (m == 1), 12 if m == 1 else m - 1)
    return count


def apply_arrears(session: Session, who: Principal, ctx: Context, fin: Financing, on: date) -> list[dict]:
    """Suspend (a dated fact, reason 欠费) every active 职工 whose arrears exceed the pack's months."""
    who.require("enrol.write")
    if fin.employee is None:
        raise _err("ENR050", "financing.employee", "政策包未给出职工缴费规则(financing.employee)")
    limit = fin.employee.arrears.suspend_after_months
    out = []
    psns = session.scalars(select(Contribution.psn_no).where(Contribution.status != "paid").distinct()).all()
    for psn_no in sorted(psns):
        n = arrears_months(session, psn_no, on)
        if n <= limit:
            continue
        st = F.state_on(er.enrol_facts(session, psn_no, "310").get("310", []), on)
        if st is None or st.status != F.ACTIVE:
            continue
        er.change_status(session, who, ctx, psn_no=psn_no, insutype="310", action="suspend", eff_date=on,
                         reason=f"{ARREARS_REASON} {n} 个月(超过 {limit} 个月), 暂停统筹基金待遇")
        out.append({"psn_no": psn_no, "arrears_months": n})
    return out


def floor_flags(session: Session, fin: Financing, period: str, sector_avg_fen: dict[str, int]) -> list[dict]:
    """瞒报基数 check: employers every one of whose bases for the period sits at the floor while the sector's
    average wage is above floor × (1 + sector_floor_flag)."""
    if fin.employee is None:
        raise _err("ENR050", "financing.employee", "政策包未给出职工缴费规则(financing.employee)")
    floor = rules.clamp_base(fin, 0)
    limit = floor + int(floor * fin.employee.sector_floor_flag)
    rows = session.execute(select(Contribution.emp_no, Contribution.sector, Contribution.declared_base_fen,
                                  Contribution.base_fen).where(Contribution.period == period,
                                                               Contribution.scheme == "employee",
                                                               Contribution.base_fen > 0)).all()
    by_emp: dict[tuple[str, str], list[int]] = defaultdict(list)
    for emp, sector, declared, _base in rows:
        by_emp[(emp, sector)].append(declared)
    out = []
    for (emp, sector), declared in sorted(by_emp.items()):
        avg = sector_avg_fen.get(sector)
        if avg is not None and all(d <= floor for d in declared) and avg > limit:
            out.append({"emp_no": emp, "sector": sector, "employees": len(declared), "floor": fen_to_yuan(floor),
                        "sector_average": fen_to_yuan(avg),
                        "message": f"单位 {emp} 申报的 {len(declared)} 人缴费基数全在下限 {fen_to_yuan(floor)} 元, "
                                   f"而行业月平均工资 {fen_to_yuan(avg)} 元; 疑似瞒报基数, 建议稽核"})
    return out


# --- 居民 and 资助参保 ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RosterLine:
    psn_no: str
    category: str
    on: date  # the day the subsidy is judged: 1 January or the recognition date
    individual_fen: int
    assistance_fen: int
    contributed_fen: int | None  # what the ledger holds for the year (None: no row)

    @property
    def status(self) -> str:
        if self.contributed_fen is None:
            return "missing"
        return "ok" if self.contributed_fen == self.assistance_fen else "differs"


def subsidy_roster(session: Session, fin: Financing, year: int, admdvs_prefix: str = "") -> list[RosterLine]:
    """资助参保 roster of the year from category facts (the projection), reconciled with the ledger."""
    start, end = date(year, 1, 1), date(year, 12, 31)
    individual, _ = rules.resident_standard(fin, year)
    cats: dict[str, list[tuple[str, date]]] = defaultdict(list)
    q = (select(PersonCategory.psn_no, PersonCategory.category, PersonCategory.valid_from)
         .join(Person, Person.psn_no == PersonCategory.psn_no)
         .where(PersonCategory.valid_from <= end, PersonCategory.valid_to >= start,
                Person.admdvs.like(admdvs_prefix + "%")))
    for psn_no, cat, vf in session.execute(q):
        cats[psn_no].append((cat, max(vf, start)))
    ledger = {p: a for p, a in session.execute(
        select(Contribution.psn_no, func.sum(Contribution.assistance_fen)).where(
            Contribution.period == str(year), Contribution.scheme == "resident", Contribution.status == "paid")
        .group_by(Contribution.psn_no))}
    out = []
    for psn_no in sorted(cats):
        on = min(d for _, d in cats[psn_no])
        held = [c for c, d in cats[psn_no] if d <= on] or [c for c, _ in cats[psn_no]]
        aid, which = rules.best_assistance(fin, held, on, individual)
        if aid == 0:
            later = [(d, c) for c, d in cats[psn_no] if d > on]
            for d, c in sorted(later):  # recognised later in the year into a subsidised category
                aid, which = rules.best_assistance(fin, [c], d, individual)
                if aid:
                    on = d
                    break
        if aid == 0:
            continue
        emp = F.state_on(er.enrol_facts(session, psn_no, "310").get("310", []), on)
        if emp is not None and emp.status == F.ACTIVE:  # insured as an employee: not a 居民 subsidy case
            continue
        got = ledger.get(psn_no)
        out.append(RosterLine(psn_no, which, on, individual, aid, None if got is None else int(got)))
    return out


def resident_contributions(session: Session, who: Principal, ctx: Context, fin: Financing, year: int,
                           *, dynamic: bool = True) -> dict:
    """Record the year's 居民 contribution of every 390 enrollee without one (assistance from their
    categories, the rest paid by the person, plus the fiscal subsidy). ``dynamic`` (动态参保): a person
    on the subsidy roster who is not enrolled on their recognition date is enrolled from that date."""
    who.require("enrol.write")
    start, end = date(year, 1, 1), date(year, 12, 31)
    label = str(year)
    done = set(session.scalars(select(Contribution.psn_no).where(Contribution.period == label,
                                                                 Contribution.scheme == "resident")))
    enrolled_now = 0
    roster = {line.psn_no: line for line in subsidy_roster(session, fin, year)}
    if dynamic:
        for line in roster.values():
            st = F.state_on(er.enrol_facts(session, line.psn_no, "390").get("390", []), line.on)
            if st is None or st.status != F.ACTIVE:
                p = registry.person(session, line.psn_no)
                if st is None:
                    er.register(session, who, ctx, psn_no=line.psn_no, insutype="390", admdvs=p.admdvs,
                                begndate=line.on, psn_type="1401", reason=f"动态参保: 认定为 {line.category}")
                else:
                    er.change_status(session, who, ctx, psn_no=line.psn_no, insutype="390", action="resume",
                                     eff_date=line.on, reason=f"动态参保: 认定为 {line.category}")
                enrolled_now += 1
    q = (select(Enrollment.psn_no, func.min(Enrollment.valid_from), func.min(Enrollment.insuplc_admdvs))
         .where(Enrollment.insutype == "390", Enrollment.valid_from <= end, Enrollment.valid_to >= start)
         .group_by(Enrollment.psn_no))
    rows = 0
    totals = defaultdict(int)
    for psn_no, since, admdvs in session.execute(q).all():
        if psn_no in done:
            continue
        if psn_no in roster:  # judged on the day the roster found them subsidised (1 January or recognition)
            line = rules.resident_year(fin, year, [roster[psn_no].category], roster[psn_no].on)
        else:
            on = max(since, start)
            held = [c for (c,) in session.execute(select(PersonCategory.category).where(
                PersonCategory.psn_no == psn_no, PersonCategory.valid_from <= on, PersonCategory.valid_to >= on))]
            line = rules.resident_year(fin, year, held, on)
        session.add(_row(psn_no, "390", "resident", label, admdvs, line, "paid", ctx, paid_date=ctx.at.date()))
        rows += 1
        for k in ("personal_fen", "assistance_fen", "fiscal_fen"):
            totals[k] += getattr(line, k)
    audit(session, who, ctx, "contribution.resident", "year", label, {"rows": rows, "dynamic": enrolled_now, **totals})
    return {"year": year, "rows": rows, "dynamically_enrolled": enrolled_now,
            **{k.removesuffix("_fen"): fen_to_yuan(v) for k, v in totals.items()}}


# --- personal accounts ------------------------------------------------------------------------------


def family_pay(session: Session, who: Principal, ctx: Context, fin: Financing, *, holder_psn_no: str,
               member_psn_no: str, amount_fen: int, on: date, ref: str) -> dict:
    """家庭共济 at the 经办 desk: a registered family member's own-pay amount paid from the holder's account,
    never beyond its balance. The rule and the locked debit are :mod:`yibao.enrolment.mutual`'s, shared with
    settlement at the institution's desk (2207, where the 共济 amount is computed, not given)."""
    who.require("enrol.write")
    if amount_fen <= 0:
        raise _err("ENR058", "amount", "共济支付金额须大于 0")
    mutual.check(session, fin, holder_psn_no, member_psn_no, on)
    balc = mutual.lock_balances(session, {holder_psn_no}).get(holder_psn_no)
    if balc is None:
        registry.person(session, holder_psn_no, "holder_psn_no")
    assert balc is not None
    if balc < amount_fen or not mutual.debit(session, holder_psn_no, amount_fen, on=on, kind="family_pay",
                                             ref=f"{member_psn_no}:{ref}", at=ctx.at, by=ctx.opter):
        raise mutual.insufficient(balc, amount_fen)
    audit(session, who, ctx, "account.family_pay", "person", holder_psn_no,
          {"member_psn_no": member_psn_no, "amount": amount_fen, "ref": ref})
    return {"holder_psn_no": holder_psn_no, "member_psn_no": member_psn_no, "amount": fen_to_yuan(amount_fen),
            "balc": fen_to_yuan(balc - amount_fen)}


def account_statement(session: Session, psn_no: str, begndate: date, enddate: date) -> dict:
    """Balance statement: credits, 家庭共济 and settlement debits in the period, from the current balance back."""
    p = registry.person(session, psn_no)
    entries = [(e.on, e.kind, e.amount_fen, e.ref) for e in session.scalars(
        select(AccountEntry).where(AccountEntry.psn_no == psn_no, AccountEntry.on >= begndate,
                                   AccountEntry.on <= enddate).order_by(AccountEntry.id))]
    after = [(e.amount_fen) for e in session.scalars(select(AccountEntry).where(
        AccountEntry.psn_no == psn_no, AccountEntry.on > enddate))]
    setl = [(s.setl_time.date(), "settlement", -s.acct_pay, s.setl_id) for s in session.scalars(
        select(Settlement).where(Settlement.psn_no == psn_no, Settlement.status == "valid", Settlement.acct_pay != 0))]
    later_setl = sum(a for d, _, a, _ in setl if d > enddate)
    lines = sorted(entries + [x for x in setl if begndate <= x[0] <= enddate], key=lambda x: x[0])
    closing = p.acct_balc_fen - sum(after) - later_setl
    opening = closing - sum(a for _, _, a, _ in lines)
    return {"psn_no": psn_no, "begndate": begndate.isoformat(), "enddate": enddate.isoformat(),
            "opening": fen_to_yuan(opening), "closing": fen_to_yuan(closing),
            "lines": [{"date": d.isoformat(), "kind": k, "amount": fen_to_yuan(a), "ref": r} for d, k, a, r in lines]}


__all__ = ["account_statement", "apply_arrears", "arrears_months", "declare_employer",
           "family_pay", "floor_flags", "pay_arrears", "resident_contributions", "subsidy_roster"]


def load_synthetic(session: Session, who: Principal, ctx: Context, pack, persons, year: int, seed: int) -> dict:
    """After ``yibao service load`` of the same pack and seed: the region's enrolment facts (a year's spell,
    as the loaded rows say, so the projection is unchanged) and its contribution ledger, in bulk."""

    who.require("enrol.write")
    if pack.financing is None:
        raise _err("ENR050", "financing", f"政策包 {pack.pack.id} 没有筹资规则(financing)")
    facts = synth_enrolment.enrolment_facts(persons, year)
    common = {"reason": "合成地区年度参保", "carried_months": 0, "recorded_at": ctx.at, "recorded_by": ctx.opter,
              "request_id": ctx.request_id}
    conn = session.connection()
    for eff, status, kind in ((date(year, 1, 1), F.ACTIVE, "register"), (date(year + 1, 1, 1), F.TERMINATED, "adopt")):
        _bulk_insert(conn, EnrolmentFact.__table__, {c: facts.column(c) for c in ("psn_no", "insutype", "admdvs",
                                                                                  "psn_type")},
                     {"eff_date": eff, "status": status, "kind": kind, **common})
    rows = synth_enrolment.contributions(pack, persons, year, seed)
    due = [rules.month_end(date(int(p[:4]), int(p[5:7]), 1)) if len(p) == 7 else date(int(p), 12, 31)
           for p in rows.column("period").to_pylist()]
    import pyarrow as pa

    paid = [d if s == "paid" else None for d, s in zip(due, rows.column("status").to_pylist())]
    _bulk_insert(conn, Contribution.__table__, {**{c: rows.column(c) for c in rows.column_names},
                                                "due_date": pa.array(due, pa.date32()),
                                                "paid_date": pa.array(paid, pa.date32())},
                 {"recorded_at": ctx.at, "recorded_by": ctx.opter})
    audit(session, who, ctx, "enrol.load", "region", pack.pack.id, {"facts": 2 * facts.num_rows,
                                                                     "contributions": rows.num_rows})
    return {"enrolment_facts": 2 * facts.num_rows, "contributions": rows.num_rows}
