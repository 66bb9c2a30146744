"""One holiday calendar (yibao.calendar): handling deadlines and paying institutions count the same working days."""

from __future__ import annotations

from datetime import date
from importlib import resources

from yibao import calendar as central
from yibao.handling import calendar as handling


def test_handling_reads_the_one_calendar():
    assert handling.calendar() is central.calendar()
    assert handling.Calendar is central.Calendar
    assert not resources.files("yibao.handling").joinpath("holidays.yaml").is_file()


def test_a_handling_deadline_in_2024_counts_the_2024_holidays():
    cal = handling.calendar()
    # 2024-09-13 (Fri) + 3 working days: 9/14 Saturday worked (调休), 9/15–9/17 中秋 off, 9/18, 9/19
    assert cal.add_working_days(date(2024, 9, 13), 3) == date(2024, 9, 19)
    assert not cal.provisional(date(2024, 9, 19)) and not cal.provisional(date(2025, 1, 28))
