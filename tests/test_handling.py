"""经办 engine: the catalogue, the working-day calendar and the workflow state machine (pure)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from yibao.handling.calendar import calendar
from yibao.handling.catalogue import HandlingError, catalogue, missing_materials, parse_catalogue, validate_form
from yibao.handling.workflow import FINAL, Action, CaseState, apply, timeliness

CAL = calendar()
CAT = catalogue()
DISEASES = {"M00100": "高血压", "M00200": "糖尿病"}


def codes(exc: HandlingError) -> list[str]:
    return [p.code for p in exc.problems]


def test_catalogue_ships_the_eight_items_with_guides():
    assert [i.code for i in CAT.items] == ["MZMTB", "LBDJ", "YDBA", "LXBX", "YSQJZ", "SYJT", "CBDJ", "CBBG"]
    g = CAT.item("YDBA").guide()
    assert g["name"] == "异地就医备案" and g["promised_days"] == 2 and g["channels"] == ["窗口", "网办", "村级服务点", "医院"]
    assert [f["options"] for f in g["fields"] if f["name"] == "filing_type"] == [["长期居住", "临时外出", "转诊"]]


def test_unknown_item_is_a_coded_error():
    with pytest.raises(HandlingError) as e:
        CAT.item("NOPE")
    assert codes(e.value) == ["HDL001"] and "门诊慢特病认定" in str(e.value)


def test_a_bad_catalogue_is_refused():
    with pytest.raises(HandlingError) as e:
        parse_catalogue({"version": "x", "items": [{"code": "ab"}]})
    assert set(codes(e.value)) == {"HDL000"}


def test_form_validation_reports_every_problem():
    item = CAT.item("MZMTB")
    assert validate_form(item, {"dise_codg": "M00100", "valid_from": "2026-03-01"}, DISEASES) == {
        "dise_codg": "M00100", "valid_from": "2026-03-01"}
    with pytest.raises(HandlingError) as e:
        validate_form(item, {"dise_codg": "X99", "valid_from": "2026-13-01", "extra": 1}, DISEASES)
    assert codes(e.value) == ["HDL011", "HDL015", "HDL012"]
    with pytest.raises(HandlingError) as e:
        validate_form(item, {"dise_codg": "M00100"}, None)
    assert codes(e.value) == ["HDL014", "HDL010"]
    with pytest.raises(HandlingError) as e:
        validate_form(CAT.item("YDBA"), {"filing_type": "出差", "mdtrt_admdvs": "44030", "valid_from": "2026-05-01",
                                          "valid_to": "2026-04-01"})
    assert codes(e.value) == ["HDL013", "HDL012", "HDL016"]
    assert validate_form(CAT.item("LXBX"), {"fixmedins_code": "H1", "begndate": "2026-01-05", "medfee_sumamt": "12.5",
                                            "insutype": "390", "med_type": "11"})["medfee_sumamt"] == "12.50"
    with pytest.raises(HandlingError) as e:
        validate_form(CAT.item("SYJT"), {"delivery_date": "2026-01-05", "leave_days": 400, "avg_wage": "1.001"})
    assert codes(e.value) == ["HDL012", "HDL012"]


# --- the calendar ---------------------------------------------------------------------------------


def test_holidays_and_make_up_days():
    assert not CAL.is_working_day(date(2026, 2, 16))  # 春节, a Monday
    assert CAL.is_working_day(date(2026, 2, 14))  # 调休 Saturday
    assert CAL.add_working_days(date(2026, 2, 12), 3) == date(2026, 2, 24)  # Fri 13, Sat 14 (调休), Tue 24
    assert CAL.add_working_days(date(2026, 9, 30), 1) == date(2026, 10, 8)
    assert CAL.add_working_days(date(2026, 9, 18), 2) == date(2026, 9, 21)  # Sun 20 is a 调休 working day
    # 2027 is not in the calendar yet: Mon–Fri less fixed-date holidays, marked provisional
    assert CAL.add_working_days(date(2026, 12, 30), 3) == date(2027, 1, 5)  # Thu 31, (Fri 1 元旦), Mon 4, Tue 5
    assert CAL.provisional(date(2027, 1, 5)) and not CAL.provisional(date(2026, 12, 31))
    s = run("YDBA", Action("accept", "a", date(2026, 12, 31)), materials=("id_doc", "commitment"))
    assert timeliness(s, date(2026, 12, 31), CAL) == {"deadline": "2027-01-05", "days_left": 2, "flag": "即将超期",
                                                      "provisional": True}


@given(st.dates(date(2026, 1, 1), date(2026, 10, 31)), st.integers(1, 20))
def test_deadline_is_the_nth_working_day(start, n):
    end = CAL.add_working_days(start, n)
    brute = [start + timedelta(days=k) for k in range(1, 60)]
    working = [d for d in brute if (d.weekday() < 5 or d in CAL.work) and d not in CAL.off]
    assert end == working[n - 1]
    assert CAL.working_days_between(start, end) == n and CAL.is_working_day(end)


# --- the workflow ---------------------------------------------------------------------------------

ALL = ("id_doc", "diagnosis", "records")


def run(item_code: str, *actions: Action, materials=ALL) -> CaseState:
    item = CAT.item(item_code)
    s = CaseState(item_code, materials=tuple(materials))
    for a in actions:
        s = apply(item, s, a, CAL)
    return s


D = date(2026, 2, 12)


def test_three_step_case_to_completion_with_deadline():
    s = run("MZMTB", Action("accept", "a", D), Action("review", "b", D), Action("recheck", "c", date(2026, 3, 9)))
    assert s.status == "completed" and s.accepted_on == D
    assert s.deadline == date(2026, 3, 11)  # 15 working days from Thu 12 Feb across 春节 and two 调休 Saturdays
    assert timeliness(s, date(2026, 3, 20), CAL)["flag"] == "按时办结"


def test_separation_of_duties():
    with pytest.raises(HandlingError) as e:
        run("MZMTB", Action("accept", "a", D), Action("review", "a", D))
    assert codes(e.value) == ["HDL023"]
    with pytest.raises(HandlingError) as e:
        run("MZMTB", Action("accept", "a", D), Action("review", "b", D), Action("recheck", "a", D))
    assert codes(e.value) == ["HDL023"]
    # returned at review by b, b may not then accept the supplemented case
    with pytest.raises(HandlingError) as e:
        run("MZMTB", Action("accept", "a", D), Action("return", "b", D, notice=("诊断证明须加盖公章",)),
            Action("supplement", "applicant", D), Action("accept", "b", D))
    assert codes(e.value) == ["HDL023"]


def test_missing_materials_return_with_one_time_notice():
    item = CAT.item("MZMTB")
    with pytest.raises(HandlingError) as e:
        run("MZMTB", Action("accept", "a", D), materials=("id_doc",))
    assert codes(e.value) == ["HDL024"] and "二级及以上定点医疗机构诊断证明、病历资料" in str(e.value)
    s = run("MZMTB", Action("return", "a", D, notice=("照片须为近期免冠照",)), materials=("id_doc",))
    assert s.status == "returned"
    assert [n["name"] for n in s.notice] == ["二级及以上定点医疗机构诊断证明", "病历资料及相关检查检验报告", "照片须为近期免冠照"]
    s = apply(item, s, Action("supplement", "applicant", D, materials=("diagnosis", "records")), CAL)
    assert s.status == "submitted" and missing_materials(item, list(s.materials)) == []
    s = apply(item, s, Action("accept", "a", D), CAL)
    assert s.status == "accepted"


def test_refuse_needs_a_reason_and_is_final():
    with pytest.raises(HandlingError) as e:
        run("LBDJ", Action("refuse", "a", D, reason=" "))
    assert codes(e.value) == ["HDL026"]
    s = run("LBDJ", Action("refuse", "a", D, reason="非本统筹区参保人员"))
    assert s.status == "refused" and s.reason == "非本统筹区参保人员"
    with pytest.raises(HandlingError) as e:
        apply(CAT.item("LBDJ"), s, Action("accept", "z", D), CAL)
    assert codes(e.value) == ["HDL021"]


def test_rating_only_once_and_only_after_completion():
    s = run("LBDJ", Action("accept", "a", D), Action("review", "b", D), materials=("id_doc", "diagnosis"))
    assert s.status == "completed"  # two-step item
    s = apply(CAT.item("LBDJ"), s, Action("rate", "applicant", D, rating=5), CAL)
    assert s.rating == 5
    with pytest.raises(HandlingError) as e:
        apply(CAT.item("LBDJ"), s, Action("rate", "applicant", D, rating=4), CAL)
    assert codes(e.value) == ["HDL027"]


def test_overdue_warning():
    s = run("YDBA", Action("accept", "a", date(2026, 4, 30)), materials=("id_doc", "commitment"))
    assert s.deadline == date(2026, 5, 7)  # 劳动节 1–5 May
    assert timeliness(s, date(2026, 5, 6), CAL) == {"deadline": "2026-05-07", "days_left": 1, "flag": "即将超期"}
    assert timeliness(s, date(2026, 5, 8), CAL) == {"deadline": "2026-05-07", "days_left": -1, "flag": "已超期"}


KINDS = ["accept", "review", "recheck", "return", "refuse", "reject", "supplement", "withdraw", "rate"]


class Workflow(RuleBasedStateMachine):
    """Random action sequences by a small staff: the engine's invariants hold after every step."""

    def __init__(self):
        super().__init__()
        self.item = CAT.item("MZMTB")
        self.state = CaseState("MZMTB", materials=("id_doc",))
        self.final_seen: CaseState | None = None

    @rule(kind=st.sampled_from(KINDS), actor=st.sampled_from(["a", "b", "c", "d"]),
          day=st.integers(0, 200), materials=st.lists(st.sampled_from(ALL), max_size=3),
          reason=st.sampled_from(["", "不符合条件"]), rating=st.integers(0, 6))
    def act(self, kind, actor, day, materials, reason, rating):
        before = self.state
        try:
            self.state = apply(self.item, before, Action(kind, actor, date(2026, 1, 5) + timedelta(days=day),
                                                         materials=tuple(materials), reason=reason,
                                                         notice=("补正",), rating=rating), CAL)
        except HandlingError:
            assert self.state == before
        if before.status in FINAL:
            assert self.state.status == before.status  # no path out of a final state
            assert self.state.step_actors == before.step_actors

    @invariant()
    def duties_are_separated(self):
        steps_of: dict[str, set[str]] = {}
        for step, actor in self.state.step_actors:
            steps_of.setdefault(actor, set()).add(step)
        assert all(len(v) == 1 for v in steps_of.values())
        if self.state.status == "completed":
            assert len({a for _, a in self.state.step_actors}) >= len(self.item.steps)
            assert self.state.deadline == CAL.add_working_days(self.state.accepted_on, self.item.promised_days)


TestWorkflow = Workflow.TestCase
TestWorkflow.settings = settings(max_examples=150, stateful_step_count=25, deadline=None)


class TwoStepWorkflow(Workflow):
    """The same invariants for a two-step item (受理 → 审核 = 办结)."""

    def __init__(self):
        super().__init__()
        self.item = CAT.item("LBDJ")
        self.state = CaseState("LBDJ", materials=("id_doc",))


TestTwoStepWorkflow = TwoStepWorkflow.TestCase
TestTwoStepWorkflow.settings = settings(max_examples=100, stateful_step_count=20, deadline=None)
