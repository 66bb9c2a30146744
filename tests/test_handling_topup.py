"""补差 differential test: a late 依申请救助 approval re-settles the year's earlier visits as a
difference that equals, to the fen, settling the year afresh with the approval in place.

Two employees with identical visits: A is approved late (after three settled admissions), B holds
the same category from 1 January. A's paid amounts plus A's 补差 must equal B's, visit by visit; the
year's accumulators must agree; and a fourth visit after the approval settles identically for both."""

from __future__ import annotations

from datetime import date

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from yibao.money import yuan_to_fen
from yibao.service import sample
from yibao.service.app import create_app
from yibao.store.database import make_engine
from yibao.store.models import AccumulatorBalance, PersonCategory, Settlement

A, B = "P000000004", "P000000002"
DATES = ["2024-03-05", "2024-05-10", "2024-08-20", "2024-10-08"]
MONEY = ["medfee_sumamt", "inscp_scp_amt", "act_pay_dedc", "hifp_pay", "pool_prop_selfpay", "hifmi_pay", "maf_pay",
         "fund_pay_sumamt", "psn_part_amt", "psn_cash_pay"]


@pytest.fixture
def api(tmp_path):
    from yibao.store.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'yibao.db'}"
    upgrade(url)
    engine = make_engine(url)
    with Session(engine) as s, s.begin():
        sample.seed(s, 4)
        s.add(PersonCategory(psn_no=B, category="illness_poverty", issuing_dept="民政",
                             valid_from=date(2024, 1, 1), valid_to=date(2024, 12, 31)))
    keys = sample.make_keys()
    with TestClient(create_app(url, keys=keys.ring)) as client:
        def call(who, method, path, **kw):
            return client.request(method, "/api/v1" + path, headers={"X-API-Key": keys.keys[who]}, **kw)
        yield call, engine
    engine.dispose()


def settle(call, psn: str, day: str, price: str) -> dict:
    v = call("his1", "POST", "/visits", json={"fixmedins_code": sample.HOSPITAL, "psn_no": psn, "insutype": "310",
                                             "med_type": "21", "begntime": f"{day}T09:00:00"})
    mdtrt = v.json()["mdtrt_id"]
    assert call("his1", "POST", f"/visits/{mdtrt}/fee-items",
                json={"items": sample.items(3, price=price), "at": f"{day}T09:30:00"}).status_code == 200
    r = call("his1", "POST", f"/visits/{mdtrt}/settle", json={"setl_time": f"{day}T10:00:00"})
    assert r.status_code == 200, r.text
    return r.json()["setlinfo"]


def approve_assistance(call, psn: str):
    """依申请救助 (illness_poverty from 1 January) filed, reviewed and rechecked by three people: (case, last answer)."""
    case = call("clerk", "POST", "/handling/cases", json={
        "item_code": "YSQJZ", "psn_no": psn, "channel": "window", "service_point": "市医保服务大厅",
        "form": {"category": "illness_poverty", "valid_from": "2024-01-01", "valid_to": "2024-12-31"},
        "materials": ["id_doc", "recognition", "bank_card"]}).json()
    for who, action, version in (("clerk", "accept", 1), ("reviewer", "review", 2), ("rechecker", "recheck", 3)):
        r = call(who, "POST", f"/handling/cases/{case['case_no']}/actions", json={"action": action, "version": version})
        assert r.status_code == 200, r.text
    return case, r


def test_late_approval_topup_equals_the_year_settled_afresh(api):
    call, engine = api
    prices = ["12000.00", "18000.00", "14000.00"]
    paid_a = [settle(call, A, d, p) for d, p in zip(DATES, prices)]
    fresh_b = [settle(call, B, d, p) for d, p in zip(DATES, prices)]
    assert sum(yuan_to_fen(str(x["maf_pay"])) for x in paid_a) == 0 < sum(yuan_to_fen(str(x["maf_pay"])) for x in fresh_b)

    case, r = approve_assistance(call, A)
    topups = r.json()["topups"]
    assert [(ln["diff"]["maf_pay"], ln["diff"]["psn_cash_pay"]) for ln in topups[0]["lines"]] == [
        (1056.0, -1056.0), (3300.0, -3300.0)]  # the first admission stays under the 10,000 元 threshold
    assert len(topups) == 1 and topups[0]["year"] == 2024
    diffs = {ln["setl_id"]: ln["diff"] for ln in topups[0]["lines"]}
    for a, b in zip(paid_a, fresh_b):
        d = diffs.get(a["setl_id"], {})
        for f in MONEY:
            assert yuan_to_fen(str(a[f])) + yuan_to_fen(str(d.get(f, 0))) == yuan_to_fen(str(b[f])), (a["setl_id"], f)
    total = sum(yuan_to_fen(str(b["maf_pay"])) for b in fresh_b)
    assert yuan_to_fen(str(topups[0]["totals"]["maf_pay"])) == total

    with Session(engine) as s:  # the settlements themselves are untouched
        assert [x.maf_pay for x in s.scalars(select(Settlement).where(Settlement.psn_no == A)
                                             .order_by(Settlement.setl_time))] == [0, 0, 0]
        acc = {p: s.get(AccumulatorBalance, (p, 2024)).acc_values for p in (A, B)}
    assert acc[A] == acc[B]

    # a later visit continues from the corrected year: identical for both
    later_a, later_b = settle(call, A, DATES[3], "5000.00"), settle(call, B, DATES[3], "5000.00")
    assert [later_a[f] for f in MONEY] == [later_b[f] for f in MONEY]


