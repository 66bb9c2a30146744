"""Every settlement mechanism on small hand-worked cases; amounts are exact fen, no tolerance.

Each case builds a tiny pack from ``base_pack()`` with only the numbers it needs, so the
arithmetic in the comments can be checked by hand.
"""

from __future__ import annotations

import copy
from datetime import date
from decimal import Decimal

import pytest

from yibao.errors import SettlementError
from yibao.policy.compiled import CompiledPack
from yibao.policy.loader import load_pack, pack_from_data
from yibao.settlement.engine import reverse, settle, settle_year
from yibao.settlement.model import Accumulators, ClassifiedAmounts, FeeItem, Person, Visit

Y = 100  # fen per yuan, to write amounts as 18_500 * Y


def base_pack(**changes) -> dict:
    data = {
        "pack": {"id": "t", "name": "测试", "admdvs": "370100", "version": "1",
                 "effective_from": date(2024, 1, 1), "effective_to": date(2024, 12, 31)},
        "reference": {"year": 2023, "per_capita_disposable_income": Decimal("40000")},
        "levels": {"1": "一级", "2": "二级", "3": "三级"},
        "categories": {"tekun": "特困人员", "dibao": "低保对象", "dibao_edge": "低保边缘家庭成员",
                       "illness_poverty": "因病致贫重病患者", "poor": "贫困人口"},
        "classification": {
            "classes": {"01": {"name": "甲类", "in_scope": True},
                        "02": {"name": "乙类", "in_scope": True, "preselfpay_ratio": Decimal("0.10")},
                        "03": {"name": "丙类", "in_scope": False}},
            "catalog": [
                {"med_list_codg": "DRUG-B-CAP", "chrgitm_lv": "02", "price_cap": Decimal("12.50")},
                {"med_list_codg": "EXAM-SPECIAL", "chrgitm_lv": "02", "preselfpay_ratio": Decimal("0.20")},
                {"med_list_codg": "DRUG-A", "chrgitm_lv": "01"},
            ],
        },
        "basic": [{
            "id": "inpatient", "name": "普通住院", "insutype": "390", "med_types": ["21"],
            "mode": "per_admission",
            "deductible": {"by_level": {"1": 200, "2": 500, "3": 800}},
            "ratio_by_level": {"1": Decimal("0.85"), "2": Decimal("0.75"), "3": Decimal("0.65")},
            "fund_pay_type": "390100",
        }],
    }
    for key, value in changes.items():
        data[key] = value
    return data


def compiled(data: dict) -> CompiledPack:
    return CompiledPack(pack_from_data(copy.deepcopy(data)))


def inpatient(mdtrt_id="V1", inscp=10_000 * Y, level="3", day=1, **kw) -> Visit:
    return Visit(mdtrt_id, kw.pop("med_type", "21"), level, date(2024, 3, day),
                 amounts=ClassifiedAmounts(kw.pop("fulamt", 0), 0, kw.pop("pre", 0), inscp), **kw)


RESIDENT = Person("P1", "390")
ACC = Accumulators(2024)


def with_basic(**rule_changes) -> dict:
    data = base_pack()
    data["basic"][0].update(rule_changes)
    return data


# --- the worked example, verbatim ------------------------------------------------


def test_worked_example_verbatim():
    # resident, 低保, 基层; deductible 200, 85%; 大病 15,000 halved for 低保; 救助 低保 no deductible 70%.
    # 20,000.00 of which 全自费 1,000.00 and 先行自付 500.00 → inscp 18,500.00;
    # hifp = (18,500 − 200) × 85% = 15,555.00; own share 2,945.00 < 7,500 → hifmi 0;
    # maf = 2,945.00 × 70% = 2,061.50; psn = 20,000 − 15,555 − 2,061.50 = 2,383.50.
    pack = CompiledPack(load_pack("tests/packs/worked_example.yaml"))
    person = Person("P1", "390", frozenset({"dibao"}))
    visit = Visit("V1", "21", "1", date(2024, 5, 20), amounts=ClassifiedAmounts(1000 * Y, 0, 500 * Y, 18_500 * Y))
    s = settle(pack, person, visit, ACC).setlinfo
    assert s.inscp_scp_amt == 1_850_000
    assert s.hifp_pay == 1_555_500
    assert s.hifmi_pay == 0
    assert s.maf_pay == 206_150
    assert s.psn_part_amt == 238_350
    assert (s.act_pay_dedc, s.pool_prop_selfpay, s.fund_pay_sumamt) == (20_000, 274_500, 1_761_650)


