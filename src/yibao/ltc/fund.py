"""The LTC fund's year beside the medical pools in ``yibao fund run``: income, expense, months of payout.

Income from the pack's ``ltc.funding``: each member of an LTC scheme among ``persons`` — employees
(310) at ``employee_rate`` × the pack's monthly wage base (``fund.employee.wage_base_monthly``)
every month, residents (390) at ``resident_per_capita`` a year (``resident_subsidy_share`` of it
from the treasury), spread evenly over the months. Expense: ``fund_pay`` of the settled
person-months (``ltc_settlements`` from ``yibao ltc settle``). Months of payout and warnings as
for the medical pools (:mod:`yibao.fund.operation`).
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import duckdb

from yibao.fund.operation import SchemeYear, scheme_year
from yibao.money import round_half_up
from yibao.payment.point_value import allocate
from yibao.policy.model import FundWarning, PolicyPack


def ltc_year(con: duckdb.DuckDBPyConnection, pack: PolicyPack, year: int) -> SchemeYear:
    """Views ``persons`` and ``ltc_settlements`` must exist in ``con``."""
    ltc = pack.ltc
    assert ltc is not None and ltc.funding is not None
    f = ltc.funding
    schemes = tuple(ltc.eligibility.insutypes)
    counts = dict(con.execute("SELECT insutype, COUNT(*) FROM persons WHERE list_contains(?, insutype) GROUP BY 1",
                              [list(schemes)]).fetchall())
    wage = Decimal(pack.fund.employee.wage_base_monthly) if pack.fund else Decimal(0)
    employee_monthly = round_half_up(wage * 100 * f.employee_rate) * counts.get("310", 0)
    residents = counts.get("390", 0)
    resident_year = round_half_up(Decimal(f.resident_per_capita) * 100 * residents)
    subsidy = round_half_up(Decimal(resident_year) * f.resident_subsidy_share)
    resident_months = allocate([Fraction(resident_year, 12)] * 12, resident_year)
    incomes = [employee_monthly + resident_months[m] for m in range(12)]
    spent = dict(con.execute("""SELECT CAST(substr(month, 6, 2) AS INTEGER), SUM(CAST(fund_pay * 100 AS BIGINT))
                                FROM ltc_settlements WHERE substr(month, 1, 4) = ? GROUP BY 1""", [str(year)]).fetchall())
    expenses = [int(spent.get(m, 0)) for m in range(1, 13)]
    sources = {"employee": employee_monthly * 12, "resident_individual": resident_year - subsidy, "resident_subsidy": subsidy}
    members = sum(counts.values())
    return scheme_year("LTC", year, members, members, incomes, expenses, sources, 0, f.opening_months,
                       pack.fund.warning if pack.fund else FundWarning())
