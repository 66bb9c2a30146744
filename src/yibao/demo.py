"""``yibao demo``: the README's main job, on embedded defaults (DuckDB, no server).

It generates a synthetic region, settles its year in batch, simulates the shipped reform
(基层 resident inpatient 80% → 85%, 两病 60% → 70%), runs the 因病返贫 monitoring, audits the
year with the supervision library, settles it by DIP points and reports the fund's months of
payout, then prints a summary with where every output went. ``--examples`` instead settles the shipped example visits
one by one and prints their statements (结算单), each amount explained from the pack.
"""

from __future__ import annotations

import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager
from decimal import Decimal
from importlib import resources
from pathlib import Path

from rich.console import Console
from rich.rule import Rule
from rich.table import Table

from yibao.batch.run import in_output_order, open_claims, write_results
from yibao.fund.commands import run_fund
from yibao.fund.operation import LEVELS
from yibao.ltc.commands import settle_dir, synth_region
from yibao.money import format_yuan
from yibao.monitoring.render import format_monitoring
from yibao.monitoring.screen import monitor
from yibao.payment.run import build_catalog, connect, settle_period
from yibao.policy.compiled import CompiledPack
from yibao.policy.loader import resolve_pack
from yibao.settlement.engine import settle_year
from yibao.settlement.render import print_statements
from yibao.settlement.request import load_request, to_accumulators, to_person, to_visit
from yibao.simulation.background import OutputsProcess
from yibao.simulation.comparison import simulate
from yibao.simulation.outputs import write_json
from yibao.simulation.render import format_simulation
from yibao.supervision import audit as A
from yibao.supervision.ruleset import load_ruleset
from yibao.synth import enrolment as synth_enrolment
from yibao.synth import generate
from yibao.synth.fraud import add_supervision_columns, write_supervised

DEMOS = [
    ("shandong-2024", "shandong-dibao-inpatient.json", "山东低保", "山东: 低保居民在基层住院, 逐条明细分类, 基本医保 + 大病 + 医疗救助"),
    ("shandong-2024", "shandong-employee-retiree.json", "山东职工", "山东: 退休职工三级医院大额住院, 统筹 + 大额补助 + 个人账户"),
    ("jishou-2022", "jishou-tekun-two-admissions.json", "吉首特困", "吉首: 特困人员一年两次住院, 再次住院起付线减半, 大病倾斜"),
    ("sichuan-county-2020", "sichuan-poor-inpatient.json", "四川贫困", "四道医疗保障线: 贫困人口住院, 商业补充 90%/75%, 兜底 90%"),
]


def example_path(name: str) -> Path:
    return Path(str(resources.files("yibao") / "examples" / name))


def run_examples(console: Console) -> list[tuple[str, str, int, int, int]]:
    summary = []
    for pack_name, file_name, label, title in DEMOS:
        pack = CompiledPack(resolve_pack(pack_name))
        req = load_request(example_path(file_name))
        results = settle_year(pack, to_person(req.person), [to_visit(v) for v in req.visit_list()],
                              to_accumulators(req))
        console.print(Rule(f"[bold]{title}[/]"))
        console.print(f"[dim]yibao settle --policy {pack_name} --request {example_path(file_name)}[/]")
        print_statements(console, pack, req, results)
        for s in results:
            info = s.setlinfo
            summary.append((label, s.mdtrt_id, info.medfee_sumamt, info.fund_pay_sumamt, info.psn_part_amt))
    table = Table(title="演示汇总 Demo summary(元)")
    for col in ("示例", "就诊", "医疗费总额", "基金支付", "个人负担", "基金占比"):
        table.add_column(col, justify="right" if col not in ("示例", "就诊") else "left", no_wrap=True)
    for region, mdtrt_id, total, fund, own in summary:
        share = f"{fund * 100 / total:.1f}%" if total else "-"
        table.add_row(region, mdtrt_id, format_yuan(total), format_yuan(fund), format_yuan(own), share)
    console.print(table)
    console.print("以上金额均可由结算单中的政策包数字逐项复算; 政策包见 `yibao policy list`。")
    return summary


