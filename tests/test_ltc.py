"""长期护理保险: assessment levels and monthly care settlement, exact to the fen (docs/ltc.md)."""

from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from yibao.ltc.assess import LtcError, assess, check_assessor, due_for_reassessment, valid_until
from yibao.ltc.settle import CarePerson, CareRecord, LevelSpan, settle_month
from yibao.policy.loader import resolve_pack

LTC = resolve_pack("shandong-2024").ltc
YEAR = LevelSpan("4", date(2024, 1, 1), date(2024, 12, 31), "A1")


def person(*spans, insutype="310", since=date(2020, 1, 1), death=None):
    return CarePerson("P1", insutype, tuple(spans) or (YEAR,), since, death)


def days(first: date, n: int, mode: str, item: str, yuan: int, prefix="R"):
    return [CareRecord(f"{prefix}{first + timedelta(days=k)}{item}", first + timedelta(days=k), mode, item, yuan * 100)
            for k in range(n)]


def codes(exc):
    return [(p.code, p.path) for p in exc.value.problems]


# --- assessment --------------------------------------------------------------------------------

FULL = {"adl": {"feeding": 10, "bathing": 5, "grooming": 5, "dressing": 10, "bowels": 10, "bladder": 10,
                "toilet": 10, "transfer": 15, "mobility": 15, "stairs": 10},
        "cognition": {"orientation_time": 2, "orientation_person": 2, "memory": 2},
        "perception": {"vision": 2, "hearing": 2, "communication": 2}}


def scored(**adl):
    out = {k: dict(v) for k, v in FULL.items()}
    out["adl"].update(adl)
    return out


def test_barthel_totals_give_the_pack_levels():
    assert assess(LTC.assessment, FULL).level == "0"  # 100 points: 基本正常
    r = assess(LTC.assessment, scored(feeding=0, bathing=0, grooming=0, dressing=0, bowels=0, bladder=5, toilet=0,
                                      transfer=5, mobility=5, stairs=0))
    assert (r.totals["adl"], r.level, r.level_name, r.rule) == (15, "4", "重度失能二级", 1)
    worse = scored(feeding=0, bathing=0, grooming=0, dressing=0, bowels=0, bladder=5, toilet=0, transfer=5, mobility=5,
                   stairs=0)
    worse["cognition"] = {"orientation_time": 0, "orientation_person": 1, "memory": 0}
    r = assess(LTC.assessment, worse)
    assert (r.level, r.rule) == ("5", 0) and "认知能力 1 ≤ 2" in r.reason
    r = assess(LTC.assessment, scored(transfer=0, mobility=0, stairs=0, feeding=5, dressing=5, bathing=0, grooming=0))
    assert (r.totals["adl"], r.level) == (40, "3")  # 40 ≤ 40: the bound is inclusive


def test_bad_scores_are_all_reported_with_codes():
    bad = scored(feeding=7)
    del bad["adl"]["stairs"]
    bad["adl"]["flying"] = 5
    with pytest.raises(LtcError) as exc:
        assess(LTC.assessment, bad)
    assert sorted(codes(exc)) == [("LTC001", "scores.adl.stairs"), ("LTC002", "scores.adl.flying"),
                                  ("LTC003", "scores.adl.feeding")]


def test_an_assessor_may_not_assess_the_same_person_twice_in_a_row():
    check_assessor(LTC.assessment, "E1", "E2")
    check_assessor(LTC.assessment, None, "E1")
    with pytest.raises(LtcError) as exc:
        check_assessor(LTC.assessment, "E1", "E1")
    assert codes(exc) == [("LTC004", "assessor")]


def test_conclusions_ending_soon_are_listed_for_reassessment():
    latest = {"A": ("4", date(2024, 7, 10)), "B": ("3", date(2024, 12, 1)), "C": ("5", date(2024, 6, 1)),
              "D": ("3", date(2024, 8, 30))}
    assert due_for_reassessment(latest, date(2024, 7, 1), 60) == [
        ("C", "5", date(2024, 6, 1)), ("A", "4", date(2024, 7, 10)), ("D", "3", date(2024, 8, 30))]