def test_manual_reimbursement_settles_the_receipts_and_orders_a_payment(api):
    """零星报销: the receipts go through the same engine as a visit (same amounts as settling it at the
    desk), and the fund's share becomes a payment order; a wrong total is refused with nothing written."""
    call, engine = api
    lines = [dict(x, feedetl_sn=f"R{k}") for k, x in enumerate(sample.items(3, price="3000.00"))]
    body = {"item_code": "LXBX", "psn_no": A, "channel": "window", "service_point": "市医保服务大厅",
            "form": {"fixmedins_code": sample.HOSPITAL, "begndate": "2024-07-01", "medfee_sumamt": "18000.00",
                     "insutype": "310", "med_type": "21"},
            "materials": ["id_doc", "invoice", "fee_list", "discharge", "bank_card"], "fee_items": lines}
    wrong = call("clerk", "POST", "/handling/cases", json={**body, "form": {**body["form"], "medfee_sumamt": "17999.99"}})
    assert wrong.status_code == 422 and [p["code"] for p in wrong.json()["problems"]] == ["HDL082"]
    assert call("clerk", "GET", "/handling/cases").json() == []
    case = call("clerk", "POST", "/handling/cases", json=body).json()
    for who, action, version in (("clerk", "accept", 1), ("reviewer", "review", 2), ("rechecker", "recheck", 3)):
        r = call(who, "POST", f"/handling/cases/{case['case_no']}/actions", json={"action": action, "version": version})
        assert r.status_code == 200, r.text
    pay = r.json()["payments"]
    assert len(pay) == 1
    setl = call("clerk", "GET", f"/settlements/{pay[0]['setl_id']}").json()["setlinfo"]
    direct = settle(call, B, "2024-07-01", "3000.00")  # the same receipts settled at the desk (B: same rules)
    assert pay[0]["amount"] == setl["fund_pay_sumamt"] > 0
    for f in ("medfee_sumamt", "inscp_scp_amt", "act_pay_dedc", "hifp_pay"):
        assert setl[f] == direct[f]


def test_topup_pays_back_then_reverses_before_its_settlements(api):
    """补差 refunds the cash by a payment order; a settlement of the year cannot be reversed over it (REV005);
    撤销补差 moves the year back (the accumulators as the last settlement left them), marks the order returned and
    adds a reversing statement; then the settlements reverse as usual (后结先撤)."""
    call, engine = api
    paid = [settle(call, A, d, p) for d, p in zip(DATES[:3], ["12000.00", "18000.00", "14000.00"])]
    with Session(engine) as s:
        before = s.get(AccumulatorBalance, (A, 2024)).acc_values
    case, r = approve_assistance(call, A)
    record = r.json()
    topup = record["topups"][0]
    order = next(p for p in record["payments"] if p["setl_id"] == topup["topup_no"])
    assert order["amount"] == -topup["totals"]["psn_cash_pay"] == 4356.0
    refused = call("his1", "POST", f"/settlements/{paid[-1]['setl_id']}/reverse", json={"at": "2024-11-01T09:00:00"})
    assert refused.status_code == 409 and refused.json()["problems"][0]["code"] == "REV005"
    assert call("clerk", "POST", f"/handling/topups/{topup['topup_no']}/reverse").status_code == 403
    back = call("rechecker", "POST", f"/handling/topups/{topup['topup_no']}/reverse")
    assert back.status_code == 201, back.text
    assert back.json()["reverses"] == topup["topup_no"] and back.json()["totals"]["maf_pay"] == -4356.0
    with Session(engine) as s:
        assert s.get(AccumulatorBalance, (A, 2024)).acc_values == before
    again = call("rechecker", "POST", f"/handling/topups/{topup['topup_no']}/reverse")
    assert again.status_code == 422 and again.json()["problems"][0]["code"] == "HDL101"
    case_now = call("clerk", "GET", f"/handling/cases/{case['case_no']}").json()
    assert next(p for p in case_now["payments"] if p["payment_no"] == order["payment_no"])["status"] == "returned"
    for s_ in reversed(paid):  # 后结先撤 works again
        r = call("his1", "POST", f"/settlements/{s_['setl_id']}/reverse", json={"at": "2024-11-02T09:00:00"})
        assert r.status_code == 200, r.text
