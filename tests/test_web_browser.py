"""The web front door end to end in Debian's Chromium (Playwright, executable_path, no browser download).

Each page is screenshot at 1366×768 into out/screenshots/ (git-ignored) and checked with axe-core in the
browser: no serious or critical violation (labels, contrast, names).
"""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from playwright.sync_api import expect
from sqlalchemy import select
from sqlalchemy.orm import Session

from web_support import (CHROMIUM, CHROMIUM_ARGS, accessible, audit_count, axe_violations, browser, dump, login,  # noqa: F401
                         new_page, page, seeded_store, serving, settle_at, settle_directly, shot)
from yibao.policy.loader import shipped_pack_names
from yibao.service import sample
from yibao.store.database import make_engine
from yibao.store.models import AuditLog, Settlement

CERTNO_2 = sample.certno(2)  # P000000002: employee (310), account balance 2000.00


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    url = seeded_store(tmp_path_factory.mktemp("web") / "yibao.db")
    with serving(url) as (base, app):
        yield base, url


def test_login_page_and_wrong_password(site, page):
    base, _ = site
    page.goto(f"{base}/web/desk")
    assert page.url.startswith(f"{base}/web/login")
    expect(page.get_by_role("heading", name="登录")).to_be_visible()
    shot(page, "01-login")
    accessible(page)
    login(page, base, "clerk1", "wrong-password-1")
    expect(page.locator("#password-error")).to_have_text("用户名或密码错误")
    accessible(page)