# --- deductibles ---------------------------------------------------------------------------

REPEAT_CASES = [
    # mode spec,                                                        admission no, deductible at level 3
    ({"mode": "factor", "factor": Decimal("0.5")}, 1, 800),
    ({"mode": "factor", "factor": Decimal("0.5")}, 2, 400),
    ({"mode": "factor", "factor": Decimal("0.5")}, 5, 400),
    ({"mode": "schedule", "schedule": {"1": [200], "2": [500], "3": [400, 280, 200]}}, 1, 400),
    ({"mode": "schedule", "schedule": {"1": [200], "2": [500], "3": [400, 280, 200]}}, 2, 280),
    ({"mode": "schedule", "schedule": {"1": [200], "2": [500], "3": [400, 280, 200]}}, 4, 200),
    ({"mode": "step", "step": 100, "floor": 200}, 2, 700),
    ({"mode": "step", "step": 100, "floor": 200}, 7, 200),
    ({"mode": "step", "step": 100, "floor": 200}, 9, 200),
]


@pytest.mark.parametrize("repeat, admission_no, expected_deductible", REPEAT_CASES)
def test_repeat_admission_deductible(repeat, admission_no, expected_deductible):
    first = {lv: amounts[0] for lv, amounts in repeat["schedule"].items()} if "schedule" in repeat else {}
    by_level = {"1": 200, "2": 500, "3": 800, **first}
    pack = compiled(with_basic(deductible={"by_level": by_level, "repeat": repeat}))
    acc = Accumulators(2024, {"adm:inpatient": admission_no - 1})
    s = settle(pack, RESIDENT, inpatient(), acc)
    assert s.setlinfo.act_pay_dedc == expected_deductible * Y
    # (10,000 − D) × 65%
    assert s.setlinfo.hifp_pay == (10_000 * Y - expected_deductible * Y) * 65 // 100
    assert s.accumulators_after.get("adm:inpatient") == admission_no


def test_second_admission_in_year_counts_from_first():
    pack = compiled(with_basic(deductible={"by_level": {"1": 200, "2": 500, "3": 800},
                                           "repeat": {"mode": "factor", "factor": Decimal("0.5")}}))
    first, second = settle_year(pack, RESIDENT, [inpatient("A", day=1), inpatient("B", day=9)], ACC)
    assert first.setlinfo.act_pay_dedc == 800 * Y
    assert second.setlinfo.act_pay_dedc == 400 * Y
    assert second.setlinfo.hifp_pay == 624_000  # (10,000 − 400) × 65% = 6,240.00


REFERRAL_CASES = [
    # from level, to level, upward mode,    deductible paid,  hifp (yuan)
    ("1", "3", "difference", 600, Decimal("6110.00")),  # (10,000 − (800 − 200)) × 65%
    ("1", "3", "full", 800, Decimal("5980.00")),  # (10,000 − 800) × 65%
    ("3", "1", "difference", 0, Decimal("8500.00")),  # downward: waived, 10,000 × 85%
    ("2", "2", "difference", 0, Decimal("7500.00")),  # same level: waived
]


