"""SegmentedScale, exactly: bands, empty bands under a lowered deductible, caps, rounding,
telescoping increments, and refusal of bands that overlap or rates outside [0, 1].

Amounts are fen. Expected values are worked by hand in the comments (yuan).
"""

from __future__ import annotations

import math
from decimal import Decimal as D
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from yibao.policy.scale import Band, SegmentedScale, round_numerator

Y = 100  # fen per yuan

# 大病: 12,000 threshold, 12,000–30,000 at 60%, 30,000–100,000 at 70%, above at 80%, cap 400,000
BIG = SegmentedScale.from_bands(
    12_000 * Y, [(30_000 * Y, D("0.6")), (100_000 * Y, D("0.7")), (None, D("0.8"))], cap=400_000 * Y
)


@pytest.mark.parametrize(("base", "expected"), [
    (0, 0),
    (11_999_99, 0),
    (12_000 * Y, 0),
    (12_000 * Y + 1, 1),                       # 0.6 fen rounds up
    (20_000 * Y, 4_800 * Y),                   # 8,000 × 60%
    (30_000 * Y, 10_800 * Y),                  # 18,000 × 60%
    (50_000 * Y, 24_800 * Y),                  # 10,800 + 20,000 × 70%
    (100_000 * Y, 59_800 * Y),                 # 10,800 + 70,000 × 70%
    (200_000 * Y, 139_800 * Y),                # 59,800 + 100,000 × 80%
    (525_250 * Y, 400_000 * Y),                # 59,800 + 425,250 × 80% = 400,000: the cap, exactly
    (525_250 * Y - 1, 400_000 * Y - 1),        # 0.8 fen below the cap rounds to one fen below it
    (10_000_000 * Y, 400_000 * Y),
])
def test_banded_scale_with_cap(base, expected):
    assert BIG.amount(base) == expected


def test_uncapped_amount_ignores_the_cap():
    assert BIG.uncapped_amount(1_000_000 * Y) == 59_800 * Y + 900_000 * 80 == 779_800 * Y
    assert BIG.amount(1_000_000 * Y) == 400_000 * Y


@pytest.mark.parametrize(("deductible", "bands"), [
    # the 大病 threshold halved for 低保 (6,000): the first band starts at the new threshold
    (6_000 * Y, [(6_000 * Y, 30_000 * Y, D("0.6")), (30_000 * Y, 100_000 * Y, D("0.7")), (100_000 * Y, None, D("0.8"))]),
    # a threshold above the first edge empties that band: 40,000 skips 12,000–30,000 entirely
    (40_000 * Y, [(40_000 * Y, 100_000 * Y, D("0.7")), (100_000 * Y, None, D("0.8"))]),
    # a threshold exactly on an edge: the band ending there is empty too
    (30_000 * Y, [(30_000 * Y, 100_000 * Y, D("0.7")), (100_000 * Y, None, D("0.8"))]),
    # a threshold past every closed edge leaves only the open band
    (150_000 * Y, [(150_000 * Y, None, D("0.8"))]),
])
def test_edges_at_or_below_the_deductible_give_empty_bands(deductible, bands):
    s = SegmentedScale.from_bands(deductible, [(30_000 * Y, D("0.6")), (100_000 * Y, D("0.7")), (None, D("0.8"))])
    assert s.describe() == bands
    assert s.amount(deductible) == 0


def test_halved_threshold_amounts():
    s = SegmentedScale.from_bands(6_000 * Y, [(30_000 * Y, D("0.6")), (100_000 * Y, D("0.7")), (None, D("0.8"))])
    assert s.amount(12_000 * Y) == 3_600 * Y  # 6,000 × 60%
    assert s.amount(30_000 * Y) == 14_400 * Y  # 24,000 × 60%
    assert s.amount(40_000 * Y) == 21_400 * Y  # 14,400 + 10,000 × 70%


def test_nothing_is_paid_past_a_closed_last_band():
    s = SegmentedScale([Band(0, 10_000 * Y, D("0.5"))])
    assert [s.amount(x) for x in (0, 5_000 * Y, 10_000 * Y, 50_000 * Y)] == [0, 2_500 * Y, 5_000 * Y, 5_000 * Y]


def test_gap_between_bands_pays_nothing():
    s = SegmentedScale([Band(0, 100, D("1")), Band(200, None, D("0.5"))])
    assert [s.amount(x) for x in (100, 150, 200, 210, 211)] == [100, 100, 100, 105, 106]  # 105.5 → 106


@pytest.mark.parametrize(("rate", "base", "expected"), [
    (D("0.5"), 1, 1),        # 0.5 → 1 (half-up)
    (D("0.5"), 3, 2),        # 1.5 → 2
    (D("0.125"), 4, 1),      # 0.5 → 1
    (D("0.125"), 12, 2),     # 1.5 → 2
    (D("0.125"), 3, 0),      # 0.375 → 0
    (D("0.333"), 3, 1),      # 0.999 → 1
    (D("0.333"), 1, 0),      # 0.333 → 0
    (D("0.85"), 10, 9),      # 8.5 → 9
    (D("0"), 10**12, 0),
    (D("1"), 10**12, 10**12),
])
def test_half_up_rounding_to_the_fen(rate, base, expected):
    assert SegmentedScale.from_bands(0, [(None, rate)]).amount(base) == expected