def test_clerk_settles_and_reverses_a_visit_by_keyboard(site, page):
    base, url = site
    login(page, base, "clerk1")
    page.goto(f"{base}/web/desk")
    shot(page, "02-desk")
    accessible(page)
    # keyboard only from here: focus the ID field, type, Enter submits the form
    page.get_by_label("证件号码(18 位身份证号)").focus()
    page.keyboard.type(CERTNO_2)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert CERTNO_2 not in page.content()  # shown masked
    expect(page.get_by_text(CERTNO_2[:6] + "********" + CERTNO_2[-4:])).to_be_visible()
    # the first institution, the person's insurance and 普通门诊 are the defaults: Tab past them
    expect(page.get_by_label("定点机构")).to_have_value(sample.HOSPITAL)
    page.get_by_label("定点机构").focus()
    for _ in range(3):
        page.keyboard.press("Tab")
    expect(page.get_by_label("就诊时间")).to_be_focused()
    page.keyboard.press("Control+A")
    page.keyboard.type("2024-03-05 09:00")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert re.search(r"/web/desk/visits/M\w+$", page.url)
    mdtrt_id = page.url.rsplit("/", 1)[-1]
    for sn, code, lv, pric, cnt in (("F1", "X00001", "01", "12.50", "2"), ("F2", "SV-S-MRI3T", "03", "30.00", "1")):
        page.get_by_label("流水号", exact=True).focus()
        for k, value in enumerate((sn, code, lv, pric, cnt)):  # Tab from field to field, as a clerk would
            if k:
                page.keyboard.press("Tab")
            page.keyboard.press("Control+A")
            page.keyboard.type(value)
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert page.url == f"{base}/web/desk/visits/{mdtrt_id}"
    expect(page.locator("td", has_text="F2")).to_be_visible()
    page.get_by_label("结算时间(决定政策包与累计年度)").focus()
    page.keyboard.press("Control+A")
    page.keyboard.type("2024-03-05 10:00")
    page.keyboard.press("Tab")  # 使用个人账户: 否
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="预结算(不写入)")).to_be_focused()
    with page.expect_navigation():
        page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="预结算结果(未写入)")).to_be_visible()
    # the audit's warning sits in the row of the line it concerns: 3.0T MRI at a level-1 hospital
    expect(page.locator("tr", has_text="SV-S-MRI3T").locator("p.warn")).to_contain_text("SV-LVL-01")
    expect(page.locator("tr", has_text="X00001").locator("p.warn")).to_have_count(0)
    shot(page, "03-presettle")
    accessible(page)
    # 25.00 甲类 + 30.00 丙类 at a level-1 hospital, employee outpatient: 25.00 × 60% from the pool
    pre_fund = page.locator("#pre-fund").inner_text()
    assert page.locator("#pre-total").inner_text() == "55.00" and pre_fund == "15.00"
    assert page.locator("#pre-cash").inner_text() == "40.00"
    page.get_by_role("button", name="预结算(不写入)").focus()
    page.keyboard.press("Tab")
    expect(page.locator("#settle-button")).to_be_focused()
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert re.search(r"/web/desk/settlements/S\w+$", page.url)
    setl_id = page.url.rsplit("/", 1)[-1]
    expect(page.locator("#setl-status")).to_have_text("结算有效")
    assert page.locator("#fund-pay").inner_text() == pre_fund
    shot(page, "04-settlement")
    accessible(page)
    page.get_by_role("link", name="打印结算单").focus()
    with page.expect_popup() as popup:
        page.keyboard.press("Enter")
    statement = popup.value
    statement.wait_for_load_state()
    expect(statement.get_by_role("heading", name="医疗保障基金结算单")).to_be_visible()
    statement.close()
    pdf = page.request.get(f"{base}/web/desk/settlements/{setl_id}/statement.pdf")
    assert pdf.status == 200 and pdf.body()[:5] == b"%PDF-"
    # reverse: a reason is required (message beside the field, nothing written), then it goes through
    page.get_by_label("撤销原因(记入审计日志)").focus()
    with page.expect_navigation():
        page.keyboard.press("Enter")
    expect(page.locator("#f-reason-error")).to_contain_text("请填写撤销原因")
    page.get_by_label("撤销原因(记入审计日志)").fill("患者退费, 重新结算")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*\?reversed=1$"))
    expect(page.locator("#setl-status")).to_contain_text("本结算已撤销")
    engine = make_engine(url)
    with Session(engine) as s:
        row = s.get(Settlement, setl_id)
        assert row.status == "reversed" and row.fund_pay_sumamt == int(Decimal(pre_fund.replace(",", "")) * 100)
        actions = [a for (a,) in s.execute(select(AuditLog.action).where(AuditLog.actor == "clerk1")
                                           .order_by(AuditLog.id))]
        reason = s.scalars(select(AuditLog).where(AuditLog.action == "web.reverse_reason")).one()
    engine.dispose()
    assert actions[-7:] == ["web.login", "register", "upload", "upload", "settle", "reverse", "web.reverse_reason"]
    assert reason.detail == {"reason": "患者退费, 重新结算"} and reason.entity_id == setl_id


