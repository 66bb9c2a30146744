"""``yibao bench settle``: scalar vs. columnar settlement on the same synthetic region.

Both engines settle the same visits from the same classified amounts (classification from fee
lines is timed apart and reported separately, as the batch issue asks); the scalar engine runs
on a sample of whole persons and its rate is per visit.
"""

from __future__ import annotations

import resource
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from yibao.batch.run import classify, open_claims, settle
from yibao.batch.sqlgen import SettlementSQL
from yibao.policy.compiled import CompiledPack
from yibao.policy.loader import resolve_pack
from yibao.settlement.engine import settle as settle_one
from yibao.settlement.model import Accumulators, ClassifiedAmounts, Person, Visit


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


def window_floor_sql(source: str, passes: int) -> str:
    """The settlement query's skeleton without its arithmetic: the same ordering keys, then ``passes``
    year-to-date sums, each over the one before (as the tiers are), on narrow rows (key, order, sums),
    joined back to every input column once. Its time is what the window passes alone cost on this
    machine, whatever the rules compute in between."""
    ctes = [f"keyed AS (SELECT *, DENSE_RANK() OVER (ORDER BY psn_no, yr) AS pk, "
            f"ROW_NUMBER() OVER (ORDER BY psn_no, yr, setl_time, mdtrt_id) AS rn FROM {source})",
            "w0 AS (SELECT pk, rn, inscp AS ytd0 FROM keyed)"]
    sums = ["ytd0"]
    for k in range(1, passes + 1):
        ctes.append(f"w{k} AS (SELECT *, COALESCE(SUM(LEAST(ytd{k - 1}, 100000000)) OVER (PARTITION BY pk "
                    f"ORDER BY rn ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS ytd{k} FROM w{k - 1})")
        sums.append(f"ytd{k}")
    return ("WITH " + ",\n".join(ctes) + f"\nSELECT k.*, {', '.join('w.' + c for c in sums)} "
            f"FROM keyed k JOIN w{passes} w ON w.rn = k.rn")


def run(persons: int = 100_000, pack_name: str = "shandong-2024", seed: int = 1,
        scalar_sample: int = 50_000, claims: str | None = None) -> dict:
    from yibao.synth import generate_to

    pack_model = resolve_pack(pack_name)
    pack = CompiledPack(pack_model)
    with tempfile.TemporaryDirectory() as tmp:
        region = Path(claims) if claims else Path(tmp) / "region"
        if not claims:
            t = time.perf_counter()
            generate_to(pack_model, region, persons=persons, seed=seed)  # block by block: flat memory
            synth_s = time.perf_counter() - t
        else:
            synth_s = 0.0
        run_ = open_claims(region)
        classify(run_, pack)
        table = settle(run_, pack, "bench", validate=False)
        visits = run_.visits
        batch_s = run_.timings["settle_bench"]
        # a second timing of the settlement alone, on the already-built input table
        builder = SettlementSQL(pack)
        query = builder.query('visits_in_bench')
        t = time.perf_counter()
        run_.con.sql(f"CREATE OR REPLACE TABLE settled_again AS {query}")
        settle_only_s = time.perf_counter() - t
        # the floor: the same number of dependent year-to-date window passes with no settlement arithmetic
        t = time.perf_counter()
        run_.con.sql(f"CREATE OR REPLACE TABLE window_floor AS "
                     f"{window_floor_sql('visits_in_bench', builder.window_passes)}")
        floor_s = time.perf_counter() - t
        t = time.perf_counter()  # and its keys and join back alone, no window pass
        run_.con.sql(f"CREATE OR REPLACE TABLE window_floor AS {window_floor_sql('visits_in_bench', 0)}")
        keys_s = time.perf_counter() - t
        run_.con.sql("DROP TABLE window_floor")
        # the same query with plain windows over every row (the form Spark runs), for comparison
        t = time.perf_counter()
        run_.con.sql(f"CREATE OR REPLACE TABLE settled_plain AS "
                     f"{SettlementSQL(pack).query('visits_in_bench', sparse=False)}")
        plain_s = time.perf_counter() - t
        same = run_.con.sql("SELECT COUNT(*) FROM (SELECT * FROM settled_again EXCEPT ALL "
                            "SELECT * FROM settled_plain)").fetchone()[0] == 0
        run_.con.sql("DROP TABLE settled_plain")
        n_scalar, scalar_s = scalar_rate(pack, run_.con, "visits_in_bench", scalar_sample)
        total_fund = run_.con.sql(f"SELECT SUM(fund_pay_sumamt) FROM {table}").fetchone()[0]
    return {
        "pack": pack_name, "persons": persons, "visits": visits, "items": run_.items,
        "synth_s": synth_s, "classify_s": run_.timings["classify"],
        "batch_s": batch_s, "settle_only_s": settle_only_s, "plain_windows_s": plain_s, "plain_same": same,
        "window_passes": builder.window_passes, "floor_s": floor_s, "keys_s": keys_s,
        "batch_visits_per_s": visits / batch_s, "settle_only_visits_per_s": visits / settle_only_s,
        "scalar_visits": n_scalar, "scalar_s": scalar_s, "scalar_visits_per_s": n_scalar / scalar_s,
        "ratio": (visits / batch_s) / (n_scalar / scalar_s), "peak_rss_mib": peak_rss_mib(),
        "fund_pay_sumamt_fen": int(total_fund or 0),
    }


def format_report(f: dict) -> str:
    lines = [
        "批量结算性能基准 Batch settlement benchmark (DuckDB, 2 cores)",
        f"  政策包 pack: {f['pack']}; 参保人 persons {f['persons']:,}; 就诊 visits {f['visits']:,}; 明细 lines {f['items']:,}",
        f"  生成数据 synth: {f['synth_s']:.1f} s",
        f"  费用分类 classification (fee lines → amounts): {f['classify_s']:.2f} s = {f['items'] / f['classify_s']:,.0f} lines/s",
        f"  批量结算 batch settle (input join + settle): {f['batch_s']:.2f} s = {f['batch_visits_per_s']:,.0f} visits/s",
        f"  仅结算查询 settle query only: {f['settle_only_s']:.2f} s = {f['settle_only_visits_per_s']:,.0f} visits/s",
        f"  对照: 全行窗口 plain windows over every row (Spark's form): {f['plain_windows_s']:.2f} s = "
        f"{f['visits'] / f['plain_windows_s']:,.0f} visits/s; 结果{'相同 same' if f['plain_same'] else '不同 DIFFERENT'}",
        f"  下限参照: 同样 {f['window_passes']} 次相继的年度累计窗口、不做结算算术 floor, {f['window_passes']} dependent "
        f"year-to-date windows and no arithmetic: {f['floor_s']:.2f} s = {f['visits'] / f['floor_s']:,.0f} visits/s "
        f"(其中排序键与接回 of which keys and join back {f['keys_s']:.2f} s, 每次窗口约 per pass "
        f"{(f['floor_s'] - f['keys_s']) / max(1, f['window_passes']):.3f} s)",
        f"  单次引擎 scalar (same amounts, {f['scalar_visits']:,} visits): {f['scalar_visits_per_s']:,.0f} visits/s",
        f"  倍数 batch / scalar: {f['ratio']:.1f}×",
        f"  峰值内存 peak RSS: {f['peak_rss_mib']:,.0f} MiB",
    ]
    return "\n".join(lines)
