"""Recipes of docs/policy-packs.md §15 settle as the document says (ratios by care setting: 日间手术)."""

from __future__ import annotations

from datetime import date

from yibao.policy.compiled import CompiledPack
from yibao.policy.loader import pack_from_text
from yibao.settlement.engine import settle
from yibao.settlement.model import Accumulators, ClassifiedAmounts, Person, Visit

Y = 100
DAY_SURGERY = """extends: shandong-2024
pack: {id: day-surgery-recipe}
basic:
  - id: resident_day_surgery
    before: resident_inpatient
    name: 居民日间手术
    insutype: "390"
    med_types: ["2101"]
    mode: per_admission
    deductible: {by_level: {"1": 100, "2": 250, "3": 500}}
    ratio_by_level: {"1": 0.90, "2": 0.80, "3": 0.65}
    cap_group: resident_inpatient
    admission_group: inpatient
    annual_cap: 200000
    fund_pay_type: "390100"
"""


def test_day_surgery_has_its_own_ratio_and_counts_as_an_admission():
    pack = CompiledPack(pack_from_text(DAY_SURGERY, "recipe.yaml"))
    person = Person("P1", "390")
    first = settle(pack, person, Visit("V1", "2101", "3", date(2024, 3, 1), amounts=ClassifiedAmounts(0, 0, 0, 11_000 * Y)),
                   Accumulators(2024))
    assert first.setlinfo.hifp_pay == (11_000 - 500) * 65 * Y // 100 == 682_500
    # the ordinary admission after it is the year's second: shandong-2024's inpatient deductible is 1,000 either way
    # at level 3 (no repeat rule), and the admission count moved on
    second = settle(pack, person, Visit("V2", "21", "3", date(2024, 5, 1), amounts=ClassifiedAmounts(0, 0, 0, 11_000 * Y)),
                    first.accumulators_after)
    assert second.steps[1].facts["admission_no"] == 2
    assert second.setlinfo.hifp_pay == (11_000 - 1_000) * 60 * Y // 100
