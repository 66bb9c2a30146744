"""``yibao fund run``: fund operation from contributions and settled payouts (registered by payment.commands)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table
from sqlalchemy.orm import Session

from yibao.console import fail, out, print_json
from yibao.errors import Problem, YibaoError
from yibao.fund.outflows import outflows
from yibao.money import fen_to_yuan, format_yuan
from yibao.policy.loader import resolve_pack
from yibao.reports import publish
from yibao.sql import q
from yibao.store.database import default_url, make_engine


# Columns fund operation reads from each file (docs/fund.md).
REQUIRED = {"persons": ("psn_no", "insutype", "retiree", "categories"),
            "setlinfo": ("psn_no", "setl_time", "hifp_pay"),
            "contributions": ("psn_no", "insutype", "scheme", "period", "status", "employer_fen", "employee_fen",
                              "personal_fen", "assistance_fen", "fiscal_fen", "account_fen")}


def open_table(con, name: str, path: Path) -> None:
    """View ``name`` over a Parquet file, refused (FUND006) when unreadable or missing a column."""
    import duckdb

    from yibao.fund.operation import FundError

    try:
        con.sql(f"CREATE VIEW {name} AS SELECT * FROM read_parquet({q(path.as_posix())})")
        columns = {r[0] for r in con.sql(f"DESCRIBE {name}").fetchall()}
    except duckdb.Error as exc:
        raise FundError(Problem("FUND006", str(path), f"不是可读的 Parquet 文件: {str(exc).splitlines()[0]}")) from None
    missing = [c for c in REQUIRED[name] if c not in columns]
    if missing:
        raise FundError([Problem("FUND006", f"{path.name}.{c}", f"缺少列 {c}") for c in missing])


def run_fund(policy: str, claims: Path, settled: Path, year: Optional[int], simulation: Optional[Path],
             out_dir: Optional[Path]):
    """Fund operation of a synthetic (or real) region; returns (years, projection, outputs)."""
    import duckdb

    from yibao.fund.operation import FundError, operate, project, simulation_factors
    from yibao.payment.run import connect

    pack = resolve_pack(policy)
    if pack.fund is None:
        raise FundError(Problem("FUND001", "fund", f"政策包 {pack.pack.id} 没有 fund 一节(缴费率、补助、预警阈值)"))
    for code in pack.fund.assistance:
        if code not in pack.categories:
            raise FundError(Problem("FUND002", f"fund.assistance.{code}", f"未声明的人员类别 {code!r}"))
    persons, setlinfo = Path(claims) / "persons.parquet", Path(settled) / "setlinfo.parquet"
    for path in (persons, setlinfo):
        if not path.exists():
            raise FundError(Problem("FUND004", str(path), "文件不存在"))
    con = connect()
    for name, path in (("persons", persons), ("setlinfo", setlinfo)):
        open_table(con, name, path)
    year = year or pack.pack.effective_from.year
    ledger = Path(claims) / "contributions.parquet"  # the enrolment ledger, when the region has one
    booked: set[str] = set()
    if ledger.exists():
        open_table(con, "contributions", ledger)
        booked = _ledger_schemes(con)
    try:
        years = operate(con, pack.fund, year, ledger=ledger.exists())
    except duckdb.Error as exc:  # a column of the wrong type (e.g. categories not a list)
        raise FundError(Problem("FUND006", f"{persons.name}, {setlinfo.name}",
                                f"列类型不符: {str(exc).splitlines()[0]}")) from None
    ltc_settled = Path(settled) / "ltc_settlements.parquet"
    if pack.ltc is not None and pack.ltc.funding is not None and ltc_settled.exists():  # 长护险基金 (yibao ltc settle)
        from yibao.ltc.fund import ltc_year

        con.sql(f"CREATE VIEW ltc_settlements AS SELECT * FROM read_parquet({q(ltc_settled.as_posix())})")
        years.append(ltc_year(con, pack, year))
    projection = project(years, pack.fund)
    assumptions = {"pack": pack.pack.id, "year": year, **pack.fund.projection.model_dump(),
                   "income_basis": {y.insutype: "ledger: contributions.parquet" if y.insutype in booked
                                    else "assumption: pack fund section" for y in years}}
    if simulation is not None:
        factors = simulation_factors(simulation)
        projection += project(years, pack.fund, factors, "reform")
        assumptions["simulation_expense_factors"] = {k: str(v) for k, v in factors.items()}
    outputs = {}
    if out_dir is not None:
        from yibao.fund.report import write

        outputs = publish(out_dir, lambda tmp: write(years, projection, assumptions, tmp),
                          lambda m: FundError(Problem("FUND005", "--out", m)))
    return years, projection, outputs


def _ledger_schemes(con) -> set[str]:
    return {r[0] for r in con.sql("SELECT DISTINCT insutype FROM contributions WHERE status = 'paid'").fetchall()}


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add ``yibao fund`` to the app."""
    fund_app = typer.Typer(help="基金运行: 收支、累计结余、可支付月数、预警、预测 (docs/fund.md)", no_args_is_help=True)
    app.add_typer(fund_app, name="fund")

    @fund_app.command("run")
    def fund_run(
        policy: str = typer.Option(..., "--policy", "-p", help="政策包(须有 fund 一节)"),
        claims: Path = typer.Option(..., "--claims", "-c", help="理赔数据目录(persons.parquet)"),
        settled: Path = typer.Option(..., "--settled", "-s", help="批量结算输出目录(setlinfo.parquet)"),
        year: Optional[int] = typer.Option(None, "--year", help="年度, 默认为政策包生效年度"),
        simulation: Optional[Path] = typer.Option(None, "--simulation", help="yibao simulate --json 的输出, 用于改革情景预测"),
        out_dir: Optional[Path] = typer.Option(None, "--out", "-o", help="输出目录: fund.json, fund.xlsx, PNG 图表"),
    ) -> None:
        """基金运行分析 (fund operation: income, expense, months of payout, warnings, projection)."""
        from yibao.fund.operation import LEVELS, SCHEMES

        try:
            years, projection, outputs = run_fund(policy, claims, settled, year, simulation, out_dir)
        except YibaoError as exc:
            fail(exc)
            return
        view = Table(title="基金运行 fund operation")
        for col in ("险种", "收入(元)", "支出(元)", "当年结余(元)", "年末累计结余(元)", "可支付月数", "预警"):
            view.add_column(col, justify="right")
        for y in years:
            view.add_row(SCHEMES[y.insutype], format_yuan(y.income), format_yuan(y.expense), format_yuan(y.balance),
                         format_yuan(y.closing), str(y.months_of_payout), LEVELS[y.level])
        out.print(view)
        proj = Table(title="预测 projection (年末可支付月数)")
        for col in ("情景", "险种", "年度", "累计结余(元)", "可支付月数", "预警"):
            proj.add_column(col)
        for p in projection:
            proj.add_row(p.scenario, p.insutype, str(p.year), format_yuan(p.closing), str(p.months_of_payout),
                         LEVELS[p.level])
        out.print(proj)
        for name, path in outputs.items():
            out.print(f"  已写出 {name}: {path}")

    @fund_app.command("outflows")
    def fund_outflows(
        year: int = typer.Option(..., "--year", help="年度"),
        url: Optional[str] = typer.Option(None, "--url", help="数据库 URL; 默认 YIBAO_DATABASE_URL 或 YIBAO_DATA_DIR/yibao.db"),
        as_json: bool = typer.Option(False, "--json", help="输出 JSON(金额为元)"),
    ) -> None:
        """基金实际支出: 向定点机构的拨付、预付金、集采结余留用, 按月、基金、类别 (from the payment ledger, docs/institutions.md)."""
        engine = make_engine(url or default_url())
        try:
            with Session(engine) as s:
                rows = outflows(s, year)
        finally:
            engine.dispose()
        if as_json:
            print_json([{**r, "amount": str(fen_to_yuan(r.pop("amount_fen")))} for r in rows])
            return
        view = Table(title=f"{year} 年基金实际支出 fund outflows to institutions")
        for col in ("月份", "基金", "类别", "笔数", "金额(元)"):
            view.add_column(col, justify="right")
        for r in rows:
            view.add_row(r["month"], r["fund_name"], r["kind_name"], str(r["entries"]), format_yuan(r["amount_fen"]))
        view.add_row("合计", "", "", str(sum(r["entries"] for r in rows)), format_yuan(sum(r["amount_fen"] for r in rows)))
        out.print(view)
