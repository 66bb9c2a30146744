"""Fund operation of the basic pools (统筹基金) per scheme and month: income, expense, balance,
accumulated balance, months of payout (可支付月数) and the warning level.

Income comes from the contribution ledger (``contributions.parquet`` beside ``persons.parquet``,
written by ``yibao synth`` / the enrolment domain; see :func:`ledger_income` and docs/enrolment.md)
for every scheme it has paid rows of; otherwise it is assumed, from the persons table and the
pack's ``fund`` section (``income_basis`` in the output says which):

- employees (310): each active (non-retired) employee pays ``employer_rate × wage_base_monthly``
  into the pool every month (the employee's own ``employee_rate`` goes to the personal account
  and is reported apart, not in the pool); retirees pay nothing;
- residents (390): ``individual + subsidy`` per person per year, spread evenly over the months
  (largest remainder to the fen); the individual part of persons in an assistance category is
  paid by 医疗救助 at the pack's share (资助参保; the highest share of the person's categories).

Expense is ``hifp_pay`` of the settled visits by month of ``setl_time`` and the person's scheme.
The opening accumulated balance is ``opening_months`` × the year's average monthly expense.
可支付月数 = accumulated balance / average monthly expense (year to date for the months, the
year for the annual row), rounded half-up to 0.01 month.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from pathlib import Path

import duckdb

from yibao.sql import q
from yibao.errors import Problem, YibaoError
from yibao.money import round_half_up
from yibao.payment.point_value import allocate
from yibao.policy.model import Fund, FundWarning

SCHEMES = {"310": "职工基本医疗保险", "390": "城乡居民基本医疗保险", "LTC": "长期护理保险"}  # LTC: yibao.ltc.fund
LEVELS = {"severe": "严重预警", "warning": "预警", "normal": "正常", "over": "结余过多"}


class FundError(YibaoError):
    title = "基金运行分析失败"


def warning_level(months: Decimal | None, w: FundWarning) -> str:
    """The pack's thresholds in months of payout.

    >>> warning_level(Decimal("2.9"), FundWarning()), warning_level(Decimal("16"), FundWarning())
    ('severe', 'over')
    """
    if months is None:
        return "normal"
    if months < w.severe_months:
        return "severe"
    if months < w.warning_months:
        return "warning"
    if months > w.over_months:
        return "over"
    return "normal"


def months_of(balance: int, expense: Fraction) -> Decimal | None:
    if expense <= 0:
        return None
    value = Fraction(balance) / expense
    return (Decimal(value.numerator) / Decimal(value.denominator)).quantize(Decimal("0.01"), ROUND_HALF_UP)


@dataclass
class MonthRow:
    insutype: str
    month: int
    income: int
    expense: int
    balance: int
    accumulated: int
    months_of_payout: Decimal | None
    level: str


@dataclass
class SchemeYear:
    insutype: str
    year: int
    members: int
    contributors: int
    income: int
    income_sources: dict[str, int]
    account_income: int
    expense: int
    opening: int
    closing: int
    months_of_payout: Decimal | None
    level: str
    months: list[MonthRow]

    @property
    def balance(self) -> int:
        return self.income - self.expense

    def to_dict(self) -> dict:
        d = asdict(self)
        d["balance"] = self.balance
        return d


def _spread(total: int) -> list[int]:
    return allocate([Fraction(total, 12)] * 12, total)


def ledger_income(con: duckdb.DuckDBPyConnection, year: int) -> dict[str, tuple[list[int], dict[str, int], int, int]]:
    """Pool income per scheme and month from a ``contributions`` view (the enrolment ledger, paid rows):
    the employer share plus what a payer's own contribution leaves after its account credit (retirees'
    credits are the account's, not pool income); 居民 personal + 资助 + 财政,
    a year's row spread over the months like the assumed income. → {insutype: (months, sources, account, payers)}."""
    out: dict[str, tuple[list[int], dict[str, int], int, int]] = {}
    rows = con.sql(f"""SELECT insutype, period, SUM(employer_fen),
                       SUM(CASE WHEN employee_fen + personal_fen > 0 THEN employee_fen + personal_fen - account_fen
                           ELSE 0 END), SUM(assistance_fen),
                       SUM(fiscal_fen), SUM(account_fen), COUNT(DISTINCT psn_no)
                       FROM contributions WHERE status = 'paid' AND period LIKE '{int(year)}%'
                       GROUP BY 1, 2 ORDER BY 1, 2""").fetchall()
    for insutype, period, employer, personal, assistance, fiscal, account, payers in rows:
        months, sources, acct, n = out.get(insutype, ([0] * 12, {"employer": 0, "individual": 0, "assistance": 0,
                                                               "subsidy": 0}, 0, 0))
        pool = [int(employer), int(personal), int(assistance), int(fiscal)]
        if len(period) == 7:
            months[int(period[5:7]) - 1] += sum(pool)
        else:
            months = [a + b for a, b in zip(months, _spread(sum(pool)))]
        for k, v in zip(("employer", "individual", "assistance", "subsidy"), pool):
            sources[k] += v
        out[insutype] = (months, sources, acct + int(account), max(n, int(payers)))
    return out


