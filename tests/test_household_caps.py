"""家庭年度限额 (household caps, #14 shape 6): a tier's annual cap shared by a household's members.

The pack construct (``household_cap`` on a tier, POL039), the scalar engine (household accumulators beside the
person's, SET009, SET041), the batch kernel in household order (KRN014), and the invariant the issue names: a
household's cap is never exceeded whatever the order of its members' visits. Example pack:
``shandong-2024-household`` (医疗救助 50,000 yuan per household beside 30,000 per person).
"""

from __future__ import annotations

from datetime import date, datetime

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from test_batch import assert_same, random_region, scalar_results
from yibao.batch.duck import settle_visits
from yibao.batch.lower import KernelError
from yibao.errors import PolicyError, SettlementError
from yibao.policy.compiled import CompiledPack
from yibao.policy.loader import pack_from_text, resolve_pack
from yibao.settlement.engine import reverse_household, settle, settle_in_order
from yibao.settlement.model import Accumulators, ClassifiedAmounts, Person, Visit
from yibao.sql import ident

HOUSEHOLD = CompiledPack(resolve_pack("shandong-2024-household"))
BASE = CompiledPack(resolve_pack("shandong-2024"))
CORE = next(t for t in HOUSEHOLD.tiers if t.id == "assistance_core")


def stay(mdtrt_id: str, day: date, inscp_yuan: int) -> Visit:
    return Visit(mdtrt_id, "21", "2", day, amounts=ClassifiedAmounts(0, 0, 0, inscp_yuan * 100))


def core_pay(s) -> int:
    return next((d.fund_payamt for d in s.setldetail if d.rule_id == "assistance_core"), 0)


def dibao(psn_no: str, hh_no: str | None = "H1") -> Person:
    return Person(psn_no, "390", frozenset({"dibao"}), hh_no=hh_no)


def test_members_share_the_household_cap():
    # three 低保 members of one household, a 300,000-yuan stay each at a 二级 hospital (March, April, May):
    # each member's own 医疗救助 is 70% of what 基本医保 and 大病 left, at most 30,000 — 27,912.50 here, the
    # same as under shandong-2024 without a household cap; the household's 50,000 then pays the first member
    # 27,912.50, the second 50,000 − 27,912.50 = 22,087.50 and the third nothing
    persons = {p: dibao(p) for p in ("P1", "P2", "P3")}
    visits = [(p, stay(f"M{m}", date(2024, m, 10), 300_000)) for p, m in (("P1", 3), ("P2", 4), ("P3", 5))]
    got = settle_in_order(HOUSEHOLD, persons, visits)
    alone = [settle(BASE, persons[p], v, Accumulators(2024)) for p, v in visits]
    assert [core_pay(s) for s in alone] == [2_791_250] * 3
    assert [core_pay(s) for s in got] == [2_791_250, 2_208_750, 0]
    assert got[-1].household_after.values == {"hhcap:assistance_core": 3 * 2_791_250,
                                              "hhpaid:assistance_core": 5_000_000}
    # the money the household cap withheld stays with the person: a later tier (再救助) or cash, never lost
    for s, a in zip(got, alone):
        info, base = s.setlinfo, a.setlinfo
        assert info.medfee_sumamt == info.fund_pay_sumamt + info.psn_part_amt + info.hosp_part_amt
        assert info.hifp_pay == base.hifp_pay and info.hifmi_pay == base.hifmi_pay
        assert info.fund_pay_sumamt <= base.fund_pay_sumamt
    step = next(x for x in got[1].steps if x.rule_id == "assistance_core")
    assert (step.facts["household_cap"], step.facts["household_used_before"], step.facts["own_cap_pay"],
            step.facts["pay"]) == (5_000_000, 2_791_250, 2_791_250, 2_208_750)


def test_other_households_and_persons_are_apart():
    persons = {"P1": dibao("P1", "H1"), "P2": dibao("P2", "H2")}
    visits = [(p, stay(f"M{p}{k}", date(2024, 3 + k, 10), 300_000)) for k in range(2) for p in ("P1", "P2")]
    got = settle_in_order(HOUSEHOLD, persons, visits)
    by_person = {p: sum(core_pay(s) for s in got if s.psn_no == p) for p in persons}
    assert by_person == {"P1": 3_000_000, "P2": 3_000_000}  # each stops at their own 30,000, not the household's