def run_demo(console: Console, persons: int = 100_000, out_dir: Path = Path("out/demo"), seed: int = 1) -> dict:
    """Region → batch settlement → reform → monitoring → fund on the main line; the audit (from settlement on),
    DIP and long-term care (from the comparison on) in side threads, as none reads what the main line computes but the
    files it wrote, and the simulation's report drawn by a child process; returns where outputs went."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    out_dir = Path(out_dir)
    region = out_dir / "region"
    baseline_model, reform_model = resolve_pack("shandong-2024-baseline"), resolve_pack("shandong-2024")
    baseline, reform = CompiledPack(baseline_model), CompiledPack(reform_model)
    started = time.perf_counter()
    steps: dict[str, float] = {}
    # the simulation's report files are drawn by a second interpreter, which imports matplotlib meanwhile
    writer = OutputsProcess().start()
    with writer_closed(writer), Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                                         console=console, transient=True) as progress:
        task = progress.add_task(f"生成合成地区 generating a region of {persons:,} persons", total=None)
        t = time.perf_counter()
        # with supervision's optional inputs (physician, fee times, purchases, exam results): the
        # claims columns are the same as without them, so settlement results do not change
        tables = add_supervision_columns(generate(reform_model, persons=persons, seed=seed), seed)
        with ThreadPoolExecutor(max_workers=1) as pool:  # the files are written (no GIL) while the ledger is drawn
            written = pool.submit(write_supervised, tables, region)
            # registry facts + contribution ledger → fund income
            synth_enrolment.write(reform_model, region, seed=seed, persons=tables["persons"])
            written.result()
        del tables
        steps["synth"] = time.perf_counter() - t
        run = open_claims(region)
        # the audit reads the region alone: it runs on its own DuckDB connection in a side thread while the
        # year is settled, simulated and monitored, on the core those steps leave idle in their serial parts
        with ThreadPoolExecutor(max_workers=3, thread_name_prefix="demo-side") as side:
            audit_job = side.submit(timed, run_audit, region, out_dir / "audit")
            progress.update(task, description=f"批量结算与政策模拟 settling {run.visits:,} visits under both packs"
                                              " (基金监管审核同时进行 auditing alongside)")
            t = time.perf_counter()
            # settles the year under each pack; the reform's yuan tables are written as it settles
            side_jobs: dict = {}

            def start_side_steps() -> None:
                # long-term care reads the region alone and is Python work, DIP the region and the settled year on
                # a connection of its own: both beside the comparison and the monitoring (the run's connection)
                side_jobs["ltc"] = side.submit(timed, run_ltc_step, region, out_dir / "settled")
                if in_output_order(reform):  # else the settled year is written below, after the comparison
                    side_jobs["dip"] = side.submit(timed, run_dip, reform_model, region, out_dir / "settled", out_dir)

            sim = simulate(run, baseline, reform, reform_tables=out_dir / "settled", on_settled=start_side_steps)
            writer.write(sim, out_dir / "simulation")  # JSON, workbook, charts, HTML: drawn beside what follows
            table = sim.tables["reform"]
            steps["simulate"] = time.perf_counter() - t
            if in_output_order(reform):  # written while settling
                settled = {name: out_dir / "settled" / f"{name}.parquet" for name in ("setlinfo", "setldetail")}
            else:  # a pack with household caps settles in household order: DuckDB sorts them out afterwards
                progress.update(task, description="写出结算结果 writing the settled year")
                t = time.perf_counter()
                settled = write_results(run, reform, table, out_dir / "settled")
                steps["write"] = time.perf_counter() - t
            if "dip" not in side_jobs:
                side_jobs["dip"] = side.submit(timed, run_dip, reform_model, region, out_dir / "settled", out_dir)
            progress.update(task, description="因病返贫监测 monitoring")
            t = time.perf_counter()
            mon = monitor(run, reform, table, out_dir / "monitoring")
            steps["monitor"] = time.perf_counter() - t
            progress.update(task, description="DIP 建目录与结算 DIP catalog and settlement")
            dip, steps["dip"] = side_jobs["dip"].result()
            progress.update(task, description="长期护理保险 long-term care")
            ltc, steps["ltc"] = side_jobs["ltc"].result()  # the fund step reads its settlements
            progress.update(task, description="基金运行与预测 fund operation")
            t = time.perf_counter()
            with tempfile.TemporaryDirectory(prefix="yibao-demo-") as tmp:
                # the projection reads the reform's expense factors from simulation.json: written here (the
                # same JSON the child writes into the report folder) so the fund need not wait for the charts
                fund = run_fund_step(region, out_dir, write_json(sim, Path(tmp) / "simulation.json"))
            steps["fund"] = time.perf_counter() - t
            progress.update(task, description="政策模拟报告 simulation report")
            writer.wait()
            steps["report"] = writer.seconds
            progress.update(task, description="基金监管批量审核 auditing the year")
            audit, steps["audit"] = audit_job.result()
    total = time.perf_counter() - started
    console.print(Rule("[bold]yibao 演示 demo[/]"))
    console.print(f"合成地区 region: {persons:,} 参保人, {run.visits:,} 次就诊, {run.items:,} 条明细 → {region}")
    console.print(format_simulation(sim))
    console.print(format_monitoring(mon))
    console.print(audit["table"])
    console.print(dip["text"])
    console.print(ltc["text"])
    console.print(fund["table"])
    files = Table(title="输出文件 outputs")
    files.add_column("内容")
    files.add_column("位置 path")
    files.add_row("理赔数据(Parquet)", str(region))
    for name, path in settled.items():
        files.add_row(f"批量结算 {name}", str(path))
    files.add_row("政策模拟(JSON/Excel/图表/HTML)", str(out_dir / "simulation"))
    files.add_row("因病返贫监测名单(CSV/Excel)", str(out_dir / "monitoring"))
    files.add_row("基金监管疑点与汇总(Parquet/Excel)", str(out_dir / "audit"))
    files.add_row("DIP 目录与结算(Parquet/CSV/Excel/报告)", f"{out_dir / 'dip-catalog'}, {out_dir / 'dip'}")
    files.add_row("长期护理保险结算与审核(Parquet)", str(out_dir / "settled" / "ltc_settlements.parquet"))
    files.add_row("基金运行(JSON/Excel/图表)", str(out_dir / "fund"))
    console.print(files)
    console.print(
        f"用时 time: 生成 {steps['synth']:.1f} s, 两个政策包的批量结算与比较 {steps['simulate']:.1f} s"
        f"(报告与图表另由子进程写出 {steps['report']:.1f} s report and charts by a child process),"
        + (f" 写出 {steps['write']:.1f} s," if "write" in steps else "")
        + f" 监测 {steps['monitor']:.1f} s, DIP {steps['dip']:.1f} s, 长护 {steps['ltc']:.1f} s"
        f"(DIP、长护与比较、监测同时 alongside the comparison and monitoring), 基金运行 {steps['fund']:.1f} s; 审核 {steps['audit']:.1f} s"
        f"(与结算之后各步同时 alongside the steps from settlement on); 合计 {total:.1f} s")
    console.print("单次就诊的结算单示例 / statements of single visits: [bold]yibao demo --examples[/]")
    return {"region": region, "settled": settled, "total_s": total, "audit_hits": audit["hits"],
            "dip_point_value": dip["point_value"], "fund_levels": fund["levels"], **steps}


@contextmanager
def writer_closed(writer: OutputsProcess):
    """A child that never got its work (a step failed before) does not outlive the demo."""
    try:
        yield writer
    finally:
        writer.close()


def timed(step, *args):
    """(what ``step(*args)`` returns, the seconds it took): a step's time measured in its own thread."""
    t = time.perf_counter()
    return step(*args), time.perf_counter() - t