def operate(con: duckdb.DuckDBPyConnection, fund: Fund, year: int, ledger: bool = False) -> list[SchemeYear]:
    """Tables ``persons`` and ``setlinfo`` must exist in ``con`` (views over the files); with ``ledger``
    also ``contributions``, whose paid rows replace the assumed income of each scheme they cover."""
    booked = ledger_income(con, year) if ledger else {}
    emp, res = fund.employee, fund.resident
    shares = " ".join(f"WHEN list_contains(categories, {q(c)}) THEN {s}"
                      for c, s in sorted(fund.assistance.items(), key=lambda kv: -kv[1]))
    share_sql = f"CASE {shares} ELSE 0 END" if shares else "0"
    people = {r[0]: r[1:] for r in con.sql(f"""SELECT insutype, COUNT(*), SUM(CASE WHEN NOT retiree THEN 1 ELSE 0 END),
              SUM(CAST({share_sql} AS DECIMAL(10,4))) FROM persons GROUP BY insutype""").fetchall()}
    spent = {(r[0], r[1]): int(r[2]) for r in con.sql(f"""SELECT p.insutype, CAST(EXTRACT(month FROM s.setl_time) AS INTEGER),
              SUM(CAST(s.hifp_pay * 100 AS BIGINT)) FROM setlinfo s JOIN persons p ON p.psn_no = s.psn_no
              WHERE EXTRACT(year FROM s.setl_time) = {year} GROUP BY 1, 2""").fetchall()}
    if not spent:  # a year without payouts has no average month: months of payout would be meaningless
        raise FundError(Problem("FUND007", "--year", f"{year} 年没有已结算的统筹基金支付(setlinfo 中无该年度结算),"
                                                     " 请检查 --year 或 --settled"))
    out = []
    for insutype in sorted(set(people) & set(SCHEMES)):
        members, active, assisted_share = people[insutype]
        if insutype == "310":
            monthly = round_half_up(Decimal(emp.wage_base_monthly * 100) * emp.employer_rate) * active
            incomes = [monthly] * 12
            sources = {"employer": monthly * 12}
            account = round_half_up(Decimal(emp.wage_base_monthly * 100) * emp.employee_rate) * active * 12
            contributors = active
        else:
            individual = round_half_up(Decimal(res.individual * 100) * members)
            assisted = round_half_up(Decimal(res.individual * 100) * Decimal(assisted_share or 0))
            subsidy = round_half_up(Decimal(res.subsidy * 100) * members)
            incomes = _spread(individual + subsidy)
            sources = {"individual": individual - assisted, "assistance": assisted, "subsidy": subsidy}
            account, contributors = 0, members
        if insutype in booked:
            incomes, sources, account, contributors = booked[insutype]
            sources = {k: v for k, v in sources.items() if v or k in ("employer", "individual")}
        expenses = [spent.get((insutype, m), 0) for m in range(1, 13)]
        out.append(scheme_year(insutype, year, int(members), int(contributors), incomes, expenses, sources, account,
                               fund.opening_months, fund.warning))
    return out


