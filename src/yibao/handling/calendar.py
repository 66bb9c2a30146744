"""Working days for handling deadlines: the one holiday calendar of :mod:`yibao.calendar`.

Kept as an import so handling code reads ``yibao.handling.calendar`` as before; the data is
``yibao/calendar_data/holidays.yaml`` alone (one calendar for handling deadlines and for paying
institutions within 30 working days).
"""

from yibao.calendar import FIXED_HOLIDAYS, Calendar, calendar, parse_calendar

__all__ = ["FIXED_HOLIDAYS", "Calendar", "calendar", "parse_calendar"]
