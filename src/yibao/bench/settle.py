"""``yibao bench settle``: the compiled batch kernel against the scalar engine on the same synthetic region.

Printed in one run: the kernel alone (inputs converted beforehand), the settle step from
classified amounts (join + sort + kernel) with its CPU, DuckDB's part of that step alone (joins + sort, no kernel)
and the floor it sets on this machine's cores, the same streaming the yuan tables (setlinfo.parquet,
setldetail.parquet) as ``yibao batch settle`` does, end to end from fee lines (classification, the checks
before settling, and that), the previous way of writing the yuan tables (a fen Parquet file, then DuckDB's
sorted COPY) for comparison, and the scalar engine on a sample of whole persons from the same amounts
(``ratio``). Classification and validation are printed apart too. Figures are printed, never asserted.
"""

from __future__ import annotations

import os
import resource
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq

from yibao.batch import classify as classify_kernel
from yibao.batch import kernel
from yibao.batch.inputs import COMBOS_SUPERSET
from yibao.batch.lower import lower
from yibao.batch.run import classify, open_claims, persons_in_key_order, settle, write_results
from yibao.batch.stream import (
    BATCH_ROWS,
    block_inputs,
    optional_inputs,
    ordered_batches,
    ordering_query,
    person_blocks,
    register_program,
    settle_table,
)
from yibao.policy.compiled import CompiledPack
from yibao.policy.loader import resolve_pack
from yibao.settlement.engine import settle as settle_one
from yibao.settlement.model import Accumulators, ClassifiedAmounts, Person, Visit
from yibao.synth import generate_to


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def scalar_rate(pack: CompiledPack, con, table: str, sample_visits: int) -> tuple[int, float]:
    """Settle whole persons from ``table`` (visits_in) with the scalar engine until the sample is full."""
    cats = list(pack.categories)
    cat_cols = ", ".join(f"cat_{c}" for c in cats)
    rows = con.sql(
        f"SELECT psn_no, yr, setl_time, mdtrt_id, insutype, retiree, med_type, level, dise_codg, referral_from_level,"
        f" acct_balance, fulamt, overlmt, pre, inscp{', ' + cat_cols if cats else ''} FROM {table}"
        f" WHERE psn_no IN (SELECT DISTINCT psn_no FROM {table} ORDER BY psn_no LIMIT {max(1, sample_visits // 4)})"
        f" ORDER BY psn_no, setl_time, mdtrt_id LIMIT {sample_visits}").fetchall()
    people: dict[str, list] = defaultdict(list)
    persons = {}
    for r in rows:
        psn = r[0]
        if psn not in persons:
            flags = r[15:]
            persons[psn] = Person(psn, r[4], frozenset(c for c, f in zip(cats, flags) if f), bool(r[5]))
        people[psn].append(Visit(r[3], r[6], r[7], r[2].date(), dise_codg=r[8], referral_from_level=r[9],
                                 acct_balance=r[10], amounts=ClassifiedAmounts(r[11], r[12], r[13], r[14])))
    start = time.perf_counter()
    n = 0
    for psn, visits in people.items():
        acc = Accumulators(visits[0].setl_date.year)
        for v in visits:
            acc = settle_one(pack, persons[psn], v, acc).accumulators_after
            n += 1
    return n, time.perf_counter() - start


def kernel_rate(pack: CompiledPack, con, source: str, workers: int) -> tuple[int, float]:
    """The kernel alone: the ordered input fetched and read first, then only the compiled pass timed — the call
    the stream makes (:func:`yibao.batch.stream.settle_batch`), its outputs in a :class:`kernel.OutputPool` and
    dropped after each block, as the stream drops a block once it is written; timed on the second pass over the
    blocks, when the pool's memory has been touched, as in a long stream (the in-memory settle step, which keeps
    every block in fresh memory, is timed on its own)."""
    program = register_program(con, pack, lower(pack), source)
    present = optional_inputs(con.sql(f"SELECT * FROM {source} LIMIT 0").columns)
    blocks = [block_inputs(program, b) for b in person_blocks(
        con.execute(ordering_query(program, source, present=present)).to_arrow_reader(BATCH_ROWS))]
    outputs = kernel.OutputPool.for_threads(workers)

    def settle_all() -> None:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for _ in pool.map(lambda b: kernel.run(program, b, copies=False, pool=outputs), blocks):
                pass

    settle_all()  # compiled (or loaded from the cache), and the pool's slabs touched, before the clock starts
    t = time.perf_counter()
    settle_all()
    return sum(len(b["start"]) for b in blocks), time.perf_counter() - t


