"""``yibao bench enrol``: a category list of N rows imported in bulk, against the same rows recorded one
transaction-function call at a time; the same list as .xlsx (read by fastexcel) against the openpyxl cell-by-cell
reader it replaced; and the as-of lookup of a person's facts, p50/p99.

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
from yibao.enrolment.asof import retiree_on
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


def _write_xlsx(table: pa.Table, path: Path) -> None:
    """The list as an Excel file the way a department's export looks: text ID numbers, date cells."""
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    ws = wb.create_sheet()
    ws.append(table.column_names)
    days = {t: date.fromisoformat(t) for t in ("2024-01-01", "2024-12-31")}
    for cert, cat, vf, vt in zip(*(c.to_pylist() for c in table.columns)):
        ws.append([cert, cat, days[vf], days[vt]])
    wb.save(path)


def openpyxl_table(path: Path, max_rows: int) -> pa.Table:
    """The obvious alternative (the reader before fastexcel): openpyxl read-only, one Python value per cell."""
    from openpyxl import load_workbook

    wb = load_workbook(path, read_only=True, data_only=True)
    rows = wb.active.iter_rows(values_only=True, max_row=max_rows + 1)
    header = [str(h or "").strip() for h in next(rows)]
    cols: list[list] = [[] for _ in header]
    for r in rows:
        for i in range(len(header)):
            v = r[i] if i < len(r) else None
            cols[i].append(None if v is None else (v.date().isoformat() if isinstance(v, datetime)
                                                   else v.isoformat() if isinstance(v, date) else str(v)))
    wb.close()
    return pa.table({h: pa.array(c, pa.string()) for h, c in zip(header, cols)})


def run(rows: int, naive_rows: int, lookups: int, url: str | None = None, excel: bool = True,
        naive_excel_rows: int = 100_000) -> None:

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

    if excel:  # the same list as .xlsx, imported and rolled back: the CSV import below starts from the same state
        xlsx = Path(tmp.name) / "list.xlsx"
        t0 = time.perf_counter()
        _write_xlsx(table, xlsx)
        out.print(f"准备: 同一名单写成 Excel {xlsx.stat().st_size / 1e6:.1f} MB(openpyxl 流式写, 日期为日期单元格) "
                  f"{time.perf_counter() - t0:.1f} s")
        t0 = time.perf_counter()
        with Session(engine) as s:
            s.begin()
            r = importer.import_categories(s, who, ctx, xlsx, dept="民政", known=CATS)
            xl = time.perf_counter() - t0
            s.rollback()
        parts = " · ".join(f"{k} {v:.1f} s" for k, v in r.timings.items())
        out.print(f"批量导入 Excel {rows:,} 行: {xl:.1f} s 不含提交 ({rows / xl:,.0f} 行/秒; {parts}); 随后回滚")
        k = min(naive_excel_rows, rows)
        t0 = time.perf_counter()
        got = openpyxl_table(xlsx, k)
        old = time.perf_counter() - t0
        assert got.num_rows == k
        per = old / k if k else 0.0
        out.print(f"对照组: openpyxl 逐格读取(原读法)前 {k:,} 行 {old:.1f} s, 按此速度读 {rows:,} 行约 {per * rows:,.0f} s; "
                  f"fastexcel 读全部 {rows:,} 行 {r.timings['read']:.1f} s"
                  + (f", 快 {per * rows / r.timings['read']:,.0f} 倍" if r.timings["read"] else ""))

    t0 = time.perf_counter()
    with Session(engine) as s:
        s.begin()
        r = importer.import_categories(s, who, ctx, path, dept="民政", known=CATS)
        before_commit = time.perf_counter() - t0
        s.commit()
    bulk = time.perf_counter() - t0
    parts = " · ".join(f"{k} {v:.1f} s" for k, v in r.timings.items())
    out.print(f"批量导入 CSV {rows:,} 行: {bulk:.1f} s 含提交 {bulk - before_commit:.1f} s ({rows / bulk:,.0f} 行/秒; {parts})")

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
    with Session(engine) as s:  # what 2206/2207 itself reads of the facts: 退休 on the visit's date
        for k, j in enumerate(picks):
            t = time.perf_counter()
            retiree_on(s, ids[j], "390", on, False)
            times[k] = time.perf_counter() - t
    ms = times * 1000
    out.print(f"结算所用 as-of 读取 {lookups:,} 次(retiree_on: 就诊日的参保事实折叠): p50 {np.percentile(ms, 50):.3f} ms · "
              f"p99 {np.percentile(ms, 99):.3f} ms · max {ms.max():.3f} ms")
    engine.dispose()
    tmp.cleanup()