def scheme_year(insutype: str, year: int, members: int, contributors: int, incomes: list[int], expenses: list[int],
                sources: dict[str, int], account: int, opening_months: Decimal, warning: FundWarning) -> SchemeYear:
    """A fund's year from its twelve months of income and expense: the accumulated balance month by month,
    months of payout (year to date) and the warning level; the opening balance is ``opening_months`` of the
    year's average month. One definition for every fund (the pools, the LTC fund)."""
    expense = sum(expenses)
    opening = round_half_up(Decimal(expense) * opening_months / 12)
    acc, rows, spent_ytd = opening, [], 0
    for m in range(1, 13):
        acc += incomes[m - 1] - expenses[m - 1]
        spent_ytd += expenses[m - 1]
        months = months_of(acc, Fraction(spent_ytd, m))
        rows.append(MonthRow(insutype, m, incomes[m - 1], expenses[m - 1], incomes[m - 1] - expenses[m - 1], acc,
                             months, warning_level(months, warning)))
    months = months_of(acc, Fraction(expense, 12))
    return SchemeYear(insutype, year, members, contributors, sum(incomes), sources, account, expense, opening, acc,
                      months, warning_level(months, warning), rows)


@dataclass
class ProjectionRow:
    scenario: str
    insutype: str
    year: int
    income: int
    expense: int
    closing: int
    months_of_payout: Decimal | None
    level: str


def project(years: list[SchemeYear], fund: Fund, factors: dict[str, Decimal] | None = None,
            scenario: str = "baseline") -> list[ProjectionRow]:
    """Next years: income grows by contribution_growth, expense by (1+cost_growth)(1+ageing), × a
    simulation's expense factor per scheme (reform / baseline pool payout) when given."""
    p = fund.projection
    rows = []
    for sy in years:
        factor = (factors or {}).get(sy.insutype, Decimal(1))
        closing = sy.closing
        for k in range(1, p.years + 1):
            income = round_half_up(Decimal(sy.income) * (1 + p.contribution_growth) ** k)
            expense = round_half_up(Decimal(sy.expense) * ((1 + p.cost_growth) * (1 + p.ageing)) ** k * factor)
            closing += income - expense
            months = months_of(closing, Fraction(expense, 12))
            rows.append(ProjectionRow(scenario, sy.insutype, sy.year + k, income, expense, closing, months,
                                      warning_level(months, fund.warning)))
    return rows


def simulation_factors(path: Path) -> dict[str, Decimal]:
    """Reform / baseline ``hifp_pay`` per scheme from the JSON ``yibao simulate --json`` writes."""
    import json

    factors = {}
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
        for g in doc["groups"]:
            if g["dimension"] != "insutype":
                continue
            pay = g["amounts"]["hifp_pay"]
            base, reform = Decimal(str(pay["baseline"])), Decimal(str(pay["reform"]))
            if not (base.is_finite() and reform.is_finite()):
                raise ValueError(f"{g['key']}: hifp_pay 须为有限数值")
            if base > 0:
                factors[str(g["key"])] = reform / base
    except KeyError as exc:
        raise FundError(Problem("FUND003", "--simulation", f"政策模拟结果 JSON 缺少字段 {exc}")) from None
    except ArithmeticError:  # decimal.InvalidOperation on a non-numeric amount ("abc")
        raise FundError(Problem("FUND003", "--simulation",
                                "政策模拟结果 JSON 的 amounts.hifp_pay.baseline/reform 须为数值")) from None
    except (OSError, ValueError, TypeError) as exc:
        raise FundError(Problem("FUND003", "--simulation", f"无法读取政策模拟结果 JSON: {exc}")) from None
    return factors
