"""Point value (点值) and what each institution is paid, exactly.

Point values are exact fractions (fen per point); they are shown rounded to 6 decimals of a
yuan but never used rounded. Each institution's due amount ``points × point value`` is exact
too; turning the amounts into fen uses the largest-remainder rule (floor each, then give the
missing fen one by one to the largest remainders, ties by institution code), so

    Σ due_i = round_half_up(total points × settlement point value)   (to the fen, always)

and when the settlement point value is the budget point value, Σ due_i = budget + Σ others_i
exactly, i.e. Σ (due_i − others_i) = budget; the fund then pays budget + Σ band adjustments
(结余留用/超支分担 below), which is the budget itself only when there are no bands.

- 预算点值 budget point value = (budget + patients' and other funds' payments) / total points
- 费用点值 cost point value = total medical cost / total points
- 结算点值 settlement point value = the budget point value, or the lower cost point value when
  the pack's ``cap_at_cost`` is on (the unused budget stays in the fund)

结余留用/超支分担 then compares each institution's due amount with its actual cost, by bands of
the gap as a share of the due amount: a surplus band keeps ``share`` of the surplus (the rest is
withheld), an overspend band has the fund pay ``share`` of the overspend. The adjustment is
rounded half-up once per institution and reported beside the due amount.

>>> allocate([Fraction(1, 3)] * 3, 1)
[1, 0, 0]
>>> band_adjustment(100_00, 90_00, [ShareBand(upto=Decimal("0.05"), share=Decimal(1)), ShareBand(share=Decimal("0.5"))], [])
-250
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Sequence

from yibao.errors import Problem
from yibao.money import round_half_up, yuan_to_fen
from yibao.payment.cases import PaymentError
from yibao.policy.model import BudgetShare, ShareBand

E4 = 10_000


def frac_round(x: Fraction) -> int:
    """Half-up rounding of an exact fraction (any sign: half away from zero)."""
    sign = -1 if x < 0 else 1
    a = abs(x)
    return sign * ((2 * a.numerator + a.denominator) // (2 * a.denominator))


def allocate(exact: Sequence[Fraction], total: int) -> list[int]:
    """Integers that sum to ``total``, each the floor of its exact value plus at most one."""
    denominator = math.lcm(*(x.denominator for x in exact)) if exact else 1
    return allocate_over([x.numerator * (denominator // x.denominator) for x in exact], denominator, total)


def allocate_over(numerators: Sequence[int], denominator: int, total: int) -> list[int]:
    """:func:`allocate` of ``n / denominator`` for each numerator: plain integers, no Fraction per row.

    The missing units go to the largest remainders ``n mod denominator``, ties by position.

    >>> allocate_over([5, 5], 2, 5)
    [3, 2]
    """
    floors = [n // denominator for n in numerators]
    missing = total - sum(floors)
    if missing:
        remainders = [n - f * denominator for n, f in zip(numerators, floors)]
        for i in sorted(range(len(numerators)), key=lambda i: (-remainders[i], i))[:missing]:
            floors[i] += 1
    return floors


def band_adjustment(due: int, cost: int, surplus: list[ShareBand], overspend: list[ShareBand]) -> int:
    """Fen added to (positive) or withheld from (negative) the due amount by the bands."""
    if due <= 0 or cost == due:
        return 0
    gap = abs(due - cost)
    bands = surplus if cost < due else overspend
    if not bands:
        return 0
    total = Fraction(0)
    lower = Fraction(0)
    for band in bands:
        upper = Fraction(gap) if band.upto is None else min(Fraction(gap), Fraction(band.upto) * due)
        if upper > lower:
            part = upper - lower
            total += part * (1 - Fraction(band.share)) if cost < due else part * Fraction(band.share)
            lower = upper
    if cost < due:
        total += Fraction(gap) - lower  # beyond the last band: nothing retained
        return -frac_round(total)
    return frac_round(total)


@dataclass
class Institution:
    fixmedins_code: str
    level: str
    cases: int
    points_e4: int
    cost: int
    hifp: int
    others: int
    high_cases: int = 0
    low_cases: int = 0
    comprehensive_cases: int = 0
    due: int = 0  # points × settlement point value, fen
    adjustment: int = 0  # 结余留用 / 超支分担
    paid: int = 0  # due + adjustment − others: what the DIP/DRG fund pays

    @property
    def difference(self) -> int:
        """Fund payment under point-value settlement minus what the pool paid item by item."""
        return self.paid - self.hifp


@dataclass
class PointSettlement:
    period: str
    budget: int
    total_points_e4: int
    total_cost: int
    total_others: int
    budget_point_value: Fraction  # fen per point
    cost_point_value: Fraction
    point_value: Fraction
    institutions: list[Institution] = field(default_factory=list)

    @property
    def total_due(self) -> int:
        return sum(i.due for i in self.institutions)

    @property
    def total_paid(self) -> int:
        return sum(i.paid for i in self.institutions)

    @property
    def total_adjustment(self) -> int:
        return sum(i.adjustment for i in self.institutions)


def yuan_per_point(value: Fraction, places: int = 6) -> Decimal:
    """A point value in yuan, rounded half-up for display only."""
    scaled = value * 10**places / 100
    return Decimal(frac_round(scaled)).scaleb(-places)


def settle_points(period: str, budget: int, institutions: list[Institution], cap_at_cost: bool,
                  surplus: list[ShareBand], overspend: list[ShareBand]) -> PointSettlement:
    total_points = sum(i.points_e4 for i in institutions)
    cost = sum(i.cost for i in institutions)
    others = sum(i.others for i in institutions)
    if total_points <= 0:

        raise PaymentError(Problem("PAY051", period, "本期没有可结算的分值(病例数为 0), 无法计算点值"))
    budget_pv = Fraction((budget + others) * E4, total_points)
    cost_pv = Fraction(cost * E4, total_points)
    pv = min(budget_pv, cost_pv) if cap_at_cost else budget_pv
    # due_i = points_i × pv / 10⁴ exactly = points_i × p / (q × 10⁴): one common denominator, integers only
    numerators = [i.points_e4 * pv.numerator for i in institutions]
    denominator = pv.denominator * E4
    dues = allocate_over(numerators, denominator, frac_round(Fraction(sum(numerators), denominator)))
    for inst, due in zip(institutions, dues):
        inst.due = due
        inst.adjustment = band_adjustment(due, inst.cost, surplus, overspend)
        inst.paid = due + inst.adjustment - inst.others
    return PointSettlement(period, budget, total_points, cost, others, budget_pv, cost_pv, pv, institutions)


def budget_fen(value, hifp_total: int) -> int:
    """A pack budget (yuan, or a share of the period's item-by-item pool payments) in fen."""

    if isinstance(value, BudgetShare):
        return round_half_up(Decimal(hifp_total) * value.hifp_share)
    return yuan_to_fen(value)
