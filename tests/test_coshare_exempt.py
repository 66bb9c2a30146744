"""Item classes that skip the co-share (issue 14 shape 4): 植入类医用耗材 50% paid first by the person, the rest
paid in full by the basic fund — outside the deductible and the ratio, inside the annual cap — while the other
in-scope amounts are paid at the level's ratio; the worked example of docs/policy-packs.md §6.8, the explanation,
POL036, and the batch path (classification SQL → visits_in → kernel) equal to the scalar engine to the fen."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import duckdb
import pyarrow as pa
import pytest

from yibao.batch.duck import settle_visits
from yibao.batch.inputs import classification_query, pack_tables, visits_in_query
from yibao.errors import YibaoError
from yibao.policy.compiled import CompiledPack
from yibao.policy.loader import load_pack, pack_from_data, resolve_pack, shipped_pack_path
from yibao.settlement.engine import settle
from yibao.settlement.model import Accumulators, ClassifiedAmounts, FeeItem, Person, Visit
from yibao.settlement.statement import explain

Y = 100
EMPLOYEE = Person("P1", "310")


@pytest.fixture(scope="module")
def pack():
    return CompiledPack(resolve_pack("shandong-2024-implant"))


def hip_visit(mid: str = "V1", day: int = 1) -> Visit:
    # 人工髋关节 30,000 (50% 先行自付, the rest coshare: false), 甲类 20,000, 丙类 1,000
    items = (FeeItem("1", "SD-EX-I001", 30_000 * Y, Decimal(1), None, None, None),
             FeeItem("2", "X-A", 20_000 * Y, Decimal(1), None, "01", None),
             FeeItem("3", "SD-EX-S001", 1_000 * Y, Decimal(1), None, None, None))
    return Visit(mid, "21", "2", date(2024, 3, day), items=items)


def test_worked_example(pack):
    s = settle(pack, EMPLOYEE, hip_visit(), Accumulators(2024))
    i = s.setlinfo
    assert (i.medfee_sumamt, i.fulamt_ownpay_amt, i.preselfpay_amt, i.inscp_scp_amt) == (
        51_000 * Y, 1_000 * Y, 15_000 * Y, 35_000 * Y)
    # (20,000 − 400) × 88.8% = 17,404.80, plus the implant's 15,000 in full
    assert (i.act_pay_dedc, i.hifp_pay, i.pool_prop_selfpay) == (400 * Y, 32_404_80, 2_195_20)
    assert i.psn_part_amt == 1_000 * Y + 15_000 * Y + 400 * Y + 2_195_20
    # the same bill with the implant an ordinary class: (35,000 − 400) × 88.8% = 30,724.80
    data = load_pack(shipped_pack_path("shandong-2024-implant")).model_dump(mode="python")
    data["classification"]["classes"]["04"]["coshare"] = True
    plain = settle(CompiledPack(pack_from_data(data)), EMPLOYEE, hip_visit(), Accumulators(2024)).setlinfo
    assert plain.hifp_pay == 30_724_80 and i.hifp_pay - plain.hifp_pay == 1_680 * Y  # 15,000 × 11.2%


def test_statement_explains_the_full_payment(pack):
    text = "\n".join(explain(settle(pack, EMPLOYEE, hip_visit(), Accumulators(2024)), pack))
    assert "15,000.00 元由统筹基金全额支付" in text
    assert "19,600.00 × 88.8% + 全额支付 15,000.00 = 32,404.80 元" in text


def test_full_payment_stays_within_the_annual_cap(pack):
    # two admissions of 200,000 implant each (amounts given): the 300,000 cap binds, the rest goes to 大额
    acc, paid = Accumulators(2024), []
    for k in range(2):
        v = Visit(f"V{k}", "21", "2", date(2024, 3, k + 1),
                  amounts=ClassifiedAmounts(0, 0, 200_000 * Y, 200_000 * Y, 200_000 * Y))
        s = settle(pack, EMPLOYEE, v, acc)
        acc = s.accumulators_after
        paid.append((s.setlinfo.hifp_pay, s.setlinfo.act_pay_dedc, s.setlinfo.hifob_pay))
    assert paid[0] == (200_000 * Y, 0, 0)  # in full, no deductible taken from it
    assert paid[1] == (100_000 * Y, 0, 90_000 * Y)  # cap reached; 大额 pays 90% of the 100,000 over the cap


def test_annual_rule_counts_only_the_co_shared_amount():
    # an annual (门诊) rule: the running base and deductible see only the co-shared part
    pack = CompiledPack(resolve_pack("shandong-2024-implant"))
    v = Visit("O1", "11", "1", date(2024, 4, 1), amounts=ClassifiedAmounts(0, 0, 0, 300 * Y, 100 * Y))
    s = settle(pack, EMPLOYEE, v, Accumulators(2024))
    step = next(st for st in s.steps if st.kind == "basic")
    assert s.delta[f"base:{step.rule_id}"] == 200 * Y
    assert s.setlinfo.hifp_pay == step.facts["uncapped"]
    assert s.setlinfo.hifp_pay >= 100 * Y


def test_coshare_false_needs_an_in_scope_class():
    data = load_pack(shipped_pack_path("shandong-2024-implant")).model_dump(mode="python")
    data["classification"]["classes"]["03"]["coshare"] = False
    with pytest.raises(YibaoError) as e:
        pack_from_data(data)
    assert ("POL036", "classification.classes.03.coshare") in {(p.code, p.path) for p in e.value.problems}


def test_claims_path_equals_scalar(pack):
    """Fee lines through the classification SQL and visits_in into the kernel: the scalar engine's figures."""
    visits = [hip_visit("V1", 1), hip_visit("V2", 2),
              Visit("V3", "21", "3", date(2024, 5, 1), items=(
                  FeeItem("1", "SD-EX-I002", 2_000 * Y, Decimal(2), None, None, None),  # over the 800 price cap
                  FeeItem("2", "X-B", 5_000 * Y, Decimal(1), None, "04", None)))]
    con = duckdb.connect()
    for name, table in pack_tables(pack).items():
        con.register(name, table)
    fee_schema = pa.schema([("mdtrt_id", pa.string()), ("feedetl_sn", pa.string()), ("med_list_codg", pa.string()),
                            ("chrgitm_lv", pa.string()), ("cnt", pa.decimal128(16, 4)),
                            ("det_item_fee_sumamt", pa.decimal128(16, 2)), ("preselfpay_ratio", pa.decimal128(6, 4))])
    con.register("fee_items", pa.Table.from_pylist(
        [{"mdtrt_id": v.mdtrt_id, "feedetl_sn": i.feedetl_sn, "med_list_codg": i.med_list_codg,
          "chrgitm_lv": i.chrgitm_lv, "cnt": i.cnt, "det_item_fee_sumamt": Decimal(i.det_item_fee_sumamt) / 100,
          "preselfpay_ratio": None} for v in visits for i in v.items], fee_schema))
    con.register("visits", pa.Table.from_pylist(
        [{"psn_no": "P1", "mdtrt_id": v.mdtrt_id, "setl_time": datetime.combine(v.setl_date, datetime.min.time()),
          "med_type": v.med_type, "level": v.level, "dise_codg": None, "referral_from_level": None,
          "acct_balance": Decimal(0)} for v in visits]))
    con.register("persons", pa.Table.from_pylist(
        [{"psn_no": "P1", "insutype": "310", "retiree": False, "age": 50, "categories": []}],
        pa.schema([("psn_no", pa.string()), ("insutype", pa.string()), ("retiree", pa.bool_()), ("age", pa.int64()),
                   ("categories", pa.list_(pa.string()))])))
    con.sql(f"CREATE TABLE classified AS {classification_query()}")
    visits_in = con.sql(visits_in_query(pack)).fetch_arrow_table()
    assert sorted(visits_in.column("inscp_full").to_pylist()) == [2_500 * Y + 800 * Y, 15_000 * Y, 15_000 * Y]
    batch = {b["mdtrt_id"]: b for b in settle_visits(pack, visits_in).to_pylist()}
    acc = Accumulators(2024)
    for v in visits:
        s = settle(pack, EMPLOYEE, v, acc)
        acc = s.accumulators_after
        expected = s.setlinfo.as_dict()
        assert {f: batch[v.mdtrt_id][f] for f in expected} == expected, v.mdtrt_id
