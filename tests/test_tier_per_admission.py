"""Shape 1 of issue 14: a tier threshold per admission (倾斜救助 "每次住院个人负担超过 3,500 元的部分按 70%")."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from test_engine import ACC, RESIDENT, Y, base_pack, compiled, inpatient
from test_offsite import kernel_year
from yibao.errors import YibaoError
from yibao.policy.loader import pack_from_data
from yibao.settlement.engine import settle_year
from yibao.settlement.statement import explain


def tilt_tier(basis="per_admission", **changes) -> dict:
    tier = {"id": "tilt_aid", "name": "倾斜救助", "pays_into": "maf_pay", "fund_pay_type": "610100",
            "med_types": ["21"], "threshold_basis": basis,
            "parts": [{"base": ["inscp_own"], "deductible": 3500, "ratio": Decimal("0.7")}]}
    tier.update(changes)
    return tier


def test_each_admission_is_measured_on_its_own():
    # 三级住院 政策范围内 10,000: 统筹 (10,000 − 800) × 65% = 5,980; 个人负担 4,020
    # 按次: (4,020 − 3,500) × 70% = 364.00 元 每次; 按年累计则第二次为 (8,040 − 3,500) × 70% − 364 = 2,814.00
    visits = [inpatient("A", day=1), inpatient("B", day=9)]
    per = settle_year(compiled(base_pack(tiers=[tilt_tier()])), RESIDENT, visits, ACC)
    assert [s.setlinfo.maf_pay for s in per] == [364 * Y, 364 * Y]
    annual = settle_year(compiled(base_pack(tiers=[tilt_tier("annual")])), RESIDENT, visits, ACC)
    assert [s.setlinfo.maf_pay for s in annual] == [364 * Y, 2_814 * Y]


def test_statement_says_the_threshold_is_per_admission():
    pack = compiled(base_pack(tiers=[tilt_tier()]))
    s = settle_year(pack, RESIDENT, [inpatient("A", day=1), inpatient("B", day=9)], ACC)[1]
    text = "\n".join(explain(s, pack))
    assert "本次住院 4,020.00 元(按次计算, 不与本年其他住院累计); 标准: 3,500.00 元以上部分 × 70%; 本次对应 520.00 × 70%" in text


@pytest.mark.parametrize("changes, message", [
    ({"med_types": None}, "必须用 med_types 限定"),
    ({"med_types": ["21", "11"]}, "['11']"),
])
def test_per_admission_threshold_on_a_cumulative_only_tier_is_refused(changes, message):
    data = base_pack(tiers=[tilt_tier(**changes)])
    data["basic"].append({"id": "op", "name": "门诊", "insutype": "390", "med_types": ["11"], "mode": "annual",
                          "deductible": {"by_level": {"1": 0, "2": 0, "3": 0}},
                          "ratio_by_level": {"1": Decimal("0.5"), "2": Decimal("0.5"), "3": Decimal("0.5")},
                          "fund_pay_type": "390101"})
    if changes.get("med_types", 0) is None:
        data["tiers"][0].pop("med_types")
    with pytest.raises(YibaoError) as e:
        pack_from_data(data)
    problem = e.value.problems[0]
    assert (problem.code, problem.path) == ("POL033", "tiers[0].threshold_basis") and message in problem.message


amounts = st.lists(st.tuples(st.sampled_from(["1", "2", "3"]), st.integers(0, 40_000 * Y)), min_size=1, max_size=6)


@settings(max_examples=40, deadline=None)
@given(visits=amounts, cap=st.one_of(st.none(), st.integers(1, 5_000)), order=st.randoms(use_true_random=False))
def test_kernel_equals_scalar_and_the_year_total_does_not_depend_on_admission_order(visits, cap, order):
    tier = tilt_tier() if cap is None else tilt_tier(annual_cap=cap)
    pack = compiled(base_pack(tiers=[tier]))
    vs = [inpatient(f"V{i}", inscp=x, level=lv, day=i + 1) for i, (lv, x) in enumerate(visits)]
    scalar = settle_year(pack, RESIDENT, vs, ACC)
    out, _ = kernel_year(pack, RESIDENT, vs)
    assert [s.setlinfo.maf_pay for s in scalar] == out[:, 12].tolist()
    assert [s.setlinfo.fund_pay_sumamt for s in scalar] == out[:, 14].tolist()
    # the year's total of the tier: min(Σ per-admission amounts, cap), whatever the order of admissions
    shuffled = [inpatient(v.mdtrt_id, inscp=v.amounts.inscp_scp_amt, level=v.level, day=i + 1)
                for i, v in enumerate(order.sample(vs, len(vs)))]
    again = settle_year(pack, RESIDENT, shuffled, ACC)
    assert sum(s.setlinfo.maf_pay for s in again) == sum(s.setlinfo.maf_pay for s in scalar)
    if cap is not None:
        assert sum(s.setlinfo.maf_pay for s in scalar) <= cap * Y
