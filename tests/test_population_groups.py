"""Deductibles and caps per population group within one pack (issue 14 shape 3, 一老一小): groups on a basic rule
chosen by categories and/or age, first match wins, overriding the deductible by level, the annual cap and adding
ratio points; the worked example of docs/policy-packs.md §6.9, the explanation, POL037, SET008, batch = scalar."""

from __future__ import annotations

from datetime import date, datetime

import pyarrow as pa
import pytest

from yibao.batch.duck import settle_visits
from yibao.errors import SettlementError, YibaoError
from yibao.policy.compiled import CompiledPack
from yibao.policy.loader import load_pack, pack_from_data, resolve_pack, shipped_pack_path
from yibao.settlement.engine import settle
from yibao.settlement.model import Accumulators, ClassifiedAmounts, Person, Visit
from yibao.settlement.statement import explain

Y = 100


@pytest.fixture(scope="module")
def pack():
    return CompiledPack(resolve_pack("shandong-2024-groups"))


def inpatient(inscp_yuan: int, mid: str = "V1", day: int = 1, level: str = "3") -> Visit:
    return Visit(mid, "21", level, date(2024, 3, day), amounts=ClassifiedAmounts(0, 0, 0, inscp_yuan * Y))


def test_worked_example(pack):
    def paid(age, inscp):
        i = settle(pack, Person("P1", "390", age=age), inpatient(inscp), Accumulators(2024)).setlinfo
        return i.act_pay_dedc, i.hifp_pay
    assert paid(40, 11_000) == (1_000 * Y, 6_000 * Y)  # no group: (11,000 − 1,000) × 60%
    assert paid(70, 11_000) == (600 * Y, 6_240 * Y)  # 一老: (11,000 − 600) × 60%
    assert paid(8, 11_000) == (400 * Y, 6_890 * Y)  # 一小: (11,000 − 400) × 65%
    assert paid(65, 11_000)[0] == 600 * Y and paid(17, 11_000)[0] == 400 * Y and paid(18, 11_000)[0] == 1_000 * Y
    # each group's own annual cap: 200,000 for others, 250,000 一老, 300,000 一小
    assert paid(40, 600_000)[1] == 200_000 * Y
    assert paid(70, 600_000)[1] == 250_000 * Y
    assert paid(8, 600_000)[1] == 300_000 * Y


def test_statement_names_the_group(pack):
    text = "\n".join(explain(settle(pack, Person("P1", "390", age=8), inpatient(11_000), Accumulators(2024)), pack))
    assert "属人群 一小(18 岁以下)(children)" in text and "比例调整 +5 个百分点" in text
    assert "10,600.00 × 65% = 6,890.00 元" in text


def test_age_is_required_online(pack):
    with pytest.raises(SettlementError) as e:
        settle(pack, Person("P1", "390"), inpatient(1_000), Accumulators(2024))
    assert [p.code for p in e.value.problems] == ["SET008"]


def test_a_group_by_category():
    data = load_pack(shipped_pack_path("shandong-2024-groups")).model_dump(mode="python")
    rule = next(r for r in data["basic"] if r["id"] == "resident_inpatient")
    rule["groups"].append({"id": "poor", "name": "低保", "categories": ["dibao"],
                           "deductible": {"1": 0, "2": 0, "3": 0}, "annual_cap": None, "ratio_points": 0})
    pack = CompiledPack(pack_from_data(data))
    i = settle(pack, Person("P1", "390", frozenset({"dibao"}), age=40), inpatient(11_000), Accumulators(2024)).setlinfo
    assert (i.act_pay_dedc, i.hifp_pay) == (0, 6_600 * Y)
    # first match wins: an elderly 低保 person is 一老
    i = settle(pack, Person("P1", "390", frozenset({"dibao"}), age=70), inpatient(11_000), Accumulators(2024)).setlinfo
    assert i.act_pay_dedc == 600 * Y


@pytest.mark.parametrize("change, path, code", [
    (lambda g: g.append({"id": "mid", "from_age": 60, "to_age": 70}), "basic[0].groups[2]", "POL037"),
    (lambda g: g.append({"id": "old2", "from_age": 80}), "basic[0].groups[2]", "POL037"),
    (lambda g: g.append({"id": "none"}), "basic[0].groups[2]", "POL037"),
    (lambda g: g[0]["deductible"].pop("2"), "basic[0].groups[0].deductible", "POL037"),
    (lambda g: g.append({"id": "elderly", "categories": ["dibao"]}), "basic[0].groups[2].id", "POL037"),
    (lambda g: g.append({"id": "x", "categories": ["nobody"]}), "basic[0].groups[2].categories[0]", "POL022"),
    (lambda g: g[1].update(from_age=15, to_age=3), "basic[0].groups[1].to_age", "POL037"),
])
def test_bad_groups_are_refused_with_the_path(change, path, code):
    data = load_pack(shipped_pack_path("shandong-2024-groups")).model_dump(mode="python")
    rule = next(r for r in data["basic"] if r["id"] == "resident_inpatient")
    data["basic"] = [rule] + [r for r in data["basic"] if r is not rule]
    change(rule["groups"])
    with pytest.raises(YibaoError) as e:
        pack_from_data(data)
    assert (code, path) in {(p.code, p.path) for p in e.value.problems}


def test_batch_equals_scalar_across_groups(pack):
    cats = {f"cat_{c}": False for c in pack.categories}
    rows, scalar = [], []
    for k, (age, inscp, level) in enumerate([(8, 11_000, "3"), (8, 500_000, "2"), (70, 11_000, "3"), (70, 400_000, "1"),
                                             (40, 11_000, "3"), (40, 300_000, "2")]):
        person = Person(f"P{age}", "390", age=age)
        v = inpatient(inscp, f"V{k}", k + 1, level)
        prev = [s for s in scalar if s.psn_no == person.psn_no]
        s = settle(pack, person, v, prev[-1].accumulators_after if prev else Accumulators(2024))
        scalar.append(s)
        rows.append({"psn_no": person.psn_no, "yr": 2024, "setl_time": datetime(2024, 3, k + 1), "mdtrt_id": v.mdtrt_id,
                     "insutype": "390", "retiree": False, "age": age, **cats, "med_type": "21", "level": level,
                     "dise_codg": "", "referral_from_level": None, "acct_balance": 0, "fulamt": 0, "overlmt": 0,
                     "pre": 0, "inscp": inscp * Y})
    batch = {b["mdtrt_id"]: b for b in settle_visits(pack, pa.Table.from_pylist(rows)).to_pylist()}
    for s in scalar:
        expected = s.setlinfo.as_dict()
        assert {f: batch[s.mdtrt_id][f] for f in expected} == expected, s.mdtrt_id
