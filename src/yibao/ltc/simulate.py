"""What an LTC reform costs and whom it helps: the same records settled under two packs, side by side.

Both runs use :func:`yibao.ltc.batch.settle_region`, so the comparison differs only in the packs'
numbers. Rows by care mode and by the person's level in the month (the level of the month's first
record), plus totals: fund payout, personal burden, persons paid more / less.
"""

from __future__ import annotations

from dataclasses import dataclass

from yibao.ltc.batch import Region, settle_region
from yibao.policy.model import LongTermCare


@dataclass(frozen=True)
class Row:
    group: str  # "total", "mode:home", "level:4"
    person_months: int
    baseline_fund: int
    reform_fund: int
    baseline_psn: int  # 0 on mode rows: the personal share is the month's, not a mode's
    reform_psn: int

    @property
    def change(self) -> int:
        return self.reform_fund - self.baseline_fund


@dataclass(frozen=True)
class LtcSimulation:
    rows: list[Row]
    persons_better: int  # persons whose year's personal burden fell
    persons_worse: int


def simulate(region: Region, baseline: LongTermCare, reform: LongTermCare) -> LtcSimulation:
    base, _ = settle_region(baseline, region)
    new, _ = settle_region(reform, region)
    groups: dict[str, list[int]] = {}

    def bump(key: str, fund_b: int, fund_r: int, psn_b: int = 0, psn_r: int = 0) -> None:
        g = groups.setdefault(key, [0, 0, 0, 0, 0])
        for i, v in enumerate((1, fund_b, fund_r, psn_b, psn_r)):
            g[i] += v

    burden: dict[str, int] = {}
    for b, r in zip(base, new):
        assert (b.psn_no, b.month) == (r.psn_no, r.month)
        first = region.records[(b.psn_no, b.month)][0]
        span = region.persons[b.psn_no].level_on(first.srv_date)
        for key in ("total", f"level:{span.level if span else '-'}"):
            bump(key, b.fund_pay, r.fund_pay, b.psn_pay, r.psn_pay)
        pay_b = {ln.mode: ln.pay for ln in b.lines}
        pay_r = {ln.mode: ln.pay for ln in r.lines}
        for mode in sorted(set(pay_b) | set(pay_r)):  # the personal share is per month, not per mode
            bump(f"mode:{mode}", pay_b.get(mode, 0), pay_r.get(mode, 0))
        burden[b.psn_no] = burden.get(b.psn_no, 0) + r.psn_pay - b.psn_pay
    rows = [Row(k, *v) for k, v in sorted(groups.items(), key=lambda kv: (kv[0] != "total", kv[0]))]
    return LtcSimulation(rows, sum(1 for d in burden.values() if d < 0), sum(1 for d in burden.values() if d > 0))
