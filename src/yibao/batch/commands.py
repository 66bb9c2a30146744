"""``yibao batch settle`` and ``yibao bench settle``: a claims directory settled by the compiled kernel."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from yibao.batch.validate import BatchError, check_applicability
from yibao.console import err, fail, out
from yibao.errors import Problem, YibaoError
from yibao.money import format_yuan
from yibao.policy.compiled import CompiledPack
from yibao.policy.loader import resolve_pack

batch_app = typer.Typer(help="批量结算 (batch settlement of a claims directory)", no_args_is_help=True)


@batch_app.command("settle")
def batch_settle_cmd(
    claims: Path = typer.Option(..., "--claims", "-c", help="理赔数据目录(见 docs/claims-schema.md)"),
    policy: str = typer.Option(..., "--policy", "-p", help="政策包文件或内置名称"),
    out_dir: Path = typer.Option(..., "--out", "-o", help="输出目录: setlinfo.parquet, setldetail.parquet"),
    engine: str = typer.Option("duckdb", "--engine", help="duckdb(默认, 本机) 或 spark(本地模式)"),
    catalogue_db: Optional[str] = typer.Option(None, "--catalogue-db", help="目录库 URL: 按就诊日生效的目录版本分类(docs/institutions.md §4)"),
    mdtrt_packs: Optional[str] = typer.Option(None, "--mdtrt-packs", help="就医地政策包(逗号分隔): 异地就诊按就医地目录分类(docs/handling.md)"),
) -> None:
    """批量结算一个地区一年的就诊, 与单次结算逐分一致 (settle a whole claims directory)."""
    from yibao.batch.run import (classify, classify_by_area, load_compiled, open_claims, register_pack, settle,
                                 write_results)

    if engine not in ("duckdb", "spark"):
        fail(YibaoError(Problem("BAT011", "--engine", f"引擎须为 duckdb 或 spark, 实际为 {engine!r}")))
    try:
        pack = CompiledPack(resolve_pack(policy))
        loading = load_compiled(pack) if engine == "duckdb" else None  # overlaps opening and reading the claims
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=err,
                      transient=True) as progress:
            task = progress.add_task("读取理赔数据 reading claims", total=None)
            run = open_claims(claims)
            if engine == "spark" and catalogue_db:
                raise BatchError(Problem("BAT012", "--catalogue-db", "按目录库分类目前只用于 duckdb 引擎"))
            if mdtrt_packs and (engine == "spark" or catalogue_db):
                raise BatchError(Problem("BAT017", "--mdtrt-packs", "按就医地目录分类目前只用于 duckdb 引擎, 且不与 --catalogue-db 同用"))
            if engine == "spark":
                # validated on DuckDB first: nothing is settled if anything is wrong
                register_pack(run, pack)
                problems = check_applicability(run.con, pack)
                if problems:
                    raise BatchError(problems)
                progress.update(task, description=f"Spark 结算 settling {run.visits:,} visits on Spark")
                from yibao.batch.spark import settle_claims, spark_session

                table = settle_claims(spark_session(), pack, claims).toArrow()
                run.con.register("spark_result", table)
                run.con.sql("CREATE TABLE settled_main AS SELECT * FROM spark_result")
                name = "settled_main"
            else:
                progress.update(task, description=f"费用分类 classifying {run.items:,} lines")
                if catalogue_db:  # the catalogue in force on each visit's date, as the service reads it (#18)
                    from yibao.institutions.batch_catalogue import classify_from_store

                    pack = classify_from_store(run, pack, catalogue_db)
                elif mdtrt_packs:  # 异地就医: 就医地目录、参保地政策, as the service (#16)
                    classify_by_area(run, pack, [CompiledPack(resolve_pack(n.strip()))
                                                 for n in mdtrt_packs.split(",") if n.strip()])
                else:
                    classify(run, pack)
                progress.update(task, description=f"校验并结算 validating and settling {run.visits:,} visits")
                loading.result()
                # the yuan tables are written from the settled stream (no fen table kept: nothing here reads it)
                name = settle(run, pack, "main", out_dir=out_dir, keep_fen=False)
            paths = run.outputs.get(name)
            if paths is None:  # settled elsewhere (Spark) or not in output order (household caps): DuckDB sorts
                progress.update(task, description="写出结果 writing results")
                started = time.perf_counter()
                paths = write_results(run, pack, name, out_dir)
                run.timings["write"] = time.perf_counter() - started
    except YibaoError as exc:
        fail(exc)
        return
    totals = setlinfo_totals(run, name, paths["setlinfo"])
    table_view = Table(title=f"批量结算 {pack.id} · 引擎 {engine}")
    table_view.add_column("项目 item")
    table_view.add_column("合计 total", justify="right")
    table_view.add_row("就诊 visits", f"{totals[0]:,}")
    labels = ("医疗费总额 medfee_sumamt", "基金支付 fund_pay_sumamt", "其中统筹 hifp_pay",
              "大病/大额 hifmi+hifob", "医疗救助 maf_pay", "个人负担 psn_part_amt")
    for label, value in zip(labels, totals[1:]):
        table_view.add_row(label + "(元)", format_yuan(int(value or 0)))
    out.print(table_view)
    if engine == "duckdb":
        for line in effects_summary(run):
            out.print(line)
        t = run.timings
        written = (f"写出(元) {t['write']:.2f} s" if "write" in t else "写出(元)在结算中 yuan tables written while settling")
        out.print(f"用时: 分类 {t.get('classify', 0):.2f} s, 校验 {t.get('validate', 0):.2f} s (关联检查在结算中计数),"
                  f" 结算 {t.get('settle_main', 0):.2f} s, {written}")
    for label, path in paths.items():
        out.print(f"已写出 {label}: {path}")


def setlinfo_totals(run, name: str, setlinfo: Path) -> tuple[int, ...]:
    """Visits, medfee_sumamt, fund_pay_sumamt, hifp_pay, hifmi_pay + hifob_pay, maf_pay, psn_part_amt in fen:
    summed from the blocks as they were written (at ten million visits reading the file back cost 0.2–0.3 s), or
    from the written file where DuckDB or Spark wrote it."""
    sums = run.totals.get(name)
    if sums is not None:
        return (sums["visits"], sums["medfee_sumamt"], sums["fund_pay_sumamt"], sums["hifp_pay"],
                sums["hifmi_pay"] + sums["hifob_pay"], sums["maf_pay"], sums["psn_part_amt"])
    fen = "CAST(SUM({}) * 100 AS BIGINT)".format  # the written yuan table, summed exactly and back to fen
    return run.con.read_parquet(setlinfo.as_posix()).aggregate(
        f"COUNT(*), {fen('medfee_sumamt')}, {fen('fund_pay_sumamt')}, {fen('hifp_pay')},"
        f" {fen('hifmi_pay + hifob_pay')}, {fen('maf_pay')}, {fen('psn_part_amt')}").fetchone()


def effects_summary(run) -> list[str]:
    """What the 经办 facts changed, as the service warns per visit (HDL061) and says of 异地就医: how many
    门诊慢特病 visits were settled as ordinary outpatient, and the visits by 异地 status."""
    from yibao.batch.run import has_relation

    con = run.con
    offsite_column = "offsite_status" in con.sql("SELECT * FROM visits LIMIT 0").columns
    if not has_relation(con, "visits_in_main") or not (has_relation(con, "handling_facts") or offsite_column):
        return []  # without facts or the column every visit is local and keeps its med_type: nothing to say
    # one pass over the settled input: the visits per 异地 status, and those whose med_type the facts changed
    counts = con.sql("SELECT s.offsite_status, COUNT(*), COUNT(*) FILTER (WHERE s.med_type <> v.med_type) "
                     "FROM visits_in_main s JOIN visits v ON v.mdtrt_id = s.mdtrt_id GROUP BY 1").fetchall()
    lines = []
    moved = sum(int(c[2]) for c in counts)
    if moved:
        lines.append(f"{moved:,} 次门诊慢特病就诊在结算日没有有效认定, 按普通门诊结算 (HDL061)")
    by_status = {c[0]: int(c[1]) for c in counts}
    if set(by_status) - {"local"}:
        names = {"local": "本地", "filed": "异地已备案", "unfiled": "异地未备案"}
        lines.append("异地就医: " + ", ".join(f"{names.get(k, k)} {by_status[k]:,} 次" for k in sorted(by_status)))
    return lines


def bench_settle(
    persons: int = typer.Option(100_000, help="合成地区的参保人数"),
    pack: str = typer.Option("shandong-2024", help="政策包"),
    scalar_sample: int = typer.Option(50_000, help="单次引擎抽样就诊数"),
    claims: Path | None = typer.Option(None, help="用已有的理赔目录(如 yibao synth 生成的)代替现场生成 (re-use a region)"),
) -> None:
    """单次引擎与批量引擎(DuckDB)在同一合成地区上的吞吐量对比 (scalar vs batch)."""
    from yibao.bench.settle import format_report, run

    out.print(format_report(run(persons=persons, pack_name=pack, scalar_sample=scalar_sample,
                                claims=str(claims) if claims else None)))


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    app.add_typer(batch_app, name="batch")
    bench_app.command("settle")(bench_settle)
