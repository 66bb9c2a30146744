"""Working days (工作日) from one holiday calendar kept as data (``calendar_data/holidays.yaml``).

A deadline of ``n`` working days from a date is the n-th working day after it: the start day itself
is not counted (行政许可法 第八十二条 counts a 期限 from the next day). "医保部门自收到医疗机构费用结算申请
30个工作日内完成费用拨付" is ``add_working_days(received_on, 30)``.

A year the data does not list (next year's 国务院 notice not entered yet) is counted provisionally:
Monday to Friday less the fixed-date statutory holidays (元旦 1/1, 劳动节 5/1–5/2, 国庆节 10/1–10/3);
:meth:`Calendar.provisional` says so, and a deadline in such a year is shown as provisional, never refused.

>>> c = calendar()
>>> c.add_working_days(date(2026, 1, 30), 30)   # 春节 2/15–2/23 off, Saturdays 2/14 and 2/28 worked
datetime.date(2026, 3, 19)
>>> c.is_working_day(date(2026, 2, 14)), c.is_working_day(date(2026, 10, 5))
(True, False)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from importlib import resources

import yaml

FIXED_HOLIDAYS = frozenset({(1, 1), (5, 1), (5, 2), (10, 1), (10, 2), (10, 3)})  # 全国年节及纪念日放假办法


@dataclass(frozen=True)
class Calendar:
    off: frozenset[date]
    work: frozenset[date]
    years: frozenset[int]

    def is_working_day(self, day: date) -> bool:
        if day.year not in self.years:
            return day.weekday() < 5 and (day.month, day.day) not in FIXED_HOLIDAYS
        if day in self.work:
            return True
        return day.weekday() < 5 and day not in self.off

    def provisional(self, day: date) -> bool:
        """True when ``day``'s year is not in the data (its working days are estimated)."""
        return day.year not in self.years

    def add_working_days(self, start: date, n: int) -> date:
        day, left = start, n
        while left > 0:
            day += timedelta(days=1)
            if self.is_working_day(day):
                left -= 1
        return day

    def working_days_between(self, start: date, end: date) -> int:
        """Working days in (start, end]; negative when end is before start."""
        if end < start:
            return -self.working_days_between(end, start)
        return sum(1 for k in range(1, (end - start).days + 1) if self.is_working_day(start + timedelta(days=k)))


def parse_calendar(data: dict) -> Calendar:
    off: set[date] = set()
    work: set[date] = set()
    for spec in data.values():
        for first, last in spec.get("holidays", []):
            d = first
            while d <= last:
                off.add(d)
                d += timedelta(days=1)
        work.update(spec.get("workdays", []))
    return Calendar(frozenset(off), frozenset(work), frozenset(int(y) for y in data))


@lru_cache(maxsize=1)
def calendar() -> Calendar:
    text = resources.files("yibao").joinpath("calendar_data/holidays.yaml").read_text(encoding="utf-8")
    return parse_calendar(yaml.safe_load(text))
