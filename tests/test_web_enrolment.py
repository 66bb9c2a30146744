"""参保 pages in Chromium: a clerk finds a person by 证件号码 (never echoed, shown masked) and reads their
registry facts, contributions and arrears; the 欠费 worklist; 应保尽保 from an uploaded roster (not stored,
masked). Screenshots, axe-core."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from playwright.sync_api import expect
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from web_support import accessible, browser, new_page, seeded_store, serving, shot  # noqa: F401  (fixture)
from yibao.enrolment import registry as enrol_registry
from yibao.enrolment.models import Contribution, ImportBatch
from yibao.service import sample
from yibao.service import transactions as tx
from yibao.service.auth import Principal
from yibao.store.database import make_engine


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    url = seeded_store(tmp_path_factory.mktemp("web-enrol") / "yibao.db")
    engine = make_engine(url)
    clerk = Principal("clerk", "clerk")
    with Session(engine) as s, s.begin():
        enrol_registry.change_status(s, clerk, tx.Context("", "clerk", datetime(2024, 6, 1, 9)), psn_no="P000000002",
                                     insutype="310", action="suspend", eff_date=date(2024, 6, 1), reason="欠费暂停(测试)")
        for month, status in (("2026-08", "paid"), ("2026-09", "due"), ("2026-10", "due"), ("2026-11", "due")):
            y, m = map(int, month.split("-"))
            s.add(Contribution(psn_no="P000000002", insutype="310", scheme="employee", period=month, admdvs=sample.ADMDVS,
                               base_fen=600000, employer_fen=48000, employee_fen=12000, total_fen=60000, account_fen=12000,
                               status=status, due_date=date(y, m, 15), recorded_at=datetime(2026, 12, 1),
                               recorded_by="clerk"))
    engine.dispose()
    with serving(url) as (base, _app):
        yield base, url


@pytest.fixture
def page(browser, site):  # noqa: F811  (a clerk's page)
    ctx, pg = new_page(browser, site[0], "clerk1")
    yield pg
    ctx.close()


def test_a_clerk_reads_a_person_and_the_arrears_list(site, page):
    base, _ = site
    page.get_by_role("navigation", name="主菜单").get_by_role("link", name="参保").click()
    expect(page.locator("#arrears tr", has_text="P000000002")).to_contain_text("3")
    with page.expect_navigation():
        page.get_by_role("button", name="查询").click()
    expect(page.locator("#f-certno-error")).to_contain_text("WEB100")
    page.fill("#f-certno", sample.certno(2))
    with page.expect_navigation():
        page.get_by_role("button", name="查询").click()
    expect(page.locator("#person")).to_contain_text("P000000002")
    expect(page.locator("#person")).not_to_contain_text(sample.certno(2))  # masked
    expect(page.locator("#f-certno")).to_have_value("")
    expect(page.locator("#arrears-months")).to_have_text("3")
    suspended = page.locator("#facts tr", has_text="欠费暂停(测试)")
    expect(suspended).to_contain_text("2024-06-01")
    expect(suspended).to_contain_text("暂停")
    expect(page.locator("#contributions tbody tr")).to_have_count(4)
    expect(page.locator("#contributions tr", has_text="2026-09")).to_contain_text("未缴")
    shot(page, "27-enrolment-person")
    accessible(page)
    page.fill("#f-certno", "110101199001011234")
    with page.expect_navigation():
        page.get_by_role("button", name="查询").click()
    expect(page.locator("#f-certno-error")).to_contain_text("REG011")


def test_coverage_check_from_a_roster_that_is_not_stored(site, page, tmp_path):
    base, url = site
    roster = tmp_path / "roster.csv"
    other = sample.certno(900)
    roster.write_text(f"证件号码,区划,类别\n{sample.certno(1)},370102,dibao\n{other},370102,dibao\n", encoding="utf-8")
    page.goto(f"{base}/web/enrolment")
    page.set_input_files("#f-roster", str(roster))
    with page.expect_navigation():
        page.get_by_role("button", name="核查").click()
    rate = page.locator("#coverage-rates tbody tr").first
    expect(rate).to_contain_text("370102")
    missing = page.locator("#not-enrolled tbody tr")
    expect(missing).to_have_count(2)  # the seeded enrolments end with 2024; today nobody on the roster is covered
    expect(page.locator("#not-enrolled")).not_to_contain_text(other)
    expect(page.locator("#not-enrolled")).to_contain_text("无人员记录")
    shot(page, "28-enrolment-coverage")
    accessible(page)
    engine = make_engine(url)
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(ImportBatch)) == 0
    engine.dispose()


def test_an_institution_user_cannot_read_the_registry(site, browser):
    base, _ = site
    ctx, pg = new_page(browser, base, "his1")
    try:
        assert pg.goto(f"{base}/web/enrolment").status == 403
    finally:
        ctx.close()