def test_mixed_precision_rates_share_one_exact_denominator():
    s = SegmentedScale.from_bands(0, [(1000, D("0.85")), (None, D("0.333"))])
    assert s.denominator == 1000
    assert s.numerator(2000) == 1000 * 850 + 1000 * 333
    assert s.amount(2000) == 1183  # 850 + 333
    wider = SegmentedScale(s.bands, None, 10**6)  # any common multiple gives the same amounts
    assert [wider.amount(x) for x in range(0, 3000, 7)] == [s.amount(x) for x in range(0, 3000, 7)]


@pytest.mark.parametrize(("cap", "base", "expected"), [
    (0, 10**9, 0),
    (1, 10**9, 1),
    (500 * Y, 10_000 * Y, 500 * Y),
    (500 * Y, 700 * Y, 500 * Y),     # 700 × 85% = 595 > 500
    (500 * Y, 500 * Y, 425 * Y),     # 500 × 85% = 425 < 500
])
def test_caps(cap, base, expected):
    assert SegmentedScale.from_bands(0, [(None, D("0.85"))], cap=cap).amount(base) == expected


@pytest.mark.parametrize("splits", [
    [18_500 * Y],
    [1, 1, 1, 1, 1],
    [12_000 * Y, 1, 17_999_99, 70_000 * Y, 500_000 * Y],
    [3, 7, 11, 13, 30_000 * Y, 99, 1_000_000 * Y],
    [0, 0, 525_250 * Y, 0, 1],
])
def test_increments_telescope(splits):
    """Σ increment(cum, x) over the visits = amount(Σ x), whatever the split (per-visit rounding)."""
    cum = paid = 0
    for x in splits:
        paid += BIG.increment(cum, x)
        cum += x
        assert paid == BIG.amount(cum)
    assert all(BIG.increment(c, 0) == 0 for c in (0, 1, 12_000 * Y, 10**10))


@pytest.mark.parametrize("bands", [
    [Band(0, 200, D("0.5")), Band(100, 300, D("0.5"))],       # overlap
    [Band(100, 200, D("0.5")), Band(0, 50, D("0.5"))],        # not ascending
    [Band(0, 100, D("0.5")), Band(50, None, D("0.5"))],       # open band starting inside the previous
])
def test_overlapping_bands_are_refused(bands):
    with pytest.raises(ValueError, match="重叠"):
        SegmentedScale(bands)


def test_band_ending_below_its_start_is_refused():
    with pytest.raises(ValueError, match="低于下限"):
        SegmentedScale([Band(200, 100, D("0.5"))])


@pytest.mark.parametrize("rate", [D("1.01"), D("-0.01"), D("2"), D("-1")])
def test_rates_outside_zero_one_are_refused(rate):
    with pytest.raises(ValueError, match="0 到 1"):
        SegmentedScale([Band(0, None, rate)])


def test_open_band_before_another_band_is_refused():
    with pytest.raises(ValueError):
        SegmentedScale([Band(0, None, D("0.6")), Band(100, None, D("0.6"))])


def test_round_numerator():
    assert [round_numerator(n, 4) for n in (0, 1, 2, 3, 5, 6)] == [0, 0, 1, 1, 1, 2]  # 0.5→1, 1.5→2


# --- against an exact reference ------------------------------------------------------------

def ref_amount(deductible: int, bands, cap, x: int) -> int:
    """F(x) = Σ rate · |[edge_{k−1}, edge_k) ∩ [deductible, x)|, capped, rounded half-up, in Fractions."""
    total, prev = Fraction(0), 0
    for upper, rate in bands:
        lo, hi = max(prev, deductible), x if upper is None else min(x, upper)
        if hi > lo:
            total += Fraction(rate) * (hi - lo)
        if upper is None:
            break
        prev = upper
    if cap is not None:
        total = min(total, Fraction(cap))
    return math.floor(total + Fraction(1, 2))


rates = st.one_of(st.integers(0, 100).map(lambda k: D(k) / 100), st.integers(0, 1000).map(lambda k: D(k) / 1000))
amounts = st.one_of(st.integers(0, 1000), st.integers(0, 10**7), st.integers(0, 10**10))


@st.composite
def scales(draw):
    edges = sorted(set(draw(st.lists(st.integers(1, 10**9), max_size=4))))
    bands = [(e, draw(rates)) for e in edges]
    if not bands or draw(st.booleans()):
        bands.append((None, draw(rates)))
    deductible = draw(st.one_of(st.just(0), amounts))
    cap = draw(st.one_of(st.none(), amounts))
    return deductible, bands, cap


@settings(max_examples=300)
@given(scales(), st.lists(amounts, min_size=1, max_size=6))
def test_scale_matches_fraction_reference_and_telescopes(spec, visits):
    deductible, bands, cap = spec
    s = SegmentedScale.from_bands(deductible, bands, cap)
    cum = paid = 0
    for x in visits:
        inc = s.increment(cum, x)
        assert 0 <= inc <= x  # slope ≤ 1: never more than the base
        paid += inc
        cum += x
        assert s.amount(cum) == ref_amount(deductible, bands, cap, cum)
        assert s.uncapped_amount(cum) == ref_amount(deductible, bands, None, cum)
    assert paid == s.amount(cum)
