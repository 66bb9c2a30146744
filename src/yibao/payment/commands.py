"""Command-line commands of this domain, registered under ``yibao`` by ``yibao.cli``.

``yibao dip build|settle``, ``yibao drg build|settle``, ``yibao fund run`` and ``yibao bench dip``.
Heavy modules are imported inside the commands so ``yibao --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from yibao.console import fail, out, print_json
from yibao.errors import Problem, YibaoError
from yibao.fund.commands import register as register_fund
from yibao.money import yuan_to_fen
from yibao.policy.loader import resolve_pack

CASES_HELP = "病例文件(.parquet/.csv, 见 docs/payment.md); 或改用 --claims 与 --settled"
CLAIMS_HELP = "理赔数据目录(yibao synth 或本地区导出)"
SETTLED_HELP = "批量结算输出目录(yibao batch settle --out), 含 setlinfo.parquet"


def _sources(cases: Optional[Path], claims: Optional[Path], settled: Optional[Path], table: Optional[Path] = None,
             kind: str = "dip") -> dict:
    sources: dict = {"cases": cases, "claims": claims, "settled": settled}
    if kind == "drg":
        sources["table"] = table
    return sources


def _budget(text: Optional[str]) -> Optional[int]:
    if text is None:
        return None
    from yibao.payment.cases import PaymentError

    try:
        value = yuan_to_fen(text.replace(",", ""))
    except ValueError:
        value = -1
    if value < 0:
        raise PaymentError(Problem("PAY007", "--budget", f"预算须为不小于 0 的金额(元, 最多两位小数), 实际为 {text!r}"))
    return value


def _build(kind: str, policy: str, cases, claims, settled, years, out_dir, table=None) -> None:
    from yibao.payment.catalog import parse_years
    from yibao.payment.run import build_catalog

    try:
        pack = resolve_pack(policy)
        manifest = build_catalog(pack, kind, out_dir, parse_years(years), **_sources(cases, claims, settled, table, kind))
    except YibaoError as exc:
        fail(exc)
        return
    kinds = ", ".join(f"{k} {v}" for k, v in manifest["groups_by_kind"].items())
    out.print(f"[green]✓[/] 目录 {manifest['version']}: {manifest['groups']} 组({kinds}), 入组病例 {manifest['cases']:,},"
              f" 排除 {manifest['excluded']:,}; 用时 {sum(manifest['timings'].values()):.2f} 秒")
    for name, path in manifest["outputs"].items():
        out.print(f"  已写出 {name}: {path}")


def _settle(kind: str, policy: str, catalog: Path, period: str, budget, cases, claims, settled, out_dir, as_json,
            table=None) -> None:
    from yibao.payment.run import settle_period

    try:
        pack = resolve_pack(policy)
        result = settle_period(pack, kind, catalog, period, out_dir, _budget(budget),
                               **_sources(cases, claims, settled, table, kind))
    except YibaoError as exc:
        fail(exc, as_json)
        return
    if as_json:
        print_json(result.to_dict())
        return
    s = result.summary()
    view = Table(title=f"{kind.upper()} 结算 {period} · 目录 {s['catalog']}")
    view.add_column("项目 item")
    view.add_column("值 value", justify="right")
    for label, key in (("本期病例 cases", None), ("统筹基金预算 budget (元)", "budget"),
                       ("个人及其他基金已付 others (元)", "others_paid"), ("总分值 total points", "total_points"),
                       ("预算点值 budget point value", "budget_point_value"),
                       ("费用点值 cost point value", "cost_point_value"),
                       ("结算点值 settlement point value", "settlement_point_value"),
                       ("结余留用/超支分担 band adjustment (元)", "band_adjustment"),
                       ("基金拨付机构 fund pays (元)", "fund_paid")):
        value = (f"{s['cases']['settled']:,} 结算 / {s['cases']['excluded']:,} 排除" if key is None else s[key])
        view.add_row(label, value)
    out.print(view)
    for name, path in getattr(result, "outputs", {}).items():
        out.print(f"  已写出 {name}: {path}")


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add this domain's commands to the ``yibao`` app and its benchmarks to ``yibao bench``."""
    dip_app = typer.Typer(help="DIP 按病种分值付费: 建目录、结算 (docs/payment.md)", no_args_is_help=True)
    drg_app = typer.Typer(help="DRG 按疾病诊断相关分组付费: 分组表、建权重、结算 (docs/payment.md)", no_args_is_help=True)
    app.add_typer(dip_app, name="dip")
    app.add_typer(drg_app, name="drg")

    @dip_app.command("build")
    def dip_build(
        policy: str = typer.Option(..., "--policy", "-p", help="政策包(payment.dip 参数; 无则用默认值)"),
        out_dir: Path = typer.Option(..., "--out", "-o", help="目录输出文件夹"),
        cases: Optional[Path] = typer.Option(None, "--cases", help=CASES_HELP),
        claims: Optional[Path] = typer.Option(None, "--claims", "-c", help=CLAIMS_HELP),
        settled: Optional[Path] = typer.Option(None, "--settled", "-s", help=SETTLED_HELP),
        years: Optional[str] = typer.Option(None, "--years", help="历史年度与权重: 2023,2024 或 2022:1,2023:2,2024:3"),
    ) -> None:
        """由历史病例建立 DIP 病种分值目录 (build the DIP catalog from history)."""
        _build("dip", policy, cases, claims, settled, years, out_dir)

    @dip_app.command("settle")
    def dip_settle(
        policy: str = typer.Option(..., "--policy", "-p", help="政策包"),
        catalog: Path = typer.Option(..., "--catalog", help="yibao dip build 输出的目录"),
        period: str = typer.Option(..., "--period", help="结算期: 2024 或 2024-03"),
        budget: Optional[str] = typer.Option(None, "--budget", help="本期 DIP 统筹基金预算(元); 默认取政策包"),
        out_dir: Optional[Path] = typer.Option(None, "--out", "-o", help="输出目录: 报告、机构、病种、排除清单"),
        cases: Optional[Path] = typer.Option(None, "--cases", help=CASES_HELP),
        claims: Optional[Path] = typer.Option(None, "--claims", "-c", help=CLAIMS_HELP),
        settled: Optional[Path] = typer.Option(None, "--settled", "-s", help=SETTLED_HELP),
        as_json: bool = typer.Option(False, "--json", help="输出 JSON"),
    ) -> None:
        """按病种分值结算一个期间 (settle a period: points, point value, institution payments)."""
        _settle("dip", policy, catalog, period, budget, cases, claims, settled, out_dir, as_json)

    @drg_app.command("build")
    def drg_build(
        policy: str = typer.Option(..., "--policy", "-p", help="政策包(payment.drg 参数; 无则用默认值)"),
        out_dir: Path = typer.Option(..., "--out", "-o", help="权重表输出文件夹"),
        table: Optional[Path] = typer.Option(None, "--table", help="DRG 分组表 YAML; 默认为内置示例表"),
        cases: Optional[Path] = typer.Option(None, "--cases", help=CASES_HELP),
        claims: Optional[Path] = typer.Option(None, "--claims", "-c", help=CLAIMS_HELP),
        settled: Optional[Path] = typer.Option(None, "--settled", "-s", help=SETTLED_HELP),
        years: Optional[str] = typer.Option(None, "--years", help="历史年度与权重"),
    ) -> None:
        """按分组表对历史病例分组并计算各 DRG 的相对权重与点数 (DRG weights from history)."""
        _build("drg", policy, cases, claims, settled, years, out_dir, table)

    @drg_app.command("settle")
    def drg_settle(
        policy: str = typer.Option(..., "--policy", "-p", help="政策包"),
        catalog: Path = typer.Option(..., "--catalog", help="yibao drg build 输出的权重表"),
        period: str = typer.Option(..., "--period", help="结算期: 2024 或 2024-03"),
        budget: Optional[str] = typer.Option(None, "--budget", help="本期 DRG 统筹基金预算(元); 默认取政策包"),
        table: Optional[Path] = typer.Option(None, "--table", help="DRG 分组表 YAML; 默认为内置示例表"),
        out_dir: Optional[Path] = typer.Option(None, "--out", "-o", help="输出目录"),
        cases: Optional[Path] = typer.Option(None, "--cases", help=CASES_HELP),
        claims: Optional[Path] = typer.Option(None, "--claims", "-c", help=CLAIMS_HELP),
        settled: Optional[Path] = typer.Option(None, "--settled", "-s", help=SETTLED_HELP),
        as_json: bool = typer.Option(False, "--json", help="输出 JSON"),
    ) -> None:
        """DRG 点数法结算一个期间 (settle a period under DRG)."""
        _settle("drg", policy, catalog, period, budget, cases, claims, settled, out_dir, as_json, table)

    @drg_app.command("table")
    def drg_table(path: Optional[Path] = typer.Argument(None, help="分组表 YAML; 不填为内置示例表")) -> None:
        """校验并列出 DRG 分组表 (check and list a grouping table)."""
        from yibao.payment.drg import load_table, shipped_table_path

        try:
            table = load_table(path)
        except YibaoError as exc:
            fail(exc)
            return
        out.print(f"[green]✓[/] {path or shipped_table_path()}: {table.table.name} {table.table.version}")
        for mdc in table.mdcs:
            out.print(f"  {mdc.code} {mdc.name}: " + ", ".join(a.code for a in mdc.adrgs))
        out.print(f"  DRG 共 {len(table.drg_names())} 个; CC 前缀 {len(table.cc)} 个, MCC 前缀 {len(table.mcc)} 个")

    @bench_app.command("dip")
    def bench_dip(
        cases: int = typer.Option(200_000, help="病例数(issue 的规模为 2,000,000)"),
        naive_sample: int = typer.Option(0, help="朴素 Python 对照的抽样病例数; 0 = 全部病例"),
    ) -> None:
        """DIP 建目录 + 结算: DuckDB SQL 对比朴素 Python (DIP build + settle throughput)."""
        from yibao.payment.bench import format_report, run

        out.print(format_report(run(cases, naive_sample)))

    register_fund(app, bench_app)
