"""``/api/v1/handling``: the catalogue, a 异地就医备案 case through the API by three people, coded
errors naming the field, and the CLI on the same store."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from test_api_auth import api  # noqa: F401  (the REST app with sample keys: clerk, reviewer, rechecker...)
from yibao.cli import app

BEIJING = {"filing_type": "长期居住", "mdtrt_admdvs": "110105", "valid_from": "2024-01-01", "valid_to": "2024-12-31"}


def test_catalogue_and_a_filing_case(api):  # noqa: F811
    call, _ = api
    items = call("clerk", "GET", "/handling/items").json()["items"]
    assert [i["code"] for i in items][:3] == ["MZMTB", "LBDJ", "YDBA"]
    assert call("clerk", "GET", "/handling/items/NOPE").json()["problems"][0]["code"] == "HDL001"
    r = call("his1", "POST", "/handling/cases", json={
        "item_code": "YDBA", "psn_no": "P000000001", "channel": "hospital", "service_point": "示例社区卫生服务中心",
        "form": BEIJING, "materials": ["id_doc", "commitment"],
        "agent": {"kind": "helper", "name": "王医保专员"}})
    assert r.status_code == 201, r.text
    case = r.json()
    no = case["case_no"]
    assert case["channel_name"] == "医院" and case["agent"]["kind_name"] == "帮办"
    r = call("clerk", "POST", f"/handling/cases/{no}/actions", json={"action": "accept", "version": 1})
    assert r.status_code == 200 and r.json()["status"] == "accepted", r.text
    stale = call("reviewer", "POST", f"/handling/cases/{no}/actions", json={"action": "review", "version": 1})
    assert stale.status_code == 409 and stale.json()["problems"][0]["code"] == "HDL040"
    r = call("reviewer", "POST", f"/handling/cases/{no}/actions", json={"action": "review", "version": 2})
    assert r.json()["status"] == "completed" and [s["step_name"] for s in r.json()["steps"]] == ["受理", "审核"]
    assert call("his2", "GET", f"/handling/cases/{no}").status_code == 404  # another hospital does not see it
    audit = call("auditor", "GET", "/audit", params={"limit": 1000}).json()
    assert {"handling.apply", "handling.accept", "handling.review"} <= {e["action"] for e in audit}


def test_bad_application_is_a_422_naming_fields(api):  # noqa: F811
    call, _ = api
    before = call("clerk", "GET", "/handling/cases").json()
    r = call("clerk", "POST", "/handling/cases", json={
        "item_code": "YDBA", "psn_no": "P000000001", "channel": "window", "service_point": "大厅",
        "form": {**BEIJING, "valid_to": "2023-12-31", "filing_type": "出差"}, "materials": ["id_doc"]})
    assert r.status_code == 422
    assert [(p["code"], p["path"]) for p in r.json()["problems"]] == [
        ("HDL013", "form.filing_type"), ("HDL016", "form.valid_to")]
    assert call("clerk", "GET", "/handling/cases").json() == before  # nothing written


def test_cli_items_guide_deadline():
    runner = CliRunner()
    r = runner.invoke(app, ["handling", "guide", "MZMTB", "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["promised_days"] == 15
    r = runner.invoke(app, ["handling", "deadline", "2026-09-30", "5"])
    assert r.exit_code == 0 and r.stdout.strip() == "2026-10-13"
    r = runner.invoke(app, ["handling", "guide", "XX"])
    assert r.exit_code == 2 and "HDL001" in r.output
