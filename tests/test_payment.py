"""Point value and institution payments: exact small cases and the payment identity (hypothesis)."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import duckdb
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from yibao.payment.dip import settle_grouping_sql
from yibao.payment.point_value import Institution, allocate, band_adjustment, settle_points
from yibao.policy.model import ShareBand


def inst(code, points, cost, others):
    return Institution(code, "2", 1, points * 10_000, cost, cost - others, others)


def test_point_value_and_payment_by_hand():
    # 1,000 + 3,000 points; budget 3,600 元 + others 100 + 300 → 1 元 per point
    s = settle_points("2024", 360_000, [inst("A", 1000, 120_000, 10_000), inst("B", 3000, 280_000, 30_000)],
                      True, [], [])
    assert s.budget_point_value == s.cost_point_value == Fraction(100)
    assert [i.due for i in s.institutions] == [100_000, 300_000]
    assert [i.paid for i in s.institutions] == [90_000, 270_000]


def test_overspend_and_surplus_bands_by_hand():
    # due 100.00; cost 130.00: overspend 30 = 10% at 50% + 20% at 0% → fund adds 5.00
    over = [ShareBand(upto=Decimal("0.1"), share=Decimal("0.5")), ShareBand(share=Decimal(0))]
    assert band_adjustment(10_000, 13_000, [], over) == 500
    # due 100.00; cost 80.00: surplus 20 = first 10% kept fully, next 10% kept at 60% → 4.00 withheld
    keep = [ShareBand(upto=Decimal("0.1"), share=Decimal(1)), ShareBand(upto=Decimal("0.2"), share=Decimal("0.6"))]
    assert band_adjustment(10_000, 8_000, keep, []) == -400
    # beyond the last band nothing is kept: surplus 30, bands end at 20% → 4.00 + 10.00
    assert band_adjustment(10_000, 7_000, keep, []) == -1_400


def test_allocate_largest_remainder_is_deterministic():
    assert allocate([Fraction(5, 2), Fraction(5, 2)], 5) == [3, 2]
    assert allocate([Fraction(1, 10), Fraction(9, 10), Fraction(1)], 2) == [0, 1, 1]


institutions = st.lists(st.tuples(st.integers(1, 10**9), st.integers(1, 10**9), st.integers(0, 10**8)),
                        min_size=1, max_size=12)


ratio = st.integers(0, 100).map(lambda n: Decimal(n) / 100)


@st.composite
def bands(draw):
    """0–3 bands with rising upper bounds; the last one open-ended or not."""
    uppers = sorted(set(draw(st.lists(st.integers(1, 100), max_size=3))))
    out = [ShareBand(upto=Decimal(u) / 100, share=draw(ratio)) for u in uppers]
    if draw(st.booleans()):
        out.append(ShareBand(share=draw(ratio)))
    return out


@settings(max_examples=200, deadline=None)
@given(institutions, st.integers(0, 10**10), st.booleans(), bands(), bands())
def test_payment_identity(rows, budget, cap, surplus, overspend):
    """Σ due = round(total points × point value) exactly; at the budget point value
    Σ (due − others) = budget to the fen, and the fund pays budget + Σ band adjustments."""
    insts = [Institution(f"H{i}", "1", 1, p, c, max(c - o, 0), min(o, c)) for i, (p, c, o) in enumerate(rows)]
    s = settle_points("2024", budget, insts, cap, surplus, overspend)
    exact = Fraction(s.total_points_e4) * s.point_value / 10_000
    assert s.total_due == (2 * exact.numerator + exact.denominator) // (2 * exact.denominator)
    assert s.total_paid == s.total_due + s.total_adjustment - s.total_others
    for i in s.institutions:
        share = Fraction(i.points_e4) * s.point_value / 10_000
        assert abs(i.due - share) < 1
        assert i.paid == i.due + i.adjustment - i.others
        # a surplus adjustment withholds at most the surplus; an overspend one adds at most the overspend
        assert (-(i.due - i.cost) <= i.adjustment <= 0) if i.cost < i.due else (0 <= i.adjustment <= i.cost - i.due)
    if s.point_value == s.budget_point_value:
        assert sum(i.due - i.others for i in s.institutions) == budget
        assert s.total_paid == budget + s.total_adjustment
    if not surplus and not overspend:
        assert s.total_adjustment == 0


CATALOG = pa.Table.from_pylist([
    {"group_code": "K80.100|51.2301", "group_kind": "core", "key_dise": "K80.100", "key_oprn": "51.2301",
     "key_cat": None, "key_optype": None},
    {"group_code": "J18.900|-", "group_kind": "core", "key_dise": "J18.900", "key_oprn": "", "key_cat": None,
     "key_optype": None},
    {"group_code": "ZH|K80|3", "group_kind": "comprehensive", "key_dise": None, "key_oprn": None, "key_cat": "K80",
     "key_optype": 3},
    {"group_code": "ZH|J18|0", "group_kind": "comprehensive", "key_dise": None, "key_oprn": None, "key_cat": "J18",
     "key_optype": 0},
])
DISES = ["K80.100", "K80.000", "J18.900", "J18.100", "A09.900"]
OPRNS = [("", 0), ("51.2301", 3), ("51.2201", 3), ("88.0100", 1)]
case = st.tuples(st.sampled_from(DISES), st.sampled_from(OPRNS), st.integers(1, 10**7))


def groups_of(cases):
    con = duckdb.connect()
    con.register("cat_groups", CATALOG)
    table = pa.Table.from_pylist([{"mdtrt_id": f"V{i}", "dise_codg": d, "dise_cat": d[:3], "oprn_combo": o,
                                   "op_type": t, "cost": c} for i, (d, (o, t), c) in enumerate(cases)])
    con.register("src", table)
    return dict(con.sql(f"SELECT mdtrt_id, group_code FROM ({settle_grouping_sql('src')})").fetchall())


@settings(max_examples=40, deadline=None)
@given(st.lists(case, min_size=2, max_size=8), case, st.data())
def test_a_case_moves_group_only_by_its_own_data(cases, replacement, data):
    """Changing one case's codes or cost never changes another case's group."""
    before = groups_of(cases)
    k = data.draw(st.integers(0, len(cases) - 1))
    changed = list(cases)
    changed[k] = replacement
    after = groups_of(changed)
    assert {m: g for m, g in before.items() if m != f"V{k}"} == {m: g for m, g in after.items() if m != f"V{k}"}
    assert after[f"V{k}"] == groups_of([replacement])["V0"]
