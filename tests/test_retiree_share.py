"""The retiree ratio stated as a multiple of the in-service personal share (issue 14 shape 2: 退休人员个人负担为
在职的 X 倍, rate' = 1 − X × (1 − rate)): the worked example of docs/policy-packs.md §6.10, POL038, and the kernel
exact in integers (its common denominator holds X's) equal to the scalar engine."""

from __future__ import annotations

from datetime import date, datetime

import pyarrow as pa
import pytest

from yibao.batch.duck import settle_visits
from yibao.batch.lower import lower
from yibao.errors import YibaoError
from yibao.policy.compiled import CompiledPack
from yibao.policy.loader import load_pack, pack_from_data, pack_from_text, resolve_pack, shipped_pack_path
from yibao.settlement.engine import settle
from yibao.settlement.model import Accumulators, ClassifiedAmounts, Person, Visit
from yibao.settlement.statement import explain

Y = 100


@pytest.fixture(scope="module")
def pack():
    return CompiledPack(resolve_pack("shandong-2024-retiree"))


def stay(inscp_yuan: int, level: str = "2", mid: str = "V1", day: int = 1) -> Visit:
    return Visit(mid, "21", level, date(2024, 3, day), amounts=ClassifiedAmounts(0, 0, 0, inscp_yuan * Y))


def test_worked_example(pack):
    def hifp(retiree, level="2"):
        return settle(pack, Person("P1", "310", retiree=retiree), stay(10_400, level), Accumulators(2024)).setlinfo.hifp_pay
    assert hifp(False) == 8_800 * Y  # (10,400 − 400) × 88%
    assert hifp(True) == 9_280 * Y  # 1 − 0.6 × 12% = 92.8%
    assert hifp(True, "3") == 10_400 * Y - 800 * Y - 864 * Y  # 1 − 0.6 × 15% = 91%: 9,600 × 91% = 8,736


def test_statement_states_the_factor(pack):
    text = "\n".join(explain(settle(pack, Person("P1", "310", retiree=True), stay(10_400), Accumulators(2024)), pack))
    assert "退休人员个人负担为在职的 0.6 倍" in text and "10,000.00 × 92.8% = 9,280.00 元" in text


def test_points_and_factor_together_are_refused():
    data = load_pack(shipped_pack_path("shandong-2024-retiree")).model_dump(mode="python")
    rule = next(r for r in data["basic"] if r["id"] == "employee_inpatient")
    data["basic"] = [rule] + [r for r in data["basic"] if r is not rule]
    rule["retiree_points"] = 5
    with pytest.raises(YibaoError) as e:
        pack_from_data(data)
    assert ("POL038", "basic[0].retiree_share_factor") in {(p.code, p.path) for p in e.value.problems}


def test_kernel_denominator_holds_the_factor_and_agrees():
    # 88.8% in service, X = 0.65: 1 − 0.65 × 11.2% = 92.72%, exact over the kernel's den
    pack = CompiledPack(pack_from_text(
        "extends: shandong-2024-retiree\nbasic:\n  - id: employee_inpatient\n    retiree_share_factor: 0.65\n"
        "    ratio_by_level: {'1': 0.9, '2': 0.888, '3': [{upto: 5000, ratio: 0.8}, {ratio: 0.85}]}\n", "x.yaml"))
    assert lower(pack).den % 100_000 == 0
    cats = {f"cat_{c}": False for c in pack.categories}
    rows, scalar = [], {}
    for k, (retiree, inscp, level) in enumerate([(True, 10_401, "2"), (True, 12_345, "3"), (False, 7_777, "3"),
                                                 (True, 333, "1"), (True, 250_000, "2")]):
        person = Person(f"P{k}", "310", retiree=retiree)
        v = stay(inscp, level, f"V{k}", k + 1)
        scalar[v.mdtrt_id] = settle(pack, person, v, Accumulators(2024)).setlinfo.as_dict()
        rows.append({"psn_no": person.psn_no, "yr": 2024, "setl_time": datetime(2024, 3, k + 1), "mdtrt_id": v.mdtrt_id,
                     "insutype": "310", "retiree": retiree, "age": 60, **cats, "med_type": "21", "level": level,
                     "dise_codg": "", "referral_from_level": None, "acct_balance": 0, "fulamt": 0, "overlmt": 0,
                     "pre": 0, "inscp": inscp * Y + 7})
        scalar[v.mdtrt_id] = settle(pack, person, Visit(v.mdtrt_id, "21", level, v.setl_date, amounts=ClassifiedAmounts(
            0, 0, 0, inscp * Y + 7)), Accumulators(2024)).setlinfo.as_dict()
    for b in settle_visits(pack, pa.Table.from_pylist(rows)).to_pylist():
        assert {f: b[f] for f in scalar[b["mdtrt_id"]]} == scalar[b["mdtrt_id"]], b["mdtrt_id"]
