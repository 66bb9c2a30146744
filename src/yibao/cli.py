"""The ``yibao`` command: policy packs, settlement, demo and benchmarks.

Every user error is printed as a Chinese message with a code and the field concerned, and the
command exits non-zero without printing any result. Set ``YIBAO_DEBUG=1`` to see tracebacks
of unexpected errors (for developers only).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

try:  # Typer ≥ 0.26 ships its own copy of click; older Typer uses click itself
    from typer._click import exceptions as usage
except ImportError:  # pragma: no cover
    import click.exceptions as usage  # type: ignore[no-redef]
from rich.table import Table

from yibao.console import err, fail, out, print_json
from yibao.errors import Problem, YibaoError

app = typer.Typer(
    help="yibao 开源医疗保障系统: 政策包、一站式结算 (open-source medical-security system)",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
policy_app = typer.Typer(help="政策包: 校验、JSON Schema、示例列表 (policy packs)", no_args_is_help=True)
bench_app = typer.Typer(help="性能基准 (benchmarks)", no_args_is_help=True)
app.add_typer(policy_app, name="policy")
batch_app = typer.Typer(help="批量结算 (batch settlement of a claims directory)", no_args_is_help=True)
app.add_typer(bench_app, name="bench")
app.add_typer(batch_app, name="batch")

# Each domain keeps its commands beside its code, in ``yibao/<domain>/commands.py`` with a
# ``register(app, bench_app)`` function; listing the module here puts it under ``yibao``.
DOMAIN_COMMANDS: tuple[str, ...] = (
    "yibao.service.commands",
    "yibao.supervision.commands",
    "yibao.payment.commands",
    "yibao.ltc.commands",
    "yibao.enrolment.commands",
    "yibao.handling.commands",
    "yibao.web.commands",
    "yibao.institutions.commands",
)

# --- policy -------------------------------------------------------------------------------


@policy_app.command("check")
def policy_check(packs: list[str] = typer.Argument(..., help="政策包文件路径或内置政策包名称")) -> None:
    """校验政策包 (validate packs); 出错时列出文件、字段路径和违反的规则。"""
    from yibao.policy.loader import resolve_pack

    failed = False
    for name in packs:
        try:
            pack = resolve_pack(name)
        except YibaoError as exc:
            failed = True
            err.print(f"[bold red]✗ {exc.title}[/] ({exc.source or name}):")
            for p in exc.problems:
                err.print(f"  [red]{p.code}[/] [bold]{escape(p.path)}[/]{': ' if p.path else ''}{escape(p.message)}")
            continue
        info = pack.pack
        out.print(
            f"[green]✓[/] {name}: {info.name} [dim]({info.id} 版本 {info.version}, 区划 {info.admdvs},"
            f" 有效期 {info.effective_from} 至 {info.effective_to})[/]\n"
            f"  基本医保规则 {len(pack.basic)} 条, 后续层次 {len(pack.tiers)} 个, 兜底 {len(pack.guarantees)} 个,"
            f" 假设 {len(pack.assumptions)} 处"
        )
    if failed:
        raise typer.Exit(code=2)


@policy_app.command("schema")
def policy_schema(output: Optional[Path] = typer.Option(None, "--out", "-o", help="写入文件而非标准输出")) -> None:
    """输出政策包的 JSON Schema, 供编辑器在编写 YAML 时校验 (JSON Schema for editors)."""
    from yibao.policy.schema import schema_text

    text = schema_text()
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
        out.print(f"已写入 {output}")


@policy_app.command("list")
def policy_list() -> None:
    """列出内置示例政策包 (shipped example packs)."""
    from yibao.policy.loader import resolve_pack, shipped_pack_names

    table = Table("政策包", "区划", "有效期", "假设数")
    table.add_column("名称 name", no_wrap=True)
    for name in shipped_pack_names():
        pack = resolve_pack(name)
        info = pack.pack
        table.add_row(info.name, info.admdvs, f"{info.effective_from}–{info.effective_to}",
                      str(len(pack.assumptions)), name)
    out.print(table)


# --- settle -------------------------------------------------------------------------------


@app.command("settle")
def settle_cmd(
    policy: str = typer.Option(..., "--policy", "-p", help="政策包文件或内置名称"),
    request: Path = typer.Option(..., "--request", "-r", help="结算请求 JSON 文件(见 docs/settle-request.md)"),
    as_json: bool = typer.Option(False, "--json", help="输出 JSON(金额为元, 两位小数)"),
) -> None:
    """一站式结算一次或多次就诊, 输出结算单 (settle one visit, or a person's visits in order)."""
    from yibao.policy.compiled import CompiledPack
    from yibao.policy.loader import resolve_pack
    from yibao.settlement.engine import settle, settle_year
    from yibao.settlement.request import load_request, to_accumulators, to_person, to_visit
    from yibao.settlement.statement import dumps, settlement_json

    try:
        pack = CompiledPack(resolve_pack(policy))
        req = load_request(request)
        person = to_person(req.person)
        visits = [to_visit(v) for v in req.visit_list()]
        acc = to_accumulators(req)
        if req.visit is not None:
            results = [settle(pack, person, visits[0], acc)]
        else:
            results = settle_year(pack, person, visits, acc)
    except YibaoError as exc:
        fail(exc, as_json)
        return
    if as_json:
        docs = [settlement_json(s, pack) for s in results]
        sys.stdout.write(dumps(docs[0] if req.visit is not None else docs) + "\n")
        return
    from yibao.settlement.render import print_statements

    print_statements(out, pack, req, results)


# --- demo ---------------------------------------------------------------------------------


@app.command("demo")
def demo_cmd(
    persons: int = typer.Option(100_000, help="合成地区的参保人数"),
    out_dir: Path = typer.Option(Path("out/demo"), "--out", "-o", help="输出目录"),
    examples: bool = typer.Option(False, "--examples", help="改为逐个结算内置示例就诊并打印结算单"),
) -> None:
    """演示(README 的主任务): 合成地区 → 批量结算 → 改革模拟 → 返贫监测 → 基金监管 → DIP → 基金运行 (the main job)."""
    from yibao.demo import run_demo, run_examples

    try:
        if examples:
            run_examples(out)
        else:
            if persons < 100:
                raise YibaoError(Problem("DEMO01", "--persons", "参保人数至少为 100"))
            run_demo(out, persons=persons, out_dir=out_dir)
    except YibaoError as exc:
        fail(exc)


# --- batch --------------------------------------------------------------------------------


@batch_app.command("settle")
def batch_settle_cmd(
    claims: Path = typer.Option(..., "--claims", "-c", help="理赔数据目录(见 docs/claims-schema.md)"),
    policy: str = typer.Option(..., "--policy", "-p", help="政策包文件或内置名称"),
    out_dir: Path = typer.Option(..., "--out", "-o", help="输出目录: setlinfo.parquet, setldetail.parquet"),
    engine: str = typer.Option("duckdb", "--engine", help="duckdb(默认, 本机) 或 spark(本地模式)"),
    catalogue_db: Optional[str] = typer.Option(None, "--catalogue-db", help="目录库 URL: 按就诊日生效的目录版本分类(docs/institutions.md §4)"),
) -> None:
    """批量结算一个地区一年的就诊, 与单次结算逐分一致 (settle a whole claims directory)."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from yibao.batch.run import classify, open_claims, register_pack, settle, write_results
    from yibao.batch.validate import BatchError, check_applicability
    from yibao.money import format_yuan
    from yibao.policy.compiled import CompiledPack
    from yibao.policy.loader import resolve_pack

    if engine not in ("duckdb", "spark"):
        fail(YibaoError(Problem("BAT011", "--engine", f"引擎须为 duckdb 或 spark, 实际为 {engine!r}")))
    try:
        pack = CompiledPack(resolve_pack(policy))
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=err,
                      transient=True) as progress:
            task = progress.add_task("读取理赔数据 reading claims", total=None)
            run = open_claims(claims)
            if engine == "spark" and catalogue_db:
                raise BatchError(Problem("BAT012", "--catalogue-db", "按目录库分类目前只用于 duckdb 引擎"))
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
                else:
                    classify(run, pack)
                progress.update(task, description=f"校验并结算 validating and settling {run.visits:,} visits")
                name = settle(run, pack, "main")
            progress.update(task, description="写出结果 writing results")
            paths = write_results(run, pack, name, out_dir)
    except YibaoError as exc:
        fail(exc)
        return
    totals = run.con.sql(
        f"SELECT COUNT(*), SUM(medfee_sumamt), SUM(fund_pay_sumamt), SUM(hifp_pay), SUM(hifmi_pay + hifob_pay),"
        f" SUM(maf_pay), SUM(psn_part_amt) FROM {name}").fetchone()
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
        t = run.timings
        out.print(f"用时: 分类 {t.get('classify', 0):.2f} s, 校验 {t.get('validate', 0):.2f} s,"
                  f" 结算 {t.get('settle_main', 0):.2f} s")
    for label, path in paths.items():
        out.print(f"已写出 {label}: {path}")


@bench_app.command("settle")
def bench_settle(
    persons: int = typer.Option(100_000, help="合成地区的参保人数"),
    pack: str = typer.Option("shandong-2024", help="政策包"),
    scalar_sample: int = typer.Option(50_000, help="单次引擎抽样就诊数"),
) -> None:
    """单次引擎与批量引擎(DuckDB)在同一合成地区上的吞吐量对比 (scalar vs batch)."""
    from yibao.bench.settle import format_report, run

    out.print(format_report(run(persons=persons, pack_name=pack, scalar_sample=scalar_sample)))


# --- bench --------------------------------------------------------------------------------


@bench_app.command("scalar")
def bench_scalar(
    visits: int = typer.Option(20000, help="就诊数"),
    items: int = typer.Option(30, help="每次就诊费用明细条数"),
) -> None:
    """单次结算引擎吞吐量 (scalar engine throughput, one core)."""
    from yibao.bench.scalar import format_report, run

    out.print(format_report(run(visits=visits, items_per_visit=items)))


# --- synthetic region and claims data -----------------------------------------------------

claims_app = typer.Typer(help="理赔数据: 按输入规范校验 (claims data, see docs/claims-schema.md)", no_args_is_help=True)
app.add_typer(claims_app, name="claims")


def _whole_number(text: str, option: str, code: str, minimum: int) -> int:
    from yibao.errors import Problem
    from yibao.synth import SynthError

    cleaned = text.replace("_", "").replace(",", "").strip()
    if not cleaned.lstrip("-").isdigit() or int(cleaned) < minimum:
        raise SynthError(Problem(code, option, f"必须是不小于 {minimum} 的整数, 实际为 {text!r}"))
    return int(cleaned)


@app.command("synth")
def synth_cmd(
    pack: str = typer.Option(..., "--pack", "-p", help="政策包文件或内置名称, 如 shandong-2024"),
    persons: str = typer.Option("100000", "--persons", "-n", help="参保人数"),
    seed: str = typer.Option("1", "--seed", help="随机种子: 相同种子生成逐字节相同的数据"),
    out_dir: Path = typer.Option(..., "--out", "-o", help="输出目录(写入 4 个 Parquet 文件)"),
    year: Optional[str] = typer.Option(None, "--year", help="数据年度, 默认为政策包生效的年度"),
    fraud: Optional[float] = typer.Option(None, "--fraud", help="基金监管: 加入医师/明细时间/采购/检查结果等可选输入, "
                                          "并按此比例注入各类违规(0 表示只加输入), 标注写入 labels.parquet"),
) -> None:
    """生成合成地区: 参保人、定点机构、一年的就诊与费用明细 (synthetic region, Parquet)."""
    import time

    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from yibao.errors import Problem
    from yibao.policy.loader import resolve_pack
    from yibao.synth import SynthError, generate_to, window_for

    try:
        n = _whole_number(persons, "--persons", "SYN001", 1)
        s = _whole_number(seed, "--seed", "SYN003", 0)
        y = None if year is None else _whole_number(year, "--year", "SYN002", 1)
        if out_dir.exists() and not out_dir.is_dir():
            raise SynthError(Problem("SYN005", "--out", f"{out_dir} 已存在且不是目录"))
        policy = resolve_pack(pack)
        window = window_for(policy, y)
        started = time.perf_counter()
        with Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
                      TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn(),
                      console=err, transient=True) as bar:
            task = bar.add_task(f"生成 {n:,} 人", total=100)

            def note(step: str, done: float) -> None:
                bar.update(task, completed=100 * done, description=f"生成 {n:,} 人: {step}")

            try:
                if fraud is not None:
                    from yibao.supervision.inject import synth_supervised

                    written = synth_supervised(policy, out_dir, n, s, y, fraud, note)
                else:
                    written = generate_to(policy, out_dir, persons=n, seed=s, year=y, progress=note)
            except OSError as exc:
                raise SynthError(Problem("SYN005", "--out", f"无法写入 {out_dir}: {exc}")) from None
        elapsed = time.perf_counter() - started
    except YibaoError as exc:
        fail(exc)
        return
    table = Table("表 table", "行数 rows", "文件 file")
    for name, (path, rows) in written.items():
        table.add_row(name, f"{rows:,}", str(path))
    out.print(table)
    out.print(f"政策包 {policy.pack.id}, 年度 {window.start} 至 {window.end}, 种子 {s}; 用时 {elapsed:.1f} 秒。\n"
              f"校验: yibao claims check {out_dir} --pack {pack}")


@claims_app.command("check")
def claims_check(
    directory: Path = typer.Argument(..., help="理赔数据目录: persons/institutions/visits/fee_items 的 Parquet、CSV 或 Excel"),
    pack: Optional[str] = typer.Option(None, "--pack", "-p", help="同时检查政策包声明的代码与有效期"),
    as_json: bool = typer.Option(False, "--json", help="输出 JSON 报告"),
) -> None:
    """按输入规范校验理赔数据, 列出有问题的行与列 (check a claims directory)."""
    from yibao.claims.schema import ClaimsError, validate_claims
    from yibao.policy.loader import resolve_pack

    try:
        policy = resolve_pack(pack) if pack else None
        report = validate_claims(directory, policy)
    except YibaoError as exc:
        fail(exc, as_json)
        return
    if as_json:
        print_json(report.to_dict())
        if not report.ok:
            raise typer.Exit(code=2)
        return
    if report.rows:
        table = Table("表 table", "行数 rows", "来源 source")
        for name, rows in report.rows.items():
            table.add_row(name, f"{rows:,}", report.files.get(name, ""))
        out.print(table)
    if report.ok:
        out.print(f"[green]✓[/] {directory}: 校验通过" + (f"(政策包 {policy.pack.id})" if policy else ""))
        return
    fail(ClaimsError(report.problems, str(directory), report))


def usage_message(exc: usage.UsageError) -> str:
    """Click's usage errors, said in Chinese and naming the option."""
    hint = getattr(exc, "param_hint", None) or (exc.param.opts[0] if getattr(exc, "param", None) else "")
    if isinstance(exc, usage.MissingParameter):
        return f"缺少必填选项 {hint or exc.param_hint}"
    if isinstance(exc, usage.NoSuchOption):
        return f"没有选项 {exc.option_name}" + (f"; 是否想用 {', '.join(exc.possibilities)}" if exc.possibilities else "")
    if isinstance(exc, usage.BadParameter):
        return f"选项 {hint} 的值无效: {exc.message}"
    return exc.format_message()


def main() -> None:  # pragma: no cover - entry point guard
    try:
        code = app(standalone_mode=False)
        raise SystemExit(code or 0)
    except usage.NoArgsIsHelpError as exc:
        exc.show()
        raise SystemExit(2)
    except usage.UsageError as exc:
        command = exc.ctx.command_path if exc.ctx else "yibao"
        err.print(f"[bold red]命令用法有误[/] ({escape(command)}):")
        err.print(f"  [red]CLI001[/] {escape(usage_message(exc))}")
        err.print(f"  查看帮助 help: {escape(command)} --help")
        raise SystemExit(2)
    except typer.Abort:
        err.print("已中断")
        raise SystemExit(130)
    except YibaoError as exc:  # a command that let its coded error through: same answer, no traceback
        try:
            fail(exc)
        except typer.Exit as done:
            raise SystemExit(done.exit_code) from None
    except KeyboardInterrupt:
        err.print("已中断")
        raise SystemExit(130)
    except Exception as exc:  # an unexpected failure: short message, no traceback for users
        if os.environ.get("YIBAO_DEBUG"):
            raise
        from yibao.privacy import scrub

        err.print(f"[bold red]内部错误 (internal error)[/]: {type(exc).__name__}: {escape(scrub(str(exc)))}\n"
                  "请设置 YIBAO_DEBUG=1 重试并报告此问题。")
        raise SystemExit(70)


# --- policy simulation and return-to-poverty monitoring ----------------------------------


@app.command("simulate")
def simulate_cmd(
    claims: Path = typer.Option(..., "--claims", "-c", help="理赔数据目录(见 docs/claims-schema.md)"),
    baseline: str = typer.Option(..., "--baseline", "-b", help="基线政策包文件或内置名称"),
    reform: str = typer.Option(..., "--reform", "-r", help="改革政策包文件或内置名称"),
    out_dir: Optional[Path] = typer.Option(None, "--out", "-o", help="输出目录: simulation.json/.xlsx/.html 与 PNG 图表"),
    share: Optional[str] = typer.Option(None, "--catastrophic-share",
                                        help="灾难性支出线: 家庭个人负担超过家庭年收入的比例(默认取改革政策包的 "
                                             "monitoring.catastrophic_share, 否则 0.4)"),
    as_json: bool = typer.Option(False, "--json", help="输出 JSON(金额为元, 精确到分的字符串)"),
) -> None:
    """政策模拟: 同一年的理赔按基线与改革政策包各结算一次并比较 (policy simulation, docs/simulation.md)."""
    import time

    from yibao.batch.run import open_claims
    from yibao.policy.compiled import CompiledPack
    from yibao.policy.loader import resolve_pack
    from yibao.simulation import catastrophic_share_of, format_simulation, simulate
    from yibao.simulation.comparison import check_out_dir
    from yibao.simulation.progress import step_progress

    started = time.perf_counter()
    try:
        base = CompiledPack(resolve_pack(baseline))
        ref = CompiledPack(resolve_pack(reform))
        share_value = catastrophic_share_of(share, ref)
        check_out_dir(out_dir)
        run = open_claims(claims)
        with step_progress(err, run.con) as note:
            result = simulate(run, base, ref, out_dir, share_value, progress=note)
    except YibaoError as exc:
        fail(exc, as_json)
        return
    if as_json:
        print_json(result.to_dict())
        return
    out.print(format_simulation(result))
    out.print(f"[dim]{run.visits:,} 次就诊, 两个政策包; 用时 {time.perf_counter() - started:.1f} 秒 "
              f"(结算 {result.timings['settle_baseline']:.1f} + {result.timings['settle_reform']:.1f} 秒, "
              f"比较 {result.timings['compare']:.1f} 秒)[/]")


@app.command("monitor")
def monitor_cmd(
    claims: Path = typer.Option(..., "--claims", "-c", help="理赔数据目录(见 docs/claims-schema.md)"),
    policy: str = typer.Option(..., "--policy", "-p", help="政策包文件或内置名称(须有 monitoring 一节)"),
    out_dir: Optional[Path] = typer.Option(None, "--out", "-o", help="输出目录: monitoring.csv 与 monitoring.xlsx"),
    as_json: bool = typer.Option(False, "--json", help="输出 JSON(证件号码与姓名已脱敏)"),
) -> None:
    """因病返贫致贫风险监测: 年度个人负担超过预警线的人员名单 (return-to-poverty monitoring, docs/monitoring.md)."""
    from yibao.batch.run import open_claims
    from yibao.monitoring import format_monitoring, monitor
    from yibao.monitoring.measures import MonitoringError
    from yibao.monitoring.screen import thresholds_of
    from yibao.policy.compiled import CompiledPack
    from yibao.policy.loader import resolve_pack
    from yibao.simulation.progress import step_progress

    try:
        pack = CompiledPack(resolve_pack(policy))
        thresholds_of(pack)  # a pack without monitoring is refused before the claims are read
        if out_dir is not None and out_dir.exists() and not out_dir.is_dir():
            from yibao.errors import Problem

            raise MonitoringError(Problem("MON004", "--out", f"{out_dir} 已存在且不是目录"))
        run = open_claims(claims)
        with step_progress(err, run.con) as note:
            result = monitor(run, pack, None, out_dir, progress=note)
    except YibaoError as exc:
        fail(exc, as_json)
        return
    if as_json:
        print_json(result.to_dict())
        return
    out.print(format_monitoring(result))


def _register_domain_commands() -> None:
    import importlib

    for module in DOMAIN_COMMANDS:
        importlib.import_module(module).register(app, bench_app)


_register_domain_commands()
