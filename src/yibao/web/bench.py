"""``yibao bench web``: server time of each page at a region's size, beside the JSON API's answer for
the same record (the obvious alternative: what rendering the page costs over reading the data).

In-process (Starlette's test client: no network, no browser), over a temporary SQLite store seeded
with ``persons`` insured persons, ``visits`` settled visits spread over them, and the web users.
Prints the median and the 95th percentile per page; it asserts nothing.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path


def run(persons: int = 5000, visits: int = 2000, repeat: int = 30) -> list[tuple[str, float, float]]:
    from fastapi.testclient import TestClient
    from sqlalchemy.orm import Session

    from yibao.service import sample
    from yibao.service import transactions as tx
    from yibao.service.app import create_app
    from yibao.service.auth import Principal
    from yibao.service.packs import PackSet
    from yibao.service.rest import FeeLineIn
    from yibao.store.database import make_engine
    from yibao.store.migrate import upgrade
    from yibao.web.users import add_user

    tmp = Path(tempfile.mkdtemp(prefix="yibao-bench-web-"))
    url = f"sqlite:///{tmp / 'bench.db'}"
    upgrade(url)
    engine = make_engine(url)
    packs, clerk = PackSet.load(), Principal("clerk", "clerk")
    with Session(engine) as s, s.begin():
        psns = sample.seed(s, persons)
        add_user(s, "clerk1", "bench-password-1", "clerk")
        add_user(s, "insured1", "bench-password-1", "insured", psn_no=psns[0])
        add_user(s, "analyst1", "bench-password-1", "analyst")
    setl_id = ""
    for k in range(visits):
        at = datetime(sample.YEAR, 1, 2, 9) + timedelta(minutes=137 * k)
        psn = psns[0] if k % 50 == 0 else psns[k % len(psns)]
        ctx = tx.Context(request_id="", opter="clerk", at=at)
        with Session(engine) as s, s.begin():
            insutype = "310" if int(psn[1:]) % 2 == 0 else "390"
            v = tx.register_visit(s, clerk, ctx, fixmedins_code=sample.HOSPITAL, psn_no=psn, insutype=insutype,
                                  med_type="11", begntime=at)
            tx.upload_items(s, clerk, ctx, packs, mdtrt_id=v["mdtrt_id"],
                            items=[FeeLineIn(feedetl_sn=f"F{i}", med_list_codg=f"X{i:05d}", chrgitm_lv="01",
                                             pric="12.50", cnt="1", det_item_fee_sumamt="12.50") for i in range(5)])
            setl_id = tx.settle(s, clerk, ctx, packs, mdtrt_id=v["mdtrt_id"])["setlinfo"]["setl_id"]
            mdtrt_id = v["mdtrt_id"]
    from yibao.institutions import applications

    last = datetime(sample.YEAR, 1, 2, 9) + timedelta(minutes=137 * (visits - 1))
    for month in range(1, min(last.month, 11) + 1):  # the months' settlement applications the 费用拨付 page lists
        with Session(engine) as s, s.begin():
            applications.build_month(s, clerk, tx.Context("", "clerk", datetime(sample.YEAR, month + 1, 1, 9)),
                                     month=f"{sample.YEAR}-{month:02d}")
    engine.dispose()
    keys = sample.make_keys()
    app = create_app(url, keys=keys.ring)
    out: list[tuple[str, float, float]] = []
    try:
        _measure(TestClient, app, keys, out, repeat, mdtrt_id, setl_id)
    finally:
        app.state.desk.engine.dispose()
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _measure(TestClient, app, keys, out, repeat, mdtrt_id, setl_id) -> None:
    from yibao.service import sample

    with TestClient(app, base_url="https://testserver") as client:
        def login(name):
            client.cookies.clear()
            page = client.get("/web/login")
            token = page.cookies.get("yb_login") or client.cookies.get("yb_login")
            client.post("/web/login", data={"username": name, "password": "bench-password-1", "csrf": token})

        def timed(label, call):
            call()  # warm
            times = []
            for _ in range(repeat):
                t = time.perf_counter()
                r = call()
                times.append((time.perf_counter() - t) * 1000)
                assert r.status_code == 200, (label, r.status_code)
            times.sort()
            out.append((label, statistics.median(times), times[int(0.95 * (len(times) - 1))]))

        login("clerk1")
        timed("结算台 /web/desk", lambda: client.get("/web/desk"))
        timed("就诊 /web/desk/visits/{id}", lambda: client.get(f"/web/desk/visits/{mdtrt_id}"))
        timed("结算 /web/desk/settlements/{id}", lambda: client.get(f"/web/desk/settlements/{setl_id}"))
        api = {"Authorization": f"Bearer {keys.keys['clerk']}"}
        timed("  对照 API /api/v1/settlements/{id}", lambda: client.get(f"/api/v1/settlements/{setl_id}", headers=api))
        timed("政策包 /web/packs/shandong-2024", lambda: client.get("/web/packs/shandong-2024"))
        timed("两定机构 /web/institutions", lambda: client.get("/web/institutions"))
        timed("费用拨付 /web/institutions/payments", lambda: client.get("/web/institutions/payments"))
        login("insured1")
        timed("我的医保 /web/me", lambda: client.get(f"/web/me?year={sample.YEAR}"))
