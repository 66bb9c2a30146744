"""单病种定额 (fixed-standard disease payment, issue 14 shape 5): a negotiated standard per disease and level
replaces item-by-item settlement; the worked examples of docs/policy-packs.md §6.6, the explanation, the
pack's validation (POL034) and batch = scalar with the institution's part (hosp_part_amt)."""

from __future__ import annotations

from datetime import date

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from yibao.batch.duck import settle_visits
from yibao.errors import YibaoError
from yibao.policy.compiled import CompiledPack
from yibao.policy.loader import load_pack, pack_from_data, resolve_pack, shipped_pack_path
from yibao.settlement.engine import settle
from yibao.settlement.model import Accumulators, ClassifiedAmounts, Person, Visit
from yibao.settlement.statement import explain

Y = 100
RESIDENT = Person("P1", "390")


def visit(fee_yuan: int, dise: str, level: str, mid: str = "V1", day: int = 1) -> Visit:
    # 100 全自费 + 50 超限价 + 150 先行自付, the rest in scope: under a standard all of it is settled alike
    return Visit(mid, "21", level, date(2024, 3, day), dise_codg=dise,
                 amounts=ClassifiedAmounts(100 * Y, 50 * Y, 150 * Y, (fee_yuan - 300) * Y))


@pytest.fixture(scope="module")
def pack():
    return CompiledPack(resolve_pack("shandong-2024-dbz"))


def test_worked_examples(pack):
    def paid(fee, dise, level):
        i = settle(pack, RESIDENT, visit(fee, dise, level), Accumulators(2024)).setlinfo
        return i.hifp_pay, i.psn_part_amt, i.hosp_part_amt, i.act_pay_dedc
    # above the standard: 4,500 × 80% = 3,600 paid, 900 the person's, 700 the institution's; no deductible
    assert paid(5200, "K35.900", "2") == (3600 * Y, 900 * Y, 700 * Y, 0)
    # below it (below_standard: actual): the bill, 3,000 × 80%
    assert paid(3000, "K35.900", "2") == (2400 * Y, 600 * Y, 0, 0)
    assert paid(8000, "K80.200", "3") == (5600 * Y, 2400 * Y, 0, 0)
    # another diagnosis falls through to 居民普通住院: (4,900 − 500) × 75%, the out-of-scope 300 the person's
    assert paid(5200, "J18.9", "2") == (3300 * Y, 1900 * Y, 0, 500 * Y)


def test_statement_explains_the_standard(pack):
    lines = explain(settle(pack, RESIDENT, visit(5200, "K35.900", "2"), Accumulators(2024)), pack)
    text = "\n".join(lines)
    assert "定额标准 4,500.00 元" in text and "700.00 元由医疗机构承担" in text
    assert "4,500.00 × 80% = 3,600.00 元" in text


def test_below_standard_on_the_standard_never_pays_more_than_the_bill():
    data = load_pack(shipped_pack_path("shandong-2024-dbz")).model_dump(mode="python")
    rule = next(r for r in data["basic"] if r["id"] == "resident_fixed_standard")
    rule["fixed_standard"]["below_standard"] = "standard"
    pack = CompiledPack(pack_from_data(data))
    # bill 4,000 < standard 4,500: the fund pays 80% of the standard, 3,600; the person 400
    i = settle(pack, RESIDENT, visit(4000, "K35.1", "2"), Accumulators(2024)).setlinfo
    assert (i.hifp_pay, i.psn_part_amt, i.hosp_part_amt) == (3600 * Y, 400 * Y, 0)
    # bill 3,000: 3,600 would exceed the bill, so the fund pays the whole 3,000
    i = settle(pack, RESIDENT, visit(3000, "K35.1", "2"), Accumulators(2024)).setlinfo
    assert (i.hifp_pay, i.psn_part_amt) == (3000 * Y, 0)


@pytest.mark.parametrize("change, path", [
    (lambda r: r.update(mode="annual", deductible={"by_level": r["deductible"]["by_level"]}), "basic[0].mode"),
    (lambda r: r["deductible"]["by_level"].update({"2": 500}), "basic[0].deductible.by_level.2"),
    (lambda r: r["ratio_by_level"].update({"3": [{"upto": 1000, "ratio": 0.5}, {"ratio": 0.6}]}),
     "basic[0].ratio_by_level.3"),
    (lambda r: r.update(diseases=["K35"]), "basic[0].fixed_standard.standards"),
    (lambda r: r["fixed_standard"]["standards"]["K80"].pop("1"), "basic[0].fixed_standard.standards.K80"),
])
def test_bad_fixed_standard_rules_are_refused_with_the_path(change, path):
    data = load_pack(shipped_pack_path("shandong-2024-dbz")).model_dump(mode="python")
    rule = next(r for r in data["basic"] if r["id"] == "resident_fixed_standard")
    data["basic"] = [rule] + [r for r in data["basic"] if r is not rule]
    change(rule)
    with pytest.raises(YibaoError) as e:
        pack_from_data(data)
    assert ("POL034", path) in {(p.code, p.path) for p in e.value.problems}


def test_batch_equals_scalar_with_the_institutions_part(pack):
    visits = [visit(fee, dise, lv, f"V{k}", day=k + 1)
              for k, (fee, dise, lv) in enumerate([(5200, "K35.900", "2"), (3000, "K35.900", "2"),
                                                   (12000, "K80.200", "3"), (5200, "J18.9", "2")])]
    acc, scalar = Accumulators(2024), []
    for v in visits:
        s = settle(pack, RESIDENT, v, acc)
        acc = s.accumulators_after
        scalar.append(s.setlinfo)
    cats = {f"cat_{c}": False for c in pack.categories}
    rows = [{"psn_no": "P1", "yr": 2024, "setl_time": date(2024, 3, k + 1), "mdtrt_id": v.mdtrt_id, "insutype": "390",
             "retiree": False, **cats, "med_type": "21", "level": v.level, "dise_codg": v.dise_codg,
             "referral_from_level": None, "acct_balance": 0, "fulamt": v.amounts.fulamt_ownpay_amt,
             "overlmt": v.amounts.overlmt_selfpay, "pre": v.amounts.preselfpay_amt, "inscp": v.amounts.inscp_scp_amt}
            for k, v in enumerate(visits)]
    batch = settle_visits(pack, pa.Table.from_pylist(rows)).to_pylist()
    for b, s in zip(batch, scalar):
        assert {f: b[f] for f in s.as_dict()} == s.as_dict(), b["mdtrt_id"]
    assert pc.sum(pa.array([b["hosp_part_amt"] for b in batch])).as_py() == (700 + 3000) * Y
