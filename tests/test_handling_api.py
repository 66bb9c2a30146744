"""``/api/v1/handling``: the catalogue, a 异地就医备案 case through the API by three people, coded
errors naming the field, and the CLI on the same store."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from test_api_auth import api  # noqa: F401  (the REST app with sample keys: clerk, reviewer, rechecker...)
from yibao.cli import app

BEIJING = {"filing_type": "长期居住", "mdtrt_admdvs": "110105", "valid_from": "2026-01-01", "valid_to": "2099-12-31"}


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
        "form": {**BEIJING, "valid_to": "2025-12-31", "filing_type": "出差"}, "materials": ["id_doc"]})
    assert r.status_code == 422
    assert [(p["code"], p["path"]) for p in r.json()["problems"]] == [
        ("HDL013", "form.filing_type"), ("HDL016", "form.valid_to")]
    expired = call("clerk", "POST", "/handling/cases", json={
        "item_code": "YDBA", "psn_no": "P000000001", "channel": "window", "service_point": "大厅",
        "form": {**BEIJING, "valid_from": "2025-01-01", "valid_to": "2025-12-31"}, "materials": ["id_doc"]})
    assert [(p["code"], p["path"]) for p in expired.json()["problems"]] == [("HDL084", "form.valid_to")]
    assert call("clerk", "GET", "/handling/cases").json() == before  # nothing written


def test_cli_items_guide_deadline():
    runner = CliRunner()
    r = runner.invoke(app, ["handling", "guide", "MZMTB", "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["promised_days"] == 15
    r = runner.invoke(app, ["handling", "deadline", "2026-09-30", "5"])
    assert r.exit_code == 0 and r.stdout.strip() == "2026-10-13"
    r = runner.invoke(app, ["handling", "guide", "XX"])
    assert r.exit_code == 2 and "HDL001" in r.output


def test_chronic_visit_needs_a_certification(api):  # noqa: F811
    """门诊慢特病 (14) without a valid 认定 settles as ordinary outpatient (the Shandong pack's choice);
    after the case is 办结 the same visit settles as 14 with the 门诊慢特病 rule."""
    from yibao.service import sample

    call, _ = api
    psn = "P000000003"
    v = call("his1", "POST", "/visits", json={"fixmedins_code": sample.HOSPITAL, "psn_no": psn, "insutype": "390",
                                             "med_type": "14", "dise_codg": "J44", "begntime": "2024-05-06T09:00:00"})
    assert v.status_code == 201, v.text
    mdtrt = v.json()["mdtrt_id"]
    assert call("his1", "POST", f"/visits/{mdtrt}/fee-items",
                json={"items": sample.items(3, price="200.00"), "at": "2024-05-06T09:10:00"}).status_code == 200
    before = call("his1", "POST", f"/visits/{mdtrt}/presettle", json={"setl_time": "2024-05-06T10:00:00"}).json()
    assert before["setlinfo"]["med_type"] == "11"
    assert [w["rule_id"] for w in before["warnings"]] == ["HDL061"]

    case = call("clerk", "POST", "/handling/cases", json={
        "item_code": "MZMTB", "psn_no": psn, "channel": "window", "service_point": "市医保服务大厅",
        "form": {"dise_codg": "MTB006", "valid_from": "2024-01-01"}, "materials": ["id_doc", "diagnosis", "records"]})
    no = case.json()["case_no"]
    for who, action, version in (("clerk", "accept", 1), ("reviewer", "review", 2), ("rechecker", "recheck", 3)):
        r = call(who, "POST", f"/handling/cases/{no}/actions", json={"action": action, "version": version})
        assert r.status_code == 200, r.text
    after = call("his1", "POST", f"/visits/{mdtrt}/presettle", json={"setl_time": "2024-05-06T10:00:00"}).json()
    assert after["setlinfo"]["med_type"] == "14" and after["warnings"] == []
    assert after["setlinfo"]["medfee_sumamt"] == before["setlinfo"]["medfee_sumamt"]
    # 3 lines of 400 元 (甲, 乙 with 10% 先行自付, 丙): in scope 400 + 360 = 760 元
    assert before["setlinfo"]["hifp_pay"] == 400.0  # 居民普通门诊统筹 level 1: 760 × 60% = 456, annual cap 400
    assert after["setlinfo"]["hifp_pay"] == 322.0  # 居民门诊慢特病: (760 − 300 annual deductible) × 70%


def test_refusing_pack_refuses_the_uncertified_chronic_visit():
    from datetime import date

    import pytest

    from yibao.handling.effects import settled_med_type
    from yibao.policy.loader import resolve_pack
    from yibao.service.errors import ServiceError

    pack = resolve_pack("shandong-2024")
    refusing = pack.model_copy(update={"handling": pack.handling.model_copy(update={"uncertified_chronic": "refuse"})})

    class NoFacts:  # a session whose fact query finds nothing
        def scalars(self, _q):
            return []

    with pytest.raises(ServiceError) as e:
        settled_med_type(NoFacts(), refusing, "P1", "14", date(2024, 5, 6))
    assert e.value.problems[0].code == "HDL060"
    assert settled_med_type(NoFacts(), pack, "P1", "14", date(2024, 5, 6))[0] == "11"
    assert settled_med_type(NoFacts(), pack, "P1", "21", date(2024, 5, 6)) == ("21", None)


def test_assistance_approval_puts_the_person_in_the_category(api):  # noqa: F811
    """依申请救助 办结 records the fact and the 人员类别 (因病致贫重病患者), so the visit now settles with 救助."""
    from yibao.service import sample

    call, _ = api
    psn = "P000000004"  # i=3: employee (310), no category
    v = call("his1", "POST", "/visits", json={"fixmedins_code": sample.HOSPITAL, "psn_no": psn, "insutype": "310",
                                             "med_type": "21", "begntime": "2024-06-03T09:00:00"})
    mdtrt = v.json()["mdtrt_id"]
    assert call("his1", "POST", f"/visits/{mdtrt}/fee-items",
                json={"items": sample.items(3, price="40000.00"), "at": "2024-06-03T09:10:00"}).status_code == 200
    before = call("his1", "POST", f"/visits/{mdtrt}/presettle", json={"setl_time": "2024-06-10T10:00:00"}).json()
    bad = call("clerk", "POST", "/handling/cases", json={
        "item_code": "YSQJZ", "psn_no": psn, "channel": "online", "service_point": "网上服务大厅",
        "form": {"category": "rich", "valid_from": "2024-06-01"}, "materials": ["id_doc", "recognition", "bank_card"]})
    assert bad.status_code == 422 and bad.json()["problems"][0]["code"] == "HDL013"
    case = call("clerk", "POST", "/handling/cases", json={
        "item_code": "YSQJZ", "psn_no": psn, "channel": "online", "service_point": "网上服务大厅",
        "form": {"category": "illness_poverty", "valid_from": "2024-06-01"},
        "materials": ["id_doc", "recognition", "bank_card"]})
    no = case.json()["case_no"]
    for who, action, version in (("clerk", "accept", 1), ("reviewer", "review", 2), ("rechecker", "recheck", 3)):
        assert call(who, "POST", f"/handling/cases/{no}/actions",
                    json={"action": action, "version": version}).status_code == 200
    after = call("his1", "POST", f"/visits/{mdtrt}/presettle", json={"setl_time": "2024-06-10T10:00:00"}).json()
    # 政策范围内个人负担 = 起付线 200 + 共付 15,180 = 15,380 元; 超过 40,000 × 25% = 10,000 元的部分 × 60% = 3,228 元
    assert (before["setlinfo"]["maf_pay"], after["setlinfo"]["maf_pay"]) == (0.0, 3228.0)
    assert (before["setlinfo"]["psn_cash_pay"], after["setlinfo"]["psn_cash_pay"]) == (103380.0, 100152.0)


def test_cli_apply_act_show_stats(tmp_path):
    """The CLI on a store: apply (with a coded refusal first, nothing written), accept, review, show, stats."""
    from sqlalchemy.orm import Session

    from yibao.service import sample
    from yibao.store.database import make_engine
    from yibao.store.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'y.db'}"
    upgrade(url)
    engine = make_engine(url)
    with Session(engine) as s, s.begin():
        sample.seed(s, 2)
    engine.dispose()
    runner = CliRunner()
    base = ["--url", url, "--json"]
    bad = runner.invoke(app, ["handling", "apply", "--item", "LBDJ", "--psn-no", "P000000001", "--point", "大厅",
                              "--field", "disease=痛风", "--field", "valid_from=2024-02-01", *base])
    assert bad.exit_code == 2 and "HDL013" in bad.output
    r = runner.invoke(app, ["handling", "apply", "--item", "LBDJ", "--psn-no", "P000000001", "--point", "大厅",
                            "--channel", "online", "--field", "disease=糖尿病", "--field", "valid_from=2024-02-01",
                            "--material", "id_doc", "--material", "diagnosis", "--user", "c1", *base])
    assert r.exit_code == 0, r.output
    no = json.loads(r.stdout)["case_no"]
    r = runner.invoke(app, ["handling", "act", no, "accept", "--version", "1", "--user", "c1", *base])
    assert r.exit_code == 0 and json.loads(r.stdout)["status"] == "accepted", r.output
    r = runner.invoke(app, ["handling", "act", no, "review", "--version", "2", "--user", "c1", "--role", "admin", *base])
    assert r.exit_code == 2 and "HDL023" in r.output  # the acceptor may not review, even as admin
    r = runner.invoke(app, ["handling", "act", no, "review", "--version", "2", "--user", "r1", "--role", "reviewer", *base])
    assert json.loads(r.stdout)["status"] == "completed"
    shown = json.loads(runner.invoke(app, ["handling", "show", no, *base]).stdout)
    assert [e["action"] for e in shown["events"]] == ["apply", "accept", "review"]
    bad_file = tmp_path / "lines.json"
    bad_file.write_text("{}", encoding="utf-8")
    r = runner.invoke(app, ["handling", "apply", "--item", "LXBX", "--psn-no", "P000000001", "--point", "大厅",
                            "--fee-items", str(bad_file), *base])
    assert r.exit_code == 2 and "HDL086" in r.output
    stats = json.loads(runner.invoke(app, ["handling", "stats", "--begndate", "2000-01-01", "--enddate", "2100-12-31",
                                           "--by", "item", *base]).stdout)
    assert [(x["item"], x["volume"], x["completed"], x["online_rate"]) for x in stats] == [("LBDJ", 1, 1, "1.0000")]
