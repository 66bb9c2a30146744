"""异地就医 monthly clearing: only settlements outside the insured city count, reversed ones drop
out, and 就医地垫付 = 参保地清算 = fund + account payments, to the fen."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy.orm import Session

from test_handling_topup import api, settle  # noqa: F401  (a fresh REST app with sample keys)
from yibao.service import registry, sample

BEIJING = "H11010500001"


def test_monthly_clearing_statement(api):  # noqa: F811
    call, engine = api
    with Session(engine) as s, s.begin():
        registry.add_institution(s, code=BEIJING, name="北京示例医院", level="3", admdvs="110105",
                                 designated_from=date(2024, 1, 1), designated_to=date(2024, 12, 31))

    def at(code, psn, day, price):
        v = call("admin", "POST", "/visits", json={"fixmedins_code": code, "psn_no": psn, "insutype": "390",
                                                  "med_type": "21", "begntime": f"{day}T09:00:00"})
        m = v.json()["mdtrt_id"]
        assert call("admin", "POST", f"/visits/{m}/fee-items",
                    json={"items": sample.items(3, price=price), "at": f"{day}T09:30:00"}).status_code == 200
        r = call("admin", "POST", f"/visits/{m}/settle", json={"setl_time": f"{day}T10:00:00"})
        assert r.status_code == 200, r.text
        return r.json()["setlinfo"]

    far1 = at(BEIJING, "P000000001", "2024-05-06", "3000.00")
    far2 = at(BEIJING, "P000000003", "2024-05-20", "1000.00")
    at(sample.HOSPITAL, "P000000003", "2024-05-21", "1000.00")  # local: not cleared
    gone = at(BEIJING, "P000000001", "2024-05-28", "500.00")
    assert call("admin", "POST", f"/settlements/{gone['setl_id']}/reverse", json={"at": "2024-05-29T09:00:00"}).status_code == 200
    at(BEIJING, "P000000001", "2024-06-03", "500.00")  # next month

    st = call("analyst", "GET", "/handling/clearing/2024-05").json()
    clear = sum(Decimal(str(x["fund_pay_sumamt"])) + Decimal(str(x["acct_pay"])) for x in (far1, far2))
    assert len(st["lines"]) == 1
    line = st["lines"][0]
    assert (line["mdtrt_area"], line["insu_area"], line["scope"], line["visits"]) == ("110100", "370100", "跨省", 2)
    assert Decimal(str(line["medfee_sumamt"])) == Decimal(str(far1["medfee_sumamt"])) + Decimal(str(far2["medfee_sumamt"]))
    assert Decimal(str(line["clearing_amt"])) == clear > 0
    assert {k: Decimal(str(v)) for k, v in st["advanced_by_mdtrt_area"].items()} == {"110100": clear}
    assert {k: Decimal(str(v)) for k, v in st["owed_by_insu_area"].items()} == {"370100": clear}
    bad = call("analyst", "GET", "/handling/clearing/2024-13")
    assert bad.status_code == 422 and bad.json()["problems"][0]["code"] == "HDL070"
    assert call("his1", "GET", "/handling/clearing/2024-05").status_code == 403


def test_clearing_counts_what_a_family_mutual_account_paid(api):  # noqa: F811
    """A 家庭共济 payment (account journal ``mulaid_pay`` referencing the settlement) is money the
    institution was paid like the person's own account: it is cleared with it."""
    from datetime import datetime

    from yibao.enrolment.models import AccountEntry
    from yibao.enrolment.mutual import PAY

    call, engine = api
    with Session(engine) as s, s.begin():
        registry.add_institution(s, code=BEIJING, name="北京示例医院", level="3", admdvs="110105",
                                 designated_from=date(2024, 1, 1), designated_to=date(2024, 12, 31))
    v = call("admin", "POST", "/visits", json={"fixmedins_code": BEIJING, "psn_no": "P000000003", "insutype": "390",
                                              "med_type": "21", "begntime": "2024-05-20T09:00:00"}).json()["mdtrt_id"]
    assert call("admin", "POST", f"/visits/{v}/fee-items",
                json={"items": sample.items(3, price="1000.00"), "at": "2024-05-20T09:30:00"}).status_code == 200
    info = call("admin", "POST", f"/visits/{v}/settle", json={"setl_time": "2024-05-20T10:00:00"}).json()["setlinfo"]
    before = call("analyst", "GET", "/handling/clearing/2024-05").json()["lines"][0]
    with Session(engine) as s, s.begin():
        s.add(AccountEntry(psn_no="P000000002", on=date(2024, 5, 20), kind=PAY, amount_fen=-1234, ref=info["setl_id"],
                           recorded_at=datetime(2024, 5, 20, 10), recorded_by="test"))
    after = call("analyst", "GET", "/handling/clearing/2024-05").json()["lines"][0]
    assert Decimal(str(before["acct_mulaid_pay"])) == 0 and Decimal(str(after["acct_mulaid_pay"])) == Decimal("12.34")
    assert Decimal(str(after["clearing_amt"])) - Decimal(str(before["clearing_amt"])) == Decimal("12.34")