@pytest.mark.parametrize("from_level, to_level, upward, deductible, hifp", REFERRAL_CASES)
def test_referral_counts_deductible_continuously(from_level, to_level, upward, deductible, hifp):
    pack = compiled(with_basic(deductible={"by_level": {"1": 200, "2": 500, "3": 800},
                                           "referral": {"upward": upward, "same_or_downward": "waive"}}))
    s = settle(pack, RESIDENT, inpatient(level=to_level, referral_from_level=from_level), ACC)
    assert s.setlinfo.act_pay_dedc == deductible * Y
    assert s.setlinfo.hifp_pay == int(hifp * 100)


def test_referral_continues_the_referring_admission():
    # first admission at level 1 pays 200; the referral to level 3 is the same episode (admission 1):
    # it pays 800 − 200 = 600 and starts no new admission, so the next admission is the 2nd (800 × 50%)
    pack = compiled(with_basic(deductible={"by_level": {"1": 200, "2": 500, "3": 800},
                                           "repeat": {"mode": "factor", "factor": Decimal("0.5")},
                                           "referral": {"upward": "difference"}}))
    a, b, c = settle_year(pack, RESIDENT, [inpatient("A", level="1", day=1),
                                          inpatient("B", level="3", day=5, referral_from_level="1"),
                                          inpatient("C", level="3", day=20)], ACC)
    assert [s.setlinfo.act_pay_dedc for s in (a, b, c)] == [200 * Y, 600 * Y, 400 * Y]
    assert [s.accumulators_after.get("adm:inpatient") for s in (a, b, c)] == [1, 1, 2]


def test_annual_cap_holds_when_level_changes_the_ratio():
    # annual pool, cap 1,000: 三级 at 50% then 一级 at 90%; uncapped 1,500 + 900 → paid 1,000 in all
    data = base_pack()
    data["basic"] = [{
        "id": "chronic", "name": "门诊慢特病", "insutype": "390", "med_types": ["14"], "mode": "annual",
        "deductible": {"by_level": {"1": 0, "2": 0, "3": 0}},
        "ratio_by_level": {"1": Decimal("0.9"), "2": Decimal("0.7"), "3": Decimal("0.5")},
        "annual_cap": 1000, "fund_pay_type": "390102"}]
    pack = compiled(data)
    for order in (("3", "1"), ("1", "3")):
        amounts = {"3": 3000 * Y, "1": 1000 * Y}
        visits = [inpatient(f"C{i}", inscp=amounts[lv], level=lv, day=i + 1, med_type="14") for i, lv in enumerate(order)]
        results = settle_year(pack, RESIDENT, visits, ACC)
        assert sum(s.setlinfo.hifp_pay for s in results) == 1000 * Y


def test_rule_for_some_levels_falls_through_to_general_rule():
    data = base_pack()
    common = {"insutype": "390", "med_types": ["11"], "mode": "annual", "fund_pay_type": "390101"}
    data["basic"] = [
        {**common, "id": "two_diseases", "name": "两病(仅基层)", "diseases": ["I10"],
         "deductible": {"by_level": {"1": 0}}, "ratio_by_level": {"1": Decimal("0.7")}},
        {**common, "id": "general", "name": "普通门诊", "deductible": {"by_level": {"1": 0, "3": 0}},
         "ratio_by_level": {"1": Decimal("0.5"), "3": Decimal("0.4")}},
    ]
    pack = compiled(data)
    at_3 = settle(pack, RESIDENT, inpatient(inscp=100 * Y, level="3", med_type="11", dise_codg="I10"), ACC)
    assert at_3.setldetail[0].rule_id == "general" and at_3.setlinfo.hifp_pay == 40 * Y
    with pytest.raises(SettlementError) as e:
        settle(pack, RESIDENT, inpatient(inscp=100 * Y, level="2", med_type="11", dise_codg="I10"), ACC)
    assert (e.value.problems[0].code, e.value.problems[0].path) == ("SET006", "visit.level")


def test_referral_without_pack_rule_pays_full_deductible():
    pack = compiled(base_pack())
    s = settle(pack, RESIDENT, inpatient(level="3", referral_from_level="1"), ACC)
    assert s.setlinfo.act_pay_dedc == 800 * Y


