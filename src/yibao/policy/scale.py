"""The segmented scale: one type for every deductible / ratio-band / cap shape in a pack.

A scale is a piecewise-linear function F of a base amount (fen): nothing below the first
edge (the deductible), then each band pays its own exact rate, and the total is optionally
capped. Every benefit rule in yibao — the per-admission 统筹 payment, an annual outpatient
pool, 大病保险's segmented ratios, a 医疗救助 limit, a supplementary tier — is one of these,
so the scalar and the columnar engines share one definition of "what a tier pays".

Arithmetic is in integers: F(x) is kept as a numerator over a common power of ten, and only
the final value is rounded half-up to the fen.

>>> from decimal import Decimal as D
>>> s = SegmentedScale.from_bands(20000, [(None, D("0.85"))])
>>> s.amount(1850000)            # (18,500 − 200) × 85% = 15,555.00 yuan
1555500
>>> big = SegmentedScale.from_bands(1200000, [(3000000, D("0.6")), (10000000, D("0.7")), (None, D("0.8"))], cap=40000000)
>>> [big.amount(x) for x in (0, 1200000, 3000000, 5000000)]
[0, 0, 1080000, 2480000]
>>> big.increment(2500000, 1000000) == big.amount(3500000) - big.amount(2500000)
True
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from math import lcm
from typing import Sequence

from yibao.money import rate_parts


@dataclass(frozen=True, slots=True)
class Band:
    """Base amounts in [lower, upper) are paid at ``rate``; ``upper`` None means no end."""

    lower: int
    upper: int | None
    rate: Decimal


class SegmentedScale:
    """F(x) = min(cap, Σ rate_i · |[lower_i, upper_i) ∩ [0, x)|), rounded half-up to the fen."""

    __slots__ = ("bands", "cap", "denominator", "_terms", "_cap_num")

    def __init__(self, bands: Sequence[Band], cap: int | None = None, denominator: int | None = None):
        previous_upper = 0
        for i, band in enumerate(bands):
            if band.upper is None and i != len(bands) - 1:
                raise ValueError("只有最后一段可以不设上限")
            if band.lower < previous_upper:
                raise ValueError("分段重叠: 各段须按金额升序且互不重叠")
            if band.upper is not None and band.upper < band.lower:
                raise ValueError("分段上限低于下限")
            if not (Decimal(0) <= band.rate <= Decimal(1)):
                raise ValueError(f"比例须在 0 到 1 之间: {band.rate}")
            previous_upper = band.upper if band.upper is not None else band.lower
        self.bands = tuple(bands)
        self.cap = cap
        parts = [rate_parts(b.rate) for b in self.bands]
        den = denominator or lcm(1, *(d for _, d in parts))
        self.denominator = den
        self._terms = tuple(
            (b.lower, b.upper, num * (den // d)) for b, (num, d) in zip(self.bands, parts)
        )
        self._cap_num = None if cap is None else cap * den

    @classmethod
    def from_bands(
        cls,
        deductible: int,
        bands: Sequence[tuple[int | None, Decimal]],
        cap: int | None = None,
    ) -> "SegmentedScale":
        """Bands given as (upper edge or None, rate) starting at the deductible.

        Edges at or below the deductible give empty bands, so a halved deductible with
        absolute edges (12,000–30,000–100,000) still reads naturally.
        """
        out: list[Band] = []
        lower = deductible
        for upper, rate in bands:
            if upper is not None and upper <= lower:
                continue
            out.append(Band(lower, upper, rate))
            if upper is None:
                break
            lower = upper
        return cls(out, cap)

    def numerator(self, x: int) -> int:
        """Uncapped F(x) × denominator, exact."""
        total = 0
        for lower, upper, num in self._terms:
            if x <= lower:
                break
            top = x if upper is None or x < upper else upper
            total += (top - lower) * num
        return total

    def capped_numerator(self, x: int) -> int:
        value = self.numerator(x)
        if self._cap_num is not None and value > self._cap_num:
            return self._cap_num
        return value

    def amount(self, x: int) -> int:
        """round(F(x)) in fen, cap applied."""
        return round_numerator(self.capped_numerator(x), self.denominator)

    def uncapped_amount(self, x: int) -> int:
        return round_numerator(self.numerator(x), self.denominator)

    def increment(self, before: int, base: int) -> int:
        """What a visit adding ``base`` on top of ``before`` receives: round(F(b+x)) − round(F(b))."""
        return self.amount(before + base) - self.amount(before)

    def describe(self) -> list[tuple[int, int | None, Decimal]]:
        """(lower, upper, rate) per band, for statements."""
        return [(b.lower, b.upper, b.rate) for b in self.bands]


def round_numerator(numerator: int, denominator: int) -> int:
    """Half-up rounding of numerator/denominator for non-negative values."""
    return (2 * numerator + denominator) // (2 * denominator)
