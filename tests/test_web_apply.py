"""经办申请 on the web in Debian's Chromium: a clerk opens an item's 办事指南 and files its form; bad input comes
back beside the field with the engine's coded message and nothing is written; a good one opens the case
(待受理) that the worklist lists; 零星报销 takes its receipt lines as typed rows. Screenshots, axe-core."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect
from sqlalchemy import select
from sqlalchemy.orm import Session

from web_support import accessible, browser, login, new_page, seeded_store, serving, shot  # noqa: F401  (fixture)
from yibao.handling.models import HdCase
from yibao.service import sample
from yibao.store.database import make_engine
from yibao.web.handling import receipt_lines


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    url = seeded_store(tmp_path_factory.mktemp("web-apply") / "yibao.db")
    with serving(url) as (base, _app):
        yield base, url


@pytest.fixture
def page(browser, site):  # noqa: F811  (a clerk's page)
    ctx, pg = new_page(browser, site[0], "clerk1")
    yield pg
    ctx.close()


def cases(url) -> list[HdCase]:
    engine = make_engine(url)
    with Session(engine) as s:
        rows = list(s.scalars(select(HdCase).order_by(HdCase.created_at)))
    engine.dispose()
    return rows


def open_item(page, base, label):
    page.goto(f"{base}/web/handling")
    with page.expect_navigation():
        page.get_by_role("link", name="新申请").click()
    page.select_option("#f-item-pick", label=label)
    with page.expect_navigation():
        page.get_by_role("button", name="打开办事指南").click()


def test_a_clerk_files_a_two_diseases_registration(site, page):
    base, url = site
    before = len(cases(url))
    open_item(page, base, "两病登记(LBDJ)")
    expect(page.locator("#guide-h")).to_have_text("办事指南: 两病登记")
    shot(page, "24-handling-apply")
    accessible(page)
    # nothing filled in: the person and the required fields are named beside their controls, nothing written
    page.fill("#f-service_point", "医保服务大厅")
    with page.expect_navigation():
        page.get_by_role("button", name="提交申请").click()
    expect(page.locator("#f-person-error")).to_contain_text("HDL002")
    page.fill("#f-person", sample.certno(1))
    page.fill("#f-valid_from", "2026-03-01")
    with page.expect_navigation():
        page.get_by_role("button", name="提交申请").click()
    expect(page.locator("#f-disease-error")).to_contain_text("HDL010")
    expect(page.locator("#f-person")).to_have_value("")  # an ID number is never sent back
    expect(page.locator("#f-service_point")).to_have_value("医保服务大厅")  # the rest of the form is kept
    accessible(page)
    assert len(cases(url)) == before
    page.fill("#f-person", sample.certno(1))
    page.select_option("#f-disease", "高血压")
    page.check("#m-id_doc")
    page.check("#m-diagnosis")
    with page.expect_navigation():
        page.get_by_role("button", name="提交申请").click()
    expect(page.locator("#hd-status")).to_have_text("待受理")
    case_no = page.locator("h1").inner_text().split("·")[-1].strip()
    filed = cases(url)[-1]
    assert (filed.case_no, filed.item_code, filed.psn_no, filed.channel, filed.applied_by) == (
        case_no, "LBDJ", "P000000001", "window", "clerk1")
    assert filed.form == {"disease": "高血压", "valid_from": "2026-03-01"}
    assert filed.materials == ["id_doc", "diagnosis"]
    page.goto(f"{base}/web/handling")
    expect(page.locator("#worklist tr", has_text=case_no)).to_contain_text("待受理")


def test_a_manual_reimbursement_with_receipt_lines_and_a_proxy(site, page):
    base, url = site
    open_item(page, base, "零星报销(LXBX)")
    page.fill("#f-person", sample.certno(2))
    page.fill("#f-service_point", "医保服务大厅")
    page.fill("#f-fixmedins_code", sample.OTHER_HOSPITAL)
    page.fill("#f-begndate", "2024-05-06")
    page.fill("#f-medfee_sumamt", "190.00")
    page.select_option("#f-insutype", "310")
    page.select_option("#f-med_type", "11")
    page.fill("#f-fee_items", "X00001,01,60.00,2\nX00002,02,35.00,2")
    page.select_option("#f-agent_kind", "proxy")
    page.fill("#f-agent_name", "李四")
    with page.expect_navigation():  # a proxy needs the relation and the authorisation: named beside them
        page.get_by_role("button", name="提交申请").click()
    expect(page.locator("#f-agent_relation-error")).to_contain_text("HDL004")
    expect(page.locator("#f-fee_items")).to_have_value("X00001,01,60.00,2\nX00002,02,35.00,2")
    page.fill("#f-person", sample.certno(2))
    page.fill("#f-agent_relation", "配偶")
    page.fill("#f-agent_authorization_no", "WT-2026-001")
    with page.expect_navigation():
        page.get_by_role("button", name="提交申请").click()
    expect(page.locator("#hd-status")).to_have_text("待受理")
    filed = cases(url)[-1]
    assert [(x["med_list_codg"], x["det_item_fee_sumamt"]) for x in filed.fee_items] == [("X00001", "120.00"),
                                                                                        ("X00002", "70.00")]
    assert (filed.agent_kind, filed.agent_name, filed.agent_relation, filed.authorization_no) == (
        "proxy", "李四", "配偶", "WT-2026-001")


def test_receipt_rows_are_checked_before_the_engine():
    errors: dict[str, str] = {}
    assert receipt_lines("X1,01,12.50,3", errors) == [{"feedetl_sn": "R001", "med_list_codg": "X1", "chrgitm_lv": "01",
                                                        "pric": "12.50", "cnt": "3", "det_item_fee_sumamt": "37.50"}]
    assert receipt_lines("X1,01,12.50", errors) == [] and "WEB090" in errors["fee_items"]
    errors.clear()
    assert receipt_lines("X1,01,abc,1", errors) == [] and "第 1 行" in errors["fee_items"]


def test_an_insured_person_cannot_file_for_others(site, browser):
    base, _ = site
    ctx, pg = new_page(browser, base, "insured1", 390, 844)
    try:
        assert pg.goto(f"{base}/web/handling/apply").status == 403
    finally:
        ctx.close()