def test_waiver_by_category_and_level():
    pack = compiled(with_basic(deductible={"by_level": {"1": 200, "2": 500, "3": 800},
                                           "waive": [{"categories": ["poor"], "levels": ["1", "2"]}]}))
    poor = Person("P2", "390", frozenset({"poor"}))
    assert settle(pack, poor, inpatient(level="2"), ACC).setlinfo.act_pay_dedc == 0
    assert settle(pack, poor, inpatient(level="3"), ACC).setlinfo.act_pay_dedc == 800 * Y
    assert settle(pack, RESIDENT, inpatient(level="2"), ACC).setlinfo.act_pay_dedc == 500 * Y


def test_once_a_year_disease_pays_deductible_once():
    pack = compiled(with_basic(deductible={"by_level": {"1": 200, "2": 500, "3": 800},
                                           "once_a_year_diseases": ["N18"]}))
    visits = [inpatient("D1", day=1, dise_codg="N18.501"), inpatient("D2", day=8, dise_codg="N18.501"),
              inpatient("X", day=15, dise_codg="K35")]
    a, b, c = settle_year(pack, RESIDENT, visits, ACC)
    assert (a.setlinfo.act_pay_dedc, b.setlinfo.act_pay_dedc, c.setlinfo.act_pay_dedc) == (800 * Y, 0, 800 * Y)


# --- ratios, bands, caps -------------------------------------------------------------------

SEGMENTED = [{"upto": 5000, "ratio": Decimal("0.80")}, {"upto": 10000, "ratio": Decimal("0.85")},
             {"ratio": Decimal("0.90")}]


@pytest.mark.parametrize("retiree, expected", [
    (False, 1_661_000),  # 4,200 × 80% + 5,000 × 85% + 10,000 × 90% = 3,360 + 4,250 + 9,000
    (True, 1_757_000),  # +5 points: 4,200 × 85% + 5,000 × 90% + 10,000 × 95% = 3,570 + 4,500 + 9,500
])
def test_segmented_ratio_with_retiree_points(retiree, expected):
    data = with_basic(insutype="310", deductible={"by_level": {"1": 200, "2": 500, "3": 800}},
                      ratio_by_level={"1": Decimal("0.9"), "2": Decimal("0.85"), "3": SEGMENTED},
                      retiree_points=5)
    pack = compiled(data)
    person = Person("E1", "310", retiree=retiree)
    s = settle(pack, person, inpatient(inscp=20_000 * Y), ACC).setlinfo
    assert s.hifp_pay == expected
    assert s.act_pay_dedc + s.pool_prop_selfpay + s.hifp_pay == 20_000 * Y


def test_bands_above_deductible_shift_with_the_deductible():
    # edges counted from the deductible: first 4,200 above 800 at 80%, next 5,000 at 85%, rest 90%
    bands = [{"upto": 4200, "ratio": Decimal("0.80")}, {"upto": 9200, "ratio": Decimal("0.85")},
             {"ratio": Decimal("0.90")}]
    pack = compiled(with_basic(ratio_by_level={"1": Decimal("0.85"), "2": Decimal("0.75"), "3": bands},
                               band_edges="above_deductible"))
    assert settle(pack, RESIDENT, inpatient(inscp=20_000 * Y), ACC).setlinfo.hifp_pay == 1_661_000


def test_category_points_take_the_largest_bonus():
    pack = compiled(with_basic(category_points={"tekun": 10, "dibao": 5}))
    person = Person("P3", "390", frozenset({"tekun", "dibao"}))
    # (10,000 − 800) × (65% + 10 points)
    assert settle(pack, person, inpatient(), ACC).setlinfo.hifp_pay == 690_000


