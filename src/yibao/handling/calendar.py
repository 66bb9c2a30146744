"""Working days from a holiday calendar kept as data: deadlines counted the way a bureau counts them.

A day is a working day when it is Monday–Friday and not a statutory holiday, or when it is a
weekend the State Council moved work to (调休). Years without calendar data are refused (HDL030)
rather than guessed from weekends alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from importlib import resources

import yaml

from yibao.errors import Problem, YibaoError


class CalendarError(YibaoError):
    title = "工作日历"


@dataclass(frozen=True)
class WorkCalendar:
    holidays: frozenset[date]
    workdays: frozenset[date]
    years: frozenset[int]

    @classmethod
    def shipped(cls) -> "WorkCalendar":
        text = (resources.files("yibao.handling") / "holidays.yaml").read_text(encoding="utf-8")
        return cls.from_data(yaml.safe_load(text))

    @classmethod
    def from_data(cls, data: dict) -> "WorkCalendar":
        holidays, workdays = set(), set()
        for _year, spec in data.items():
            for first, last in spec.get("holidays", []):
                day = first
                while day <= last:
                    holidays.add(day)
                    day += timedelta(days=1)
            workdays.update(spec.get("workdays", []))
        return cls(frozenset(holidays), frozenset(workdays), frozenset(int(y) for y in data))

    def is_working_day(self, day: date) -> bool:
        if day.year not in self.years:
            raise CalendarError(Problem("HDL030", "date", f"没有 {day.year} 年的节假日安排, 无法计算工作日; 请在工作日历中补充"))
        if day in self.workdays:
            return True
        return day.weekday() < 5 and day not in self.holidays

    def add_working_days(self, start: date, days: int) -> date:
        """The date ``days`` working days after ``start`` (the day of acceptance does not count).

        >>> cal = WorkCalendar.shipped()
        >>> cal.add_working_days(date(2026, 9, 30), 1)   # 国庆 1–7 October, 10 October (Saturday) is a working day
        datetime.date(2026, 10, 8)
        >>> cal.add_working_days(date(2026, 10, 8), 2)
        datetime.date(2026, 10, 10)
        """
        day, left = start, days
        while left > 0:
            day += timedelta(days=1)
            if self.is_working_day(day):
                left -= 1
        return day

    def working_days_between(self, start: date, end: date) -> int:
        """Working days after ``start`` up to and including ``end`` (0 when end ≤ start)."""
        count, day = 0, start
        while day < end:
            day += timedelta(days=1)
            count += self.is_working_day(day)
        return count
