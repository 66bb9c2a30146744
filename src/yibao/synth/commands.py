"""``yibao synth``: a reproducible synthetic region (persons, institutions, a year of visits and lines)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from yibao.console import err, fail, out
from yibao.errors import Problem, YibaoError
from yibao.policy.loader import resolve_pack
from yibao.synth import SynthError, generate_to, window_for
from yibao.synth.fraud import synth_supervised


# --- synthetic region and claims data -----------------------------------------------------

def _whole_number(text: str, option: str, code: str, minimum: int) -> int:
    cleaned = text.replace("_", "").replace(",", "").strip()
    if not cleaned.lstrip("-").isdigit() or int(cleaned) < minimum:
        raise SynthError(Problem(code, option, f"必须是不小于 {minimum} 的整数, 实际为 {text!r}"))
    return int(cleaned)


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


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    app.command("synth")(synth_cmd)
