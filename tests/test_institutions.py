"""两定机构 agreements on SQLite and PostgreSQL: 申请 → 评估 → 签约, dated suspension for a confirmed serious
violation refusing settlement from its date (INS101) until resumed, termination (INS102), the annual
assessment from supervision findings and credit, and bad input writing nothing."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from yibao.errors import YibaoError
from yibao.institutions import store
from yibao.institutions.agreements import Event, next_event_problems, refusals, state_on
from yibao.institutions.models import InsAgreementEvent, InsDesignation, InsStanding
from yibao.institutions.standing import refuse_if_suspended
from yibao.service import sample
from yibao.service import transactions as tx
from yibao.service.auth import Principal
from yibao.service.errors import Forbidden
from yibao.service.packs import PackSet
from yibao.settlement.request import FeeItemIn
from yibao.store.base import Base
from yibao.store.database import make_engine
from yibao.store.models import AuditLog, Institution
from yibao.supervision.cases import Case

PACKS = PackSet.load(["shandong-2024"])
CLERK, REVIEWER, RECHECKER = Principal("clerk1", "clerk"), Principal("rev1", "reviewer"), Principal("rck1", "rechecker")
CODE = "H37010200099"
SCOPE = {"levels": ["2"], "services": ["11", "21"], "care_modes": ["day_surgery"]}
ALL_PASS = {"licence": True, "operating_3m": True, "staff": True, "his": True, "pricing": True, "records": True}


def ctx(day: date) -> tx.Context:
    return tx.Context("req", "x", datetime.combine(day, datetime.min.time()).replace(hour=9))


@pytest.fixture
def engine(store_url):
    eng = make_engine(store_url)
    with Session(eng) as s, s.begin():
        sample.seed(s, 3)
    yield eng
    eng.dispose()


def write(engine, fn):
    with Session(engine) as s, s.begin():
        return fn(s)


def signed(engine, code: str = CODE) -> str:
    """An institution designated for 2024 (申请 → 评估 → 签约); returns the agreement number."""
    app = write(engine, lambda s: store.apply_designation(s, CLERK, ctx(date(2023, 11, 1)), fixmedins_code=code,
                                                           fixmedins_name="示例区人民医院", kind="hospital",
                                                           admdvs="370102", scope=SCOPE))
    write(engine, lambda s: store.evaluate(s, REVIEWER, ctx(date(2023, 11, 20)), application_no=app["application_no"],
                                           items=ALL_PASS))
    out = write(engine, lambda s: store.sign(s, RECHECKER, ctx(date(2023, 12, 1)), application_no=app["application_no"],
                                             valid_from=date(2024, 1, 1), valid_to=date(2024, 12, 31)))
    return out["agreement_no"]


def settle_at(engine, code: str, day: date, psn_no: str = "P000000001") -> dict:
    his = Principal("his", "institution", code)
    c = ctx(day)
    visit = write(engine, lambda s: tx.register_visit(s, his, c, fixmedins_code=code, psn_no=psn_no, insutype="390",
                                                      med_type="11", begntime=c.at))
    write(engine, lambda s: tx.upload_items(s, his, c, PACKS, mdtrt_id=visit["mdtrt_id"],
                                            items=[FeeItemIn.model_validate(x) for x in sample.items(3)]))
    return write(engine, lambda s: tx.settle(s, his, c, PACKS, mdtrt_id=visit["mdtrt_id"]))


def add_case(engine, *, severity: str, status: str, amount_fen: int, recovered_fen: int = 0,
             created: datetime = datetime(2024, 4, 2, 10), code: str = CODE) -> int:
    def go(s):
        case = Case(rule_id=f"R-{severity}-{amount_fen}-{status}", rule_name="虚假上传结算费用", severity=severity,
                    subject=f"{code}:{amount_fen}:{status}", fixmedins_code=code, amount_fen=amount_fen,
                    recovered_fen=recovered_fen, status=status, message="示例", created_at=created, updated_at=created)
        s.add(case)
        s.flush()
        return case.id
    return write(engine, go)


def codes(exc: YibaoError) -> list[str]:
    return [p.code for p in exc.problems]


def test_migration_matches_the_models(store_url):
    eng = make_engine(store_url)
    with eng.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert [d for d in diffs if "ins_" in repr(d)] == []
    eng.dispose()


def test_signing_designates_and_a_serious_violation_suspends_settlement_from_its_date(engine):
    agreement_no = signed(engine)
    with Session(engine) as s:
        inst = s.get(Institution, CODE)
        assert (inst.level, inst.designated_from, inst.designated_to) == ("2", date(2024, 1, 1), date(2024, 12, 31))
    assert settle_at(engine, CODE, date(2024, 3, 9))["setlinfo"]["medfee_sumamt"] > 0
    case_id = add_case(engine, severity="high", status="confirmed", amount_fen=1_910_000_00)
    out = write(engine, lambda s: store.record_event(s, RECHECKER, ctx(date(2024, 4, 20)), agreement_no=agreement_no,
                                                     kind="suspend", eff_date=date(2024, 4, 15), case_id=case_id,
                                                     reason="虚假上传结算费用, 认定违规"))
    assert out["refusals"] == [{"status": "suspended", "start": "2024-04-15", "end": None,
                                "reason": "虚假上传结算费用, 认定违规"}]
    assert out["state"] == "suspended"
    settle_at(engine, CODE, date(2024, 4, 14))  # the day before: settled
    with pytest.raises(YibaoError) as refused:
        settle_at(engine, CODE, date(2024, 4, 15))
    assert codes(refused.value) == ["INS101"] and "2024-04-15" in refused.value.problems[0].message
    write(engine, lambda s: store.record_event(s, RECHECKER, ctx(date(2024, 6, 1)), agreement_no=agreement_no,
                                               kind="resume", eff_date=date(2024, 6, 1), reason="整改到位"))
    settle_at(engine, CODE, date(2024, 6, 3))
    with Session(engine) as s:  # the suspension stays a fact: refused 4/15–5/31 only
        assert [(r.start_date, r.end_date) for r in s.scalars(select(InsStanding))] == [(date(2024, 4, 15), date(2024, 5, 31))]
    write(engine, lambda s: store.record_event(s, RECHECKER, ctx(date(2024, 9, 1)), agreement_no=agreement_no,
                                               kind="terminate", eff_date=date(2024, 9, 1), reason="解除协议: 再次违规"))
    with pytest.raises(YibaoError) as ended:
        settle_at(engine, CODE, date(2024, 9, 2))
    assert codes(ended.value) == ["INS102"]
    with pytest.raises(YibaoError) as again:
        write(engine, lambda s: store.record_event(s, RECHECKER, ctx(date(2024, 9, 3)), agreement_no=agreement_no,
                                                   kind="suspend", eff_date=date(2024, 9, 3), reason="x"))
    assert codes(again.value) == ["INS025"]


def test_a_visit_outside_the_agreement_is_refused_at_registration(engine):
    signed(engine)  # services 11 普通门诊 and 21 普通住院, 2024
    his = Principal("his", "institution", CODE)
    c = ctx(date(2024, 5, 6))
    with pytest.raises(YibaoError) as outside:
        write(engine, lambda s: tx.register_visit(s, his, c, fixmedins_code=CODE, psn_no="P000000001", insutype="390",
                                                  med_type="52", begntime=c.at))
    assert [p.code for p in outside.value.problems] == ["INS104"]
    with Session(engine) as s:  # outside every agreement (the designated period alone would be checked first)
        with pytest.raises(YibaoError) as none:
            refuse_if_suspended(s, CODE, date(2025, 1, 6), med_type="11")
        assert [p.code for p in none.value.problems] == ["INS103"]
        refuse_if_suspended(s, sample.HOSPITAL, date(2025, 1, 6), med_type="52")  # never signed here: no scope check


def test_only_a_confirmed_serious_case_of_the_institution_can_suspend(engine):
    agreement_no = signed(engine)
    minor = add_case(engine, severity="low", status="confirmed", amount_fen=100)
    open_ = add_case(engine, severity="high", status="verifying", amount_fen=200)
    other = add_case(engine, severity="high", status="confirmed", amount_fen=300, code=sample.HOSPITAL)
    for case_id, code in ((minor, "INS033"), (open_, "INS032"), (other, "INS031"), (999, "INS030")):
        with pytest.raises(YibaoError) as exc:
            write(engine, lambda s: store.record_event(s, RECHECKER, ctx(date(2024, 5, 1)), agreement_no=agreement_no,
                                                       kind="suspend", eff_date=date(2024, 5, 1), case_id=case_id,
                                                       reason="违规"))
        assert code in codes(exc.value)
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(InsStanding)) == 0


def test_bad_input_is_coded_and_writes_nothing(engine):
    def audit_rows():
        with Session(engine) as s:
            return s.scalar(select(func.count()).select_from(AuditLog)), s.scalar(select(func.count()).select_from(InsDesignation))

    before = audit_rows()
    with pytest.raises(YibaoError) as exc:
        write(engine, lambda s: store.apply_designation(
            s, CLERK, ctx(date(2024, 1, 2)), fixmedins_code="H 1", fixmedins_name="", kind="clinic", admdvs="37",
            scope={"levels": ["4"], "services": [], "care_modes": ["spa"]}))
    assert sorted(set(codes(exc.value))) == ["INS001", "INS002", "INS004", "INS005", "INS006"]
    assert audit_rows() == before
    with pytest.raises(Forbidden):  # an institution applies only for itself
        write(engine, lambda s: store.apply_designation(
            s, Principal("his", "institution", "H1"), ctx(date(2024, 1, 2)), fixmedins_code=CODE,
            fixmedins_name="x", kind="hospital", admdvs="370102", scope=SCOPE))
    assert audit_rows() == before


def test_failed_evaluation_refuses_and_the_evaluator_cannot_sign(engine):
    app = write(engine, lambda s: store.apply_designation(s, CLERK, ctx(date(2024, 1, 2)), fixmedins_code=CODE,
                                                           fixmedins_name="示例药店", kind="pharmacy", admdvs="370102",
                                                           scope={"levels": ["0"], "services": ["41"], "care_modes": ["dual_channel"]}))
    with pytest.raises(YibaoError) as missing:
        write(engine, lambda s: store.evaluate(s, REVIEWER, ctx(date(2024, 1, 5)), application_no=app["application_no"],
                                               items={"licence": True}))
    assert codes(missing.value) == ["INS012"] * 5
    out = write(engine, lambda s: store.evaluate(s, REVIEWER, ctx(date(2024, 1, 5)), application_no=app["application_no"],
                                                 items={**ALL_PASS, "his": False}))
    assert (out["status"], out["evaluation"]["passed"]) == ("refused", False)
    with pytest.raises(YibaoError) as refused:
        write(engine, lambda s: store.sign(s, RECHECKER, ctx(date(2024, 1, 9)), application_no=app["application_no"],
                                           valid_from=date(2024, 2, 1), valid_to=date(2024, 12, 31)))
    assert codes(refused.value) == ["INS011"]
    app2 = write(engine, lambda s: store.apply_designation(s, CLERK, ctx(date(2024, 2, 2)), fixmedins_code=CODE,
                                                            fixmedins_name="示例药店", kind="pharmacy", admdvs="370102",
                                                            scope={"levels": ["0"], "services": ["41"], "care_modes": []}))
    admin = Principal("root", "admin")
    write(engine, lambda s: store.evaluate(s, admin, ctx(date(2024, 2, 5)), application_no=app2["application_no"], items=ALL_PASS))
    with pytest.raises(YibaoError) as same:
        write(engine, lambda s: store.sign(s, admin, ctx(date(2024, 2, 9)), application_no=app2["application_no"],
                                           valid_from=date(2024, 3, 1), valid_to=date(2024, 12, 31)))
    assert codes(same.value) == ["INS015"]


def test_change_of_scope_is_dated_and_backdating_is_refused(engine):
    agreement_no = signed(engine)
    new_scope = {"levels": ["3"], "services": ["11", "21", "14"], "care_modes": []}
    out = write(engine, lambda s: store.record_event(s, RECHECKER, ctx(date(2024, 7, 1)), agreement_no=agreement_no,
                                                     kind="change", eff_date=date(2024, 7, 1), scope=new_scope,
                                                     reason="晋升三级"))
    assert out["scope_on"] == new_scope
    with Session(engine) as s:
        assert s.get(Institution, CODE).level == "3"
        assert store.agreement_record(s, CLERK, agreement_no, date(2024, 6, 30))["scope_on"] == SCOPE
    with pytest.raises(YibaoError) as back:
        write(engine, lambda s: store.record_event(s, RECHECKER, ctx(date(2024, 7, 2)), agreement_no=agreement_no,
                                                   kind="suspend", eff_date=date(2024, 6, 1), reason="x"))
    assert codes(back.value) == ["INS022"]
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(InsAgreementEvent)) == 2


def test_annual_assessment_from_findings_and_credit(engine):
    signed(engine)
    add_case(engine, severity="high", status="recovered", amount_fen=2_500_000, recovered_fen=1_000_000)
    add_case(engine, severity="medium", status="confirmed", amount_fen=40_000)
    add_case(engine, severity="high", status="excluded", amount_fen=9_000_000)  # 排除: not a finding
    add_case(engine, severity="low", status="confirmed", amount_fen=10, created=datetime(2023, 5, 1))  # another year
    out = write(engine, lambda s: store.assess(s, REVIEWER, ctx(date(2025, 1, 10)), fixmedins_code=CODE, year=2024))
    # cases 10 + 4 = 14; 违规金额 25,400 元 → 2; 未追回 15,400 元 → 1: behaviour 100 − 17 = 83
    # credit (all years, supervision): 100 − 10 − 5 − 2 = 83; score 0.7 × 83 + 0.3 × 83 = 83.00 → B 合格
    assert (out["behaviour"], out["deduction"], out["credit"], out["score"], out["grade"]) == (83, 17, 83, "83.00", "B")
    assert out["breakdown"]["cases"] == 2
    with pytest.raises(YibaoError) as none:
        write(engine, lambda s: store.assess(s, REVIEWER, ctx(date(2025, 1, 10)), fixmedins_code="NOPE", year=2024))
    assert codes(none.value) == ["INS041"]


EVENT = st.tuples(st.sampled_from(["suspend", "resume", "terminate", "change"]), st.integers(0, 30))


@given(st.lists(EVENT, max_size=12))
def test_accepted_event_sequences_refuse_exactly_on_the_folded_days(steps):
    """Whatever sequence is accepted, a day is refused iff the fold says suspended/terminated on it, and
    after a termination nothing else is accepted."""
    start, end = date(2024, 1, 1), date(2024, 12, 31)
    events = [Event("sign", start, {"levels": ["1"]})]
    day = start
    for kind, gap in steps:
        day = date.fromordinal(min(day.toordinal() + gap, end.toordinal()))
        new = Event(kind, day, {"levels": ["1"]} if kind == "change" else None, "r")
        if not next_event_problems(events, new, start, end):
            events.append(new)
    intervals = refusals(events)
    for k in range(0, 366, 7):
        on = date.fromordinal(start.toordinal() + k)
        state = state_on(events, on, start, end)
        assert (state in ("suspended", "terminated")) == any(iv.covers(on) for iv in intervals)
    terminated = [e for e in events if e.kind == "terminate"]
    if terminated:
        assert events[-1] is terminated[0]
