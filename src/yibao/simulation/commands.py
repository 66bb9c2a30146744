"""``yibao simulate``: one year's claims settled under a baseline and a reform pack, compared."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer

from yibao.console import err, fail, out, print_json
from yibao.errors import YibaoError
from yibao.policy.compiled import CompiledPack
from yibao.policy.loader import resolve_pack
from yibao.simulation.progress import step_progress
from yibao.simulation.render import format_simulation


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
    from yibao.batch.run import open_claims
    from yibao.simulation.comparison import catastrophic_share_of, simulate
    from yibao.simulation.comparison import check_out_dir

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


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    app.command("simulate")(simulate_cmd)
