"""``yibao bench scalar``: the scalar engine's throughput on one core."""

from __future__ import annotations

import typer

from yibao.bench.scalar import format_report, run
from yibao.console import out


def bench_scalar(
    visits: int = typer.Option(20000, help="就诊数"),
    items: int = typer.Option(30, help="每次就诊费用明细条数"),
) -> None:
    """单次结算引擎吞吐量 (scalar engine throughput, one core)."""
    out.print(format_report(run(visits=visits, items_per_visit=items)))


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    bench_app.command("scalar")(bench_scalar)
