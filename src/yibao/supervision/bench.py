"""``yibao bench audit``: the whole library over N fee lines, per-rule times, online p50/p99,
and the obvious alternative (a per-row Python loop for one rule) on a sample."""

from __future__ import annotations

import tempfile
import time

import numpy as np
from yibao.console import out


def run_bench(lines: int, online_visits: int, seed: int) -> None:
    from rich.table import Table

    from yibao.policy.loader import resolve_pack
    from yibao.supervision import audit as A
    from yibao.synth.fraud import add_supervision_columns, inject_fraud, write_supervised
    from yibao.supervision.ruleset import load_ruleset

    persons = max(2000, lines // 22)
    t = time.perf_counter()
    from yibao.synth import generate

    tables = add_supervision_columns(generate(resolve_pack("shandong-2024"), persons, seed), seed)
    tables, labels = inject_fraud(tables, 0.001, seed)
    gen = time.perf_counter() - t
    rs = load_ruleset()
    with tempfile.TemporaryDirectory() as d:
        write_supervised(tables, d, labels)
        t = time.perf_counter()
        run = A.open_claims(d)
        A.run_rules(run, rs)
        total = time.perf_counter() - t
        n_hits = run.con.sql("SELECT COUNT(*) FROM hits").fetchone()[0]
        t = time.perf_counter()
        A.summaries(run)
        summary = time.perf_counter() - t
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2  # KiB → GiB (Linux)
    out.print(f"合成 {persons:,} 人 ({gen:.1f} 秒); 审核 {run.visits:,} 次就诊, {run.items:,} 行明细, "
              f"{len(rs.rules)} 条规则: [bold]{total:.2f} 秒[/] ({run.items / total:,.0f} 行/秒), {n_hits:,} 条疑点; "
              f"另汇总与同级离群分 {summary:.2f} 秒; 进程峰值内存 {peak:.1f} GiB")
    tab = Table("步骤/规则", "秒")
    for k, v in sorted(run.timings.items(), key=lambda kv: -kv[1]):
        tab.add_row(k, f"{v:.3f}")
    out.print(tab)

    if online_visits > 0:
        _online(tables, run, persons, online_visits, seed)
    else:
        out.print("联机预审核: 未测(--online 0)")
    _alternative(tables, run, rs)


def _online(tables, run, persons: int, online_visits: int, seed: int) -> None:
    """Many single visits pre-checked with the person's history, as a server would."""
    from yibao.supervision.online import Baselines, precheck

    visits = tables["visits"].to_pylist()
    persons_by = {p["psn_no"]: p for p in tables["persons"].slice(0, persons).to_pylist()}
    insts = {i["fixmedins_code"]: i for i in tables["institutions"].to_pylist()}
    items_by: dict[str, list] = {}
    sample_ids = set(v["mdtrt_id"] for v in visits[: min(len(visits), 200_000)])
    for it in tables["fee_items"].to_pylist() if len(visits) < 300_000 else []:
        if it["mdtrt_id"] in sample_ids:
            items_by.setdefault(it["mdtrt_id"], []).append(it)
    by_person: dict[str, list] = {}
    for v in visits:
        if v["mdtrt_id"] in items_by:
            by_person.setdefault(v["psn_no"], []).append(v)
    rng = np.random.default_rng(seed)
    chosen = [v for v in visits if v["mdtrt_id"] in items_by and v["psn_no"] in persons_by]
    chosen = [chosen[i] for i in rng.choice(len(chosen), size=min(online_visits, len(chosen)), replace=False)]
    times = []
    learned = Baselines(run.baselines) if run.baselines is not None else None  # what batch learned, as a server holds it
    for v in chosen:
        hist = sorted((h for h in by_person[v["psn_no"]] if h["begntime"] < v["begntime"]),
                      key=lambda h: h["begntime"], reverse=True)
        history = [(h, items_by.get(h["mdtrt_id"], [])) for h in hist]
        t = time.perf_counter()
        precheck(persons_by[v["psn_no"]], insts[v["fixmedins_code"]], v, items_by[v["mdtrt_id"]], history,
                 baselines=learned, history_institutions=[insts[h["fixmedins_code"]] for h in hist])
        times.append(time.perf_counter() - t)
    if times:
        ms = np.array(times[5:] or times) * 1000
        out.print(f"联机预审核 online pre-check ({len(times)} 次就诊, 含历史): p50 {np.percentile(ms, 50):.2f} ms, "
                  f"p99 {np.percentile(ms, 99):.2f} ms")


def _alternative(tables, run, rs) -> None:
    """The obvious alternative: one rule as a per-row Python loop over the lines."""
    gend_rule = rs.by_id()["SV-GEND-01"]
    allowed = {i.code: i.gend for i in gend_rule.params.items}
    sample = min(1_000_000, tables["fee_items"].num_rows)
    rows = tables["fee_items"].slice(0, sample).select(["feedetl_sn", "mdtrt_id", "med_list_codg"]).to_pylist()
    vpsn = dict(zip(tables["visits"].column("mdtrt_id").to_pylist(), tables["visits"].column("psn_no").to_pylist()))
    gend = dict(zip(tables["persons"].column("psn_no").to_pylist(), tables["persons"].column("gend").to_pylist()))
    t = time.perf_counter()
    naive = [r["feedetl_sn"] for r in rows if r["med_list_codg"] in allowed
             and gend[vpsn[r["mdtrt_id"]]] != allowed[r["med_list_codg"]]]
    loop = time.perf_counter() - t
    sql = run.timings["SV-GEND-01"] * sample / max(run.items, 1)
    out.print(f"对照: SV-GEND-01 逐行 Python 循环 {sample:,} 行 {loop:.3f} 秒 (不含读入与建索引), "
              f"SQL 按比例 {sql:.3f} 秒; 命中 {len(naive)}")
