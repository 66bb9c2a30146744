"""Monthly care settlement: one person-month of service records → what the LTC fund pays.

Per record, the person's assessed level on the service date and the care mode pick the pack's
benefit (first match in pack order); a record with no benefit (not enrolled in an LTC scheme,
no valid assessment, still in the waiting period, a level the mode does not serve, after death)
or an item class the benefit does not cover (伙食费 …) is paid by the person, with a reason.

Per benefit, over the month (see docs/ltc.md §结算):

    covered   = Σ amounts of the covered records
    units     = care days (the union of the records' days) or visits (distinct srv_id)
    allowed   = min(covered, limit × units)                # 超限额部分个人自付
    raw       = round_half_up(allowed × ratio)
    capped    = min(raw, the benefit's monthly cap)        # when the pack states one
    pay       = min(used + capped, month cap) − min(used, month cap)   # benefits in pack order

Everything is summed per month before any rounding, so how an institution splits its records
(one row a day, one row a week, items apart or together) never changes the result. A record of
several days must not straddle a change of level or eligibility (LTC014): it is judged as a whole.
"""

from __future__ import annotations

from calendar import monthrange
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import lru_cache

from yibao.errors import Problem
from yibao.ltc.assess import LtcError
from yibao.money import mul_rate, yuan_to_fen
from yibao.policy.model import Benefit, LongTermCare


@dataclass(frozen=True)
class CareRecord:
    """One uploaded line: a care day (or ``days`` consecutive days) or one visit, one item class."""

    srv_id: str
    srv_date: date
    mode: str  # institution / home / visit
    item_class: str  # care / medical_care / bed / meals / other
    amount: int  # fen
    days: int = 1
    fixmedins_code: str = ""


@dataclass(frozen=True)
class LevelSpan:
    """An assessment conclusion: ``level`` from ``begin`` to ``end`` inclusive (benefits after waiting)."""

    level: str
    begin: date
    end: date
    assessment_id: str = ""


@dataclass(frozen=True)
class CarePerson:
    psn_no: str
    insutype: str
    levels: tuple[LevelSpan, ...] = ()
    enrolled_since: date | None = None  # start of continuous enrolment in the LTC scheme
    death_date: date | None = None

    def level_on(self, day: date) -> LevelSpan | None:
        for s in self.levels:  # the first conclusion holding that day
            if s.begin <= day <= s.end:
                return s
        return None


@dataclass(frozen=True)
class BenefitLine:
    benefit_id: str
    name: str
    mode: str
    ratio: str
    limit_per: str
    limit: int
    units: int
    covered: int
    allowed: int
    over_limit: int
    raw: int
    capped: int
    pay: int
    cap_used_before: int


@dataclass(frozen=True)
class LtcSettlement:
    psn_no: str
    month: str  # YYYY-MM
    ltc_sumamt: int  # 护理费用总额
    excluded_amt: int  # 不予支付(不符合条件或不在支付范围的项目)
    over_limit_amt: int  # 超限额自付
    allowed_amt: int  # 纳入基金支付基数
    fund_pay: int  # 长护基金支付
    psn_pay: int  # 个人负担
    lines: tuple[BenefitLine, ...]
    excluded: tuple[tuple[str, str, int], ...]  # (srv_id, reason, amount)
    month_cap: int
    steps: tuple[str, ...] = field(default=())


@lru_cache(maxsize=1024)  # a batch asks for the same few months ten thousand times
def month_bounds(month: str) -> tuple[date, date]:
    year, mon = int(month[:4]), int(month[5:7])
    return date(year, mon, 1), date(year, mon, monthrange(year, mon)[1])


def record_problems(records: list[CareRecord], month: str, path: str = "records") -> list[Problem]:
    """Records that cannot be settled in this month at all (LTC010–LTC013), every one at once."""
    first, last = month_bounds(month)
    problems = []
    for i, r in enumerate(records):
        p = f"{path}[{i}]"
        if r.mode not in ("institution", "home", "visit"):
            problems.append(Problem("LTC010", f"{p}.mode", f"护理方式 {r.mode!r} 应为 institution/home/visit"))
        if r.item_class not in ("care", "medical_care", "bed", "meals", "other"):
            problems.append(Problem("LTC011", f"{p}.item_class", f"项目类别 {r.item_class!r} 应为 care/medical_care/bed/meals/other"))
        if r.amount < 0 or r.days < 1 or (r.mode == "visit" and r.days != 1):
            problems.append(Problem("LTC012", f"{p}.amount", "金额不能为负, 天数至少为 1, 上门巡护每条记录为一次(days=1)"))
        if not (first <= r.srv_date and r.srv_date + timedelta(days=r.days - 1) <= last):
            problems.append(Problem("LTC013", f"{p}.srv_date",
                                    f"服务日期 {r.srv_date}(共 {r.days} 天)不在结算月 {month} 内; 跨月的服务须按月分开上传"))
    return problems


