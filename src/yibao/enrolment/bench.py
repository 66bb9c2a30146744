"""``yibao bench enrol``: a category list of N rows imported in bulk, against the same rows recorded one
transaction-function call at a time; and the as-of lookup of a person's facts, p50/p99.

The persons the list names are put into the store first by a bulk insert (a benchmark fixture, not
a registry path: :func:`yibao.service.registry.add_person` at a million rows would be the benchmark).
Figures are printed, never asserted.
"""

from __future__ import annotations

import tempfile
import time
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
from sqlalchemy.orm import Session

from yibao.enrolment import importer
from yibao.enrolment import registry as er
from yibao.enrolment.models import EnrolmentFact
from yibao.service.auth import Principal
from yibao.service.transactions import Context
from yibao.store.database import make_engine
from yibao.store.migrate import upgrade
from yibao.store.models import Person
from yibao import privacy
from yibao.store import keys
from yibao.synth.ids import certnos, fixed_ids
from yibao.console import out

CATS = ["tekun", "dibao", "dibao_edge", "fanpin", "monitor"]


def _persons(n: int) -> pa.Table:
    i = np.arange(n, dtype=np.int64)
    return pa.table({"psn_no": fixed_ids("B", i + 1, 9),
                     "certno": certnos(np.full(n, 370102), np.datetime64("1950-01-01") + i // 1000, i % 1000)})


def _seed(engine, persons: pa.Table) -> None:
    now = datetime.now().replace(microsecond=0)
    with Session(engine) as s, s.begin():
        conn = s.connection()
        psn, cert = persons.column("psn_no").to_pylist(), persons.column("certno").to_pylist()
        ring = keys.load()  # the registry stores certno encrypted and indexed (yibao.privacy): so does the seed
        secret = ring.certno[ring.certno_active]
        importer._bulk_insert(conn, Person.__table__, {
            "psn_no": persons.column("psn_no"),
            "certno_enc": pa.array([privacy.encrypt_certno(c, p) for c, p in zip(cert, psn)], pa.string()),
            "certno_bidx": pa.array([privacy.certno_index(c, secret) for c in cert], pa.string())},
                              {"psn_cert_type": "01", "psn_name": "基准", "gend": "1", "brdy": date(1950, 1, 1),
                               "retiree": False,
                               "admdvs": "370102", "hh_no": None, "acct_balc_fen": 0})
        importer._bulk_insert(conn, EnrolmentFact.__table__, {"psn_no": persons.column("psn_no")},
                              {"insutype": "390", "eff_date": date(2024, 1, 1), "status": "1", "admdvs": "370102",
                               "kind": "register", "reason": "基准", "psn_type": "1401", "carried_months": 0,
                               "recorded_at": now, "recorded_by": "bench", "request_id": ""})


def run(rows: int, naive_rows: int, lookups: int, url: str | None = None) -> None:

    tmp = tempfile.TemporaryDirectory(prefix="yibao-bench-enrol-")
    target = url or f"sqlite:///{Path(tmp.name) / 'bench.db'}"
    upgrade(target)
    engine = make_engine(target)
    who = Principal("bench", "clerk")
    ctx = Context("bench", "bench", datetime.now().replace(microsecond=0))
    total = rows + naive_rows
    t0 = time.perf_counter()
    persons = _persons(total)
    _seed(engine, persons)
    out.print(f"准备: {total:,} 名参保人(批量写入, 基准夹具) {time.perf_counter() - t0:.1f} s · {engine.dialect.name}")

    rng = np.random.default_rng(7)
    listed = persons.slice(0, rows)
    path = Path(tmp.name) / "list.csv"
    table = pa.table({"证件号码": listed.column("certno"),
                      "类别": pa.array(np.array(CATS)[rng.integers(0, len(CATS), rows)]),
                      "有效期起": pa.array(["2024-01-01"] * rows), "有效期止": pa.array(["2024-12-31"] * rows)})
    pacsv.write_csv(table, path)

    t0 = time.perf_counter()
    with Session(engine) as s, s.begin():
        r = importer.import_categories(s, who, ctx, path, dept="民政", known=CATS)
    bulk = time.perf_counter() - t0
    parts = " · ".join(f"{k} {v:.1f} s" for k, v in r.timings.items())
    out.print(f"批量导入 {rows:,} 行: {bulk:.1f} s ({rows / bulk:,.0f} 行/秒; {parts}; 含提交)")

    naive = persons.slice(rows, naive_rows).column("psn_no").to_pylist()
    t0 = time.perf_counter()
    with Session(engine) as s, s.begin():
        for i, psn_no in enumerate(naive):
            er.record_category(s, who, ctx, psn_no=psn_no, category=CATS[i % len(CATS)], action="grant",
                               valid_from=date(2024, 1, 1), valid_to=date(2024, 12, 31), dept="民政", known=CATS)
    slow = time.perf_counter() - t0
    rate = naive_rows / slow if slow else float("inf")
    out.print(f"逐行办理 {naive_rows:,} 行(对照组, 每行一次 record_category): {slow:.1f} s ({rate:,.0f} 行/秒); "
              f"按此速度 {rows:,} 行约 {rows / rate:,.0f} s, 为批量的 {rows / rate / bulk:,.1f} 倍")

    picks = rng.integers(0, total, lookups)
    ids = persons.column("psn_no").to_pylist()
    on = date(2024, 6, 30)
    times = np.empty(lookups)
    with Session(engine) as s:
        for k, j in enumerate(picks):
            t = time.perf_counter()
            er.as_of(s, ids[j], on)
            times[k] = time.perf_counter() - t
    ms = times * 1000
    out.print(f"as-of 查询 {lookups:,} 次(参保事实 + 类别事实, 折叠): p50 {np.percentile(ms, 50):.3f} ms · "
              f"p99 {np.percentile(ms, 99):.3f} ms · max {ms.max():.3f} ms")
    engine.dispose()
    tmp.cleanup()