def test_a_conclusion_holds_for_the_packs_months():
    assert valid_until(LTC.assessment, date(2024, 3, 15)) == date(2026, 3, 14)
    assert valid_until(LTC.assessment, date(2023, 12, 31)) == date(2025, 12, 30)


# --- monthly settlement ---------------------------------------------------------------------------

def worked_records():
    march = date(2024, 3, 1)
    recs = []
    for item, yuan in (("care", 80), ("medical_care", 30), ("bed", 40), ("meals", 25)):
        recs += days(march, 20, "institution", item, yuan)
    recs += days(date(2024, 3, 21), 11, "home", "care", 70)
    recs += [CareRecord("V1", date(2024, 3, 22), "visit", "care", 15000), CareRecord("V2", date(2024, 3, 29), "visit", "care", 15000)]
    return recs


def test_worked_example_of_docs_ltc():
    s = settle_month(LTC, person(), "2024-03", worked_records())
    by = {line.benefit_id: line for line in s.lines}
    inst, home, visit = by["ltc_institution"], by["ltc_home"], by["ltc_visit"]
    assert (inst.covered, inst.units, inst.allowed, inst.over_limit, inst.pay) == (300000, 20, 230000, 70000, 207000)
    assert (home.covered, home.units, home.allowed, home.over_limit, home.pay) == (77000, 11, 66000, 11000, 46200)
    assert (visit.covered, visit.units, visit.allowed, visit.pay) == (30000, 2, 20000, 16000)
    assert (s.ltc_sumamt, s.excluded_amt, s.over_limit_amt, s.allowed_amt, s.fund_pay, s.psn_pay) == (
        457000, 50000, 91000, 316000, 269200, 187800)
    assert {reason for _, reason, _ in s.excluded} == {"机构护理(院护)不支付此类项目(meals)"}


def test_the_monthly_caps_bound_the_fund():
    recs = days(date(2024, 5, 1), 31, "institution", "care", 200)
    recs += [CareRecord(f"V{i}", date(2024, 5, 1 + i), "visit", "medical_care", 10000) for i in range(10)]
    s = settle_month(LTC, person(LevelSpan("5", date(2024, 1, 1), date(2025, 12, 31))), "2024-05", recs)
    by = {line.benefit_id: line for line in s.lines}
    assert by["ltc_institution"].pay == 320850  # 115 × 31 × 90% = 3,208.50
    assert (by["ltc_visit"].raw, by["ltc_visit"].capped, by["ltc_visit"].pay) == (80000, 80000, 24150)
    assert s.fund_pay == 345000  # 每月 3,450 元


def test_a_benefits_own_monthly_cap():
    recs = [CareRecord(f"V{i}", date(2024, 6, 1 + i), "visit", "care", 10000) for i in range(20)]
    s = settle_month(LTC, person(), "2024-06", recs)
    assert (s.lines[0].raw, s.lines[0].capped, s.fund_pay) == (160000, 120000, 120000)  # 巡护每月 1,200 元


@pytest.mark.parametrize("who, reason", [
    (person(LevelSpan("2", date(2024, 1, 1), date(2024, 12, 31))), "失能等级 中度失能 不享受此护理方式(home)的待遇"),
    (person(LevelSpan("4", date(2024, 4, 1), date(2024, 12, 31))), "服务日期没有有效的失能评估结论"),
    (person(insutype="320"), "险种 320 未参加长期护理保险"),
    (person(since=date(2024, 1, 1)), "连续参保不满 6 个月"),
    (person(death=date(2024, 3, 9)), "服务日期在参保人死亡日期 2024-03-09 之后"),
])
def test_records_without_a_benefit_are_the_persons_with_a_reason(who, reason):
    recs = days(date(2024, 3, 10), 3, "home", "care", 50)
    s = settle_month(LTC, who, "2024-03", recs)
    assert s.fund_pay == 0 and s.psn_pay == s.ltc_sumamt == 15000
    assert [r for _, r, _ in s.excluded] == [reason] * 3


