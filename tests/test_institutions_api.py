"""``/api/v1/institutions``: a month applied, reviewed, approved, ordered and paid by four people; the catalogue
imported as a CSV body; bad input a 422 naming fields with nothing written; an institution sees only its own;
an agreement suspended through the API refuses the next settlement (409 INS101); the CLI on a store."""

from __future__ import annotations

import json
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from test_api_auth import api, settled_visit  # noqa: F401
from yibao.cli import app
from yibao.institutions.models import InsDesignation
from yibao.service import sample

ALL = {k: True for k in ("licence", "operating_3m", "staff", "his", "pricing", "records")}


def test_a_month_applied_and_paid_by_four_people(api):  # noqa: F811
    call, _ = api
    settled_visit(call)
    r = call("his1", "POST", "/institutions/payments/months", json={"month": "2024-04"})
    assert r.status_code == 201, r.text
    apps = r.json()["applications"]
    assert {a["fixmedins_code"] for a in apps} == {sample.HOSPITAL}
    no = next(a["app_no"] for a in apps if a["fund"] == "basic")
    for who, action in (("reviewer", "review"), ("rechecker", "approve"), ("clerk", "order"), ("clerk", "pay")):
        r = call(who, "POST", f"/institutions/payments/applications/{no}/actions", json={"action": action})
        assert r.status_code == 200, r.text
    assert r.json()["status"] == "paid"
    again = call("clerk", "POST", f"/institutions/payments/applications/{no}/actions", json={"action": "pay"})
    assert again.status_code == 409 and again.json()["problems"][0]["code"] == "INS211"
    assert call("his2", "GET", f"/institutions/{sample.HOSPITAL}/statement", params={"year": 2024}).status_code == 403
    mine = call("his1", "GET", f"/institutions/{sample.HOSPITAL}/statement", params={"year": 2024}).json()
    basic = next(a for a in apps if a["fund"] == "basic")
    assert mine["paid_fen"] == int(Decimal(str(basic["payable"])) * 100) > 0
    audit = call("auditor", "GET", "/audit", params={"limit": 1000}).json()
    assert {"payment.apply", "payment.review", "payment.approve", "payment.order", "payment.pay"} <= {e["action"] for e in audit}


def test_catalogue_imported_from_a_csv_body(api):  # noqa: F811
    call, _ = api
    body = "药品代码,注册名称,甲乙类,支付标准\nXA01AAA001A001010100001,示例降压片,乙类,0.80\n".encode()
    r = call("clerk", "POST", "/institutions/catalogue/versions", content=body,
             params={"kind": "drug", "version": "2024-A", "effective_from": "2024-01-01"})
    assert r.status_code == 201, r.text
    entry = call("clerk", "GET", "/institutions/catalogue/entries/XA01AAA001A001010100001", params={"on": "2024-05-01"})
    assert (entry.json()["chrgitm_lv"], entry.json()["pay_std"], entry.json()["preselfpay_ratio"]) == ("02", "0.8", "0.1")
    bad = call("clerk", "POST", "/institutions/catalogue/versions", content="药品代码,注册名称,甲乙类\nX1,,丁\n".encode(),
               params={"kind": "drug", "version": "2024-B", "effective_from": "2024-06-01"})
    assert bad.status_code == 422
    assert [(p["code"], p["path"]) for p in bad.json()["problems"]] == [
        ("INS305", "第2行.chrgitm_lv"), ("INS302", "第2行.med_list_codg"), ("INS304", "第2行.name")]
    assert len(call("clerk", "GET", "/institutions/catalogue/versions").json()) == 1


def test_bad_designation_is_a_422_and_writes_nothing(api):  # noqa: F811
    call, engine = api
    r = call("clerk", "POST", "/institutions/designations", json={
        "fixmedins_code": "H9", "fixmedins_name": "x", "kind": "clinic", "admdvs": "370102",
        "scope": {"levels": ["9"], "services": ["11"]}})
    assert r.status_code == 422
    assert [(p["code"], p["path"]) for p in r.json()["problems"]] == [("INS001", "kind"), ("INS002", "scope.levels[0]")]
    missing = call("clerk", "POST", "/institutions/designations", json={"fixmedins_code": "H9"})
    assert missing.status_code == 422 and missing.json()["problems"][0]["code"] == "REQ010"
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(InsDesignation)) == 0


def test_suspension_through_the_api_refuses_the_next_settlement(api):  # noqa: F811
    call, _ = api
    r = call("his1", "POST", "/institutions/designations", json={
        "fixmedins_code": sample.HOSPITAL, "fixmedins_name": "示例社区卫生服务中心", "kind": "hospital", "admdvs": "370102",
        "scope": {"levels": ["1"], "services": ["11", "21"], "care_modes": ["family_doctor"]}})
    assert r.status_code == 201, r.text
    no = r.json()["application_no"]
    assert call("his1", "POST", f"/institutions/designations/{no}/evaluation", json={"items": ALL}).status_code == 403
    assert call("reviewer", "POST", f"/institutions/designations/{no}/evaluation", json={"items": ALL}).status_code == 200
    signed = call("rechecker", "POST", f"/institutions/designations/{no}/agreement",
                  json={"valid_from": "2024-01-01", "valid_to": "2024-12-31"})
    assert signed.status_code == 201, signed.text
    agreement_no = signed.json()["agreement_no"]
    r = call("rechecker", "POST", f"/institutions/agreements/{agreement_no}/events",
             json={"kind": "suspend", "eff_date": "2024-04-02", "reason": "拒不配合稽核"})
    assert r.status_code == 200 and r.json()["refusals"][0]["start"] == "2024-04-02", r.text
    v = call("his1", "POST", "/visits", json={"fixmedins_code": sample.HOSPITAL, "psn_no": "P000000001",
                                              "insutype": "390", "begntime": "2024-04-03T09:00:00"})
    assert v.status_code == 409 and v.json()["problems"][0]["code"] == "INS101", v.text
    mine = call("his1", "GET", f"/institutions/{sample.HOSPITAL}/agreements", params={"on": "2024-04-05"}).json()
    assert mine["agreements"][0]["state"] == "suspended"


def test_cli_on_a_store(tmp_path, monkeypatch):
    from yibao.store.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'y.db'}"
    upgrade(url)
    runner = CliRunner()
    r = runner.invoke(app, ["institutions", "apply", "--code", "H1", "--name", "示例医院", "--admdvs", "370102",
                            "--levels", "2", "--services", "11,21", "--url", url])
    assert r.exit_code == 0, r.output
    no = json.loads(r.stdout)["application_no"]
    r = runner.invoke(app, ["institutions", "evaluate", no, "--pass", "licence,operating_3m,staff,his,pricing,records",
                            "--operator", "rev1", "--url", url])
    assert r.exit_code == 0 and json.loads(r.stdout)["status"] == "evaluated"
    r = runner.invoke(app, ["institutions", "sign", no, "--valid-from", "2024-01-01", "--valid-to", "2024-12-31",
                            "--operator", "rev1", "--url", url])
    assert r.exit_code != 0 and "INS015" in r.output
    r = runner.invoke(app, ["institutions", "sign", no, "--valid-from", "2024-01-01", "--valid-to", "2024-12-31",
                            "--operator", "rck1", "--url", url])
    assert r.exit_code == 0 and json.loads(r.stdout)["state"] == "expired"  # as of today, after the agreement
    r = runner.invoke(app, ["fund", "outflows", "--year", "2024", "--url", url, "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout) == []
