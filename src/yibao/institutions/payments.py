"""Paying institutions, as pure rules: which settlement amounts each fund owes, the 30-working-day
deadline, the application's steps, and how a 预付金 (advance) is offset.

Funds (one application each per institution and month): ``basic`` 基本医疗保险统筹基金 (hifp_pay + 公务员医疗补助
cvlserv_pay), ``critical`` 大病保险/大额医疗费用补助 (hifmi_pay + hifob_pay), ``assistance`` 医疗救助 (maf_pay).
A month's application carries the fund's share of the settlements made in the month, less that of the
reversals made in the month (a reversal of an earlier month's settlement is deducted when it happens), so
over any run of months the applications add up to the fund's share of the settlements still valid.

    payable = settled − reversed + adjustment − offset

An advance of ``A`` recovered over ``n`` months is due ``A × k // n`` by the k-th month after the month
it was paid; each application offsets what is due and not yet offset, at most its own gross amount;
the year-end clearing offsets whatever is left. Every amount is integer fen.

>>> offset_due(100_000_00, 3, 1), offset_due(100_000_00, 3, 2), offset_due(100_000_00, 3, 5)
(3333333, 6666666, 10000000)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from yibao.calendar import calendar
from yibao.errors import Problem, YibaoError

FUNDS = {"basic": ("基本医疗保险统筹基金", ("hifp_pay", "cvlserv_pay")),
         "critical": ("大病保险/大额医疗费用补助", ("hifmi_pay", "hifob_pay")),
         "assistance": ("医疗救助基金", ("maf_pay",))}
DEADLINE_WORKING_DAYS = 30  # 医保部门自收到医疗机构费用结算申请30个工作日内完成费用拨付
WARN_WORKING_DAYS = 5  # 到期前 5 个工作日起预警
STEPS = {  # action → (from status, to status, permission)
    "review": ("applied", "reviewed", "payment.review"),
    "reject": ("applied", "rejected", "payment.review"),
    "approve": ("reviewed", "approved", "payment.approve"),
    "order": ("approved", "ordered", "payment.pay"),
    "pay": ("ordered", "paid", "payment.pay"),
}
STATUS_ZH = {"applied": "已申请", "reviewed": "已初审", "rejected": "已退回", "approved": "已审批",
             "ordered": "已下达支付指令", "paid": "已拨付"}


class PaymentError(YibaoError):
    title = "结算申请或拨付办理失败"
    status = 422


class PaymentConflict(PaymentError):
    title = "结算申请状态冲突"
    status = 409


class PaymentNotFound(PaymentError):
    title = "未找到"
    status = 404


def month_bounds(month: str) -> tuple[date, date]:
    """``2024-03`` → (first day, first day of the next month); INS201 otherwise."""
    try:
        year, mon = (int(x) for x in month.split("-"))
        first = date(year, mon, 1)
    except (ValueError, TypeError):
        raise PaymentError(Problem("INS201", "month", f"月份写作 YYYY-MM, 实际为 {month!r}")) from None
    if len(month) != 7 or not 2000 <= year <= 2100:
        raise PaymentError(Problem("INS201", "month", f"月份写作 YYYY-MM, 实际为 {month!r}"))
    return first, date(year + (mon == 12), mon % 12 + 1, 1)


def months_between(earlier: date, month_first: date) -> int:
    """Whole months from ``earlier``'s month to ``month_first``'s month (0 when the same month)."""
    return (month_first.year - earlier.year) * 12 + month_first.month - earlier.month


def offset_due(amount_fen: int, months: int, elapsed: int) -> int:
    """How much of an advance is due by ``elapsed`` months after the month it was paid (never more than it)."""
    return amount_fen * min(max(elapsed, 0), months) // months


def deadline(received_on: date) -> date:
    return calendar().add_working_days(received_on, DEADLINE_WORKING_DAYS)


@dataclass(frozen=True)
class Timeliness:
    deadline: date
    working_days_left: int  # negative: overdue by that many working days
    flag: str  # paid_on_time | paid_late | overdue | due_soon | on_track
    provisional: bool  # the deadline's year is not in the holiday data yet


def timeliness(received_on: date, paid_on: date | None, today: date) -> Timeliness:
    """How an application stands against its 30-working-day deadline on ``today``."""
    cal = calendar()
    due = deadline(received_on)
    provisional = cal.provisional(due)
    if paid_on is not None:
        return Timeliness(due, cal.working_days_between(paid_on, due), "paid_on_time" if paid_on <= due else "paid_late",
                          provisional)
    left = cal.working_days_between(today, due)
    flag = "overdue" if today > due else "due_soon" if left <= WARN_WORKING_DAYS else "on_track"
    return Timeliness(due, left, flag, provisional)


FLAG_ZH = {"paid_on_time": "按时拨付", "paid_late": "超期拨付", "overdue": "已超期", "due_soon": "即将到期",
           "on_track": "办理中"}


def step_problems(action: str, status: str, actors: dict[str, str | None], who: str) -> list[Problem]:
    """Why ``who`` may not take ``action`` on an application in ``status``; the approver is never the reviewer."""
    if action not in STEPS:
        return [Problem("INS210", "action", f"操作须为 {'/'.join(STEPS)} 之一, 实际为 {action!r}")]
    before, _after, _perm = STEPS[action]
    if status != before:
        return [Problem("INS211", "status", f"申请状态为{STATUS_ZH[status]}, 不能{ACTION_ZH[action]}"
                        f"(须为{STATUS_ZH[before]})")]
    if action == "approve" and actors.get("reviewed_by") == who:
        return [Problem("INS212", "approved_by", f"初审人 {who} 不能审批同一申请(岗位分离)")]
    return []


def fold_month(rows, start, end) -> dict[str, dict[str, int]]:
    """The row-by-row twin of :func:`yibao.institutions.applications.month_totals_query` (each row a mapping
    with fixmedins_code, setl_time, revs_time and the fund fields): what the SQL must agree with."""
    out: dict[str, dict[str, int]] = {}
    for r in rows:
        in_setl = start <= r["setl_time"] < end
        in_revs = r["revs_time"] is not None and start <= r["revs_time"] < end
        if not (in_setl or in_revs):
            continue
        t = out.setdefault(r["fixmedins_code"], {"setl_cnt": 0, "revs_cnt": 0,
                                                 **{f"{f}_{k}": 0 for f in FUNDS for k in ("settled", "reversed")}})
        t["setl_cnt"] += in_setl
        t["revs_cnt"] += in_revs
        for fund, (_name, fields) in FUNDS.items():
            amount = sum(r[f] for f in fields)
            if in_setl:
                t[f"{fund}_settled"] += amount
            if in_revs:
                t[f"{fund}_reversed"] += amount
    return out


ACTION_ZH = {"review": "初审", "reject": "退回", "approve": "审批", "order": "下达支付指令", "pay": "登记拨付"}
