"""两定机构 pages in Debian's Chromium: agreements with their state, designation applications and assessment
results; 费用拨付 worked step by step by three people (初审 → 审批 by another person, never the reviewer → 支付指令
and 拨付 clerk), the engine's refusal shown beside the action with nothing moved, the payment in the ledger, and
an institution's user seeing only its own. Screenshots at 1366×768, axe-core: no serious violation."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from playwright.sync_api import expect
from sqlalchemy import select
from sqlalchemy.orm import Session

from web_support import accessible, browser, new_page, seeded_store, serving, settle_directly, shot  # noqa: F401
from yibao.institutions import applications, store
from yibao.institutions.models import InsFundLedger, InsSettleApp
from yibao.service import sample
from yibao.service import transactions as tx
from yibao.service.auth import Principal
from yibao.store.database import make_engine

CODE = "H37010200088"
SCOPE = {"levels": ["2"], "services": ["11", "21"], "care_modes": []}
ALL_PASS = {"licence": True, "operating_3m": True, "staff": True, "his": True, "pricing": True, "records": True}


def _ctx(day: date) -> tx.Context:
    return tx.Context("", "setup", datetime.combine(day, datetime.min.time()).replace(hour=9))


def _write(engine, fn):
    with Session(engine) as s, s.begin():
        return fn(s)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    url = seeded_store(tmp_path_factory.mktemp("web-ins") / "yibao.db")
    engine = make_engine(url)
    clerk, reviewer, rechecker = Principal("c", "clerk"), Principal("r", "reviewer"), Principal("k", "rechecker")
    app = _write(engine, lambda s: store.apply_designation(s, clerk, _ctx(date(2025, 11, 3)), fixmedins_code=CODE,
                                                           fixmedins_name="示例区第二人民医院", kind="hospital",
                                                           admdvs="370102", scope=SCOPE))
    _write(engine, lambda s: store.evaluate(s, reviewer, _ctx(date(2025, 11, 20)), application_no=app["application_no"],
                                            items=ALL_PASS))
    _write(engine, lambda s: store.sign(s, rechecker, _ctx(date(2025, 12, 1)), application_no=app["application_no"],
                                        valid_from=date(2026, 1, 1), valid_to=date(2027, 12, 31)))
    _write(engine, lambda s: store.assess(s, reviewer, _ctx(date(2026, 12, 1)), fixmedins_code=CODE, year=2026))
    for psn in ("P000000001", "P000000002"):
        settle_directly(url, psn, [("K1", "X00001", "01", "150.00"), ("K2", "X00002", "02", "80.00")])
    built = _write(engine, lambda s: applications.build_month(s, clerk, _ctx(date(2024, 7, 1)), month="2024-06"))
    engine.dispose()
    with serving(url) as (base, _app):
        yield base, url, app["application_no"], built["applications"]


def test_agreements_designations_and_state(site, browser):
    base, url, application_no, _ = site
    ctx, page = new_page(browser, base, "reviewer1")
    try:
        page.get_by_role("navigation", name="主菜单").get_by_role("link", name="两定机构").click()
        row = page.locator("#agreements tr", has_text=CODE)
        expect(row).to_contain_text("有效")
        expect(row).to_contain_text("2026-01-01 至 2027-12-31")
        expect(page.locator("#designations tr", has_text=application_no)).to_contain_text("通过")
        assessed = page.locator("#assessments tr", has_text=CODE)
        expect(assessed).to_contain_text("2026")
        expect(assessed).to_contain_text("2026-12-01")  # the date the credit score was taken
        shot(page, "21-institutions")
        accessible(page)
        # the same agreement seen on a day before it starts
        page.fill("#f-on", "2025-12-15")
        with page.expect_navigation():
            page.get_by_role("button", name="查看").click()
        expect(page.locator("#agreements tr", has_text=CODE)).to_contain_text("未生效")
    finally:
        ctx.close()


def _row(page, app_no):
    return page.locator(f"#app-{app_no}")


def test_payment_worked_by_three_people_with_separation_of_duties(site, browser):
    base, url, _, built = site
    basic = next(a for a in built if a["fund"] == "basic")
    app_no = basic["app_no"]
    ctx, page = new_page(browser, base, "admin1")
    try:
        page.get_by_role("navigation", name="主菜单").get_by_role("link", name="费用拨付").click()
        row = _row(page, app_no)
        expect(row).to_contain_text("已申请")
        expect(row).to_contain_text("已超期")  # received 2024-07-01, 30 working days long past
        expect(row).to_contain_text(f"{basic['payable']:,.2f}")
        shot(page, "22-institution-payments")
        accessible(page)
        page.fill(f"#n-{app_no}", "材料齐全")
        with page.expect_navigation():
            row.get_by_role("button", name="初审").click()
        expect(_row(page, app_no).locator(".status")).to_have_text("已初审")
        # who reviewed may not approve, even an admin: refused beside the action (INS212), nothing moved
        with page.expect_navigation():
            _row(page, app_no).get_by_role("button", name="审批").click()
        expect(page.locator(f"#e-{app_no}")).to_contain_text("INS212")
        expect(_row(page, app_no).locator(".status")).to_have_text("已初审")
        accessible(page)
    finally:
        ctx.close()
    ctx, page = new_page(browser, base, "reviewer1")
    try:  # a reviewer's role has no 审批 step at all
        page.goto(f"{base}/web/institutions/payments")
        expect(_row(page, app_no).get_by_role("button")).to_have_count(0)
    finally:
        ctx.close()
    ctx, page = new_page(browser, base, "rechecker1")
    try:
        page.goto(f"{base}/web/institutions/payments")
        with page.expect_navigation():
            _row(page, app_no).get_by_role("button", name="审批").click()
        expect(_row(page, app_no).locator(".status")).to_have_text("已审批")
    finally:
        ctx.close()
    ctx, page = new_page(browser, base, "clerk1")
    try:
        page.goto(f"{base}/web/institutions/payments")
        with page.expect_navigation():
            _row(page, app_no).get_by_role("button", name="下达支付指令").click()
        with page.expect_navigation():
            _row(page, app_no).get_by_role("button", name="登记拨付").click()
        expect(_row(page, app_no).locator(".status")).to_have_text("已拨付")
        expect(page.locator("#ledger tr", has_text=app_no)).to_contain_text(f"{basic['payable']:,.2f}")
        shot(page, "23-institution-paid")
    finally:
        ctx.close()
    engine = make_engine(url)
    with Session(engine) as s:
        app = s.scalar(select(InsSettleApp).where(InsSettleApp.app_no == app_no))
        assert (app.status, app.reviewed_by, app.approved_by) == ("paid", "admin1", "rechecker1")
        assert "初审: 材料齐全" in app.note
        ledger = s.scalars(select(InsFundLedger).where(InsFundLedger.ref == app_no)).all()
        assert [(r.amount_fen, r.actor) for r in ledger] == [(app.payable_fen, "clerk1")]
    engine.dispose()


def test_an_institution_sees_only_its_own(site, browser):
    base, url, _, built = site
    ctx, page = new_page(browser, base, "his1")
    try:
        page.goto(f"{base}/web/institutions/payments")
        codes = page.locator("#applications tbody tr td:nth-child(2)").all_inner_texts()
        assert codes and set(codes) == {sample.HOSPITAL}
        expect(page.locator("#applications button")).to_have_count(0)  # an institution applies, it never reviews
        page.goto(f"{base}/web/institutions")
        expect(page.locator("#agreements")).not_to_contain_text(CODE)
    finally:
        ctx.close()


def test_insured_person_is_refused(site, browser):
    base, *_ = site
    ctx, page = new_page(browser, base, "insured1")
    try:
        resp = page.goto(f"{base}/web/institutions/payments")
        assert resp.status == 403
        expect(page.locator("main")).to_contain_text("无权")
    finally:
        ctx.close()