def test_annual_cap_applies_to_running_sum_of_admissions():
    pack = compiled(with_basic(annual_cap=20000, ratio_by_level={"1": Decimal("0.85"), "2": Decimal("0.75"),
                                                                 "3": SEGMENTED}))
    a, b, c = settle_year(pack, RESIDENT, [inpatient("A", inscp=20_000 * Y, day=1),
                                          inpatient("B", inscp=20_000 * Y, day=2),
                                          inpatient("C", inscp=20_000 * Y, day=3)], ACC)
    assert a.setlinfo.hifp_pay == 1_661_000
    assert b.setlinfo.hifp_pay == 339_000  # 20,000 − 16,610 left under the cap
    assert c.setlinfo.hifp_pay == 0
    # what the cap withheld stays in-scope own share for later tiers
    assert b.steps[1].facts["overcap"] == 1_661_000 - 339_000
    assert b.setlinfo.pool_prop_selfpay == 20_000 * Y - 800 * Y - 1_661_000


def test_annual_mode_outpatient_pool():
    # annual deductible 300, 50%, cap 1,500: visits 200, 300, 4,000
    data = base_pack()
    data["basic"] = [{
        "id": "outpatient", "name": "普通门诊统筹", "insutype": "390", "med_types": ["11"], "mode": "annual",
        "deductible": {"by_level": {"1": 300, "2": 300, "3": 300}},
        "ratio_by_level": {"1": Decimal("0.5"), "2": Decimal("0.5"), "3": Decimal("0.5")},
        "annual_cap": 1500, "fund_pay_type": "390101"}]
    pack = compiled(data)
    visits = [inpatient(f"O{i}", inscp=x * Y, day=i + 1, med_type="11") for i, x in enumerate((200, 300, 4000))]
    a, b, c = settle_year(pack, RESIDENT, visits, ACC)
    assert [s.setlinfo.act_pay_dedc for s in (a, b, c)] == [200 * Y, 100 * Y, 0]
    assert [s.setlinfo.hifp_pay for s in (a, b, c)] == [0, 100 * Y, 1400 * Y]
    assert c.setlinfo.pool_prop_selfpay == 2000 * Y  # 4,000 − 0 − (2,100 − 100 uncapped)
    assert c.accumulators_after.get("base:outpatient") == 4500 * Y


def test_disease_specific_rule_is_chosen_before_general_rule():
    data = base_pack()
    common = {"insutype": "390", "med_types": ["11"], "mode": "annual",
              "deductible": {"by_level": {"1": 0, "2": 0, "3": 0}}, "fund_pay_type": "390101"}
    data["basic"] = [
        {**common, "id": "two_diseases", "name": "两病门诊用药", "diseases": ["I10", "E11"],
         "ratio_by_level": {"1": Decimal("0.7"), "2": Decimal("0.7"), "3": Decimal("0.7")}},
        {**common, "id": "general", "name": "普通门诊",
         "ratio_by_level": {"1": Decimal("0.5"), "2": Decimal("0.5"), "3": Decimal("0.5")}},
    ]
    pack = compiled(data)
    hyper = settle(pack, RESIDENT, inpatient(inscp=100 * Y, med_type="11", dise_codg="I10.x00"), ACC)
    cold = settle(pack, RESIDENT, inpatient(inscp=100 * Y, med_type="11", dise_codg="J00"), ACC)
    assert (hyper.setlinfo.hifp_pay, cold.setlinfo.hifp_pay) == (70 * Y, 50 * Y)
    assert hyper.setldetail[0].rule_id == "two_diseases"


# --- tiers after basic -----------------------------------------------------------------------


