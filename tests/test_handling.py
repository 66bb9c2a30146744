"""经办 workflow: deadlines across holidays, the engine's properties, and cases in the store on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from yibao.handling.calendar import CalendarError, WorkCalendar
from yibao.handling.store import HandlingCase
from yibao.handling.workflow import FINAL, Acted, HandlingError, check_form, decide, shipped_catalogue
from yibao.store.models import AuditLog

CAL = WorkCalendar.shipped()
CATALOGUE = shipped_catalogue()
CHRONIC = CATALOGUE.item("chronic_cert")  # accept → review → recheck
FILING = CATALOGUE.item("offsite_filing")  # accept → review


# --- working days ---------------------------------------------------------------------------------

@pytest.mark.parametrize("start, days, due", [
    (date(2026, 9, 28), 5, date(2026, 10, 10)),   # 国庆 1–7 October; Saturday 10 October is worked
    (date(2026, 2, 13), 1, date(2026, 2, 14)),    # Saturday 14 February is worked (调休)
    (date(2026, 2, 14), 1, date(2026, 2, 24)),    # 春节 15–23 February
    (date(2026, 12, 25), 3, date(2026, 12, 30)),  # an ordinary weekend
    (date(2026, 4, 3), 1, date(2026, 4, 7)),      # 清明 4–6 April
])
def test_deadlines_count_working_days_across_holidays(start, days, due):
    assert CAL.add_working_days(start, days) == due


def test_a_year_without_holiday_data_is_refused():
    with pytest.raises(CalendarError) as exc:
        CAL.add_working_days(date(2027, 3, 1), 2)
    assert exc.value.problems[0].code == "HDL030"


@given(st.dates(date(2026, 1, 1), date(2026, 10, 31)), st.integers(0, 40))
def test_the_deadline_is_a_working_day_that_many_working_days_later(start, days):
    due = CAL.add_working_days(start, days)
    assert CAL.working_days_between(start, due) == days
    assert days == 0 or CAL.is_working_day(due)


# --- the engine: no way out of a final state, never closed by fewer people than steps -------------

@settings(max_examples=300)
@given(st.sampled_from([CHRONIC, FILING]),
       st.lists(st.tuples(st.sampled_from(["approve", "return", "reject", "resubmit"]), st.sampled_from("ABCD")),
                max_size=12))
def test_no_path_leaves_a_final_state_and_no_one_closes_alone(item, moves):
    state, history = "accepted", [Acted("accept", "A")]
    for action, actor in moves:
        before = state
        try:
            move = decide(item, state, action, actor, history)
        except HandlingError as exc:
            assert exc.problems[0].code in {"HDL021", "HDL022"}
            if before in FINAL:
                assert exc.problems[0].code == "HDL021"
            continue
        assert before not in FINAL
        state = move.to
        if move.step is not None:
            history.append(Acted(move.step, actor))
        if state == "closed":
            people = [a.actor for a in history if a.step in item.steps]
            assert len(set(people)) == len(people) >= len(item.steps)


def test_the_form_is_checked_whole_and_missing_materials_are_listed_at_once():
    with pytest.raises(HandlingError) as exc:
        check_form(CHRONIC, {"disease": "M<script>", "diagnosed_on": "2026-02-30", "colour": "red"}, [])
    assert sorted((p.code, p.path) for p in exc.value.problems) == [
        ("HDL010", "form.colour"), ("HDL011", "form.hospital"), ("HDL012", "form.diagnosed_on"),
        ("HDL012", "form.disease")]
    form, missing = check_form(CHRONIC, {"disease": "M00900", "hospital": "H37010200002", "diagnosed_on": "2026-03-01"},
                               ["医保电子凭证或身份证件"])
    assert missing == ["二级及以上医院诊断证明", "近一年相关病历与检查报告"]


# --- cases in the store ----------------------------------------------------------------------------

PSN = "P000000001"
FORM = {"disease": "M00900", "hospital": "H37010200002", "diagnosed_on": "2026-03-01"}
ALL = list(CHRONIC.guide.materials)


@pytest.fixture
def world(sample_api):
    call, engine = sample_api
    yield (lambda who, method, path, body=None: call(who, method, "/api/v1/handling" + path, body)), engine


def count(engine, model) -> int:
    with Session(engine) as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


def test_accept_review_recheck_close_and_rate(world):
    call, engine = world
    r = call("clerk", "POST", "/cases", {"item": "chronic_cert", "psn_no": PSN, "form": FORM, "materials": ALL,
                                         "channel": "village", "service_point": "某村卫生室",
                                         "on_behalf": {"agent": "村医王某", "authorisation": "SQ-2026-001"}})
    assert r.status_code == 201, r.text
    case = r.json()
    assert case["status"] == "accepted" and case["version"] == 1
    assert case["events"][0]["on_behalf"] == {"agent": "村医王某", "authorisation": "SQ-2026-001"}
    cid = case["case_id"]
    same = call("admin", "POST", f"/cases/{cid}/actions", {"action": "approve", "version": 1})
    assert same.status_code == 200 and same.json()["status"] == "reviewed"  # admin reviews
    again = call("admin", "POST", f"/cases/{cid}/actions", {"action": "approve", "version": 2})
    assert again.status_code == 422 and again.json()["problems"][0]["code"] == "HDL022"  # never two steps
    wrong_role = call("reviewer", "POST", f"/cases/{cid}/actions", {"action": "approve", "version": 2})
    assert wrong_role.status_code == 403
    done = call("rechecker", "POST", f"/cases/{cid}/actions", {"action": "approve", "version": 2})
    assert done.status_code == 200 and done.json()["status"] == "closed" and done.json()["closed_on"]
    late = call("rechecker", "POST", f"/cases/{cid}/actions", {"action": "reject", "version": 3, "note": "x"})
    assert late.status_code == 422 and late.json()["problems"][0]["code"] == "HDL021"
    assert call("clerk", "POST", f"/cases/{cid}/rating", {"score": 5}).json()["rating"] == 5
    assert call("clerk", "POST", f"/cases/{cid}/rating", {"score": 4}).status_code == 409
    with Session(engine) as s:
        actions = s.scalars(select(AuditLog.action).where(AuditLog.action.like("handling.%")).order_by(AuditLog.id)).all()
    assert actions == ["handling.accept", "handling.approve", "handling.approve", "handling.rate"]
    stats = call("analyst", "GET", "/statistics?by=channel").json()["rows"]
    assert stats == [{"channel": "village", "cases": 1, "ended": 1, "on_time_rate": 1.0,
                      "avg_working_days": stats[0]["avg_working_days"], "online_rate": 0.0, "satisfaction": 5.0}]


def test_return_with_a_complete_list_resubmit_and_reject_with_reason(world):
    call, engine = world
    case = call("clerk", "POST", "/cases", {"item": "chronic_cert", "psn_no": PSN, "form": FORM,
                                            "materials": ALL[:1], "channel": "window", "service_point": "大厅"}).json()
    assert case["status"] == "returned" and case["missing"] == ALL[1:]  # 一次性告知 at acceptance
    cid = case["case_id"]
    short = call("clerk", "POST", f"/cases/{cid}/actions", {"action": "resubmit", "version": 1, "materials": ALL[1:2]})
    assert short.status_code == 422 and short.json()["problems"][0]["code"] == "HDL017"
    ok = call("clerk", "POST", f"/cases/{cid}/actions", {"action": "resubmit", "version": 1, "materials": ALL[1:]})
    assert ok.json()["status"] == "accepted" and ok.json()["missing"] == []
    empty = call("reviewer", "POST", f"/cases/{cid}/actions", {"action": "return", "version": 2})
    assert empty.status_code == 422 and empty.json()["problems"][0]["code"] == "HDL016"
    silent = call("reviewer", "POST", f"/cases/{cid}/actions", {"action": "reject", "version": 2})
    assert silent.status_code == 422 and silent.json()["problems"][0]["code"] == "HDL015"
    no = call("reviewer", "POST", f"/cases/{cid}/actions", {"action": "reject", "version": 2, "note": "病种不在目录中"})
    assert no.json()["status"] == "rejected"


def test_bad_applications_are_refused_and_write_nothing(world):
    call, engine = world
    bad = [({"item": "no_such", "psn_no": PSN, "channel": "window", "service_point": "大厅"}, "HDL001"),
           ({"item": "chronic_cert", "psn_no": PSN, "form": {"disease": "M009"}, "channel": "window",
             "service_point": "大厅"}, "HDL011"),
           ({"item": "assistance_application", "psn_no": PSN, "form": {"year": "2026", "reason": "重病"},
             "channel": "online", "service_point": "网厅"}, "HDL014"),
           ({"item": "chronic_cert", "psn_no": "P999", "form": FORM, "channel": "window", "service_point": "大厅"},
            "REG010"),
           ({"item": "chronic_cert", "psn_no": PSN, "form": FORM, "channel": "window", "service_point": "大厅",
             "on_behalf": {"agent": "李某", "authorisation": "bad id!"}}, "REQ010")]
    for body, code in bad:
        r = call("clerk", "POST", "/cases", body)
        assert r.status_code in (404, 422) and r.json()["problems"][0]["code"] == code, (body, r.text)
    assert count(engine, HandlingCase) == 0


def test_two_clerks_on_one_case_at_once_one_wins_the_other_gets_a_conflict(world):
    call, engine = world
    cid = call("clerk", "POST", "/cases", {"item": "offsite_filing", "psn_no": PSN, "materials": list(FILING.guide.materials),
                                           "form": {"filing_type": "temporary", "destination": "110105",
                                                    "begin": "2026-03-01", "end": "2026-06-30"},
                                           "channel": "online", "service_point": "网厅"}).json()["case_id"]
    barrier, answers = threading.Barrier(2), []

    def act(who: str, action: str) -> None:
        barrier.wait()
        body = {"action": action, "version": 1, **({"note": "材料不实"} if action == "reject" else {})}
        answers.append(call(who, "POST", f"/cases/{cid}/actions", body))

    threads = [threading.Thread(target=act, args=("reviewer", "approve")), threading.Thread(target=act, args=("admin", "reject"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = sorted(r.status_code for r in answers)
    assert codes == [200, 409], [r.text for r in answers]
    loser = next(r for r in answers if r.status_code == 409)
    assert loser.json()["problems"][0]["code"] == "HDL024"
    final = call("clerk", "GET", f"/cases/{cid}").json()
    assert final["version"] == 2 and len(final["events"]) == 2  # the loser wrote nothing


def test_overdue_cases_are_listed(world):
    call, engine = world
    cid = call("clerk", "POST", "/cases", {"item": "two_diseases", "psn_no": PSN, "materials": list(CATALOGUE.item("two_diseases").guide.materials),
                                           "form": {"disease": "diabetes", "hospital": "H37010200001"},
                                           "channel": "hospital", "service_point": "社区卫生服务中心"}).json()
    later = (date.fromisoformat(cid["due_on"]) + timedelta(days=1)).isoformat()
    assert [c["case_id"] for c in call("auditor", "GET", f"/overdue?on={later}").json()["overdue"]] == [cid["case_id"]]
    assert call("auditor", "GET", f"/overdue?on={cid['due_on']}").json()["overdue"] == []