def ordering_rate(pack: CompiledPack, con, source: str, combos: str | None, psn_by_key) -> tuple[float, float]:
    """(wall, CPU seconds) of DuckDB's part of the settle step alone: the ordering query over ``source`` — the
    joins, the rule combinations, the sort — drained as the stream reads it (:func:`ordered_batches`), no kernel.
    The settle step cannot be faster than this part plus the kernel's own CPU shared over the cores: the floor
    the report prints beside the step."""
    cpu, t = time.process_time(), time.perf_counter()
    for _ in ordered_batches(pack, con, source, combos=combos, psn_by_key=psn_by_key)[1]:
        pass
    return time.perf_counter() - t, time.process_time() - cpu


def run(persons: int = 100_000, pack_name: str = "shandong-2024", seed: int = 1,
        scalar_sample: int = 50_000, claims: str | None = None) -> dict:

    pack_model = resolve_pack(pack_name)
    pack = CompiledPack(pack_model)
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        region = Path(claims) if claims else Path(tmp) / "region"
        if not claims:
            t = time.perf_counter()
            generate_to(pack_model, region, persons=persons, seed=seed)  # block by block: flat memory
            synth_s = time.perf_counter() - t
        else:
            synth_s = 0.0
        run_ = open_claims(region)
        if claims:  # a region given: report its own size
            persons = run_.con.sql("SELECT COUNT(*) FROM persons").fetchone()[0]
        kernel.warm(lower(pack))  # the kernel compiled (or its cache loaded) outside the timings
        classify_kernel.warm()  # so is the classification's compiled pass
        classify(run_, pack)
        # as yibao batch settle: the checks before settling, then the joins (their checks counted on the way) +
        # sort + kernel + setlinfo/setldetail in yuan from the stream (CPU seconds of the process beside each: on
        # a shared machine they move less than the wall clock)
        streamed = Path(tmp) / "streamed"
        cpu = time.process_time()
        settle(run_, pack, "bench", out_dir=streamed, keep_fen=False)
        stream_cpu = time.process_time() - cpu
        visits = run_.visits
        validate_s, stream_s = run_.timings["validate"], run_.timings["settle_bench"]
        # the previous way, for comparison: the settled year to a fen Parquet file, then DuckDB sorts it into yuan
        cpu = time.process_time()
        table = settle(run_, pack, "fen", validate=False)
        t = time.perf_counter()
        copied = write_results(run_, pack, table, Path(tmp) / "copied")
        copy_s = run_.timings["settle_fen"] + time.perf_counter() - t
        copy_cpu = time.process_time() - cpu
        # the settle step from classified amounts, into memory: the joins (visits ⋈ persons ⋈ classified, the
        # view yibao batch settle streams from, and the rule combinations) + sort + kernel
        cpu, t = time.process_time(), time.perf_counter()
        settled = settle_table(pack, "visits_in_fen", run_.con, combos=COMBOS_SUPERSET,
                               psn_by_key=persons_in_key_order(run_.con))
        step_s, step_cpu = time.perf_counter() - t, time.process_time() - cpu
        # ... and DuckDB's part of it alone, no kernel (ordering_rate)
        ordering_s, ordering_cpu = ordering_rate(pack, run_.con, "visits_in_fen", COMBOS_SUPERSET,
                                                 persons_in_key_order(run_.con))
        # the kernel alone and the scalar engine read the joined input once made
        run_.con.sql("CREATE OR REPLACE TABLE visits_in_mem AS SELECT * FROM visits_in_fen")
        n_kernel, kernel_s = kernel_rate(pack, run_.con, "visits_in_mem", cores)
        _, kernel1_s = kernel_rate(pack, run_.con, "visits_in_mem", 1)
        n_scalar, scalar_s = scalar_rate(pack, run_.con, "visits_in_mem", scalar_sample)
        total_fund = run_.con.sql(f"SELECT SUM(fund_pay_sumamt) FROM {table}").fetchone()[0]
        same = int(total_fund or 0) == int(pc.sum(settled.column("fund_pay_sumamt")).as_py() or 0) and all(
            pq.read_table(streamed / f"{name}.parquet").equals(pq.read_table(path)) for name, path in copied.items())
    end_to_end = run_.timings["classify"] + validate_s + stream_s
    return {
        "pack": pack_name, "persons": persons, "visits": visits, "items": run_.items, "cores": cores,
        "synth_s": synth_s, "classify_s": run_.timings["classify"], "validate_s": validate_s,
        "stream_s": stream_s, "step_s": step_s, "step_cpu_s": step_cpu, "ordering_s": ordering_s,
        "ordering_cpu_s": ordering_cpu,
        # the step's floor here: DuckDB's CPU and the kernel's (one thread's wall) shared over the cores
        "floor_s": (ordering_cpu + kernel1_s) / cores, "end_to_end_s": end_to_end, "copy_s": copy_s,
        "stream_cpu_s": stream_cpu, "copy_cpu_s": copy_cpu, "yuan_cpu_s": run_.timings.get("yuan_cpu_bench", 0.0),
        "kernel_visits": n_kernel, "kernel_s": kernel_s, "kernel1_s": kernel1_s,
        "kernel_visits_per_s": n_kernel / kernel_s, "kernel1_visits_per_s": n_kernel / kernel1_s,
        "step_visits_per_s": visits / step_s, "end_to_end_visits_per_s": visits / end_to_end,
        "scalar_visits": n_scalar, "scalar_s": scalar_s, "scalar_visits_per_s": n_scalar / scalar_s,
        "ratio": (visits / step_s) / (n_scalar / scalar_s), "same": same, "peak_rss_mib": peak_rss_mib(),
        "fund_pay_sumamt_fen": int(total_fund or 0),
    }