def run_audit(region: Path, out: Path) -> dict:
    """The whole audit library over the demo year (no fraud injected: what a clean region shows)."""

    with closing(connect()) as con:  # spills to a directory of its own
        run = A.open_claims(region, con=con)
        A.run_rules(run, load_ruleset())
        summary = A.summaries(run)
        A.write_outputs(run, out, summary)
    rows = summary["by_rule"].to_pylist()
    table = Table(title="基金监管 fund supervision: 34 条规则批量审核(未注入违规的合成数据)")
    for col in ("规则", "名称", "疑点", "违规金额(元)"):
        table.add_column(col, justify="right" if col in ("疑点", "违规金额(元)") else "left")
    for r in sorted(rows, key=lambda r: -r["hits"])[:5]:
        table.add_row(r["rule_id"], r["rule_name"], f"{r['hits']:,}", f"{r['amount_yuan']:,.2f}")
    return {"table": table, "hits": sum(r["hits"] for r in rows)}


def run_dip(pack_model, region: Path, settled: Path, out_dir: Path) -> dict:
    """DIP catalog from the year's inpatient cases, then the year's point-value settlement."""

    year = str(pack_model.pack.effective_from.year)
    with closing(connect()) as con:  # spills to a directory of its own
        build_catalog(pack_model, "dip", out_dir / "dip-catalog", {}, con=con, claims=region, settled=settled)
        result = settle_period(pack_model, "dip", out_dir / "dip-catalog", year, out_dir / "dip", con=con, loaded=True)
    s = result.summary()
    text = (f"DIP 病种分值结算 {year}: 住院病例 {s['cases']['settled']:,} 例(排除 {s['cases']['excluded']:,} 例);"
            f" 预算点值 {s['budget_point_value']}、结算点值 {s['settlement_point_value']} 元/分;"
            f" 基金拨付 {Decimal(s['fund_paid']):,.2f} 元, 预算 {Decimal(s['budget']):,.2f} 元"
            f"(差额为结余留用/超支分担)")
    return {"text": text, "point_value": s["settlement_point_value"]}


