"""Dated facts of the enrolment registry and their folds: pure data, no store, no web.

Nothing is ever overwritten. An enrolment fact says "from ``eff_date`` on, this person's
``insutype`` enrolment is in ``status`` at ``admdvs``"; the state on a date is the fact with the
latest ``(eff_date, id)`` among those effective by then (``id`` is the order of recording, so a
later correction of the same date wins). A category fact says "over ``[valid_from, valid_to]``
this person is (``grant``) or is not (``revoke``) in the category"; on a day, the latest recorded
fact covering it decides. Spells (the periods of constant state) are derived from the same rule,
so the stored projection that settlement reads and the fold always agree.

>>> f = [EnrolFact(1, "P1", "390", date(2024, 1, 1), ACTIVE, "433101"),
...      EnrolFact(2, "P1", "390", date(2024, 7, 1), SUSPENDED, "433101", reason="欠费")]
>>> state_on(f, date(2024, 6, 30)).status, state_on(f, date(2024, 7, 1)).status
('1', '2')
>>> [(s.start.isoformat(), s.end.isoformat(), s.status) for s in spells(f)]
[('2024-01-01', '2024-06-30', '1'), ('2024-07-01', '9999-12-31', '2')]
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Iterable, Sequence

ACTIVE, SUSPENDED, TERMINATED = "1", "2", "4"  # psn_insu_stas: 1 参保缴费, 2 暂停缴费, 4 终止参保
STATUS_NAMES = {ACTIVE: "参保", SUSPENDED: "暂停", TERMINATED: "终止"}
KINDS = {
    "register": "参保登记",
    "change": "变更",
    "suspend": "暂停",
    "terminate": "终止",
    "resume": "恢复",
    "transfer_out": "转移接续(转出)",
    "transfer_in": "转移接续(转入)",
    "adopt": "既有参保记录转为事实",
}
OPEN_END = date(9999, 12, 31)
ONE_DAY = timedelta(days=1)


@dataclass(frozen=True)
class EnrolFact:
    id: int  # recording order
    psn_no: str
    insutype: str
    eff_date: date
    status: str
    admdvs: str  # 参保地 (insuplc_admdvs)
    kind: str = "register"
    reason: str = ""
    psn_type: str = ""  # 1101 在职 / 1102 退休 / 1301 灵活就业 / 1401 居民 ...
    carried_months: int = 0  # continuous months brought in by a 转移接续 from elsewhere


@dataclass(frozen=True)
class Spell:
    """A period of constant state, ``end`` inclusive (OPEN_END when nothing follows)."""

    start: date
    end: date
    status: str
    admdvs: str
    psn_type: str
    fact_id: int  # the fact that set this period


def state_on(facts: Iterable[EnrolFact], on: date, known_by: int | None = None) -> EnrolFact | None:
    """The fact in force on ``on`` (None before the first); ``known_by``: only facts with id ≤ it."""
    best = None
    for f in facts:
        if f.eff_date <= on and (known_by is None or f.id <= known_by):
            if best is None or (f.eff_date, f.id) > (best.eff_date, best.id):
                best = f
    return best


def spells(facts: Sequence[EnrolFact]) -> list[Spell]:
    """Periods of constant (status, admdvs, psn_type), adjacent equal periods merged."""
    winners: dict[date, EnrolFact] = {}
    for f in facts:
        w = winners.get(f.eff_date)
        if w is None or f.id > w.id:
            winners[f.eff_date] = f
    days = sorted(winners)
    out: list[Spell] = []
    for i, d in enumerate(days):
        f = winners[d]
        end = days[i + 1] - ONE_DAY if i + 1 < len(days) else OPEN_END
        if out and (out[-1].status, out[-1].admdvs, out[-1].psn_type) == (f.status, f.admdvs, f.psn_type) \
                and out[-1].end + ONE_DAY == d:
            out[-1] = Spell(out[-1].start, end, f.status, f.admdvs, f.psn_type, out[-1].fact_id)
        else:
            out.append(Spell(d, end, f.status, f.admdvs, f.psn_type, f.id))
    return out


def active_spells(facts: Sequence[EnrolFact]) -> list[Spell]:
    """The covered periods (status 参保): what the ``enrollments`` projection holds for settlement.
    Active periods in different regions that touch stay separate rows (one per 参保地)."""
    return [s for s in spells(facts) if s.status == ACTIVE]


def covered_months(facts: Sequence[EnrolFact], on: date) -> int:
    """Continuous 参保 months up to ``on``: the unbroken active run ending on ``on`` (across regions,
    so a 转移接续 keeps counting) plus months carried in from elsewhere at its start."""
    upto = [s for s in spells(facts) if s.start <= on]
    if not upto or upto[-1].status != ACTIVE:
        return 0
    i = len(upto) - 1
    while i > 0 and upto[i - 1].status == ACTIVE and upto[i - 1].end + ONE_DAY == upto[i].start:
        i -= 1
    carried = next((f.carried_months for f in facts if f.id == upto[i].fact_id), 0)
    return carried + months_between(upto[i].start, on)


def months_between(start: date, on: date) -> int:
    """Whole months from ``start`` to ``on`` inclusive of the day (2024-01-01..2024-12-31 → 12)."""
    end = on + ONE_DAY
    return (end.year - start.year) * 12 + end.month - start.month - (1 if end.day < start.day else 0)


# --- categories ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CategoryFact:
    id: int
    psn_no: str
    category: str
    action: str  # grant | revoke
    valid_from: date
    valid_to: date
    dept: str = ""  # 认定部门: 民政 / 乡村振兴 / 残联 ...
    recognised_on: date | None = None  # 认定日期


@dataclass(frozen=True)
class Membership:
    category: str
    start: date
    end: date
    dept: str
    fact_id: int


def member_on(facts: Iterable[CategoryFact], category: str, on: date) -> CategoryFact | None:
    """The grant that makes the person a member on ``on``, or None."""
    best = None
    for f in facts:
        if f.category == category and f.valid_from <= on <= f.valid_to and (best is None or f.id > best.id):
            best = f
    return best if best is not None and best.action == "grant" else None


def memberships(facts: Sequence[CategoryFact]) -> list[Membership]:
    """Every category's member periods: day by day the latest recorded covering fact decides."""
    out: list[Membership] = []
    for cat in sorted({f.category for f in facts}):
        mine = [f for f in facts if f.category == cat]
        cuts = sorted({f.valid_from for f in mine} | {f.valid_to + ONE_DAY for f in mine if f.valid_to < OPEN_END})
        for i, d in enumerate(cuts):
            end = cuts[i + 1] - ONE_DAY if i + 1 < len(cuts) else OPEN_END
            cover = [f for f in mine if f.valid_from <= d <= f.valid_to]
            if not cover:
                continue
            top = max(cover, key=lambda f: f.id)
            if top.action != "grant":
                continue
            if out and out[-1].category == cat and out[-1].fact_id == top.id and out[-1].end + ONE_DAY == d:
                out[-1] = Membership(cat, out[-1].start, end, top.dept, top.id)
            else:
                out.append(Membership(cat, d, end, top.dept, top.id))
    return out
