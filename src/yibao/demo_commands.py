"""``yibao demo``: the README's main job on embedded defaults."""

from __future__ import annotations

from pathlib import Path

import typer

from yibao.console import fail, out
from yibao.errors import Problem, YibaoError


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


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    app.command("demo")(demo_cmd)
