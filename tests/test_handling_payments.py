"""Payment orders of 经办 cases (issue 16): 待支付 → 已支付 (the date the money left) or 退回 (why), a returned order
paid again, a paid one final; every move recorded insert-only and audited; bad input coded, nothing written."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from test_handling_topup import A, api  # noqa: F401  (fixture)
from yibao.handling.models import HdPaymentEvent
from yibao.service import sample
from yibao.store.models import AuditLog


def reimbursed(call) -> tuple[str, str]:
    lines = [dict(x, feedetl_sn=f"R{k}") for k, x in enumerate(sample.items(3, price="3000.00"))]
    body = {"item_code": "LXBX", "psn_no": A, "channel": "window", "service_point": "市医保服务大厅",
            "form": {"fixmedins_code": sample.HOSPITAL, "begndate": "2024-07-01", "medfee_sumamt": "18000.00",
                     "insutype": "310", "med_type": "21"},
            "materials": ["id_doc", "invoice", "fee_list", "discharge", "bank_card"], "fee_items": lines}
    case = call("clerk", "POST", "/handling/cases", json=body).json()
    for who, action, version in (("clerk", "accept", 1), ("reviewer", "review", 2), ("rechecker", "recheck", 3)):
        r = call(who, "POST", f"/handling/cases/{case['case_no']}/actions", json={"action": action, "version": version})
        assert r.status_code == 200, r.text
    return case["case_no"], r.json()["payments"][0]["payment_no"]


def codes(r) -> list[str]:
    return [p["code"] for p in r.json()["problems"]]


def test_a_payment_order_is_returned_then_paid_and_then_final(api):  # noqa: F811
    call, engine = api
    case_no, no = reimbursed(call)
    shown = call("clerk", "GET", f"/handling/cases/{case_no}").json()["payments"][0]
    assert (shown["status"], shown["status_name"], shown["status_on"]) == ("pending", "待支付", None)
    today = date.today()
    path = f"/handling/payments/{no}/status"
    assert codes(call("clerk", "POST", path, json={"status": "returned", "on": str(today)})) == ["HDL091"]
    assert codes(call("clerk", "POST", path, json={"status": "paid", "on": str(today + timedelta(days=1))})) == ["HDL092"]
    assert call("reviewer", "POST", path, json={"status": "paid", "on": str(today)}).status_code == 403
    assert call("clerk", "POST", "/handling/payments/PO0000/status", json={"status": "paid", "on": str(today)}).status_code == 404
    with Session(engine) as s:
        assert s.scalars(select(HdPaymentEvent)).all() == []  # nothing written by any of those
    r = call("clerk", "POST", path, json={"status": "returned", "on": str(today), "note": "银行账户户名不符"})
    assert r.status_code == 200 and r.json()["status_name"] == "已退回" and r.json()["note"] == "银行账户户名不符"
    r = call("clerk", "POST", path, json={"status": "paid", "on": str(today)})
    assert (r.json()["status"], r.json()["status_on"]) == ("paid", str(today))
    again = call("clerk", "POST", path, json={"status": "returned", "on": str(today), "note": "重复"})
    assert again.status_code == 409 and codes(again) == ["HDL090"]
    assert call("clerk", "GET", f"/handling/cases/{case_no}").json()["payments"][0]["status_name"] == "已支付"
    with Session(engine) as s:
        events = s.scalars(select(HdPaymentEvent).order_by(HdPaymentEvent.id)).all()
        assert [(e.status, e.actor) for e in events] == [("returned", "clerk"), ("paid", "clerk")]
        actions = [a for (a,) in s.execute(select(AuditLog.action).where(AuditLog.action.like("handling.payment%"))
                                           .order_by(AuditLog.id))]
        assert actions == ["handling.payment_returned", "handling.payment_paid"]
