"""年度考核 reads the supervision inputs (findings and the credit score) as they stood on the assessment date, from the
dated case history, not as they stand today: a case confirmed after the assessment date does not count in it."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from sqlalchemy.orm import Session

from test_institutions import CODE, REVIEWER, ctx, engine, signed, write  # noqa: F401
from yibao.errors import YibaoError
from yibao.institutions import store
from yibao.supervision import cases


def case(engine, monkeypatch, *, severity: str, amount_fen: int, steps: list[tuple[str, datetime, int | None]]) -> int:
    """A case imported from an audit hit and worked through ``steps`` (status, when, amount) on those dates."""
    created = steps[0][1]
    monkeypatch.setattr(cases, "_now", lambda: created)
    write(engine, lambda s: cases.import_hits(s, [{"rule_id": "SV-X", "rule_name": "虚假上传结算费用", "severity": severity,
                                                   "subject": f"{severity}:{amount_fen}", "fixmedins_code": CODE,
                                                   "amount_fen": amount_fen}]))
    with Session(engine) as s:
        case_id = max(c.id for c in s.query(cases.Case).all())
    for status, when, amount in steps[1:]:
        monkeypatch.setattr(cases, "_now", lambda when=when: when)
        write(engine, lambda s: cases.move(s, case_id, status, "rev1", amount_fen=amount))
    return case_id


def test_credit_and_findings_as_of_the_assessment_date(engine, monkeypatch):  # noqa: F811
    signed(engine)
    case(engine, monkeypatch, severity="high", amount_fen=2_500_000, steps=[
        ("suspect", datetime(2024, 3, 1, 9), None), ("verifying", datetime(2024, 3, 5, 9), None),
        ("confirmed", datetime(2024, 6, 1, 9), None)])
    case(engine, monkeypatch, severity="medium", amount_fen=40_000, steps=[
        ("suspect", datetime(2024, 5, 1, 9), None), ("verifying", datetime(2024, 5, 2, 9), None),
        ("confirmed", datetime(2025, 2, 1, 9), None)])  # confirmed after the 2025-01-10 assessment
    case(engine, monkeypatch, severity="low", amount_fen=30_000, steps=[
        ("suspect", datetime(2024, 7, 1, 9), None), ("verifying", datetime(2024, 7, 2, 9), None),
        ("confirmed", datetime(2024, 8, 1, 9), None), ("recovered", datetime(2024, 9, 1, 9), 30_000)])
    with Session(engine) as s:
        today = {c["fixmedins_code"]: c["score"] for c in cases.credit_scores(s)[0]}[CODE]
        assert today == 100 - 10 - 5 - 2 == store.credit_on(s, CODE, date.today())  # the supervision rule, dated
        assert store.credit_on(s, CODE, date(2025, 1, 10)) == 100 - 10 - 2
        assert store.credit_on(s, CODE, date(2024, 5, 31)) is None  # nothing found yet
    out = write(engine, lambda s: store.assess(s, REVIEWER, ctx(date(2025, 1, 10)), fixmedins_code=CODE, year=2024))
    # as of 2025-01-10: high 10 + low 1; 违规 25,300 元 → 2; 未追回 25,000 元 → 2: behaviour 100 − 15 = 85;
    # credit 88; 0.7 × 85 + 0.3 × 88 = 59.50 + 26.40 = 85.90 → B
    assert (out["as_of"], out["behaviour"], out["credit"], out["score"], out["grade"]) == ("2025-01-10", 85, 88, "85.90", "B")
    assert out["breakdown"]["cases"] == 2
    # the same assessment recomputed in March for 2025-01-10 gives the same answer; as of 2025-03-01 the medium case counts
    again = write(engine, lambda s: store.assess(s, REVIEWER, ctx(date(2025, 3, 2)), fixmedins_code=CODE, year=2024,
                                                 on=date(2025, 1, 10)))
    assert (again["score"], again["credit"]) == ("85.90", 88)
    later = write(engine, lambda s: store.assess(s, REVIEWER, ctx(date(2025, 3, 2)), fixmedins_code=CODE, year=2024))
    # 10 + 4 + 1 = 15; 25,700 元 → 2; 未追回 25,400 元 → 2: 81; credit 83: 56.70 + 24.90 = 81.60
    assert (later["as_of"], later["behaviour"], later["credit"], later["score"]) == ("2025-03-02", 81, 83, "81.60")
    with Session(engine) as s:
        listed = store.assessments(s, REVIEWER, fixmedins_code=CODE)
    assert [(a["year"], a["score"], a["inputs"]["as_of"]) for a in listed] == [
        (2024, "85.90", "2025-01-10"), (2024, "85.90", "2025-01-10"), (2024, "81.60", "2025-03-02")]
    with pytest.raises(YibaoError) as early:
        write(engine, lambda s: store.assess(s, REVIEWER, ctx(date(2025, 3, 2)), fixmedins_code=CODE, year=2024,
                                             on=date(2023, 12, 31)))
    assert early.value.problems[0].code == "INS043"


def test_the_lists_a_page_shows(engine):  # noqa: F811
    from yibao.institutions import applications as ap
    from yibao.service.auth import Principal

    agreement_no = signed(engine)
    with Session(engine) as s:
        apps = store.designations(s, REVIEWER)
        listed = store.agreements(s, REVIEWER, date(2024, 5, 1))
        mine = store.agreements(s, Principal("his", "institution", CODE), date(2024, 5, 1), state="in_force")
        other = store.designations(s, Principal("his", "institution", "H000"))
        paid = ap.payments(s, REVIEWER, year=2024)
    assert [(a["fixmedins_code"], a["status"], a["agreement_no"]) for a in apps] == [(CODE, "signed", agreement_no)]
    assert [(a["agreement_no"], a["state"]) for a in listed] == [(agreement_no, "in_force")] == \
        [(a["agreement_no"], a["state"]) for a in mine]
    assert other == [] and paid == {"payments": [], "total_fen": 0}
