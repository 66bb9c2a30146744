"""Ratios by age (issue 14 shape 2): age bands and a capped per-year formula on a basic rule, the worked
examples of docs/policy-packs.md §6.7, validation (POL035), a missing age refused (SET008 / KRN013), and the
kernel reading the rule's own points per age (batch = scalar in tests/test_batch.py on shandong-2024-age)."""

from __future__ import annotations

from datetime import date, datetime

import pyarrow as pa
import pytest

from yibao.batch.duck import settle_visits
from yibao.batch.lower import KernelError
from yibao.errors import SettlementError, YibaoError
from yibao.policy.compiled import CompiledPack
from yibao.policy.loader import load_pack, pack_from_data, resolve_pack, shipped_pack_path
from yibao.settlement.engine import settle
from yibao.settlement.model import Accumulators, ClassifiedAmounts, Person, Visit
from yibao.settlement.statement import explain

Y = 100


@pytest.fixture(scope="module")
def pack():
    return CompiledPack(resolve_pack("shandong-2024-age"))


def paid(pack, age, med_type="21", level="3", inscp=11_000):
    v = Visit("V1", med_type, level, date(2024, 3, 1), amounts=ClassifiedAmounts(0, 0, 0, inscp * Y))
    return settle(pack, Person("P1", "390", age=age), v, Accumulators(2024))


def test_formula_worked_example(pack):
    # 三级医院住院, 起付线 1,000, 60%; 60 岁以上每岁 +0.5 个百分点, 最多 +10
    assert {age: paid(pack, age).setlinfo.hifp_pay for age in (40, 60, 66, 80, 90)} == {
        40: 6_000 * Y, 60: 6_000 * Y, 66: 6_300 * Y, 80: 7_000 * Y, 90: 7_000 * Y}


def test_band_worked_example(pack):
    # 居民普通门诊统筹, 基层 60%, 一老一小 +5: 200 × 65% = 130
    got = {age: paid(pack, age, "11", "1", 200).setlinfo.hifp_pay for age in (0, 17, 18, 59, 60, 100)}
    assert got == {0: 130 * Y, 17: 130 * Y, 18: 120 * Y, 59: 120 * Y, 60: 130 * Y, 100: 130 * Y}


def test_statement_names_the_age_and_its_points(pack):
    line = explain(paid(pack, 66), pack)[1]
    assert "66 周岁按年龄调整 +3 个百分点" in line


def test_a_rule_by_age_needs_the_age(pack):
    with pytest.raises(SettlementError) as e:
        paid(pack, None)
    assert (e.value.problems[0].code, e.value.problems[0].path) == ("SET008", "person.age")
    assert paid(pack, None, "14", "1", 100).setlinfo.medfee_sumamt == 100 * Y  # a rule without age points settles


def _rows(pack, ages):
    cats = {f"cat_{c}": False for c in pack.categories}
    return [{"psn_no": f"P{k}", "yr": 2024, "setl_time": datetime(2024, 3, 1), "mdtrt_id": f"V{k}", "insutype": "390",
             "retiree": False, "age": age, **cats, "med_type": "21", "level": "3", "dise_codg": "",
             "referral_from_level": None, "acct_balance": 0, "fulamt": 0, "overlmt": 0, "pre": 0, "inscp": 11_000 * Y}
            for k, age in enumerate(ages)]


def test_batch_pays_by_age_and_refuses_an_unknown_age(pack):
    got = settle_visits(pack, pa.Table.from_pylist(_rows(pack, [40, 66, 90]))).column("hifp_pay").to_pylist()
    assert got == [6_000 * Y, 6_300 * Y, 7_000 * Y]
    with pytest.raises(KernelError) as e:
        settle_visits(pack, pa.Table.from_pylist(_rows(pack, [40, None])))
    assert (e.value.problems[0].code, e.value.problems[0].path) == ("KRN013", "persons.age")


@pytest.mark.parametrize("bands, path, words", [
    ([{"from_age": 1, "points": 5}], "basic[0].age_points[0].from_age", "须从 0 岁起"),
    ([{"from_age": 0, "to_age": 17, "points": 5}, {"from_age": 20, "points": 0}],
     "basic[0].age_points[1].from_age", "18–19 岁没有比例"),
    ([{"from_age": 0, "to_age": 17, "points": 5}, {"from_age": 15, "points": 0}],
     "basic[0].age_points[1].from_age", "重叠"),
    ([{"from_age": 0, "to_age": 59, "points": 5}], "basic[0].age_points[0].to_age", "最后一段须不写截止年龄"),
    ([{"from_age": 0, "points": 5}, {"from_age": 60, "points": 0}], "basic[0].age_points[0].to_age", "只有最后一段"),
])
def test_age_bands_with_gaps_or_overlaps_are_refused(bands, path, words):
    data = load_pack(shipped_pack_path("shandong-2024")).model_dump(mode="python")
    data["basic"][0]["age_points"] = bands
    with pytest.raises(YibaoError) as e:
        pack_from_data(data)
    found = [p for p in e.value.problems if p.code == "POL035"]
    assert found and found[0].path == path and words in found[0].message