def test_user_without_the_role_is_refused(site, page):
    base, _ = site
    login(page, base, "insured1")
    expect(page.get_by_role("link", name="结算台")).to_have_count(0)  # not in the menu
    response = page.goto(f"{base}/web/desk")
    assert response.status == 403
    expect(page.get_by_role("heading", name="无权访问(403)")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("无权使用此功能")
    shot(page, "05-refused")
    accessible(page)


def test_insured_person_checks_caps_on_a_phone(site, browser):
    base, url = site
    setl = settle_directly(url, "P000000001", [("G1", "X00001", "01", "80.00"), ("G2", "X00002", "02", "40.00")])
    context = browser.new_context(viewport={"width": 390, "height": 844}, locale="zh-CN", is_mobile=True,
                                  has_touch=True, device_scale_factor=2)
    page = context.new_page()
    try:
        login(page, base, "insured1")
        page.goto(f"{base}/web/me?year=2024")
        expect(page.get_by_role("heading", name="我的医保 · 2024 年")).to_be_visible()
        expect(page.get_by_role("heading", name="限额与起付线还剩多少")).to_be_visible()
        # this year's totals are the settlement's own amounts, to the fen
        expect(page.locator("#ytd-medfee")).to_have_text(f"{setl['medfee_sumamt']} 元")
        expect(page.locator("#ytd-fund")).to_have_text(f"{setl['fund_pay_sumamt']} 元")
        expect(page.locator("#ytd-cash")).to_have_text(f"{setl['psn_cash_pay']} 元")
        # every cap with a use: left = limit - used, and some cap shows the pooled fund's payment as used
        rows = page.locator("li.cap[data-used]")
        used = []
        for k in range(rows.count()):
            r = rows.nth(k)
            limit, spent, left = (Decimal(r.get_attribute(a)) for a in ("data-limit", "data-used", "data-left"))
            assert left == max(Decimal(0), limit - spent)
            used.append(spent)
        assert Decimal(setl["hifp_pay"]) > 0 and Decimal(setl["hifp_pay"]) in used
        expect(page.locator("table#mine tbody tr")).to_have_count(1)
        assert page.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scrolling
        shot(page, "06-me-mobile")
        accessible(page)
        pdf = page.request.get(f"{base}/web/me/settlements/{setl['setl_id']}/statement.pdf")
        assert pdf.status == 200 and pdf.body()[:5] == b"%PDF-"
        # someone else's statement is not reachable
        other = settle_directly(url, "P000000003", [("H1", "X00001", "01", "10.00")])
        assert page.request.get(f"{base}/web/me/settlements/{other['setl_id']}/statement.pdf").status == 404
    finally:
        context.close()


def test_bad_input_comes_back_beside_the_field(site, page):
    base, url = site
    login(page, base, "clerk1")
    before = audit_count(url)
    page.goto(f"{base}/web/desk")
    page.get_by_label("证件号码(18 位身份证号)").fill("12345")
    page.get_by_role("button", name="查找").click()
    expect(page.locator("#f-certno-error")).to_contain_text("18 位")
    expect(page.get_by_label("证件号码(18 位身份证号)")).to_have_attribute("aria-invalid", "true")
    page.get_by_label("证件号码(18 位身份证号)").fill("11010119900101123X")
    page.get_by_role("button", name="查找").click()
    expect(page.locator("#f-certno-error")).to_be_visible()
    shot(page, "07-desk-bad-input")
    accessible(page)
    # a person found, then a visit with no time: message beside 就诊时间, nothing registered
    page.get_by_label("证件号码(18 位身份证号)").fill(CERTNO_2)
    page.get_by_role("button", name="查找").click()
    page.get_by_label("就诊时间").fill("")
    page.get_by_role("button", name="登记就诊").click()
    expect(page.locator("#f-begntime-error")).to_contain_text("请填写时间")
    # a fee line with a bad amount on an existing visit: beside the field, no line stored
    page.get_by_label("就诊时间").fill("2024-04-01T08:00")
    with page.expect_navigation():
        page.get_by_role("button", name="登记就诊").click()
    page.get_by_label("流水号", exact=True).fill("B1")
    page.get_by_label("医疗目录编码").fill("X00001")
    page.get_by_label("单价(元)").fill("abc")
    page.get_by_role("button", name="添加明细").click()
    expect(page.locator("#f-pric-error")).to_be_visible()
    expect(page.locator("td", has_text="B1")).to_have_count(0)
    page.get_by_label("文件(列: feedetl_sn, med_list_codg, chrgitm_lv, pric, cnt, det_item_fee_sumamt)").set_input_files(
        files=[{"name": "fees.csv", "mimeType": "text/csv",
                "buffer": "feedetl_sn,med_list_codg,det_item_fee_sumamt\nU1,X00001,10.00\nU2,X00002,-5\n".encode()}])
    page.get_by_role("button", name="导入").click()
    expect(page.locator("#f-file-error")).to_contain_text("第3行")
    expect(page.locator("td", has_text="U1")).to_have_count(0)  # all or nothing
    shot(page, "08-visit-bad-input")
    accessible(page)
    assert audit_count(url) == before + 1  # only the visit's registration was written
    # a good Excel file with Chinese headings goes in whole
    from io import BytesIO

    from openpyxl import Workbook
    book = Workbook()
    book.active.append(["费用明细流水号", "医疗目录编码", "收费项目等级", "单价", "数量", "明细项目费用总额"])
    book.active.append(["E1", "X00001", "01", "10.00", "2", "20.00"])
    book.active.append(["E2", "X00002", "02", "7.50", "1", "7.50"])
    data = BytesIO()
    book.save(data)
    page.get_by_label("文件(列: feedetl_sn, med_list_codg, chrgitm_lv, pric, cnt, det_item_fee_sumamt)").set_input_files(
        files=[{"name": "明细.xlsx", "buffer": data.getvalue(),
                "mimeType": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}])
    with page.expect_navigation():
        page.get_by_role("button", name="导入").click()
    expect(page.locator("td", has_text="E2")).to_be_visible()
    expect(page.locator("dd", has_text="27.50 元")).to_be_visible()  # the visit's total: 20.00 + 7.50


def test_csrf_lockout_and_logout(site, browser):
    base, url = site
    context = browser.new_context(viewport={"width": 1366, "height": 768}, locale="zh-CN")
    page = context.new_page()
    try:
        login(page, base, "reviewer1")
        cookie = next(c for c in context.cookies() if c["name"] == "yb_session")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["secure"]
        # a form posted without the session's CSRF token is refused and does nothing
        r = page.request.post(f"{base}/web/logout", form={"csrf": "forged"})
        assert r.status == 403 and "CSRF" in r.text()
        page.goto(f"{base}/web/")
        expect(page.get_by_role("button", name="退出登录")).to_be_visible()
        with page.expect_navigation():
            page.get_by_role("button", name="退出登录").click()
        assert page.url.endswith("/web/login")
        page.goto(f"{base}/web/")
        assert "/web/login" in page.url  # the session ended on the server
        # five wrong passwords lock the account; then even the right one is refused
        for _ in range(5):
            login(page, base, "auditor2", "not-the-password")
        expect(page.get_by_role("alert")).to_contain_text("已锁定")
        login(page, base, "auditor2")
        expect(page.get_by_role("alert")).to_contain_text("已锁定")
        assert "/web/login" in page.url
    finally:
        context.close()


def case_id_of(page, subject: str) -> str:
    return page.locator("tr", has_text=subject).get_by_role("link").inner_text().removeprefix("案件 ")


def test_supervisors_work_a_case_with_separation_of_duties(site, browser):
    base, url = site

    def as_user(name):
        ctx = browser.new_context(viewport={"width": 1366, "height": 768}, locale="zh-CN")
        pg = ctx.new_page()
        pg.set_default_timeout(15000)
        login(pg, base, name)
        return ctx, pg

    ctx, page = as_user("reviewer1")
    try:
        page.get_by_role("navigation", name="主菜单").get_by_role("link", name="智能监管").click()
        expect(page.locator("#by-rule")).to_contain_text("SV-GEND-01")
        expect(page.locator("#by-inst")).to_contain_text("420.50")  # 300.00 + 120.50 at the one hospital
        page.get_by_label("状态").select_option("suspect")
        with page.expect_navigation():
            page.get_by_role("button", name="筛选").click()
        expect(page.locator("#cases tbody tr")).to_have_count(2)
        shot(page, "09-cases")
        accessible(page)
        case = case_id_of(page, "M-DEMO-2")
        page.goto(f"{base}/web/cases/{case}")
        expect(page.locator("#rule-text")).to_contain_text("性别")
        expect(page.get_by_role("button", name="认定违规")).to_have_count(0)  # not the reviewer's move
        with page.expect_navigation():
            page.get_by_role("button", name="开始核实").click()
        expect(page.locator("#case-status")).to_have_text("核实中")
        # a forged decision by the reviewer is refused with the 403 page, nothing moves
        csrf = page.locator("input[name=csrf]").first.get_attribute("value")
        r = page.request.post(f"{base}/web/cases/{case}/move", form={"csrf": csrf, "to": "confirmed"})
        assert r.status == 403
    finally:
        ctx.close()
    ctx, page = as_user("rechecker1")
    try:
        page.goto(f"{base}/web/cases/{case}")
        expect(page.locator("#case-status")).to_have_text("核实中")
        # excluding needs a reason: beside the field, nothing moved
        with page.expect_navigation():
            page.get_by_role("button", name="排除疑点").click()
        expect(page.locator("#f-note-error")).to_contain_text("CAS014")
        expect(page.locator("#case-status")).to_have_text("核实中")
        page.get_by_label("办理意见(排除须写明理由)").fill("经核实确属违规收费")
        with page.expect_navigation():
            page.get_by_role("button", name="认定违规").click()
        expect(page.locator("#case-status")).to_have_text("认定违规")
    finally:
        ctx.close()
    ctx, page = as_user("admin1")  # admin may do every step, but not two steps of one duty chain
    try:
        other = None
        page.goto(f"{base}/web/cases?status=suspect")
        other = case_id_of(page, "M-DEMO-1")
        page.goto(f"{base}/web/cases/{other}")
        with page.expect_navigation():
            page.get_by_role("button", name="开始核实").click()
        with page.expect_navigation():
            page.get_by_role("button", name="认定违规").click()
        expect(page.locator("#f-to-error")).to_contain_text("岗位分离")
        expect(page.locator("#case-status")).to_have_text("核实中")
        shot(page, "10-case-refused-duty")
        accessible(page)
    finally:
        ctx.close()
    ctx, page = as_user("auditor1")
    try:
        page.goto(f"{base}/web/cases/{case}")
        page.get_by_label("追回金额(元)").fill("200.00")  # more than at stake
        with page.expect_navigation():
            page.get_by_role("button", name="登记追回").click()
        expect(page.locator("#f-amount-error")).to_contain_text("CAS013")
        page.get_by_label("追回金额(元)").fill("120.50")
        with page.expect_navigation():
            page.get_by_role("button", name="登记追回").click()
        expect(page.locator("#case-status")).to_have_text("追回")
        expect(page.locator("#recovered")).to_have_text("120.50 元")
        expect(page.locator("#events tbody tr")).to_have_count(4)  # 立案, 核实, 认定, 追回
        shot(page, "11-case-recovered")
        accessible(page)
        page.goto(f"{base}/web/cases")
        expect(page.locator("#credit")).to_contain_text("90")  # 100 less 10 for one high-severity case
    finally:
        ctx.close()
    engine = make_engine(url)
    with Session(engine) as s:
        trail = [(a, who) for a, who in s.execute(select(AuditLog.action, AuditLog.actor)
                                                   .where(AuditLog.action.like("web.case_%")).order_by(AuditLog.id))]
    engine.dispose()
    assert trail == [("web.case_verifying", "reviewer1"), ("web.case_confirmed", "rechecker1"),
                     ("web.case_verifying", "admin1"), ("web.case_recovered", "auditor1")]


def test_policy_packs_read_as_rules_and_compared(site, page):
    base, _ = site
    login(page, base, "analyst1")
    page.get_by_role("navigation", name="主菜单").get_by_role("link", name="政策包").click()
    expect(page.locator("#packs tbody tr")).to_have_count(len(shipped_pack_names()))
    with page.expect_navigation():
        page.locator("#packs tr", has_text="sichuan-county-2020").get_by_role("link").click()
    assert page.url.endswith("/web/packs/sichuan-county-2020")
    page.goto(f"{base}/web/packs/shandong-2024")
    expect(page.locator("#effective")).to_have_text("2024-01-01 至 2024-12-31")
    expect(page.get_by_role("heading", name="基本医疗保险")).to_be_visible()
    shot(page, "12-pack")
    accessible(page)
    page.goto(f"{base}/web/packs")
    page.get_by_label("政策包 A").select_option("shandong-2024-baseline")
    page.get_by_label("政策包 B").select_option("shandong-2024-ltc-reform")
    with page.expect_navigation():
        page.get_by_role("button", name="比较").click()
    expect(page.locator("#diff-count")).to_contain_text("共有 8 处不同")
    row = page.locator("#diff tr", has_text="basic[resident_inpatient].ratio_by_level.1")
    expect(row.locator("td").nth(1)).to_have_text("0.80")
    expect(row.locator("td").nth(2)).to_have_text("0.85")
    shot(page, "13-pack-diff")
    accessible(page)
    response = page.goto(f"{base}/web/packs?a=shandong-2024&b=no-such-pack")
    assert response.status == 422
    expect(page.locator("#f-b-error")).to_contain_text("请选择政策包 B")
    assert page.goto(f"{base}/web/packs/no-such-pack").status == 404


def fund_report(path) -> dict:
    """A real fund-operation run (yibao.fund.operation) over a tiny region, written as `yibao fund run` does."""
    import duckdb

    from yibao.fund.operation import operate, project
    from yibao.fund.report import to_json
    from yibao.policy.loader import resolve_pack

    pack = resolve_pack("shandong-2024")
    con = duckdb.connect()
    con.sql("""CREATE TABLE persons AS SELECT * FROM (VALUES
        ('P1', '390', false, ['dibao']), ('P2', '390', false, []), ('P3', '310', false, []), ('P4', '310', true, []))
        t(psn_no, insutype, retiree, categories)""")
    con.sql("""CREATE TABLE setlinfo AS SELECT psn_no, CAST(setl_time AS TIMESTAMP) AS setl_time,
        CAST(hifp_pay AS DECIMAL(16,2)) AS hifp_pay FROM (VALUES
        ('P1', '2024-01-15 09:00:00', '300.00'), ('P2', '2024-03-02 10:00:00', '1200.50'),
        ('P3', '2024-02-10 08:00:00', '800.00'), ('P4', '2024-07-01 11:00:00', '650.25')) t(psn_no, setl_time, hifp_pay)""")
    years = operate(con, pack.fund, 2024)
    projection = project(years, pack.fund) + project(years, pack.fund, {"390": Decimal("1.10")}, "reform")
    path.write_text(to_json(years, projection, {"pack": pack.pack.id, "year": 2024}), encoding="utf-8")
    return {y.insutype: y for y in years}


def test_fund_dashboard_draws_chinese_charts(site, page, tmp_path, monkeypatch):
    base, _ = site
    login(page, base, "analyst1")
    page.get_by_role("navigation", name="主菜单").get_by_role("link", name="基金看板").click()
    expect(page.get_by_role("alert")).to_contain_text("YIBAO_FUND_REPORT")  # nothing published yet
    years = fund_report(tmp_path / "fund.json")
    monkeypatch.setenv("YIBAO_FUND_REPORT", str(tmp_path))
    page.goto(f"{base}/web/fund")
    resident = page.locator("#annual tr", has_text="城乡居民基本医疗保险")
    from yibao.money import fen_to_yuan
    expect(resident.locator("td").nth(3)).to_have_text(f"{fen_to_yuan(years['390'].expense):,.2f}")  # 1,500.50
    assert years["390"].expense == 150050
    # ECharts drew SVG (the CSP of the page stays on) with Chinese labels and integer years
    month = page.locator("#chart-month-390 svg")
    expect(month).to_contain_text("累计结余")
    expect(month).to_contain_text("1月")
    proj = page.locator("#chart-proj-390 svg")
    expect(proj).to_contain_text("改革方案")
    expect(proj).to_contain_text("2025")
    assert "2025.5" not in proj.text_content()
    expect(page.locator("#chart-payout-390 svg")).to_be_visible()
    shot(page, "14-fund")
    accessible(page)
    assert page.goto(f"{base}/web/fund").status == 200
    login(page, base, "clerk1")
    assert page.goto(f"{base}/web/fund").status == 403


def test_analyst_runs_a_simulation_and_downloads_the_excel(site, page, tmp_path, monkeypatch):
    base, _ = site
    from typer.testing import CliRunner

    from yibao.cli import app as cli

    made = CliRunner().invoke(cli, ["synth", "--pack", "shandong-2024-baseline", "--persons", "120", "--seed", "3",
                                    "--out", str(tmp_path / "claims" / "示例地区")])
    assert made.exit_code == 0, made.output
    login(page, base, "analyst1")
    page.get_by_role("navigation", name="主菜单").get_by_role("link", name="政策模拟").click()
    expect(page.get_by_role("alert")).to_contain_text("YIBAO_CLAIMS_DIR")
    monkeypatch.setenv("YIBAO_CLAIMS_DIR", str(tmp_path / "claims"))
    page.goto(f"{base}/web/simulate")
    # bad input: the same pack twice, nothing started
    page.get_by_label("基线政策包").select_option("shandong-2024-baseline")
    page.get_by_label("改革政策包").select_option("shandong-2024-baseline")
    with page.expect_navigation():
        page.get_by_role("button", name="开始模拟").click()
    expect(page.locator("#f-reform-error")).to_contain_text("WEB071")
    expect(page.locator("#f-claims-error")).to_contain_text("WEB072")
    shot(page, "15-simulate-form")
    accessible(page)
    page.get_by_label("改革政策包").select_option("shandong-2024-ltc-reform")
    page.get_by_label("理赔数据集").select_option("示例地区")
    with page.expect_navigation():
        page.get_by_role("button", name="开始模拟").click()
    expect(page.locator("#sim-bar")).to_be_visible()
    expect(page.locator("#sim-status")).to_have_text("已完成", timeout=120_000)  # htmx polls, then reloads
    expect(page.locator("#sim-groups")).to_contain_text("全体参保人")
    expect(page.locator("img[alt='个人负担十分位']")).to_be_visible()
    assert page.locator("img[alt='个人负担十分位']").evaluate("i => i.naturalWidth") > 0
    shot(page, "16-simulation-result")
    accessible(page)
    with page.expect_download() as download:
        page.locator("#xlsx").click()
    path = tmp_path / "downloaded.xlsx"
    download.value.save_as(path)
    from openpyxl import load_workbook
    assert download.value.suggested_filename == "simulation.xlsx"
    assert len(load_workbook(path, read_only=True).sheetnames) >= 3
    login(page, base, "clerk1")
    assert page.goto(f"{base}/web/simulate").status == 403


def test_return_to_poverty_alerts_followed_up(site, page, tmp_path, monkeypatch):
    base, url = site
    from typer.testing import CliRunner

    from yibao.cli import app as cli

    made = CliRunner().invoke(cli, ["synth", "--pack", "shandong-2024", "--persons", "150", "--seed", "3",
                                    "--out", str(tmp_path / "claims" / "示例县")])
    assert made.exit_code == 0, made.output
    monkeypatch.setenv("YIBAO_CLAIMS_DIR", str(tmp_path / "claims"))
    login(page, base, "clerk1")
    page.get_by_role("navigation", name="主菜单").get_by_role("link", name="返贫监测").click()
    with page.expect_navigation():
        page.get_by_role("button", name="开始筛查").click()
    expect(page.locator("#f-pack-error")).to_contain_text("WEB080")  # nothing chosen: beside the fields
    page.get_by_label("政策包").select_option("shandong-2024")
    page.get_by_label("理赔数据集").select_option("示例县")
    with page.expect_navigation():
        page.get_by_role("button", name="开始筛查").click()
    expect(page.locator("#summary")).to_contain_text("筛查 150 个人员年度, 其中 1 个超过预警线")
    row = page.locator("#alerts tbody tr").first
    certno_cell = row.locator("td").nth(2).inner_text()
    assert re.fullmatch(r"\d{6}\*{8}\d{3}[\dX]", certno_cell)  # masked
    expect(row.locator("td").nth(7)).to_have_text("待核实")
    shot(page, "17-monitoring-list")
    accessible(page)
    with page.expect_download() as download:
        page.locator("#xlsx").click()
    assert download.value.suggested_filename == "monitoring.xlsx"
    with page.expect_navigation():
        row.get_by_role("link").click()
    expect(page.locator("#follow-status")).to_have_text("待核实")
    with page.expect_navigation():
        page.get_by_role("button", name="核实").click()
    expect(page.locator("#f-note-error")).to_contain_text("WEB082")  # a note is required, nothing written
    expect(page.locator("#history")).to_contain_text("尚未跟进")
    for to, note in (("核实", "入户核实, 情况属实"), ("帮扶", "落实医疗救助与临时救助"), ("销号", "风险消除")):
        page.get_by_label("办理情况").fill(note)
        with page.expect_navigation():
            page.get_by_role("button", name=to).click()
        expect(page.locator("#follow-status")).to_have_text(to)
    expect(page.locator("#history tbody tr")).to_have_count(3)
    shot(page, "18-monitoring-person")
    accessible(page)


def test_an_institution_user_works_only_for_its_own_institution(site, page):
    base, url = site
    login(page, base, "his1")
    page.goto(f"{base}/web/desk")
    page.get_by_label("证件号码(18 位身份证号)").fill(sample.certno(4))
    with page.expect_navigation():
        page.get_by_role("button", name="查找").click()
    options = page.get_by_label("定点机构").locator("option")
    expect(options).to_have_count(1)
    expect(options.first).to_have_attribute("value", sample.HOSPITAL)
    # a settlement of the other hospital is not shown to it
    other = settle_at(url, "P000000005", sample.OTHER_HOSPITAL)
    response = page.goto(f"{base}/web/desk/settlements/{other}")
    assert response.status in (403, 404)
    expect(page.locator("#fund-pay")).to_have_count(0)


def test_handling_worklist_accept_and_review(site, browser):
    base, url = site
    from datetime import datetime

    from yibao.handling import store as handling
    from yibao.service import transactions as tx
    from yibao.service.auth import Principal
    from yibao.service.packs import PackSet

    engine = make_engine(url)
    with Session(engine) as s, s.begin():  # an application as the counter or the API files it
        case = handling.apply_for(s, Principal("clerk", "clerk"), tx.Context("", "clerk", datetime(2026, 3, 2, 9)),
                                  item_code="LBDJ", psn_no="P000000001", channel="window", service_point="医保服务大厅",
                                  form={"disease": "高血压", "valid_from": "2026-03-01"},
                                  materials=["id_doc", "diagnosis"], packs=PackSet.load())
    engine.dispose()

    def as_user(name):
        ctx = browser.new_context(viewport={"width": 1366, "height": 768}, locale="zh-CN")
        pg = ctx.new_page()
        pg.set_default_timeout(15000)
        login(pg, base, name)
        return ctx, pg

    ctx, page = as_user("clerk1")
    try:
        page.get_by_role("navigation", name="主菜单").get_by_role("link", name="经办").click()
        row = page.locator("#worklist tr", has_text=case["case_no"])
        expect(row).to_contain_text("待受理")
        shot(page, "19-handling-worklist")
        accessible(page)
        with page.expect_navigation():
            row.get_by_role("link").click()
        with page.expect_navigation():
            page.get_by_role("button", name="受理通过").click()
        expect(page.locator("#hd-status")).to_have_text("待审核")
        # the clerk may not review: the engine's refusal beside the actions, nothing moved
        with page.expect_navigation():
            page.get_by_role("button", name="审核通过").click()
        expect(page.locator("#f-action-error")).to_be_visible()
        expect(page.locator("#hd-status")).to_have_text("待审核")
    finally:
        ctx.close()
    ctx, page = as_user("reviewer1")
    try:
        page.goto(f"{base}/web/handling/{case['case_no']}")
        with page.expect_navigation():
            page.get_by_role("button", name="不予通过").click()
        expect(page.locator("#f-reason-error, #f-action-error").first).to_be_visible()  # a reason is required
        with page.expect_navigation():
            page.get_by_role("button", name="审核通过").click()
        expect(page.locator("#hd-status")).to_have_text("办结")
        shot(page, "20-handling-case")
        accessible(page)
    finally:
        ctx.close()
