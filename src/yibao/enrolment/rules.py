"""Contribution rules from the pack's ``financing`` section: pure functions of integer fen.

One definition each, used by the ledger (:mod:`yibao.enrolment.ledger`) and by anything that
projects income. Products of an amount and a rate round half-up to the fen (:mod:`yibao.money`).

>>> from yibao.policy.loader import resolve_pack
>>> fin = resolve_pack("shandong-2024").financing
>>> line = employee_month(fin, 250000, date(2024, 3, 1), retiree=False)  # declared 2,500 < floor 3,600
>>> line.base_fen, line.employer_fen, line.employee_fen, line.account_fen
(360000, 25200, 7200, 7200)
>>> resident_year(fin, 2024, {"dibao"}).personal_fen, resident_year(fin, 2024, {"tekun"}).personal_fen
(24000, 0)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Iterable

from yibao.errors import Problem
from yibao.money import round_half_up, yuan_to_fen
from yibao.policy.model import AssistanceRule, Financing
from yibao.service.errors import ServiceError


def _err(code: str, path: str, message: str) -> ServiceError:
    return ServiceError(Problem(code, path, message))


def month_end(d: date) -> date:
    nxt = date(d.year + (d.month == 12), d.month % 12 + 1, 1)
    return nxt - timedelta(days=1)


def _times(fen: int, rate: Decimal) -> int:
    return round_half_up(Decimal(fen) * rate)


@dataclass(frozen=True)
class Line:
    """One period's contribution: what each payer owes and where it goes."""

    base_fen: int = 0
    employer_fen: int = 0
    employee_fen: int = 0
    personal_fen: int = 0
    fiscal_fen: int = 0
    assistance_fen: int = 0
    relief_fen: int = 0
    account_fen: int = 0
    due_date: date | None = None
    deferred: bool = False
    category: str = ""

    @property
    def total_fen(self) -> int:
        return self.employer_fen + self.employee_fen + self.personal_fen + self.fiscal_fen + self.assistance_fen


def clamp_base(fin: Financing, declared_fen: int) -> int:
    """The monthly base: the declared wage held within the pack's floor and ceiling."""
    if fin.employee is None:
        raise _err("ENR050", "financing.employee", "政策包未给出职工缴费规则(financing.employee)")
    lo, hi = yuan_to_fen(fin.employee.base.floor_monthly), yuan_to_fen(fin.employee.base.ceiling_monthly)
    return min(max(declared_fen, lo), hi)


def _reliefs(fin: Financing, period: date):
    return [r for r in fin.reliefs if r.valid_from <= period <= r.valid_to]


def employee_month(fin: Financing, declared_fen: int, period: date, retiree: bool) -> Line:
    """职工 one month: employer and employee shares of the clamped base (阶段性减征 lowers the employer
    rate, 缓缴 moves the due date); the account credit. Retirees pay nothing and are credited a fixed sum."""
    if fin.employee is None:
        raise _err("ENR050", "financing.employee", "政策包未给出职工缴费规则(financing.employee)")
    e = fin.employee
    if retiree:
        return Line(account_fen=yuan_to_fen(e.account.retiree_monthly), due_date=month_end(period))
    base = clamp_base(fin, declared_fen)
    rate = e.employer_rate
    due, deferred = month_end(period), False
    for r in _reliefs(fin, period):
        if r.kind == "reduce":
            rate = rate * r.employer_factor
        elif r.defer_until is not None:
            due, deferred = max(due, r.defer_until), True
    full = _times(base, e.employer_rate)
    employer = _times(base, rate)
    employee = _times(base, e.employee_rate)
    return Line(base_fen=base, employer_fen=employer, employee_fen=employee, relief_fen=full - employer,
                account_fen=_times(employee, e.account.in_service_share), due_date=due, deferred=deferred)


def flexible_month(fin: Financing, chosen_fen: int, period: date) -> Line:
    """灵活就业 one month: the person pays the whole rate on a base chosen within the limits."""
    if fin.flexible is None:
        raise _err("ENR051", "financing.flexible", "政策包未给出灵活就业缴费规则(financing.flexible)")
    base = clamp_base(fin, chosen_fen)
    total = _times(base, fin.flexible.rate)
    return Line(base_fen=base, personal_fen=total, account_fen=_times(total, fin.flexible.account_share),
                due_date=month_end(period))


def assistance_fen(rule: AssistanceRule, individual_fen: int) -> int:
    """What medical assistance pays of one person's individual contribution under one rule."""
    if rule.kind == "full":
        return individual_fen
    if rule.kind == "fixed":
        return min(yuan_to_fen(rule.amount), individual_fen)
    if rule.kind == "percentage":
        return _times(individual_fen, rule.ratio)
    return 0


def resident_standard(fin: Financing, year: int) -> tuple[int, int]:
    """(individual, fiscal) per person for the year, fen."""
    for y in fin.resident:
        if y.year == year:
            return yuan_to_fen(y.individual), yuan_to_fen(y.fiscal)
    raise _err("ENR052", "financing.resident", f"政策包未给出 {year} 年居民缴费标准")


def best_assistance(fin: Financing, categories: Iterable[str], on: date, individual_fen: int) -> tuple[int, str]:
    """The most favourable subsidy among the person's categories on ``on`` (and which category)."""
    best, which = 0, ""
    for cat in sorted(set(categories)):
        for rule in fin.assistance:
            if rule.category == cat and rule.valid_from <= on <= rule.valid_to:
                amount = assistance_fen(rule, individual_fen)
                if amount > best:
                    best, which = amount, cat
    return best, which


def resident_year(fin: Financing, year: int, categories: Iterable[str], on: date | None = None) -> Line:
    """居民 one year: the individual standard split into 资助参保 (assistance) and what the person pays,
    plus the fiscal subsidy. ``on``: the day the categories are judged (default 1 January; for a person
    recognised mid-year, the recognition date)."""
    individual, fiscal = resident_standard(fin, year)
    on = on or date(year, 1, 1)
    aid, cat = best_assistance(fin, categories, on, individual)
    return Line(personal_fen=individual - aid, assistance_fen=aid, fiscal_fen=fiscal, due_date=date(year, 12, 31),
                category=cat)
