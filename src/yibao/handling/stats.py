"""经办 statistics: volume, on-time rate, average handling days, 网办率 and satisfaction, grouped by
item, channel, service point or month of application. Working days use the holiday calendar."""

from __future__ import annotations

from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from yibao.errors import Problem
from yibao.handling.calendar import calendar
from yibao.handling.catalogue import CHANNELS, HandlingError, catalogue
from yibao.handling.store import HdCase
from yibao.service.auth import Principal

GROUPS = {"item": "事项", "channel": "渠道", "service_point": "服务网点", "month": "月份"}


def _ratio(num: int, den: int) -> str | None:
    return None if den == 0 else str((Decimal(num) / Decimal(den)).quantize(Decimal("0.0001"), ROUND_HALF_UP))


def handling_stats(session: Session, who: Principal, *, begndate: date, enddate: date, by: str) -> list[dict]:
    who.require("handling.read")
    if by not in GROUPS:
        raise HandlingError(Problem("HDL050", "by", f"分组须为 {'/'.join(GROUPS)}({'/'.join(GROUPS.values())})"))
    if enddate < begndate:
        raise HandlingError(Problem("HDL051", "enddate", "截止日期不得早于开始日期"))
    cal = calendar()
    rows = session.scalars(select(HdCase).where(HdCase.applied_on >= begndate, HdCase.applied_on <= enddate)
                           .order_by(HdCase.id))
    groups: dict[str, dict] = {}
    for r in rows:
        key = {"item": r.item_code, "channel": r.channel, "service_point": r.service_point,
               "month": r.applied_on.strftime("%Y-%m")}[by]
        g = groups.setdefault(key, {"volume": 0, "online": 0, "completed": 0, "on_time": 0, "days": 0,
                                    "rated": 0, "rating_sum": 0, "good": 0})
        g["volume"] += 1
        g["online"] += r.channel == "online"
        if r.status == "completed" and r.accepted_on and r.completed_on:
            g["completed"] += 1
            g["on_time"] += r.completed_on <= r.deadline
            g["days"] += cal.working_days_between(r.accepted_on, r.completed_on)
        if r.rating is not None:
            g["rated"] += 1
            g["rating_sum"] += r.rating
            g["good"] += r.rating >= 4
    names = {i.code: i.name for i in catalogue().items}
    out = []
    for key in sorted(groups):
        g = groups[key]
        label = names.get(key, key) if by == "item" else CHANNELS.get(key, key) if by == "channel" else key
        out.append({by: key, "label": label, "volume": g["volume"], "completed": g["completed"],
                    "on_time_rate": _ratio(g["on_time"], g["completed"]),
                    "avg_working_days": None if not g["completed"] else str(
                        (Decimal(g["days"]) / g["completed"]).quantize(Decimal("0.01"), ROUND_HALF_UP)),
                    "online_rate": _ratio(g["online"], g["volume"]), "rated": g["rated"],
                    "avg_rating": None if not g["rated"] else str(
                        (Decimal(g["rating_sum"]) / g["rated"]).quantize(Decimal("0.01"), ROUND_HALF_UP)),
                    "good_rate": _ratio(g["good"], g["rated"])})
    return out
