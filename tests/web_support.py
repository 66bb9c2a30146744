"""Shared by the web tests: a migrated temp store with the sample region and web users, the app served
by uvicorn in a thread on a free port (always shut down), and Debian's Chromium through Playwright."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import sync_playwright
from sqlalchemy.orm import Session

from yibao.service import sample
from yibao.service.app import create_app
from yibao.store.database import make_engine
from yibao.store.migrate import upgrade
from yibao.supervision import cases
from yibao.web.users import add_user

PASSWORD = "correct-horse-9"
HITS = [  # two suspect cases as `yibao audit` would file them
    {"rule_id": "SV-LVL-01", "rule_name": "限医院等级项目", "severity": "medium", "subject": "M-DEMO-1",
     "mdtrt_id": None, "psn_no": "P000000004", "fixmedins_code": sample.HOSPITAL, "atddr_no": "D001",
     "amount_fen": 30000, "message": "3.0T 磁共振成像在一级医院收费"},
    {"rule_id": "SV-GEND-01", "rule_name": "限性别项目", "severity": "high", "subject": "M-DEMO-2",
     "mdtrt_id": None, "psn_no": "P000000002", "fixmedins_code": sample.HOSPITAL, "atddr_no": "D002",
     "amount_fen": 12050, "message": "宫颈液基细胞学检查用于男性"},
]
USERS = {  # username → (role, fixmedins_code, psn_no)
    "clerk1": ("clerk", None, None),
    "reviewer1": ("reviewer", None, None),
    "rechecker1": ("rechecker", None, None),
    "analyst1": ("analyst", None, None),
    "auditor1": ("auditor", None, None),
    "auditor2": ("auditor", None, None),  # locked out by the lock-out test
    "admin1": ("admin", None, None),
    "his1": ("institution", sample.HOSPITAL, None),
    "insured1": ("insured", None, "P000000001"),
}
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
AXE = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"
SHOTS = Path(__file__).resolve().parent.parent / "out" / "screenshots"


def seeded_store(path: Path) -> str:
    url = f"sqlite:///{path}"
    upgrade(url)
    engine = make_engine(url)
    with Session(engine) as s, s.begin():
        sample.seed(s, 6)
        for name, (role, code, psn) in USERS.items():
            add_user(s, name, PASSWORD, role, fixmedins_code=code, psn_no=psn)
        cases.import_hits(s, HITS)
    engine.dispose()
    return url


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serving(url: str):
    """The service (API + web) on http://127.0.0.1:<free port>, stopped and joined on exit."""
    app = create_app(url, keys=sample.make_keys().ring)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name="yibao-web-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        app.state.desk.engine.dispose()


def login(page, base: str, username: str, password: str = PASSWORD) -> None:
    page.goto(f"{base}/web/login")
    page.get_by_label("用户名").fill(username)
    page.get_by_label("密码").fill(password)
    with page.expect_navigation():
        page.get_by_role("button", name="登录").click()


def axe_violations(page) -> list[dict]:
    """Serious and critical axe-core violations of the current page (WCAG 2 A/AA rules)."""
    page.evaluate(AXE.read_text(encoding="utf-8"))  # through the debugger protocol: the pages' CSP stays on
    result = page.evaluate("""async () => {
        const r = await axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21aa']}});
        return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                       nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}));
    }""")
    return [v for v in result if v["impact"] in ("serious", "critical")]


def shot(page, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def dump(obj) -> str:
    return json.dumps(obj, ensure_ascii=False, indent=1)


def settle_at(url: str, psn_no: str, fixmedins_code: str) -> str:
    """One line settled at ``fixmedins_code``; its setl_id."""
    return settle_directly(url, psn_no, [("K1", "X00001", "01", "15.00")], fixmedins_code)["setl_id"]


def settle_directly(url: str, psn_no: str, lines: list[tuple[str, str, str, str]],
                    fixmedins_code: str = sample.HOSPITAL) -> dict:
    """A visit of 2024 settled through the service's own transactions (as the API would): its setlinfo."""
    from datetime import datetime

    from yibao.service import transactions as tx
    from yibao.service.auth import Principal
    from yibao.service.packs import PackSet
    from yibao.service.rest import FeeLineIn

    who, packs, engine = Principal("clerk", "clerk"), PackSet.load(), make_engine(url)
    at = datetime(2024, 6, 3, 9, 0)
    ctx = tx.Context(request_id="", opter="clerk", at=at)
    items = [FeeLineIn(feedetl_sn=sn, med_list_codg=code, chrgitm_lv=lv, det_item_fee_sumamt=amount, pric=amount,
                       cnt="1") for sn, code, lv, amount in lines]
    with Session(engine) as s, s.begin():
        enrol = tx.person_info(s, who, psn_no=psn_no, on=at.date())["insuinfo"][0]["insutype"]
        visit = tx.register_visit(s, who, ctx, fixmedins_code=fixmedins_code, psn_no=psn_no, insutype=enrol,
                                  med_type="11", begntime=at)
        tx.upload_items(s, who, ctx, packs, mdtrt_id=visit["mdtrt_id"], items=items)
        out = tx.settle(s, who, ctx, packs, mdtrt_id=visit["mdtrt_id"])
    engine.dispose()
    return {k: str(v) for k, v in out["setlinfo"].items()}


def audit_count(url: str) -> int:
    from sqlalchemy import func, select

    from yibao.store.models import AuditLog

    engine = make_engine(url)
    with Session(engine) as s:
        n = s.scalar(select(func.count()).select_from(AuditLog))
    engine.dispose()
    return n


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium for one test module (imported by the web test modules as a fixture)."""
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def new_page(browser, base: str | None = None, user: str | None = None, width: int = 1366, height: int = 768):
    """(context, page) at the given viewport, logged in as ``user`` when given; the caller closes the context."""
    ctx = browser.new_context(viewport={"width": width, "height": height}, locale="zh-CN")
    pg = ctx.new_page()
    pg.set_default_timeout(15000)
    if user is not None:
        login(pg, base, user)
    return ctx, pg


@pytest.fixture
def page(browser):
    ctx, pg = new_page(browser)
    yield pg
    ctx.close()


def accessible(page) -> None:
    """No serious or critical axe-core violation on the page."""
    found = axe_violations(page)
    assert found == [], dump(found)
