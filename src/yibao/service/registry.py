"""The enrollment registry: persons, enrollments, categories, institutions, and their validity on a date.

Also loads a synthetic region (``yibao synth``) into the store so the API can be tried and
benchmarked: each person is enrolled for the pack's year in the region of their record,
categories are valid all year and issued by 民政 (assistance categories) or 乡村振兴 (返贫/监测),
assistance categories get a 资助参保 record, and employees start with a personal-account balance.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from yibao import privacy
from yibao.errors import Problem
from yibao.money import yuan_to_fen
from yibao.service.errors import NotFound, ServiceError, problem
from yibao.store.models import Enrollment, Institution, Person, PersonCategory, SubsidisedEnrollment
from yibao.synth.ids import check_digit_ok

RURAL_REVITALISATION = {"fanpin", "monitor", "unstable", "edge", "sudden", "poor"}  # 返贫/监测/脱贫: 乡村振兴部门认定
SUBSIDY_FEN = {"tekun": 38000, "dibao": 26600, "dibao_edge": 19000, "fanpin": 19000}  # 资助参保示例标准
EMPLOYEE_OPENING_BALANCE = 200000  # 职工个人账户期初余额(示例, 分)


def birth_date(certno: str) -> date:
    return date(int(certno[6:10]), int(certno[10:12]), int(certno[12:14]))


def check_certno(certno: str, path: str = "certno") -> None:
    """18-digit resident ID (GB 11643): digits, a real birth date, the right check digit."""
    if not check_digit_ok(certno):
        raise ServiceError(Problem("REG001", path, f"证件号码 {certno[:6]}… 不是有效的 18 位身份证号(校验位不符)"))
    try:
        birth_date(certno)
    except ValueError:
        raise ServiceError(Problem("REG002", path, "证件号码中的出生日期无效")) from None


def age_on(brdy: date, on: date) -> int:
    return on.year - brdy.year - ((on.month, on.day) < (brdy.month, brdy.day))


def person(session: Session, psn_no: str, path: str = "psn_no") -> Person:
    found = session.get(Person, psn_no)
    if found is None:
        raise problem(NotFound, "REG010", path, f"人员编号 {psn_no} 不存在")
    return found


def person_by_certno(session: Session, certno: str, path: str = "certno") -> Person:
    """By blind index (the certno is encrypted at rest): its keyed hash under each known key, one query."""
    found = session.scalars(select(Person).where(Person.certno_bidx.in_(privacy.certno_indexes(certno)))).first()
    if found is None:
        raise problem(NotFound, "REG011", path, "证件号码对应的参保人不存在")
    return found


def enrollment(session: Session, psn_no: str, insutype: str, on: date, path: str = "insutype") -> Enrollment:
    rows = session.scalars(select(Enrollment).where(Enrollment.psn_no == psn_no, Enrollment.insutype == insutype)).all()
    return enrollment_among(rows, psn_no, insutype, on, path)


def enrollment_among(rows, psn_no: str, insutype: str, on: date, path: str = "insutype"):
    """The enrollment of ``rows`` (the person's for that insutype) valid on the date, or why none is."""
    valid = [e for e in rows if e.valid_from <= on <= e.valid_to]
    if valid:
        return valid[0]
    if rows:
        spans = "; ".join(f"{e.valid_from}–{e.valid_to}" for e in rows)
        raise ServiceError(Problem("REG020", path, f"人员 {psn_no} 的险种 {insutype} 参保在 {on} 无效(有效期 {spans})"))
    raise ServiceError(Problem("REG021", path, f"人员 {psn_no} 未参加险种 {insutype}"))


def institution(session: Session, code: str, on: date | None = None, path: str = "fixmedins_code") -> Institution:
    return designated(session.get(Institution, code), code, on, path)


def designated(found: Institution | None, code: str, on: date | None = None, path: str = "fixmedins_code") -> Institution:
    """``found`` (the institution row read by the caller) checked to exist and be designated on the date."""
    if found is None:
        raise problem(NotFound, "REG030", path, f"定点机构 {code} 不存在")
    if on is not None and not (found.designated_from <= on <= found.designated_to):
        raise ServiceError(Problem("REG031", path, f"机构 {code} 在 {on} 不是定点医药机构"
                                   f"(定点期 {found.designated_from}–{found.designated_to})"))
    return found


def load_region(session: Session, tables: dict, year: int) -> dict[str, int]:
    """Insert a synthetic region's persons and institutions (one transaction, the caller's)."""
    start, end = date(year, 1, 1), date(year, 12, 31)
    persons = tables["persons"].to_pylist()
    for i, p in enumerate(persons):
        check_certno(p["certno"], f"persons[{i}].certno")
    session.add_all(Institution(fixmedins_code=r["fixmedins_code"], fixmedins_name=r["fixmedins_name"],
                                level=r["level"], admdvs=r["admdvs"], designated_from=start, designated_to=end,
                                fixmedins_type=r.get("fixmedins_type") or "1")
                    for r in tables["institutions"].to_pylist())
    session.flush()
    counts = {"persons": 0, "enrollments": 0, "person_categories": 0, "subsidised_enrollments": 0}
    for p in persons:
        session.add(Person(psn_no=p["psn_no"], certno=p["certno"], psn_name=p["psn_name"], gend=p["gend"],
                           brdy=birth_date(p["certno"]), retiree=bool(p["retiree"]), admdvs=p["admdvs"],
                           hh_no=p["hh_no"], acct_balc_fen=EMPLOYEE_OPENING_BALANCE if p["insutype"] == "310" else 0))
        counts["persons"] += 1
    session.flush()
    for p in persons:
        session.add(Enrollment(psn_no=p["psn_no"], insutype=p["insutype"], insuplc_admdvs=p["admdvs"],
                               valid_from=start, valid_to=end))
        counts["enrollments"] += 1
        for cat in p["categories"] or []:
            dept = "乡村振兴" if cat in RURAL_REVITALISATION else "民政"
            session.add(PersonCategory(psn_no=p["psn_no"], category=cat, issuing_dept=dept,
                                       valid_from=start, valid_to=end))
            counts["person_categories"] += 1
            if cat in SUBSIDY_FEN and p["insutype"] == "390":
                session.add(SubsidisedEnrollment(psn_no=p["psn_no"], year=year, category=cat,
                                                 subsidy_fen=SUBSIDY_FEN[cat], issuing_dept=dept))
                counts["subsidised_enrollments"] += 1
    counts["institutions"] = tables["institutions"].num_rows
    return counts


def add_person(session: Session, *, psn_no: str, certno: str, psn_name: str, insutype: str, admdvs: str,
               valid_from: date, valid_to: date, gend: str | None = None, retiree: bool = False,
               categories: dict[str, str] | None = None, acct_balc: Decimal = Decimal(0),
               hh_no: str | None = None) -> Person:
    """One person with one enrollment (tests and small set-ups); categories: code → issuing dept."""
    check_certno(certno)
    row = Person(psn_no=psn_no, certno=certno, psn_name=psn_name, gend=gend, brdy=birth_date(certno),
                 retiree=retiree, admdvs=admdvs, acct_balc_fen=yuan_to_fen(acct_balc), hh_no=hh_no)
    session.add(row)
    session.flush()
    session.add(Enrollment(psn_no=psn_no, insutype=insutype, insuplc_admdvs=admdvs,
                           valid_from=valid_from, valid_to=valid_to))
    for cat, dept in (categories or {}).items():
        session.add(PersonCategory(psn_no=psn_no, category=cat, issuing_dept=dept,
                                   valid_from=valid_from, valid_to=valid_to))
    return row


def add_institution(session: Session, *, code: str, name: str, level: str, admdvs: str,
                    designated_from: date, designated_to: date, fixmedins_type: str = "1") -> Institution:
    row = Institution(fixmedins_code=code, fixmedins_name=name, level=level, admdvs=admdvs,
                      designated_from=designated_from, designated_to=designated_to, fixmedins_type=fixmedins_type)
    session.add(row)
    return row


def now() -> datetime:
    return datetime.now().replace(microsecond=0)