def assistance_tiers() -> list[dict]:
    return [
        {"id": "a_tekun", "name": "医疗救助(特困)", "pays_into": "maf_pay", "fund_pay_type": "610100",
         "categories": ["tekun"], "exclusive_group": "assistance",
         "parts": [{"base": ["inscp_own"], "ratio": Decimal("0.7")}], "annual_cap": 30000},
        {"id": "a_edge", "name": "医疗救助(低保边缘)", "pays_into": "maf_pay", "fund_pay_type": "610100",
         "categories": ["dibao_edge"], "exclusive_group": "assistance",
         "parts": [{"base": ["inscp_own"], "deductible": 3000, "ratio": Decimal("0.5")}]},
        {"id": "a_apply", "name": "依申请救助", "pays_into": "maf_pay", "fund_pay_type": "610300",
         "categories": ["illness_poverty"],
         "parts": [{"base": ["inscp_own"], "deductible": {"income_share": Decimal("0.25")}, "ratio": Decimal("0.6")}]},
    ]


def test_exclusive_group_applies_only_first_matching_assistance():
    pack = compiled(base_pack(tiers=assistance_tiers()))
    both = Person("P4", "390", frozenset({"tekun", "dibao_edge"}))
    s = settle(pack, both, inpatient(), ACC)
    # own share after basic: 800 + 9,200 × 35% = 4,020.00; 特困 70% → 2,814.00; 低保边缘 tier skipped
    assert s.setlinfo.maf_pay == 281_400
    assert [d.rule_id for d in s.setldetail] == ["inpatient", "a_tekun"]


def test_assistance_on_application_above_income_share():
    pack = compiled(base_pack(tiers=assistance_tiers()))
    person = Person("P5", "390", frozenset({"illness_poverty"}))
    # inscp 100,000 at level 3: own share 800 + 99,200 × 35% = 35,520.00; threshold 25% × 40,000 = 10,000
    # pay (35,520 − 10,000) × 60% = 15,312.00
    s = settle(pack, person, inpatient(inscp=100_000 * Y), ACC)
    assert s.setlinfo.maf_pay == 1_531_200


def test_guarantee_tops_up_to_share_of_total():
    g = {"id": "g90", "name": "财政兜底90%", "pays_into": "oth_pay", "fund_pay_type": "999990",
         "categories": ["poor"], "share": Decimal("0.9")}
    pack = compiled(base_pack(guarantees=[g]))
    poor = Person("P6", "390", frozenset({"poor"}))
    # total 11,000 (1,000 全自费); hifp 5,980; target 9,900 → top-up 3,920; person pays 1,100
    s = settle(pack, poor, inpatient(fulamt=1000 * Y), ACC).setlinfo
    assert (s.hifp_pay, s.oth_pay, s.psn_part_amt) == (598_000, 392_000, 110_000)
    assert settle(pack, RESIDENT, inpatient(fulamt=1000 * Y), ACC).setlinfo.oth_pay == 0


def test_personal_account_pays_covered_amounts_only():
    data = with_basic(insutype="310")
    data["personal_account"] = {"insutypes": ["310"], "covers": ["inscp_own"]}
    pack = compiled(data)
    emp = Person("E2", "310")
    # own in-scope share 4,020.00, 全自费 1,000.00; balance 5,000 → account 4,020, cash 1,000
    s = settle(pack, emp, inpatient(fulamt=1000 * Y, acct_balance=5000 * Y), ACC).setlinfo
    assert (s.acct_pay, s.psn_cash_pay, s.psn_part_amt) == (402_000, 100_000, 502_000)
    s = settle(pack, emp, inpatient(fulamt=1000 * Y, acct_balance=300 * Y), ACC).setlinfo
    assert (s.acct_pay, s.psn_cash_pay) == (30_000, 472_000)


# --- classification --------------------------------------------------------------------------


