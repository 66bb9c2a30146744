"""异地就医 ratio (offsite_status): the pack's points for filed / unfiled offsite visits, the same in the
scalar engine and the batch kernel, to the fen."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strategies import valid_packs
from test_engine import ACC, RESIDENT, Y, base_pack, compiled, inpatient
from yibao.batch import kernel
from yibao.batch.lower import lower, offsite_codes, visit_codes
from yibao.errors import YibaoError
from yibao.policy.loader import pack_from_data
from yibao.settlement.engine import settle, settle_year
from yibao.settlement.model import Person
from yibao.settlement.request import VisitIn
from yibao.settlement.statement import explain

OFFSITE = {"filed": Decimal("-10"), "unfiled": Decimal("-20")}


def offsite_pack(points=None, retiree_points=Decimal(0)):
    data = base_pack()
    data["basic"][0]["offsite_points"] = OFFSITE if points is None else points
    data["basic"][0]["retiree_points"] = retiree_points
    data["basic"][0]["annual_cap"] = 20_000
    return compiled(data)


def test_offsite_points_lower_the_ratio_of_filed_and_unfiled_visits():
    pack = offsite_pack()
    # 三级: 起付线 800, 比例 65%; 已备案 −10 → 55%, 未备案 −20 → 45%; 政策范围内 10,000 元
    paid = {s: settle(pack, RESIDENT, inpatient(offsite_status=s), ACC).setlinfo.hifp_pay
            for s in ("local", "filed", "unfiled")}
    assert paid == {"local": 9_200 * 65 * Y // 100, "filed": 9_200 * 55 * Y // 100, "unfiled": 9_200 * 45 * Y // 100}


def test_statement_names_the_offsite_adjustment():
    pack = offsite_pack()
    s = settle(pack, RESIDENT, inpatient(offsite_status="unfiled"), ACC)
    text = "\n".join(explain(s, pack))
    assert "异地未备案比例调整 -20 个百分点" in text


def test_visit_request_defaults_to_local_and_refuses_other_statuses():
    base = {"mdtrt_id": "V1", "med_type": "21", "level": "3", "setl_time": "2024-03-01",
            "amounts": {"inscp_scp_amt": "100"}}
    assert VisitIn.model_validate(base).offsite_status == "local"
    with pytest.raises(ValueError):
        VisitIn.model_validate({**base, "offsite_status": "abroad"})


def test_pack_with_an_unknown_offsite_status_is_refused_with_its_path():
    data = base_pack()
    data["basic"][0]["offsite_points"] = {"elsewhere": 5}
    with pytest.raises(YibaoError) as e:
        pack_from_data(data)
    problem = e.value.problems[0]
    assert (problem.code, problem.path) == ("POL010", "basic[0].offsite_points.elsewhere")


def kernel_year(pack, person: Person, visits):
    program = lower(pack)
    n = len(visits)
    ins, med = visit_codes(program, np.array([person.insutype] * n), np.array([v.med_type for v in visits]))
    applied = [pack.basic_rule(person.insutype, v.med_type, v.dise_codg, v.level) for v in visits]
    rules = [pack.basic.index(r) for r in applied]
    once = [int(bool(r.once_diseases) and v.dise_codg.startswith(r.once_diseases)) for r, v in zip(applied, visits)]
    zeros = np.zeros(n, np.int64)
    start = zeros.copy()
    start[0] = 1
    inputs = {"start": start, "ins": ins, "med": med,
              "level": np.array([program.level_index(v.level) for v in visits], np.int64),
              "ref": np.full(n, -1, np.int64), "bidx": np.array(rules, np.int64), "once_match": np.array(once, np.int64),
              "cats": zeros, "retiree": np.full(n, int(person.retiree), np.int64), "acct_bal": zeros,
              "ful": zeros, "ovl": zeros, "pre": zeros,
              "inscp": np.array([v.amounts.inscp_scp_amt for v in visits], np.int64),
              "offsite": offsite_codes([v.offsite_status for v in visits]),
              "age": np.full(n, -1 if person.age is None else person.age, np.int64),
              "fixstd": np.array([-1 if (f := r.fixed_standard(v.dise_codg, v.level)) is None else f
                                  for r, v in zip(applied, visits)], np.int64)}
    return kernel.run(program, inputs)


points = st.decimals(min_value=-40, max_value=10, places=1)


@settings(max_examples=40, deadline=None)
@given(filed=points, unfiled=points, retiree=st.booleans(),
       visits=st.lists(st.tuples(st.sampled_from(["1", "2", "3"]), st.integers(0, 30_000 * Y),
                                 st.sampled_from(["local", "filed", "unfiled"])), min_size=1, max_size=6))
def test_kernel_equals_scalar_for_offsite_visits(filed, unfiled, retiree, visits):
    pack = offsite_pack({"filed": filed, "unfiled": unfiled}, retiree_points=Decimal(5))
    person = Person("P1", "390", retiree=retiree)
    vs = [inpatient(f"V{i}", inscp=x, level=lv, day=i + 1, offsite_status=s) for i, (lv, x, s) in enumerate(visits)]
    scalar = settle_year(pack, person, vs, ACC)
    out, pays = kernel_year(pack, person, vs)
    assert [s.setlinfo.hifp_pay for s in scalar] == out[:, 6].tolist()
    assert [s.setlinfo.fund_pay_sumamt for s in scalar] == out[:, 14].tolist()
    # the annual cap holds whatever the statuses
    assert sum(out[:, 6]) <= 20_000 * Y


def test_shipped_offsite_pack_worked_example():
    from yibao.policy.compiled import CompiledPack
    from yibao.policy.loader import resolve_pack
    pack = CompiledPack(resolve_pack("shandong-2024-offsite"))
    paid = {s: settle(pack, RESIDENT, inpatient(inscp=11_000 * Y, level="3", offsite_status=s), ACC).setlinfo.hifp_pay
            for s in ("local", "filed", "unfiled")}
    assert paid == {"local": 6_000 * Y, "filed": 5_000 * Y, "unfiled": 4_000 * Y}


@settings(max_examples=25, deadline=None)
@given(valid_packs(), st.randoms(use_true_random=False))
def test_kernel_equals_scalar_for_offsite_visits_on_random_packs(data_and_pack, rnd):
    """Random packs (strategies.py draws offsite_points for some rules); a person-year of visits under
    each scheme with random levels, amounts and offsite statuses: kernel == scalar to the fen."""
    from yibao.policy.compiled import CompiledPack
    from yibao.settlement.model import Visit, ClassifiedAmounts
    from datetime import date
    _, model = data_and_pack
    pack = CompiledPack(model)
    for insutype in sorted({r.insutype for r in model.basic}):
        person = Person("P1", insutype, retiree=rnd.random() < 0.5, age=rnd.randrange(0, 111),
                        hh_no="H1" if pack.uses_households else None)  # household caps: a household of one
        visits = []
        for i in range(6):
            rule = rnd.choice([r for r in model.basic if r.insutype == insutype])
            level = rnd.choice(sorted(rule.ratio_by_level))
            dise = rule.diseases[0] if rule.diseases else ""
            if pack.basic_rule(insutype, rule.med_types[0], dise, level) is None:
                continue
            visits.append(Visit(f"V{i}", rule.med_types[0], level, date(2024, 1 + i, 1), dise_codg=dise,
                                offsite_status=rnd.choice(["local", "filed", "unfiled"]),
                                amounts=ClassifiedAmounts(0, 0, 0, rnd.randrange(0, 50_000 * Y))))
        if not visits:
            continue
        scalar = settle_year(pack, person, visits, ACC)
        out, _ = kernel_year(pack, person, visits)
        assert [s.setlinfo.hifp_pay for s in scalar] == out[:, 6].tolist()
        assert [s.setlinfo.fund_pay_sumamt for s in scalar] == out[:, 14].tolist()


def test_level_fall_through_is_the_same_in_the_kernel():
    """docs/policy-packs.md §6: a disease rule without the visit's level is passed over (not SET006)."""
    data = base_pack()
    common = {"insutype": "390", "med_types": ["11"], "mode": "annual", "fund_pay_type": "390101"}
    data["basic"] = [
        {**common, "id": "two_diseases", "name": "两病(仅基层)", "diseases": ["I10"],
         "deductible": {"by_level": {"1": 0}}, "ratio_by_level": {"1": Decimal("0.7")}},
        {**common, "id": "general", "name": "普通门诊", "deductible": {"by_level": {"1": 0, "3": 0}},
         "ratio_by_level": {"1": Decimal("0.5"), "3": Decimal("0.4")}},
    ]
    pack = compiled(data)
    visits = [inpatient("A", inscp=100 * Y, level="3", med_type="11", dise_codg="I10"),
              inpatient("B", inscp=100 * Y, level="1", med_type="11", dise_codg="I10", day=2)]
    out, pays = kernel_year(pack, RESIDENT, visits)
    assert out[:, 6].tolist() == [40 * Y, 70 * Y] == [s.setlinfo.hifp_pay for s in settle_year(pack, RESIDENT, visits, ACC)]
    assert pays[:, 1].tolist() == [40 * Y, 0]