def test_records_that_cannot_be_settled_in_the_month_are_refused_whole():
    bad = [CareRecord("a", date(2024, 3, 30), "home", "care", 100, days=3),
           CareRecord("b", date(2024, 3, 1), "spa", "massage", -1),
           CareRecord("c", date(2024, 3, 2), "visit", "care", 100, days=2)]
    with pytest.raises(LtcError) as exc:
        settle_month(LTC, person(), "2024-03", bad)
    assert codes(exc) == [("LTC013", "records[0].srv_date"), ("LTC010", "records[1].mode"),
                          ("LTC011", "records[1].item_class"), ("LTC012", "records[1].amount"),
                          ("LTC012", "records[2].amount")]


def test_a_record_of_several_days_may_not_straddle_a_change_of_level():
    who = person(LevelSpan("2", date(2024, 1, 1), date(2024, 3, 9)), LevelSpan("4", date(2024, 3, 10), date(2025, 1, 1)))
    with pytest.raises(LtcError) as exc:
        settle_month(LTC, who, "2024-03", [CareRecord("a", date(2024, 3, 8), "home", "care", 9000, days=3)])
    assert codes(exc) == [("LTC014", "records[0].days")]
    ok = settle_month(LTC, who, "2024-03", [CareRecord("a", date(2024, 3, 8), "home", "care", 6000, days=2),
                                            CareRecord("b", date(2024, 3, 10), "home", "care", 3000)])
    assert (ok.excluded_amt, ok.allowed_amt, ok.fund_pay) == (6000, 3000, 2100)


# --- properties: limits never exceeded, and the split of records never matters ----------------------

MODES = ("institution", "home", "visit")
ITEMS = ("care", "medical_care", "bed", "meals", "other")


@st.composite
def months(draw):
    level = draw(st.sampled_from(["1", "2", "3", "4", "5"]))
    change = draw(st.integers(1, 28))  # a re-assessment mid-month changes the level
    spans = (LevelSpan(level, date(2024, 1, 1), date(2024, 2, change)),
             LevelSpan(draw(st.sampled_from(["3", "4", "5"])), date(2024, 2, change + 1), date(2025, 12, 31)))
    n = draw(st.integers(0, 25))
    recs = []
    for i in range(n):
        mode = draw(st.sampled_from(MODES))
        day = draw(st.integers(1, 29))
        end = change if day <= change else 29  # a record of several days stays on one side of the change
        span = 1 if mode == "visit" else draw(st.integers(1, end - day + 1))
        recs.append(CareRecord(f"r{i}", date(2024, 2, day), mode, draw(st.sampled_from(ITEMS)),
                               draw(st.integers(0, 60000)), days=span))
    return person(*spans), recs


def split(records):
    """Every multi-day record as single days, and every amount in two parts (same day, same class)."""
    out = []
    for r in records:
        per, rest = divmod(r.amount, r.days)
        for k in range(r.days):
            amount = per + (rest if k == 0 else 0)
            half = amount // 3
            base = dict(srv_id=r.srv_id, srv_date=r.srv_date + timedelta(days=k), mode=r.mode, item_class=r.item_class)
            out += [CareRecord(amount=half, **base), CareRecord(amount=amount - half, **base)]
    return out


@settings(max_examples=300)
@given(months())
def test_limits_hold_and_splitting_records_changes_nothing(case):
    who, recs = case
    s = settle_month(LTC, who, "2024-02", recs)
    assert 0 <= s.fund_pay <= min(s.month_cap, s.allowed_amt)
    assert s.fund_pay + s.psn_pay == s.ltc_sumamt == sum(r.amount for r in recs)
    assert s.excluded_amt + s.over_limit_amt + s.allowed_amt == s.ltc_sumamt
    caps = {b.id: b.monthly_cap for b in LTC.benefits}
    for line in s.lines:
        assert 0 <= line.pay <= line.capped <= line.raw <= line.allowed <= line.limit * line.units
        if caps[line.benefit_id] is not None:
            assert line.pay * 100 <= caps[line.benefit_id] * 10000
    again = settle_month(LTC, who, "2024-02", split(recs))
    assert (again.fund_pay, again.allowed_amt, again.over_limit_amt, again.excluded_amt) == (
        s.fund_pay, s.allowed_amt, s.over_limit_amt, s.excluded_amt)
    assert again.lines == s.lines
