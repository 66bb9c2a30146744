"""``yibao bench dip``: DIP catalog build + settlement of N cases on DuckDB, against a plain
Python (dict, exact integers) implementation of the same build and points on the same cases.

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

from yibao.money import rate_parts
from yibao.payment.cases import OPERATION_RANGES
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


def naive(rows: list[tuple], params, history: int, period: int) -> dict[str, int]:
    """The obvious implementation, like for like: dicts and loops over already-normalised rows
    ``(mdtrt_id, dise_codg, oprn_combo, level, cost_fen, year)``, exact integers and the same
    half-up rounding, so its points × 10⁴ must equal the engine's case by case.

    It builds the catalog from the ``history`` year (groups, averages, scores, level averages,
    level coefficients), then scores the ``period`` cases (group lookup, deviation, points).
    """
    def rdiv(n: int, d: int) -> int:
        return (2 * n + d) // (2 * d)

    sp, sq = rate_parts(params.scale)
    hp, hq = rate_parts(params.high_multiple)
    lp, lq = rate_parts(params.low_fraction)
    op_types: dict[str, int] = {}

    def op_type(combo: str) -> int:
        if combo not in op_types:
            best = 0
            for code in filter(None, combo.split("+")):
                head = int(code[:2])
                best = max([best] + [t for a, b, t in OPERATION_RANGES if a <= head <= b])
            op_types[combo] = best
        return op_types[combo]

    counts: dict = defaultdict(int)
    for _id, dise, combo, _lv, _cost, year in rows:
        if year == history:
            counts[(dise, combo)] += 1
    core = {key for key, n in counts.items() if n >= params.min_cases}

    def group_of(dise: str, combo: str) -> str:
        if (dise, combo) in core:
            return f"{dise}|{combo or '-'}"
        return f"ZH|{dise[:3]}|{op_type(combo)}"

    sums: dict = defaultdict(lambda: [0, 0])
    level_sums: dict = defaultdict(lambda: [0, 0])
    hist_cases = []
    for _id, dise, combo, level, cost, year in rows:
        if year == history:
            g = group_of(dise, combo)
            hist_cases.append((g, level, cost))
            sums[g][0] += cost
            sums[g][1] += 1
            level_sums[(g, level)][0] += cost
            level_sums[(g, level)][1] += 1
    avg = {g: rdiv(c, n) for g, (c, n) in sums.items()}
    avg_all = rdiv(sum(c for c, _ in sums.values()), sum(n for _, n in sums.values()))
    score = {g: rdiv(a * sp * 10000, avg_all * sq) for g, a in avg.items()}
    level_avg = {k: rdiv(c, n) for k, (c, n) in level_sums.items()}
    mix: dict = defaultdict(lambda: [0, 0])
    for g, level, cost in hist_cases:
        mix[level][0] += cost
        mix[level][1] += avg[g]
    coeff = {lv: rdiv(c * 10000, a) if params.level_coefficients else 10000 for lv, (c, a) in mix.items()}

    points = {}
    for mdtrt_id, dise, combo, level, cost, year in rows:
        if year != period:
            continue
        g = group_of(dise, combo)
        if g not in score or level not in coeff:
            continue  # PAY030 / PAY031
        ref = level_avg.get((g, level), avg[g])
        if cost * hq > hp * ref:
            points[mdtrt_id] = rdiv((hq * cost - (hp - hq) * ref) * score[g], hq * ref)
        elif cost * lq < lp * ref:
            points[mdtrt_id] = rdiv(cost * score[g], ref)
        else:
            points[mdtrt_id] = rdiv(score[g] * coeff[level], 10000)
    return points


def _rows(con) -> list[tuple]:
    """The normalised cases as Python tuples (the naive implementation's input; not timed)."""
    t = con.sql("SELECT mdtrt_id, dise_codg, oprn_combo, level, cost, year FROM cases_all "
                "WHERE reason IS NULL OR reason IN ('PAY030', 'PAY031')").to_arrow_table()
    return list(zip(*(t.column(i).to_pylist() for i in range(t.num_columns))))


def _engine(pack, path: Path, root: Path, out: bool) -> tuple[dict, dict, object, object]:
    """Read+validate, build, settle (and reports when ``out``) on one connection: per-phase seconds."""
    from yibao.payment.run import build_catalog, connect, open_cases, settle_period

    con = connect()
    t = time.perf_counter()
    open_cases(con, pack, "dip", cases=path)
    read = time.perf_counter() - t
    manifest = build_catalog(pack, "dip", root / "catalog", {HISTORY: 1}, con=con, loaded=True)
    result = settle_period(pack, "dip", root / "catalog", str(PERIOD), root / "out" if out else None,
                           con=con, loaded=True)
    phases = {"read": read, "build": manifest["timings"]["build"] + manifest["timings"]["write"],
              "points": result.timings["points"], "point_value": result.timings["point_value"],
              "reports": result.timings["write"] if out else 0.0}
    return phases, manifest, result, con


HISTORY, PERIOD = 2023, 2024


def run(cases: int, naive_sample: int = 0) -> dict:
    """The engine on ``cases`` cases, phase by phase, and the naive implementation on the same cases
    (or on a strided sample of ``naive_sample``, where the engine's build + points run again on the
    sample, so both always score the same cases); asserts both give the same points."""
    from yibao.payment.run import params_of

    pack = resolve_pack("shandong-2024")
    params = params_of(pack, "dip")
    with tempfile.TemporaryDirectory(prefix="yibao-bench-dip-") as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        path = generate(cases, root / "cases.parquet")
        gen = time.perf_counter() - t
        phases, manifest, result, con = _engine(pack, path, root / "full", out=True)
        if naive_sample and naive_sample < cases:
            table = pq.read_table(path)
            pq.write_table(table.take(np.arange(0, cases, cases // naive_sample)[:naive_sample]),
                           root / "sample.parquet")
            sample_phases, _m, _r, con = _engine(pack, root / "sample.parquet", root / "sample", out=False)
        else:
            sample_phases = phases
        sampled = sample_phases is not phases
        rows = _rows(con)
        engine_points = dict(con.sql("SELECT mdtrt_id, points_e4 FROM points").fetchall())
        t = time.perf_counter()
        naive_points = naive(rows, params, HISTORY, PERIOD)
        naive_s = time.perf_counter() - t
    assert naive_points == engine_points, "朴素实现与 DuckDB 的病例分值不一致 naive and engine points differ"
    return {"cases": cases, "generate_s": gen, "phases": phases, "groups": manifest["groups"],
            "settled": result.counts["settled"], "excluded": result.counts["excluded"],
            "point_value": str(result.summary()["settlement_point_value"]),
            "sample": len(rows), "sample_engine_s": sample_phases["build"] + sample_phases["points"],
            "naive_s": naive_s, "agree": len(naive_points), "sampled": sampled}


def format_report(r: dict) -> str:
    p = r["phases"]
    total = sum(p.values())
    core = p["build"] + p["points"]
    n, s = r["cases"], r["sample"]
    engine_rate = s / r["sample_engine_s"] if r["sample_engine_s"] else float("inf")
    naive_rate = s / r["naive_s"] if r["naive_s"] else float("inf")
    lines = [
        f"DIP 建目录 + 结算 (DuckDB): {n:,} 例, {r['groups']:,} 组, 结算 {r['settled']:,} 例, 排除 {r['excluded']:,}; "
        f"结算点值 {r['point_value']} 元/分 (生成数据 {r['generate_s']:.1f} s 不计入)",
        f"  读入与校验 read+validate  {p['read']:6.2f} s",
        f"  建目录 build (含写目录)     {p['build']:6.2f} s",
        f"  入组与分值 grouping+points {p['points']:6.2f} s",
        f"  点值与拨付 point value     {p['point_value']:6.2f} s",
        f"  写报告 reports             {p['reports']:6.2f} s",
        f"  合计 total {total:.2f} s = {n / total:,.0f} 例/秒 cases/s; "
        f"建目录+分值 build+points {core:.2f} s = {n / core:,.0f} 例/秒",
        f"对照 build+points on {s:,} 例 ({'抽样 strided sample' if r['sampled'] else '全部 all cases'}):",
        f"  DuckDB {r['sample_engine_s']:.2f} s = {engine_rate:,.0f} 例/秒; "
        f"朴素 Python(dict, 精确整数) naive {r['naive_s']:.2f} s = {naive_rate:,.0f} 例/秒; "
        f"DuckDB / naive = {engine_rate / naive_rate:.1f}×",
        f"  两者病例分值一致 points agree on all {r['agree']:,} settled cases",
    ]
    return "\n".join(lines)