def test_a_household_cap_needs_a_household():
    # SET009: the tier applies and the person has no hh_no; a person the tier does not cover settles as before
    with pytest.raises(SettlementError) as exc:
        settle(HOUSEHOLD, dibao("P1", None), stay("M1", date(2024, 3, 1), 100_000), Accumulators(2024))
    assert [(p.code, p.path) for p in exc.value.problems] == [("SET009", "person.hh_no")]
    plain = settle(HOUSEHOLD, Person("P2", "390"), stay("M2", date(2024, 3, 1), 100_000), Accumulators(2024))
    assert plain.household_delta == {} and plain.setlinfo.maf_pay == 0
    with pytest.raises(SettlementError) as exc:
        settle(HOUSEHOLD, dibao("P1"), stay("M1", date(2024, 3, 1), 1), Accumulators(2024), Accumulators(2023))
    assert [(p.code, p.path) for p in exc.value.problems] == [("SET002", "household.year")]


def test_reversal_within_a_household_is_latest_first():
    persons = {p: dibao(p) for p in ("P1", "P2")}
    r1, r2 = settle_in_order(HOUSEHOLD, persons, [("P1", stay("M1", date(2024, 3, 1), 300_000)),
                                                  ("P2", stay("M2", date(2024, 3, 2), 300_000))])
    current = r2.household_after
    with pytest.raises(SettlementError) as exc:  # P2 was capped on top of P1's settlement
        reverse_household(r1, current)
    assert exc.value.problems[0].code == "SET041"
    back = reverse_household(r2, current)
    assert back.values == r1.household_after.values
    assert reverse_household(r1, back).values == {}
    again = settle(HOUSEHOLD, persons["P2"], stay("M2", date(2024, 3, 2), 300_000), Accumulators(2024), back)
    assert again.setlinfo == r2.setlinfo


