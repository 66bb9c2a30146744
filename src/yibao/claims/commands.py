"""``yibao claims check``: a claims directory checked against the contract, every problem named."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from yibao.claims.schema import ClaimsError, validate_claims
from yibao.console import fail, out, print_json
from yibao.errors import YibaoError
from yibao.policy.loader import resolve_pack

claims_app = typer.Typer(help="理赔数据: 按输入规范校验 (claims data, see docs/claims-schema.md)", no_args_is_help=True)


@claims_app.command("check")
def claims_check(
    directory: Path = typer.Argument(..., help="理赔数据目录: persons/institutions/visits/fee_items 的 Parquet、CSV 或 Excel"),
    pack: Optional[str] = typer.Option(None, "--pack", "-p", help="同时检查政策包声明的代码与有效期"),
    as_json: bool = typer.Option(False, "--json", help="输出 JSON 报告"),
) -> None:
    """按输入规范校验理赔数据, 列出有问题的行与列 (check a claims directory)."""
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


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    app.add_typer(claims_app, name="claims")
