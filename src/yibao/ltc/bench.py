"""``yibao bench ltc``: person-months settled per second, against the obvious per-person query loop.

A synthetic region is generated in a temporary folder; the same records are then settled twice:
(1) as ``yibao ltc settle`` does — DuckDB reads and checks each file once, and every person-month
goes through :func:`yibao.ltc.settle.settle_month`; (2) as a port from a transactional system
would — one query for each person's assessments and one for each person-month's records. Both
must pay the same to the fen; the figures are printed, never asserted.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import duckdb
from rich.console import Console

from yibao.ltc.batch import load, settle_region
from yibao.ltc.settle import CarePerson, CareRecord, LevelSpan, settle_month
from yibao.ltc.synth import generate, write
from yibao.policy.loader import resolve_pack
from yibao.synth.region import generate_to


def per_person_queries(con: duckdb.DuckDBPyConnection, ltc, keys) -> int:
    """The obvious alternative: a query per person and per person-month."""
    fund = 0
    people: dict[str, CarePerson] = {}
    for psn, month in keys:
        if psn not in people:
            spans = tuple(LevelSpan(lv, b, e) for lv, b, e in con.execute(
                'SELECT level, CAST(begin AS DATE), CAST("end" AS DATE) FROM ltc_assessments WHERE psn_no = ? '
                'ORDER BY CAST(begin AS DATE)', [psn]).fetchall())
            insutype, since, death = con.execute(
                "SELECT insutype, CAST(enrolled_since AS DATE), CAST(death_date AS DATE) FROM ltc_persons WHERE psn_no = ?",
                [psn]).fetchone()
            people[psn] = CarePerson(psn, insutype, spans, since, death)
        recs = [CareRecord(sid, d, mode, item, fen, days) for sid, d, mode, item, fen, days in con.execute(
            """SELECT srv_id, CAST(srv_date AS DATE), mode, item_class, CAST(CAST(amount AS DECIMAL(18,2)) * 100 AS BIGINT),
               CAST(days AS INTEGER) FROM ltc_records WHERE psn_no = ? AND strftime(CAST(srv_date AS DATE), '%Y-%m') = ?
               ORDER BY CAST(srv_date AS DATE), srv_id""", [psn, month]).fetchall()]
        fund += settle_month(ltc, people[psn], month, recs).fund_pay
    return fund


def run(persons: int = 20000, console: Console | None = None) -> dict:
    console = console or Console()
    pack = resolve_pack("shandong-2024")
    with tempfile.TemporaryDirectory() as tmp:
        region = Path(tmp)
        generate_to(pack, region, persons=persons, seed=3)
        write(generate(pack, region, seed=3), region)
        t = time.perf_counter()
        con = duckdb.connect()
        data = load(con, region)
        settled, hits = settle_region(pack.ltc, data)
        ours = time.perf_counter() - t
        fund = sum(s.fund_pay for s in settled)
        t = time.perf_counter()
        naive_fund = per_person_queries(con, pack.ltc, list(data.records))
        naive = time.perf_counter() - t
    n = len(settled)
    records = sum(len(v) for v in data.records.values())
    console.print(f"长护结算 LTC settlement: {persons:,} 人地区, {n:,} 个人月, {records:,} 条护理记录 ({os.cpu_count()} 核)")
    console.print(f"  yibao ltc settle (DuckDB 一次读入 + 逐人月结算): {ours:.2f} s = {n / ours:,.0f} 人月/秒")
    console.print(f"  对照 逐人查询 per-person queries:            {naive:.2f} s = {n / naive:,.0f} 人月/秒")
    console.print(f"  快 {naive / ours:.1f} 倍; 基金支付两者{'相同' if fund == naive_fund else '不同!'} ({fund / 100:,.2f} 元)")
    return {"person_months": n, "seconds": ours, "naive_seconds": naive, "same": fund == naive_fund}