@pytest.mark.parametrize("yaml, path", [
    ("extends: shandong-2024-household\ntiers:\n  - id: assistance_core\n    household_cap: 20000\n",
     "tiers[2].household_cap"),
])
def test_a_household_cap_below_a_members_own_cap_is_refused(yaml, path):
    with pytest.raises(PolicyError) as exc:
        pack_from_text(yaml, "x.yaml")
    assert [(p.code, p.path) for p in exc.value.problems] == [("POL039", path)]
    with pytest.raises(PolicyError) as exc:
        pack_from_text("extends: shandong-2024\ntiers:\n  - id: assistance_core\n    household_cap: 0\n", "y.yaml")
    assert [p.code for p in exc.value.problems] == ["POL010"]
    assert "household_cap" in exc.value.problems[0].path


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(1, 600_000)), min_size=1, max_size=10), st.randoms())
def test_the_household_cap_is_never_exceeded_whatever_the_order(stays, rnd):
    # members' own payments do not depend on each other, so the household's total is min(Σ own, cap) in any order
    persons = {f"P{k}": dibao(f"P{k}") for k in range(4)}
    visits = [(f"P{k}", stay(f"M{i}", date(2024, 1, 1 + i), y)) for i, (k, y) in enumerate(stays)]
    own = sum(core_pay(s) for s in settle_in_order(BASE, persons, visits))
    shuffled = visits[:]
    rnd.shuffle(shuffled)  # another order of arrival (dates follow the order, as the service would see them)
    shuffled = [(p, stay(v.mdtrt_id, date(2024, 1, 1 + i), v.amounts.inscp_scp_amt // 100))
                for i, (p, v) in enumerate(shuffled)]
    own_shuffled = sum(core_pay(s) for s in settle_in_order(BASE, persons, shuffled))
    assert own_shuffled == own  # a member's own cap does not care about the others
    for order in (visits, shuffled):
        results = settle_in_order(HOUSEHOLD, persons, order)
        paid = [core_pay(s) for s in results]
        assert sum(paid) == min(own, CORE.household_cap) <= CORE.household_cap
        running = 0
        for s, p in zip(results, paid):  # and at every step along the way
            running += p
            assert running <= CORE.household_cap
            assert s.setlinfo.medfee_sumamt == s.setlinfo.fund_pay_sumamt + s.setlinfo.psn_part_amt


def test_batch_settles_households_as_the_scalar_engine_does():
    # households of one to four, a fifth of the stays 100,000–600,000 yuan: the household cap binds
    persons, rows = random_region(HOUSEHOLD, 6_000, seed=21, big=0.2)
    scalar = scalar_results(HOUSEHOLD, persons, rows)
    bound = [s for s in scalar.values() if s.household_delta.get(CORE.hh_cap_key, 0)
             > s.household_delta.get(CORE.hh_paid_key, 0)]
    assert len(bound) > 5  # the cap did bind, in the scalar engine's arrival order
    batch = settle_visits(HOUSEHOLD, pa.Table.from_pylist(rows))
    assert assert_same(HOUSEHOLD, rows, batch, scalar) == len(rows)


def test_batch_refuses_a_household_tier_without_a_household():
    cats = sorted(HOUSEHOLD.categories)
    row = {"psn_no": "P1", "yr": 2024, "setl_time": datetime(2024, 3, 1, 9), "mdtrt_id": "M1", "insutype": "390",
           "retiree": False, **{f"cat_{ident(c)}": c == "dibao" for c in cats}, "med_type": "21", "level": "2",
           "dise_codg": "", "referral_from_level": None, "acct_balance": 0, "fulamt": 0, "overlmt": 0, "pre": 0,
           "inscp": 30_000_000, "hh_no": None}
    plain = {**row, "psn_no": "P2", "mdtrt_id": "M2", "cat_dibao": False, "hh_no": None}
    assert settle_visits(HOUSEHOLD, pa.Table.from_pylist([plain])).column("maf_pay").to_pylist() == [0]
    with pytest.raises(KernelError) as exc:
        settle_visits(HOUSEHOLD, pa.Table.from_pylist([plain, row]))
    assert [(p.code, p.path) for p in exc.value.problems] == [("KRN014", "persons.hh_no")]
    assert "M1" in exc.value.problems[0].message
    no_column = pa.Table.from_pylist([{k: v for k, v in row.items() if k != "hh_no"}])
    with pytest.raises(KernelError):
        settle_visits(HOUSEHOLD, no_column)


def test_settle_command_takes_the_household_and_gives_it_back(tmp_path):
    # yibao settle: hh_no on the person, the household's year so far in, its year after out (docs/settle-request.md)
    import json

    from typer.testing import CliRunner

    from yibao.cli import app

    request = {"person": {"psn_no": "P0003", "insutype": "390", "categories": ["dibao"], "hh_no": "H01"},
               "household_accumulators": {"year": 2024, "values": {"hhcap:assistance_core": 2_791_250,
                                                                   "hhpaid:assistance_core": 2_791_250}},
               "visit": {"mdtrt_id": "D", "med_type": "21", "level": "2", "setl_time": "2024-04-10",
                         "amounts": {"inscp_scp_amt": "300000.00"}}}
    path = tmp_path / "req.json"
    path.write_text(json.dumps(request), encoding="utf-8")
    result = CliRunner().invoke(app, ["settle", "--policy", "shandong-2024-household", "--request", str(path), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    core = next(d for d in doc["setldetail"] if d["rule_id"] == "assistance_core")
    assert core["fund_payamt"] == 22087.50
    assert doc["household_accumulators_after"] == {"year": 2024, "values": {
        "hhcap:assistance_core": 5_582_500, "hhpaid:assistance_core": 5_000_000}}
    del request["person"]["hh_no"]
    path.write_text(json.dumps(request), encoding="utf-8")
    result = CliRunner().invoke(app, ["settle", "--policy", "shandong-2024-household", "--request", str(path), "--json"])
    assert result.exit_code != 0 and "SET009" in result.output


def test_batch_settle_command_under_household_caps(tmp_path):
    # a synthetic region (persons in households, 低保 households among them) under the household pack: the command
    # settles in household order and still writes setlinfo in (psn_no, setl_time, mdtrt_id) order, one row a visit,
    # each household's 医疗救助 within its cap
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    from typer.testing import CliRunner

    from yibao.cli import app
    from yibao.synth import generate_to

    generate_to(resolve_pack("shandong-2024"), tmp_path / "r", persons=1_500, seed=8)
    result = CliRunner().invoke(app, ["batch", "settle", "--claims", str(tmp_path / "r"), "--policy",
                                      "shandong-2024-household", "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    info = pq.read_table(tmp_path / "o" / "setlinfo.parquet")
    visits = pq.read_table(tmp_path / "r" / "visits.parquet")
    assert info.num_rows == visits.num_rows
    keys = list(zip(*(info.column(c).to_pylist() for c in ("psn_no", "setl_time", "mdtrt_id"))))
    assert keys == sorted(keys)
    detail = pq.read_table(tmp_path / "o" / "setldetail.parquet")
    persons = pq.read_table(tmp_path / "r" / "persons.parquet")
    household = dict(zip(persons.column("psn_no").to_pylist(), persons.column("hh_no").to_pylist()))
    core = detail.filter(pc.equal(detail.column("rule_id"), "assistance_core"))
    paid: dict = {}
    for psn_no, amount in zip(core.column("psn_no").to_pylist(), core.column("fund_payamt").to_pylist()):
        paid[household[psn_no]] = paid.get(household[psn_no], 0) + amount
    assert paid and max(paid.values()) <= CORE.household_cap / 100
