"""Contributions, 资助参保 and personal accounts: exact fen from the pack's financing section."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session

from yibao.enrolment import ledger, rules
from yibao.enrolment import registry as er
from yibao.enrolment.models import Contribution, EnrolmentFact
from yibao.policy.loader import resolve_pack
from yibao.policy.model import AssistanceRule, Financing, Relief, ResidentYear
from yibao.service import registry, sample
from yibao.service.auth import Principal
from yibao.service.errors import ServiceError
from yibao.service.transactions import Context
from yibao.store.database import make_engine
from yibao.store.models import Person

CLERK = Principal("clerk1", "clerk")
CTX = Context("l-1", "clerk1", datetime(2024, 7, 10, 9, 0))
FIN = resolve_pack("shandong-2024").financing


@pytest.fixture
def engine(store_url):
    """A migrated store on SQLite and on PostgreSQL."""
    eng = make_engine(store_url)
    yield eng
    eng.dispose()


def _person(s, psn_no, i, insutype="310", retiree=False, cats=None, start=date(2024, 1, 1)):
    registry.add_person(s, psn_no=psn_no, certno=sample.certno(300 + i), psn_name=f"人{i}", insutype=insutype,
                        admdvs="370102", valid_from=start, valid_to=date(2024, 12, 31), retiree=retiree,
                        categories=cats)


def test_employee_month_clamps_the_base_and_applies_reliefs():
    assert rules.employee_month(FIN, 2_000_000, date(2024, 3, 1), False).base_fen == 1_800_000  # ceiling 18,000
    line = rules.employee_month(FIN, 800_000, date(2024, 3, 1), False)
    assert (line.employer_fen, line.employee_fen, line.account_fen, line.total_fen) == (56000, 16000, 16000, 72000)
    assert rules.employee_month(FIN, 800_000, date(2024, 3, 1), True).account_fen == 9000  # retiree 90 元/月
    eased = FIN.model_copy(update={"reliefs": [
        Relief(id="half", kind="reduce", valid_from=date(2020, 2, 1), valid_to=date(2020, 6, 30),
               employer_factor=Decimal("0.5")),
        Relief(id="defer", kind="defer", valid_from=date(2020, 2, 1), valid_to=date(2020, 6, 30),
               defer_until=date(2020, 12, 31))]})
    half = rules.employee_month(eased, 800_000, date(2020, 3, 1), False)
    assert (half.employer_fen, half.relief_fen, half.due_date, half.deferred) == (28000, 28000, date(2020, 12, 31), True)
    assert rules.employee_month(eased, 800_000, date(2020, 7, 1), False).employer_fen == 56000


@given(st.lists(st.sampled_from(["tekun", "dibao", "fanpin", "monitor", "illness_poverty", "none_of_these"]),
                max_size=3),
       st.integers(0, 200_000), st.sampled_from(["full", "fixed", "percentage", "none"]),
       st.integers(1, 100_000), st.decimals(0, 1, places=2))
def test_subsidy_plus_personal_is_the_years_contribution(cats, individual, kind, amount, ratio):
    fin = Financing(resident=[ResidentYear(year=2024, individual=Decimal(individual) / 100, fiscal=Decimal(670))],
                    assistance=list(FIN.assistance) + [AssistanceRule(
                        category="monitor", kind=kind, amount=Decimal(amount) / 100 if kind == "fixed" else None,
                        ratio=ratio if kind == "percentage" else None, valid_from=date(2024, 1, 1),
                        valid_to=date(2024, 12, 31))])
    line = rules.resident_year(fin, 2024, cats)
    assert line.assistance_fen + line.personal_fen == individual
    assert 0 <= line.assistance_fen <= individual and line.fiscal_fen == 67000


def test_declaration_credits_accounts_and_arrears_suspend(engine):
    with Session(engine) as s, s.begin():
        _person(s, "E1", 1)
        _person(s, "E2", 2, retiree=True)
        _person(s, "E3", 3)
        out = ledger.declare_employer(s, CLERK, CTX, FIN, emp_no="U1", sector="金融", admdvs="370102",
                                      period=date(2024, 1, 1), lines=[("E1", 300_000), ("E2", 0)], paid=True)
        assert [(x["base"], x["account"]) for x in out["lines"]] == [(Decimal("3600.00"), Decimal("72.00")),
                                                                     (Decimal("0.00"), Decimal("90.00"))]
        for month in range(1, 6):  # E3: five months declared, none paid
            ledger.declare_employer(s, CLERK, CTX, FIN, emp_no="U2", sector="制造", admdvs="370102",
                                    period=date(2024, month, 1), lines=[("E3", 500_000)], paid=False)
    with Session(engine) as s, s.begin():
        assert s.get(Person, "E1").acct_balc_fen == 7200 and s.get(Person, "E2").acct_balc_fen == 9000
        assert ledger.arrears_months(s, "E3", date(2024, 7, 1)) == 5
        suspended = ledger.apply_arrears(s, CLERK, CTX, FIN, date(2024, 7, 1))
        assert suspended == [{"psn_no": "E3", "arrears_months": 5}]
        with pytest.raises(ServiceError) as exc:
            registry.enrollment(s, "E3", "310", date(2024, 7, 2))
        assert exc.value.problems[0].code == "REG020"
        ledger.pay_arrears(s, CLERK, CTX, psn_no="E3", period="2024-05")
        assert ledger.arrears_months(s, "E3", date(2024, 7, 1)) == 0  # the latest month is paid now
        waiting = FIN.model_copy(update={"employee": FIN.employee.model_copy(update={
            "arrears": FIN.employee.arrears.model_copy(update={"waiting_months": 2})})})
        assert ledger.pay_arrears(s, CLERK, CTX, psn_no="E3", period="2024-04", fin=waiting)["resumed_from"] \
            == "2024-09-10"  # paid 2024-07-10, benefits again after a 2-month wait
        with pytest.raises(ServiceError):
            registry.enrollment(s, "E3", "310", date(2024, 9, 9))
        assert registry.enrollment(s, "E3", "310", date(2024, 9, 10)).insuplc_admdvs == "370102"
        assert s.get(Person, "E3").acct_balc_fen == 20000  # two months paid: 2 × 5,000 × 2%
        with pytest.raises(ServiceError) as exc:
            ledger.declare_employer(s, CLERK, CTX, FIN, emp_no="U1", sector="金融", admdvs="370102",
                                    period=date(2024, 1, 1), lines=[("E1", 300_000)], paid=True)
        assert exc.value.problems[0].code == "ENR055"
        flags = ledger.floor_flags(s, FIN, "2024-01", {"金融": 1_200_000, "制造": 500_000})
        assert [f["emp_no"] for f in flags] == ["U1"]


def test_subsidy_roster_dynamic_enrolment_and_reconciliation(engine):
    with Session(engine) as s, s.begin():
        _person(s, "R1", 11, "390", cats={"tekun": "民政"})
        _person(s, "R2", 12, "390", cats={"dibao": "民政"})
        _person(s, "R3", 13, "390", cats={"illness_poverty": "民政"})
        _person(s, "R4", 14, "390")  # left the scheme in March, recognised as 低保边缘 in June
        er.change_status(s, CLERK, CTX, psn_no="R4", insutype="390", action="terminate", eff_date=date(2024, 3, 1),
                         reason="断保")
        _person(s, "R5", 15, "310", cats={"dibao": "民政"})  # an employee: insured, no resident subsidy
        er.record_category(s, CLERK, CTX, psn_no="R4", category="dibao_edge", action="grant",
                           valid_from=date(2024, 6, 15), valid_to=date(2024, 12, 31), dept="民政",
                           known=resolve_pack("shandong-2024").categories)
        roster = ledger.subsidy_roster(s, FIN, 2024)
        assert [(r.psn_no, r.assistance_fen, r.status) for r in roster] == [
            ("R1", 40000, "missing"), ("R2", 16000, "missing"), ("R4", 16000, "missing")]
        out = ledger.resident_contributions(s, CLERK, CTX, FIN, 2024)
        assert out["dynamically_enrolled"] == 1 and out["rows"] == 4
        assert out["assistance"] == Decimal("720.00") and out["personal"] == Decimal("880.00")
    with Session(engine) as s:
        assert [r.status for r in ledger.subsidy_roster(s, FIN, 2024)] == ["ok", "ok", "ok"]
        r4 = s.scalars(select(EnrolmentFact).where(EnrolmentFact.psn_no == "R4").order_by(EnrolmentFact.id)).all()[-1]
        assert (r4.eff_date, r4.kind, r4.reason) == (date(2024, 6, 15), "resume", "动态参保: 认定为 dibao_edge")
        rows = {c.psn_no: c for c in s.scalars(select(Contribution))}
        assert (rows["R3"].personal_fen, rows["R3"].assistance_fen, rows["R3"].fiscal_fen) == (40000, 0, 67000)


def test_family_pay_within_the_balance_and_the_statement(engine):
    with Session(engine) as s, s.begin():
        _person(s, "H1", 21)
        _person(s, "H2", 22, "390")
        ledger.declare_employer(s, CLERK, CTX, FIN, emp_no="U1", sector="金融", admdvs="370102",
                                period=date(2024, 1, 1), lines=[("H1", 1_000_000)], paid=True)
        with pytest.raises(ServiceError) as exc:
            ledger.family_pay(s, CLERK, CTX, FIN, holder_psn_no="H1", member_psn_no="H2", amount_fen=5000,
                              on=date(2024, 7, 10), ref="门诊")
        assert exc.value.problems[0].code == "ENR059"
        er.link_household(s, CLERK, CTX, holder_psn_no="H1", member_psn_no="H2", relation="子女",
                          valid_from=date(2024, 1, 1))
        ledger.family_pay(s, CLERK, CTX, FIN, holder_psn_no="H1", member_psn_no="H2", amount_fen=5000,
                          on=date(2024, 7, 10), ref="门诊")
        with pytest.raises(ServiceError) as exc:
            ledger.family_pay(s, CLERK, CTX, FIN, holder_psn_no="H1", member_psn_no="H2", amount_fen=20000,
                              on=date(2024, 7, 10), ref="门诊")
        assert exc.value.problems[0].code == "ENR060"
        closed = FIN.model_copy(update={"employee": FIN.employee.model_copy(update={
            "account": FIN.employee.account.model_copy(update={"family_mutual": False})})})
        with pytest.raises(ServiceError) as exc:
            ledger.family_pay(s, CLERK, CTX, closed, holder_psn_no="H1", member_psn_no="H2", amount_fen=100,
                              on=date(2024, 7, 10), ref="门诊")
        assert exc.value.problems[0].code == "ENR061"
        st_ = ledger.account_statement(s, "H1", date(2024, 7, 1), date(2024, 7, 31))
        assert (st_["opening"], st_["closing"]) == (Decimal("0.00"), Decimal("150.00"))
        assert [line["kind"] for line in st_["lines"]] == ["credit", "family_pay"]


def test_fund_income_comes_from_the_ledger():
    """E1 8,000 元 all year: employer 560 × 12 = 6,720; E2 3,000 → base 3,600: 252 × 9 paid months = 2,268;
    pool income 8,988.00; accounts 160 × 12 + 72 × 9 + retiree 90 × 12 = 3,648.00. Residents: 低保 R1
    pays 240 (资助 160), R2, R3 400 each, fiscal 670 × 3: 3,210.00 = 1,040 + 160 + 2,010."""
    import duckdb
    import pyarrow as pa

    from yibao.fund.operation import operate
    from yibao.synth import enrolment as synth_enrolment

    rows = []
    for psn, wage, retiree, unpaid in (("E1", 800_000, False, set()), ("E2", 300_000, False, {10, 11, 12}),
                                       ("E3", 0, True, set())):
        for m in range(1, 13):
            line = rules.employee_month(FIN, wage, date(2024, m, 1), retiree)
            rows.append({"psn_no": psn, "insutype": "310", "scheme": "employee", "period": f"2024-{m:02d}",
                         "status": "due" if m in unpaid else "paid", **_amounts(line)})
    for psn, cats in (("R1", ["dibao"]), ("R2", []), ("R3", [])):
        rows.append({"psn_no": psn, "insutype": "390", "scheme": "resident", "period": "2024", "status": "paid",
                     **_amounts(rules.resident_year(FIN, 2024, cats))})
    con = duckdb.connect()
    con.register("persons", pa.Table.from_pylist([
        {"psn_no": p, "insutype": t, "retiree": p == "E3", "categories": ["dibao"] if p == "R1" else []}
        for p, t in (("E1", "310"), ("E2", "310"), ("E3", "310"), ("R1", "390"), ("R2", "390"), ("R3", "390"))]))
    con.register("setlinfo", pa.Table.from_pylist([{"psn_no": "E1", "setl_time": datetime(2024, 1, 5),
                                                    "hifp_pay": Decimal("1000.00")},
                                                   {"psn_no": "R1", "setl_time": datetime(2024, 3, 5),
                                                    "hifp_pay": Decimal("3000.00")}]))
    con.register("contributions", pa.Table.from_pylist(rows))
    emp, res = operate(con, resolve_pack("shandong-2024").fund, 2024, ledger=True)
    assert (emp.income, emp.account_income, emp.months[9].income) == (898800, 364800, 56000)
    assert res.income == 321000 and res.income_sources == {"employer": 0, "individual": 104000,
                                                           "assistance": 16000, "subsidy": 201000}
    # the synthetic ledger of a synthetic region has the same columns
    persons = pa.Table.from_pylist([{"psn_no": "E1", "insutype": "310", "retiree": False, "admdvs": "370102",
                                     "categories": []}])
    assert {"employer_fen", "account_fen", "status"} <= set(
        synth_enrolment.contributions(resolve_pack("shandong-2024"), persons, 2024).column_names)


def _amounts(line):
    return {k: getattr(line, k) for k in ("employer_fen", "employee_fen", "personal_fen", "assistance_fen",
                                          "fiscal_fen", "account_fen")}


def test_synthetic_ledger_rows_are_the_rules_amounts():
    from yibao.synth import enrolment as synth_enrolment
    from yibao.synth import generate

    pack = resolve_pack("shandong-2024")
    persons = generate(pack, persons=300, seed=4)["persons"]
    table = synth_enrolment.contributions(pack, persons, 2024, seed=4)
    info = {p["psn_no"]: p for p in persons.to_pylist()}
    assert table.num_rows == sum(12 if p["insutype"] == "310" else 1 for p in info.values())
    for row in table.to_pylist():
        p = info[row["psn_no"]]
        if row["scheme"] == "employee":
            line = rules.employee_month(FIN, row["declared_base_fen"], date(2024, int(row["period"][5:]), 1),
                                        p["retiree"])
        else:
            line = rules.resident_year(FIN, 2024, p["categories"])
        assert [row[f] for f in synth_enrolment.AMOUNTS] == [getattr(line, f) for f in synth_enrolment.AMOUNTS]


def test_a_loaded_synthetic_region_gets_facts_equal_to_its_rows_and_a_reconciled_ledger(engine):
    from yibao.synth import generate

    pack = resolve_pack("shandong-2024")
    tables = generate(pack, persons=300, seed=5)
    with Session(engine) as s, s.begin():
        registry.load_region(s, tables, 2024)
        out = ledger.load_synthetic(s, CLERK, CTX, pack, tables["persons"], 2024, 5)
    assert out["enrolment_facts"] == 600
    with Session(engine) as s:
        roster = ledger.subsidy_roster(s, FIN, 2024)
        assert roster and {r.status for r in roster} == {"ok"}
        psn = tables["persons"]["psn_no"][0].as_py()
        assert er.as_of(s, psn, date(2024, 12, 31))["enrolments"][0]["kind"] == "register"
        assert er.as_of(s, psn, date(2025, 1, 1))["enrolments"][0]["psn_insu_stas"] == "4"


def test_pack_financing_is_checked_on_load():
    from yibao.errors import PolicyError
    from yibao.policy.loader import pack_from_text, shipped_pack_path

    text = shipped_pack_path("shandong-2024").read_text(encoding="utf-8")
    bad = (text.replace("    employer_rate: 0.07\n    employee_rate: 0.02\n    account:",
                        "    employer_rate: 0.08\n    employee_rate: 0.02\n    account:")
           .replace("{category: dibao, kind: fixed, amount: 160,", "{category: dibao, kind: fixed,")
           .replace("{category: monitor, kind: fixed,", "{category: nobody, kind: fixed,"))
    with pytest.raises(PolicyError) as exc:
        pack_from_text(bad)
    assert sorted((p.code, p.path) for p in exc.value.problems) == [
        ("POL022", "financing.assistance[4].category"), ("POL060", "financing.assistance[1]"),
        ("POL061", "financing.employee.employer_rate")]