def test_classification_of_fee_items():
    pack = compiled(base_pack())
    items = (
        # 乙类 with price cap 12.50: 2 × 15.00 = 30.00 → 超限价 5.00; 先行自付 10% of 25.00 = 2.50; inscp 22.50
        FeeItem("1", "DRUG-B-CAP", 3000, Decimal(2), 1500),
        # catalog 放宽 exam at 20%: 123.45 → 先行自付 24.69; inscp 98.76
        FeeItem("2", "EXAM-SPECIAL", 12345),
        # 甲类 from catalog
        FeeItem("3", "DRUG-A", 1000),
        # not in catalog, 丙类 on the line → 全自费
        FeeItem("4", "SELF-PAID", 777, chrgitm_lv="03"),
        # 乙类 with a per-line share of 15%: 0.33 × 15% = 0.0495 → 0.05
        FeeItem("5", "OTHER", 33, chrgitm_lv="02", preselfpay_ratio=Decimal("0.15")),
    )
    visit = Visit("V", "21", "1", date(2024, 3, 1), items=items)
    s = settle(pack, RESIDENT, visit, ACC).setlinfo
    assert s.overlmt_selfpay == 500
    assert s.preselfpay_amt == 250 + 2469 + 5
    assert s.fulamt_ownpay_amt == 777
    assert s.inscp_scp_amt == 2250 + 9876 + 1000 + 28
    assert s.medfee_sumamt == 3000 + 12345 + 1000 + 777 + 33


def test_unknown_item_without_class_is_refused():
    pack = compiled(base_pack())
    visit = Visit("V", "21", "1", date(2024, 3, 1), items=(FeeItem("1", "NOPE", 100),))
    with pytest.raises(SettlementError) as e:
        settle(pack, RESIDENT, visit, ACC)
    assert e.value.problems[0].code == "SET021"
    assert e.value.problems[0].path == "visit.items[0].chrgitm_lv"


# --- refusals and reversal -------------------------------------------------------------------


@pytest.mark.parametrize("person, visit, acc, code, path", [
    (RESIDENT, inpatient(), Accumulators(2023), "SET002", "accumulators.year"),
    (RESIDENT, Visit("V", "21", "1", date(2025, 1, 2), amounts=ClassifiedAmounts(0, 0, 0, 1)),
     Accumulators(2025), "SET001", "visit.setl_time"),
    (RESIDENT, inpatient(level="9"), ACC, "SET003", "visit.level"),
    (Person("X", "390", frozenset({"alien"})), inpatient(), ACC, "SET004", "person.categories"),
    (RESIDENT, inpatient(med_type="99"), ACC, "SET005", "visit.med_type"),
    (Person("X", "310"), inpatient(), ACC, "SET005", "visit.med_type"),
])
def test_refusals_name_the_field(person, visit, acc, code, path):
    with pytest.raises(SettlementError) as e:
        settle(compiled(base_pack()), person, visit, acc)
    assert (e.value.problems[0].code, e.value.problems[0].path) == (code, path)


def test_reversal_is_latest_first_and_restores_exactly():
    pack = compiled(base_pack(tiers=assistance_tiers()))
    person = Person("P7", "390", frozenset({"tekun"}))
    a, b = settle_year(pack, person, [inpatient("A", inscp=60_000 * Y, day=1),
                                     inpatient("B", inscp=60_000 * Y, day=2)], ACC)
    current = b.accumulators_after
    with pytest.raises(SettlementError) as e:
        reverse(a, current)
    assert e.value.problems[0].code == "SET040"
    after_b = reverse(b, current)
    assert after_b == a.accumulators_after
    assert reverse(a, after_b).values == {}
    again = settle(pack, person, inpatient("A", inscp=60_000 * Y, day=1), ACC)
    assert again.setlinfo == a.setlinfo and again.delta == a.delta


def test_assistance_annual_limit_telescopes_over_visits():
    pack = compiled(base_pack(tiers=assistance_tiers()))
    person = Person("P8", "390", frozenset({"tekun"}))
    # each visit own share 800 + 59,200 × 35% = 21,520.00 → 70% = 15,064.00; cap 30,000
    a, b = settle_year(pack, person, [inpatient("A", inscp=60_000 * Y, day=1),
                                     inpatient("B", inscp=60_000 * Y, day=2)], ACC)
    assert a.setlinfo.maf_pay == 1_506_400
    assert b.setlinfo.maf_pay == 3_000_000 - 1_506_400