def _benefit(ltc: LongTermCare, person: CarePerson, r: CareRecord) -> tuple[Benefit | None, str]:
    """The benefit that pays this record, or the reason none does."""
    if person.insutype not in ltc.eligibility.insutypes:
        return None, f"险种 {person.insutype} 未参加长期护理保险"
    if person.death_date is not None and r.srv_date > person.death_date:
        return None, f"服务日期在参保人死亡日期 {person.death_date} 之后"
    if ltc.eligibility.continuous_months:
        since = person.enrolled_since
        if since is None or r.srv_date < add_months(since, ltc.eligibility.continuous_months):
            return None, f"连续参保不满 {ltc.eligibility.continuous_months} 个月"
    span = person.level_on(r.srv_date)
    if span is None:
        return None, "服务日期没有有效的失能评估结论"
    if r.srv_date < span.begin + timedelta(days=ltc.eligibility.waiting_days):
        return None, f"评估结论生效后 {ltc.eligibility.waiting_days} 天等待期内"
    for b in ltc.benefits:
        if b.mode == r.mode and span.level in b.levels:
            if r.item_class not in b.items:
                return None, f"{b.name}不支付此类项目({r.item_class})"
            return b, ""
    name = ltc.assessment.levels.get(span.level, span.level)
    return None, f"失能等级 {name} 不享受此护理方式({r.mode})的待遇"


@lru_cache(maxsize=65536)  # pure; a batch asks for each person's eligibility day once per record
def add_months(day: date, months: int) -> date:
    """The same day ``months`` later (the month's last day where it has no such day).

    >>> add_months(date(2024, 1, 31), 1), add_months(date(2023, 9, 30), 6)
    (datetime.date(2024, 2, 29), datetime.date(2024, 3, 30))
    """
    m = day.month - 1 + months
    year, month = day.year + m // 12, m % 12 + 1
    return date(year, month, min(day.day, monthrange(year, month)[1]))


def changes(ltc: LongTermCare, person: CarePerson) -> list[date]:
    """Days on which the benefit a record gets may change: a record of several days may not straddle one."""
    out = set()
    for span in person.levels:
        out |= {span.begin, span.begin + timedelta(days=ltc.eligibility.waiting_days), span.end + timedelta(days=1)}
    if person.enrolled_since is not None:
        out.add(add_months(person.enrolled_since, ltc.eligibility.continuous_months))
    if person.death_date is not None:
        out.add(person.death_date + timedelta(days=1))
    return sorted(out)


def settle_month(ltc: LongTermCare, person: CarePerson, month: str, records: list[CareRecord]) -> LtcSettlement:
    """Settle one person-month (records of that person, dated within ``month``)."""
    problems = record_problems(records, month)
    if problems:
        raise LtcError(problems)
    covered: dict[str, int] = {}
    days: dict[str, list[tuple[int, int]]] = {}  # benefit → [first, end) day ordinals
    visits: dict[str, set[str]] = {}
    excluded: list[tuple[str, str, int]] = []
    problems = []
    breaks = changes(ltc, person)
    for i, r in enumerate(records):
        b, reason = _benefit(ltc, person, r)
        if r.days > 1 and any(r.srv_date < c <= r.srv_date + timedelta(days=r.days - 1) for c in breaks):
            problems.append(Problem("LTC014", f"records[{i}].days",
                                    f"记录 {r.srv_id} 的 {r.days} 天跨越了失能等级或待遇资格的变化; 请在变化处拆开上传"))
            continue
        if b is None:
            excluded.append((r.srv_id, reason, r.amount))
            continue
        covered[b.id] = covered.get(b.id, 0) + r.amount
        days.setdefault(b.id, []).append((r.srv_date.toordinal(), r.srv_date.toordinal() + r.days))
        visits.setdefault(b.id, set()).add(r.srv_id)
    if problems:
        raise LtcError(problems)
    month_cap = _fen(ltc.monthly_cap)
    used = 0
    lines = []
    steps = []
    for b in ltc.benefits:
        if b.id not in covered:
            continue
        units = _union_length(days[b.id]) if b.limit_per == "day" else len(visits[b.id])
        limit = _fen(b.limit)
        allowed = min(covered[b.id], limit * units)
        raw = mul_rate(allowed, b.ratio)
        capped = raw if b.monthly_cap is None else min(raw, _fen(b.monthly_cap))
        pay = min(used + capped, month_cap) - min(used, month_cap)
        lines.append(BenefitLine(b.id, b.name, b.mode, str(b.ratio), b.limit_per, limit, units, covered[b.id], allowed,
                                 covered[b.id] - allowed, raw, capped, pay, used))
        unit = "护理日" if b.limit_per == "day" else "次"
        steps.append(f"{b.name}: 纳入范围 {covered[b.id] / 100:.2f} 元, {units} {unit} × 限额 {limit / 100:.2f} 元 → "
                     f"基数 {allowed / 100:.2f} 元 × {b.ratio} = {raw / 100:.2f} 元"
                     + (f", 本待遇月限额后 {capped / 100:.2f} 元" if capped != raw else "")
                     + (f", 每月总限额 {month_cap / 100:.2f} 元(已用 {used / 100:.2f})后支付 {pay / 100:.2f} 元" if pay != capped else ""))
        used += capped
    total = sum(r.amount for r in records)
    excluded_amt = sum(a for _, _, a in excluded)
    over = sum(line.over_limit for line in lines)
    allowed_amt = sum(line.allowed for line in lines)
    fund = sum(line.pay for line in lines)
    return LtcSettlement(person.psn_no, month, total, excluded_amt, over, allowed_amt, fund, total - fund,
                         tuple(lines), tuple(excluded), month_cap, tuple(steps))


_fen = lru_cache(maxsize=1024)(yuan_to_fen)  # the pack's few limits and caps, asked for every person-month


def _union_length(spans: list[tuple[int, int]]) -> int:
    """Days covered by half-open [first, end) spans, each day once."""
    total, reach = 0, None
    for first, end in sorted(spans):
        if reach is None or first >= reach:
            total += end - first
            reach = end
        elif end > reach:
            total += end - reach
            reach = end
    return total
