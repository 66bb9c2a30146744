"""LTC audit rules (长护险智能审核): one definition, run on a person-month online and, the same call, in batch.

- LTC-A01 护理天数超过当月天数: per care mode and item class billed by the day, more days billed than
  the month has (the same days billed twice);
- LTC-A02 住院期间护理: a care day strictly inside an inpatient stay (admission and discharge days
  are allowed: care ends or resumes that day);
- LTC-A03 超等级服务: a service for a higher disability level than the person's assessed level;
- LTC-A04 死亡后护理: care dated after the person's death.

Each hit names the records and the money at stake (their amounts).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from yibao.ltc.settle import CarePerson, CareRecord, month_bounds
from yibao.policy.model import LongTermCare

RULES = {
    "LTC-A01": "护理天数超过当月天数",
    "LTC-A02": "住院期间护理",
    "LTC-A03": "超等级服务",
    "LTC-A04": "死亡后护理",
}


@dataclass(frozen=True)
class LtcHit:
    rule_id: str
    rule_name: str
    psn_no: str
    month: str
    srv_ids: tuple[str, ...]
    amount: int  # fen at stake
    reason: str


def audit_month(ltc: LongTermCare, person: CarePerson, month: str, records: list[CareRecord],
                srv_levels: dict[str, str] | None = None,
                stays: list[tuple[date, date]] = ()) -> list[LtcHit]:
    """Hits of one person-month. ``srv_levels`` maps srv_id → the level the service was billed for."""
    hits = []
    first, last = month_bounds(month)
    n_days = (last - first).days + 1

    def hit(rule: str, recs: list[CareRecord], reason: str) -> None:
        hits.append(LtcHit(rule, RULES[rule], person.psn_no, month, tuple(sorted({r.srv_id for r in recs})),
                           sum(r.amount for r in recs), reason))

    billed: dict[tuple[str, str], list[CareRecord]] = {}
    for r in records:
        if r.mode != "visit":
            billed.setdefault((r.mode, r.item_class), []).append(r)
    for (mode, item), recs in sorted(billed.items()):
        total = sum(r.days for r in recs)
        if total > n_days:
            hit("LTC-A01", recs, f"{mode}/{item} 本月计费 {total} 天, 超过当月 {n_days} 天")
    inside = [r for r in records if stays and _inside_a_stay(r, stays)]
    if inside:
        hit("LTC-A02", inside, "护理日期在住院期间(入院日与出院日之间)")
    rank = {level: i for i, level in enumerate(ltc.assessment.levels)}  # the pack's order, lowest first
    above = []
    for r in records:
        billed_level = (srv_levels or {}).get(r.srv_id)
        if billed_level is None or billed_level not in rank:
            continue
        span = person.level_on(r.srv_date)
        if span is not None and span.level in rank and rank[billed_level] > rank[span.level]:
            above.append(r)
    if above:
        hit("LTC-A03", above, "服务对应的失能等级高于评估等级")
    if person.death_date is not None:
        late = [r for r in records if r.srv_date + timedelta(days=r.days - 1) > person.death_date]
        if late:
            hit("LTC-A04", late, f"护理日期在死亡日期 {person.death_date} 之后")
    return hits


def _inside_a_stay(r: CareRecord, stays) -> bool:
    """Whether a day of the record falls strictly between a stay's admission and discharge days:
    its days [first, last] meet (begin, end) when max(first, begin + 1) <= min(last, end - 1)."""
    first = r.srv_date.toordinal()
    last = first + r.days - 1
    return any(max(first, begin.toordinal() + 1) <= min(last, end.toordinal() - 1) for begin, end in stays)