def format_report(f: dict) -> str:
    lines = [
        f"批量结算性能基准 Batch settlement benchmark (DuckDB + compiled kernel, {f['cores']} 核 cores)",
        f"  政策包 pack: {f['pack']}; 参保人 persons {f['persons']:,}; 就诊 visits {f['visits']:,}; 明细 lines {f['items']:,}",
        f"  生成数据 synth: {f['synth_s']:.1f} s",
        f"  费用分类 classification (fee lines → amounts): {f['classify_s']:.2f} s = {f['items'] / f['classify_s']:,.0f} lines/s",
        f"  仅内核 kernel alone ({f['cores']} 线程 threads): {f['kernel_s']:.3f} s = {f['kernel_visits_per_s']:,.0f} visits/s"
        f"; 单线程 one thread {f['kernel1_visits_per_s']:,.0f} visits/s",
        f"  结算步骤 settle step from classified amounts (join + sort + kernel): {f['step_s']:.2f} s = "
        f"{f['step_visits_per_s']:,.0f} visits/s (CPU {f['step_cpu_s']:.2f} s)",
        f"    其中 DuckDB 关联 + 排序 joins + sort alone (不含内核 no kernel): {f['ordering_s']:.2f} s = "
        f"{f['visits'] / f['ordering_s']:,.0f} visits/s (CPU {f['ordering_cpu_s']:.2f} s)",
        f"    本机下限 floor on {f['cores']} 核 cores ((关联排序 CPU + 单线程内核) / 核数 (joins+sort CPU + kernel one thread)"
        f" / cores): {f['floor_s']:.2f} s = {f['visits'] / f['floor_s']:,.0f} visits/s",
        f"  结算并写出元表 settle streaming setlinfo + setldetail (yuan Parquet): {f['stream_s']:.2f} s"
        f" (CPU {f['stream_cpu_s']:.2f} s, 其中写元表 of which writing the yuan tables {f.get('yuan_cpu_s', 0):.2f} s)",
        f"  对照 原写法 previous way (settle to fen Parquet, then DuckDB sorted COPY to yuan): {f['copy_s']:.2f} s"
        f" (CPU {f['copy_cpu_s']:.2f} s)",
        f"  结算前校验 validation before settling (关联检查在结算中计数 the join checks are counted while settling):"
        f" {f['validate_s']:.2f} s",
        f"  端到端 end to end (fee lines → classify → validate → settle → setlinfo/setldetail Parquet):"
        f" {f['end_to_end_s']:.2f} s = "
        f"{f['end_to_end_visits_per_s']:,.0f} visits/s",
        f"  对照 单次引擎 scalar engine (same amounts, {f['scalar_visits']:,} visits): {f['scalar_visits_per_s']:,.0f} visits/s",
        f"  ratio 结算步骤 / 单次引擎 settle step ÷ scalar: {f['ratio']:.1f}×"
        f" (在本机下限处 at the floor: {f['visits'] / f['floor_s'] / f['scalar_visits_per_s']:.1f}×)",
        f"  内存中、流式写出与原写法的结果 in-memory, streamed and previous-way results: "
        f"{'相同 same' if f['same'] else '不同 DIFFERENT'}",
        f"  峰值内存 peak RSS: {f['peak_rss_mib']:,.0f} MiB",
    ]
    return "\n".join(lines)
