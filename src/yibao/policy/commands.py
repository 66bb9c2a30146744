"""``yibao policy``: check packs, print the JSON Schema, list the shipped packs."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from yibao.console import err, out
from yibao.errors import YibaoError
from yibao.policy.loader import resolve_pack, shipped_pack_names
from yibao.policy.schema import schema_text

policy_app = typer.Typer(help="政策包: 校验、JSON Schema、示例列表 (policy packs)", no_args_is_help=True)


@policy_app.command("check")
def policy_check(packs: list[str] = typer.Argument(..., help="政策包文件路径或内置政策包名称")) -> None:
    """校验政策包 (validate packs); 出错时列出文件、字段路径和违反的规则。"""
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
    text = schema_text()
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
        out.print(f"已写入 {output}")


@policy_app.command("list")
def policy_list() -> None:
    """列出内置示例政策包 (shipped example packs)."""
    table = Table("政策包", "区划", "有效期", "假设数")
    table.add_column("名称 name", no_wrap=True)
    for name in shipped_pack_names():
        pack = resolve_pack(name)
        info = pack.pack
        table.add_row(info.name, info.admdvs, f"{info.effective_from}–{info.effective_to}",
                      str(len(pack.assumptions)), name)
    out.print(table)


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    app.add_typer(policy_app, name="policy")
