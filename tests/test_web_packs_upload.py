"""Uploading a policy pack on the 政策包 page (Chromium): an analyst uploads a reform (``extends`` a shipped
pack, two numbers changed); a bad one comes back with the validator's coded problems beside the file and
nothing stored; a good one is stored insert-only, read as Chinese rules and compared with its base."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from web_support import accessible, browser, login, page, seeded_store, serving, shot  # noqa: F401  (fixtures)
from yibao.store.database import make_engine
from yibao.store.models import AuditLog
from yibao.web.packs import UploadedPack, validate_upload

REFORM = """extends: shandong-2024
pack:
  id: shandong-2024-base85
  name: "山东省医保待遇(改革: 居民住院二级 85%)"
  version: "2024.1-r85"
basic:
  - id: resident_inpatient
    ratio_by_level: {"1": 0.85, "2": 0.85, "3": 0.60}
"""
BAD = REFORM.replace('"2": 0.85', '"2": 1.85')


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    url = seeded_store(tmp_path_factory.mktemp("web-packs") / "yibao.db")
    with serving(url) as (base, _app):
        yield base, url


def stored(url) -> list[str]:
    engine = make_engine(url)
    with Session(engine) as s:
        names = list(s.scalars(select(UploadedPack.name)))
        audits = s.scalar(select(func.count()).select_from(AuditLog).where(AuditLog.action == "web.pack_upload"))
    engine.dispose()
    return names, audits


def upload(page, name: str, body: str, tmp_path) -> None:
    path = tmp_path / f"{name or 'x'}.yaml"
    path.write_text(body, encoding="utf-8")
    page.fill("#f-name", name)
    page.set_input_files("#f-file", str(path))
    with page.expect_navigation():
        page.get_by_role("button", name="上传并校验").click()


def test_an_analyst_uploads_a_reform_and_compares_it(site, page, tmp_path):
    base, url = site
    login(page, base, "analyst1")
    page.goto(f"{base}/web/packs")
    upload(page, "base85", BAD, tmp_path)  # a ratio of 1.85: refused beside the file, with the pack's path
    expect(page.locator("#f-file-error")).to_contain_text("POL0")
    expect(page.locator("#f-file-error")).to_contain_text("ratio_by_level.2: 比例必须在 0 到 1 之间")
    expect(page.locator("#f-name")).to_have_value("base85")
    shot(page, "25-pack-upload-error")
    assert page.evaluate("() => document.querySelector('#f-file').getAttribute('aria-invalid')") == "true"
    accessible(page)
    assert stored(url) == ([], 0)
    upload(page, "shandong-2024", REFORM, tmp_path)  # a shipped name is never taken over
    expect(page.locator("#f-name-error")).to_contain_text("WEB062")
    upload(page, "base85", REFORM.replace("extends: shandong-2024", "extends: /etc/passwd"), tmp_path)
    expect(page.locator("#f-file-error")).to_contain_text("WEB064")
    upload(page, "base85", REFORM, tmp_path)
    assert page.url.endswith("/web/packs/base85")
    expect(page.get_by_role("heading", name="基本医疗保险")).to_be_visible()
    assert stored(url) == (["base85"], 1)
    page.goto(f"{base}/web/packs")
    expect(page.locator("#uploads tr", has_text="base85")).to_contain_text("analyst1")
    page.get_by_label("政策包 A").select_option("shandong-2024")
    page.get_by_label("政策包 B").select_option("base85")
    with page.expect_navigation():
        page.get_by_role("button", name="比较").click()
    row = page.locator("#diff tr", has_text="basic[resident_inpatient].ratio_by_level.2")
    expect(row.locator("td").nth(1)).to_have_text("0.75")
    expect(row.locator("td").nth(2)).to_have_text("0.85")
    shot(page, "26-pack-uploaded-diff")
    upload(page, "base85", REFORM, tmp_path)  # insert-only: the same name again is refused
    expect(page.locator("#f-name-error")).to_contain_text("WEB062")


def test_a_clerk_reads_packs_but_cannot_upload(site, page):
    base, _ = site
    login(page, base, "clerk1")
    page.goto(f"{base}/web/packs")
    expect(page.locator("#f-file")).to_have_count(0)


def test_upload_checks_before_the_validator():
    assert "WEB061" in validate_upload("Bad Name", b"x: 1", set())[2]["name"]
    assert "WEB063" in validate_upload("ok-name", b"", set())[2]["file"]
    assert "WEB063" in validate_upload("ok-name", b"\xff\xfe", set())[2]["file"]
    assert "WEB063" in validate_upload("ok-name", b"x" * (256 * 1024 + 1), set())[2]["file"]
    pack, _, errors = validate_upload("ok-name", REFORM.encode(), set())
    assert errors == {} and pack.pack.id == "shandong-2024-base85"