def run_ltc_step(region: Path, settled: Path) -> dict:
    """A year of long-term care beside the region: assessed persons, care records, monthly settlement, audit."""

    synth_region("shandong-2024", region)
    months, hits, _ = settle_dir("shandong-2024", region, settled)
    persons = len({m.psn_no for m in months})
    text = (f"长期护理保险 long-term care: {persons:,} 名失能人员 {len(months):,} 个人月, 护理费用"
            f" {format_yuan(sum(m.ltc_sumamt for m in months))} 元, 长护基金支付 {format_yuan(sum(m.fund_pay for m in months))} 元,"
            f" 审核疑点 {len(hits):,} 条")
    return {"text": text, "person_months": len(months), "hits": len(hits)}


def run_fund_step(region: Path, out_dir: Path, simulation: Path) -> dict:
    """Months of payout per scheme, with the reform's expense change (``simulation``: its JSON) carried into the
    projection."""

    years, _, _ = run_fund("shandong-2024", region, out_dir / "settled", None, simulation, out_dir / "fund")
    table = Table(title="基金运行 fund operation(合成地区的示例缴费与支出)")
    for col in ("险种", "收入(元)", "支出(元)", "可支付月数", "预警"):
        table.add_column(col, justify="left" if col in ("险种", "预警") else "right")
    levels = {}
    for y in years:
        d = y.to_dict()
        levels[d["insutype"]] = d["level"]
        table.add_row(d["insutype"], format_yuan(d["income"]), format_yuan(d["expense"]),
                      str(d["months_of_payout"]), LEVELS[d["level"]])
    return {"table": table, "levels": levels}
