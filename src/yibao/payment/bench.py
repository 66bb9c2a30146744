"""``yibao bench dip``: DIP catalog build + settlement of N cases on DuckDB, against a plain
Python (dict) implementation of the same build and points on a sample.

Cases are generated with NumPy (two years, ~30 institutions per 10,000 cases, 400 diagnosis ×
operation combinations with a long tail so comprehensive groups exist), written as a cases
Parquet file, then read, normalised, grouped, scored and settled by the real code path.
"""

from __future__ import annotations

import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from yibao.policy.loader import resolve_pack


def generate(n: int, path: Path, seed: int = 7) -> Path:
    rng = np.random.default_rng(seed)
    combos = 400
    weights = 1.0 / np.arange(1, combos + 1) ** 1.2
    combo = rng.choice(combos, n, p=weights / weights.sum())
    letters = np.array(list("ACEIJKMNS"))
    dise = np.char.add(np.char.add(letters[combo % 9], np.char.zfill((combo // 9 % 90 + 10).astype(str), 2)),
                       np.char.add(".", np.char.zfill((combo % 7 * 100).astype(str), 3)))
    has_op = combo % 3 == 0
    oprn = np.where(has_op, np.char.add(np.char.zfill((combo % 86 + 1).astype(str), 2), ".0100"), "")
    level = rng.choice(np.array(["1", "2", "3"]), n, p=[0.3, 0.45, 0.25])
    inst = np.char.add("H", np.char.zfill(rng.integers(0, max(3, n // 300), n).astype(str), 6))
    base = 300_000 + (combo % 37) * 40_000
    cost = (base * rng.lognormal(0, 0.45, n) * np.where(level == "3", 1.4, np.where(level == "1", 0.6, 1.0))).astype(np.int64)
    cost = np.maximum(cost, 1000) // 100 * 100  # whole yuan, in fen
    hifp = (cost // 100 * 6 // 10) * 100
    year = np.where(np.arange(n) < n // 2, 2023, 2024)
    month = rng.integers(1, 13, n)
    times = (np.char.add(np.char.add(year.astype(str), "-"), np.char.zfill(month.astype(str), 2))).astype("datetime64[M]")
    table = pa.table({
        "mdtrt_id": pa.array(np.char.add("V", np.char.zfill(np.arange(n).astype(str), 9))),
        "psn_no": pa.array(np.char.add("P", np.char.zfill(rng.integers(0, n, n).astype(str), 9))),
        "insutype": pa.array(np.full(n, "390")), "fixmedins_code": pa.array(inst), "level": pa.array(level),
        "dise_codg": pa.array(dise), "oprn_oprt_code": pa.array(oprn),
        # whole yuan as integers (the cases schema accepts integer yuan)
        "medfee_sumamt": cost // 100, "hifp_pay": hifp // 100, "fund_pay_sumamt": hifp // 100,
        "psn_part_amt": cost // 100 - hifp // 100,
        "setl_time": pa.array(times.astype("datetime64[ms]")),
    })
    pq.write_table(table, path)
    return path


def naive(rows: list[tuple], min_cases: int, scale: int) -> dict[str, int]:
    """The obvious implementation: dicts and Python loops (history rows, then period rows)."""
    counts: dict = defaultdict(int)
    for dise, oprn, _lv, _cost, _y in rows:
        counts[(dise, oprn)] += 1
    sums: dict = defaultdict(lambda: [0, 0])
    for dise, oprn, _lv, cost, year in rows:
        if year != 2023:
            continue
        key = (dise, oprn) if counts[(dise, oprn)] >= min_cases else (dise[:3], bool(oprn))
        sums[key][0] += cost
        sums[key][1] += 1
    total = sum(s for s, _ in sums.values())
    n = sum(c for _, c in sums.values())
    avg_all = total / n
    score = {k: s / c / avg_all * scale for k, (s, c) in sums.items()}
    points = {}
    for i, (dise, oprn, _lv, cost, year) in enumerate(rows):
        if year != 2024:
            continue
        key = (dise, oprn) if counts[(dise, oprn)] >= min_cases else (dise[:3], bool(oprn))
        if key in score:
            avg = sums[key][0] / sums[key][1]
            r = cost / avg
            points[i] = (r - 1) * score[key] if r > 2 else r * score[key] if r < 0.5 else score[key]
    return points


def run(cases: int, naive_sample: int) -> dict:
    from yibao.payment.run import build_catalog, settle_period

    pack = resolve_pack("shandong-2024")
    with tempfile.TemporaryDirectory(prefix="yibao-bench-dip-") as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        path = generate(cases, root / "cases.parquet")
        gen = time.perf_counter() - t
        t = time.perf_counter()
        manifest = build_catalog(pack, "dip", root / "catalog", {2023: 1}, cases=path)
        build = time.perf_counter() - t
        t = time.perf_counter()
        result = settle_period(pack, "dip", root / "catalog", "2024", root / "out", cases=path)
        settle = time.perf_counter() - t
        sample = pq.read_table(path).slice(0, naive_sample).to_pylist()
        rows = [(r["dise_codg"], r["oprn_oprt_code"], r["level"], int(r["medfee_sumamt"] * 100), r["setl_time"].year)
                for r in sample]
        t = time.perf_counter()
        naive(rows, 15, 1000)
        naive_s = time.perf_counter() - t
    return {"cases": cases, "generate_s": gen, "build_s": build, "settle_s": settle,
            "groups": manifest["groups"], "settled": result.counts["settled"],
            "excluded": result.counts["excluded"], "naive_cases": len(rows), "naive_s": naive_s,
            "point_value": str(result.summary()["settlement_point_value"])}


def format_report(r: dict) -> str:
    total = r["build_s"] + r["settle_s"]
    naive_rate = r["naive_cases"] / r["naive_s"] if r["naive_s"] else float("inf")
    return "\n".join([
        f"DIP 建目录 + 结算 (DuckDB): {r['cases']:,} 例 (生成数据 {r['generate_s']:.1f} s 不计入)",
        f"  建目录 build: {r['build_s']:.2f} s ({r['groups']:,} 组)   结算 settle: {r['settle_s']:.2f} s "
        f"(结算 {r['settled']:,} 例, 排除 {r['excluded']:,}; 含写出报告)",
        f"  合计 {total:.2f} s = {r['cases'] / total:,.0f} 例/秒 cases/s; 结算点值 {r['point_value']} 元/分",
        f"朴素 Python(dict, 浮点, 不写报告) naive Python on {r['naive_cases']:,} cases: {r['naive_s']:.2f} s "
        f"= {naive_rate:,.0f} 例/秒",
        "注: 朴素实现只做分组/分值/偏差(无排除检查、无精确整数、无点值分配与报告), 是下限而非对等实现。",
    ])
