"""Paying institutions: monthly applications per fund from the settlements (reversals deducted in their
month), review → approve (never the reviewer) → order → pay posted to the fund ledger, the 30-working-day
deadline with holidays and 调休, advances and their offsets, year-end DIP/DRG clearing, and the property:
what is paid over a year = the settlements' fund shares + clearing adjustments − offsets, to the fen."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from yibao.errors import YibaoError
from yibao.fund.outflows import outflows
from yibao.institutions import applications as ap
from yibao.institutions.models import InsFundLedger, InsSettleApp
from yibao.institutions.payments import FUNDS, deadline, fold_month, month_bounds, timeliness
from yibao.service import sample
from yibao.service import transactions as tx
from yibao.service.auth import Principal
from yibao.service.packs import PackSet
from yibao.settlement.request import FeeItemIn
from yibao.store.base import Base
from yibao.store.database import make_engine
from yibao.store.models import AuditLog, Institution, Person, Settlement, Visit

PACKS = PackSet.load(["shandong-2024"])
CLERK, REVIEWER, RECHECKER = Principal("clerk1", "clerk"), Principal("rev1", "reviewer"), Principal("rck1", "rechecker")
HIS = Principal("his1", "institution", sample.HOSPITAL)


def ctx(day: date, hour: int = 9) -> tx.Context:
    return tx.Context("req", "x", datetime.combine(day, datetime.min.time()).replace(hour=hour))


@pytest.fixture
def engine(store_url):
    eng = make_engine(store_url)
    with Session(eng) as s, s.begin():
        sample.seed(s, 6)
    yield eng
    eng.dispose()


def write(engine, fn):
    with Session(engine) as s, s.begin():
        return fn(s)


def settle(engine, day: date, psn_no: str, n: int = 3, hour: int = 9, code: str = sample.HOSPITAL) -> dict:
    his = Principal("his", "institution", code)
    c = ctx(day, hour)
    med_type = "21" if n > 10 else "11"
    v = write(engine, lambda s: tx.register_visit(s, his, c, fixmedins_code=code, psn_no=psn_no,
                                                  insutype="310" if int(psn_no[1:]) % 2 == 0 else "390",
                                                  med_type=med_type, begntime=c.at))
    write(engine, lambda s: tx.upload_items(s, his, c, PACKS, mdtrt_id=v["mdtrt_id"],
                                            items=[FeeItemIn.model_validate(x) for x in sample.items(n, price="300.00")]))
    return write(engine, lambda s: tx.settle(s, his, c, PACKS, mdtrt_id=v["mdtrt_id"]))


def test_deadline_counts_working_days_with_holidays_and_makeup_weekends():
    assert deadline(date(2026, 1, 30)) == date(2026, 3, 19)  # 春节 2/15–2/23 off; 2/14 and 2/28 (Saturdays) worked
    assert deadline(date(2026, 9, 18)) == date(2026, 11, 5)  # 中秋 9/25–27, 国庆 10/1–7 off; 9/20 and 10/10 worked
    t = timeliness(date(2026, 1, 30), None, date(2026, 3, 13))
    assert (t.flag, t.working_days_left, t.provisional) == ("due_soon", 4, False)
    assert timeliness(date(2026, 1, 30), None, date(2026, 3, 20)).flag == "overdue"
    assert timeliness(date(2026, 1, 30), date(2026, 3, 20), date(2026, 4, 1)).flag == "paid_late"
    assert timeliness(date(2027, 1, 4), None, date(2027, 1, 5)).provisional  # 2027 not in the data yet


def test_month_application_review_approve_order_pay_and_the_ledger(engine):
    feb = [settle(engine, date(2024, 2, 5), "P000000001"), settle(engine, date(2024, 2, 6), "P000000002", n=12),
           settle(engine, date(2024, 2, 7), "P000000003")]
    reversed_id = feb[2]["setlinfo"]["setl_id"]
    write(engine, lambda s: tx.reverse(s, HIS, ctx(date(2024, 3, 4)), setl_id=reversed_id))  # deducted in March
    with pytest.raises(YibaoError) as early:
        write(engine, lambda s: ap.build_month(s, CLERK, ctx(date(2024, 2, 28)), month="2024-02"))
    assert early.value.problems[0].code == "INS203"
    built = write(engine, lambda s: ap.build_month(s, HIS, ctx(date(2024, 3, 1)), month="2024-02"))
    with Session(engine) as s:
        rows = s.scalars(select(Settlement).where(Settlement.fixmedins_code == sample.HOSPITAL)).all()
        expect = {f: sum(sum(getattr(r, c) for c in cols) for r in rows) for f, (_n, cols) in FUNDS.items()}
    by_fund = {a["fund"]: a for a in built["applications"]}
    assert {f: int(a["settled"] * 100) for f, a in by_fund.items()} == {f: v for f, v in expect.items() if v}
    assert by_fund["basic"]["setl_cnt"] == 3 and by_fund["basic"]["deadline"] == "2024-04-15"
    with pytest.raises(YibaoError) as twice:
        write(engine, lambda s: ap.build_month(s, CLERK, ctx(date(2024, 3, 2)), month="2024-02"))
    assert twice.value.problems[0].code == "INS202"
    app_no = by_fund["basic"]["app_no"]
    write(engine, lambda s: ap.act(s, REVIEWER, ctx(date(2024, 3, 5)), app_no=app_no, action="review"))
    with pytest.raises(YibaoError) as same:
        write(engine, lambda s: ap.act(s, Principal("rev1", "admin"), ctx(date(2024, 3, 6)), app_no=app_no, action="approve"))
    assert same.value.problems[0].code == "INS212"
    with pytest.raises(YibaoError) as skip:
        write(engine, lambda s: ap.act(s, CLERK, ctx(date(2024, 3, 6)), app_no=app_no, action="pay"))
    assert skip.value.problems[0].code == "INS211"
    write(engine, lambda s: ap.act(s, RECHECKER, ctx(date(2024, 3, 6)), app_no=app_no, action="approve"))
    write(engine, lambda s: ap.act(s, CLERK, ctx(date(2024, 3, 7)), app_no=app_no, action="order"))
    paid = write(engine, lambda s: ap.act(s, CLERK, ctx(date(2024, 3, 8)), app_no=app_no, action="pay"))
    assert (paid["status"], paid["flag"], paid["payable"]) == ("paid", "paid_on_time", by_fund["basic"]["settled"])
    mar = write(engine, lambda s: ap.build_month(s, CLERK, ctx(date(2024, 4, 1)), month="2024-03"))
    basic_mar = next(a for a in mar["applications"] if a["fund"] == "basic")
    assert (basic_mar["setl_cnt"], basic_mar["revs_cnt"]) == (0, 1)
    assert basic_mar["payable"] == -feb[2]["setlinfo"]["hifp_pay"] - feb[2]["setlinfo"]["cvlserv_pay"]
    with Session(engine) as s:
        flows = outflows(s, 2024)
    assert flows == [{"month": "2024-03", "fund": "basic", "fund_name": FUNDS["basic"][0], "kind": "payment",
                      "kind_name": "结算拨付", "entries": 1, "amount_fen": expect["basic"]}]
    with Session(engine) as s:
        warn = ap.worklist(s, CLERK, date(2024, 5, 6), warnings_only=True)
    # February's other funds (received 3/1, due 4/15) are unpaid on 5/6: overdue; March's (due 5/15) on track
    assert warn["overdue"] == len(built["applications"]) - 1 == len(warn["applications"])
    assert {a["month"] for a in warn["applications"]} <= {"2024-02"}


def test_advance_is_offset_month_by_month_and_the_rest_at_clearing(engine):
    adv = write(engine, lambda s: ap.grant_advance(s, RECHECKER, ctx(date(2024, 1, 10)), fixmedins_code=sample.HOSPITAL,
                                                   fund="basic", amount="1000.00", offset_months=3,
                                                   reason="定点救治医疗机构预付金"))
    assert adv["amount"] == 1000
    settle(engine, date(2024, 2, 5), "P000000002", n=12)
    feb = write(engine, lambda s: ap.build_month(s, CLERK, ctx(date(2024, 3, 1)), month="2024-02"))
    basic = next(a for a in feb["applications"] if a["fund"] == "basic")
    assert basic["settled"] > Decimal("333.33") == basic["offset"]  # 1 month after January: 100,000 × 1 // 3 fen
    assert basic["payable"] == basic["settled"] - basic["offset"]
    result = {"kind": "yibao.dip.settlement", "period": "2024", "catalog": "dip-2023-abc",
              "institutions": [{"fixmedins_code": sample.HOSPITAL, "difference_vs_item": "-120.50"},
                               {"fixmedins_code": sample.OTHER_HOSPITAL, "difference_vs_item": "88.00"}]}
    out = write(engine, lambda s: ap.post_clearing(s, CLERK, ctx(date(2025, 1, 20)), year=2024, result=result))
    cl = {a["fixmedins_code"]: a for a in out["applications"]}
    assert cl[sample.OTHER_HOSPITAL]["payable"] == 88 and cl[sample.OTHER_HOSPITAL]["offset"] == 0
    assert (cl[sample.HOSPITAL]["offset"], cl[sample.HOSPITAL]["payable"]) == (0, Decimal("-120.50"))  # nothing to offset from
    with pytest.raises(YibaoError) as again:
        write(engine, lambda s: ap.post_clearing(s, CLERK, ctx(date(2025, 1, 21)), year=2024, result=result))
    assert {p.code for p in again.value.problems} == {"INS232"}
    with pytest.raises(YibaoError) as wrong:
        write(engine, lambda s: ap.post_clearing(s, CLERK, ctx(date(2025, 1, 21)), year=2023, result=result))
    assert wrong.value.problems[0].code == "INS230"
    with Session(engine) as s:
        assert s.scalar(select(func.sum(InsFundLedger.amount_fen)).where(InsFundLedger.kind == "advance")) == 100000


def test_bad_advance_is_coded_and_writes_nothing(engine):
    with Session(engine) as s:
        before = s.scalar(select(func.count()).select_from(AuditLog))
    with pytest.raises(YibaoError) as exc:
        write(engine, lambda s: ap.grant_advance(s, RECHECKER, ctx(date(2024, 1, 10)), fixmedins_code="NOPE",
                                                 fund="dental", amount="-5", offset_months=0, reason=" "))
    assert sorted(p.code for p in exc.value.problems) == ["INS220", "INS221", "INS222", "INS223", "INS224"]
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(AuditLog)) == before
        assert s.scalar(select(func.count()).select_from(InsFundLedger)) == 0


# --- the year's property, on synthetic settlement rows ---------------------------------------------------

AMOUNT = st.integers(0, 5_000_00)
SETTLEMENT = st.fixed_dictionaries({"month": st.integers(1, 12), "day": st.integers(1, 28),
                                    "hifp": AMOUNT, "cvl": st.integers(0, 1000), "mi": AMOUNT, "maf": AMOUNT,
                                    "reversed_after": st.one_of(st.none(), st.integers(0, 200))})
ADVANCE = st.fixed_dictionaries({"month": st.integers(1, 11), "fund": st.sampled_from(list(FUNDS)),
                                 "amount": st.integers(1, 3_000_00), "months": st.integers(1, 6)})


def _zeroes() -> dict:
    from yibao.settlement.model import SETLINFO_FIELDS

    return {f: 0 for f in SETLINFO_FIELDS}


@settings(max_examples=25)
@given(st.lists(SETTLEMENT, max_size=30), st.lists(ADVANCE, max_size=3), st.integers(-2_000_00, 2_000_00))
def test_paid_over_a_year_is_shares_plus_clearing_minus_offsets(setls, advances, clearing):
    engine = make_engine("sqlite://")
    Base.metadata.create_all(engine)
    code = "H1"
    with Session(engine) as s, s.begin():
        s.add(Institution(fixmedins_code=code, fixmedins_name="x", level="1", admdvs="370102",
                          designated_from=date(2024, 1, 1), designated_to=date(2024, 12, 31)))
        s.add(Person(psn_no="P1", certno=sample.certno(1), psn_name="付款测试人", brdy=date(1960, 1, 1), admdvs="370102"))
        s.flush()
        for a in advances:
            ap.grant_advance(s, RECHECKER, ctx(date(2024, a["month"], 15)), fixmedins_code=code, fund=a["fund"],
                             amount=f"{a['amount'] / 100:.2f}", offset_months=a["months"], reason="预付")
        rows = []
        for i, x in enumerate(setls):
            at = datetime(2024, x["month"], x["day"], 10)
            revs = None if x["reversed_after"] is None else at + timedelta(days=x["reversed_after"])
            if revs is not None and revs.year > 2024:
                revs = None
            s.execute(insert(Visit.__table__), {"mdtrt_id": f"M{i}", "psn_no": "P1", "fixmedins_code": code,
                                                "insutype": "390", "insuplc_admdvs": "370102", "med_type": "11",
                                                "begntime": at, "status": "settled", "created_at": at})
            rows.append({**_zeroes(), "setl_id": f"S{i}", "mdtrt_id": f"M{i}", "psn_no": "P1", "fixmedins_code": code,
                         "insutype": "390", "med_type": "11", "setl_time": at, "year": 2024, "pack_id": "p",
                         "pack_version": "1", "status": "valid" if revs is None else "reversed", "revs_time": revs,
                         "delta": {}, "acc_after": {}, "explanation": [], "hifp_pay": x["hifp"], "cvlserv_pay": x["cvl"],
                         "hifmi_pay": x["mi"], "maf_pay": x["maf"]})
        if rows:
            s.execute(insert(Settlement.__table__), rows)
    valid_share = sum(r["hifp_pay"] + r["cvlserv_pay"] + r["hifmi_pay"] + r["maf_pay"] for r in rows if r["status"] == "valid")
    for m in range(1, 13):
        month = f"2024-{m:02d}"
        first, after = month_bounds(month)
        with Session(engine) as s:  # the SQL aggregation and the row-by-row fold agree
            sql = {t["fixmedins_code"]: {k: v for k, v in t.items() if k != "fixmedins_code"} for t in ap.month_totals(s, month)}
        start, end = datetime.combine(first, datetime.min.time()), datetime.combine(after, datetime.min.time())
        assert sql == fold_month(rows, start, end)
        with Session(engine) as s, s.begin():
            try:
                ap.build_month(s, CLERK, ctx(after), month=month)
            except YibaoError as exc:
                assert exc.problems[0].code == "INS202"
    with Session(engine) as s, s.begin():
        ap.post_clearing(s, CLERK, ctx(date(2025, 1, 10)), year=2024,
                         result={"kind": "yibao.drg.settlement", "period": 2024,
                                 "institutions": [{"fixmedins_code": code, "difference_vs_item": f"{clearing / 100:.2f}"}]})
    with Session(engine) as s, s.begin():
        for app_no in s.scalars(select(InsSettleApp.app_no)).all():
            for step, who in (("review", REVIEWER), ("approve", RECHECKER), ("order", CLERK), ("pay", CLERK)):
                ap.act(s, who, ctx(date(2025, 2, 1)), app_no=app_no, action=step)
    with Session(engine) as s:
        year = ap.institution_year(s, CLERK, code, 2024)
        paid = s.scalar(select(func.coalesce(func.sum(InsFundLedger.amount_fen), 0)).where(InsFundLedger.kind == "payment"))
        advanced = s.scalar(select(func.coalesce(func.sum(InsFundLedger.amount_fen), 0)).where(InsFundLedger.kind == "advance"))
    assert paid == year["paid_fen"] == valid_share + clearing - year["offset_fen"]
    assert year["settled_fen"] - year["reversed_fen"] == valid_share
    assert 0 <= year["offset_fen"] <= advanced == sum(a["amount"] for a in advances)
    engine.dispose()
