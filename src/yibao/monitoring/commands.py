"""``yibao monitor``: persons whose burden crosses the pack's return-to-poverty lines."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from yibao.console import err, fail, out, print_json
from yibao.errors import Problem, YibaoError
from yibao.monitoring.measures import MonitoringError
from yibao.policy.compiled import CompiledPack
from yibao.policy.loader import resolve_pack
from yibao.simulation.progress import step_progress


def monitor_cmd(
    claims: Path = typer.Option(..., "--claims", "-c", help="理赔数据目录(见 docs/claims-schema.md)"),
    policy: str = typer.Option(..., "--policy", "-p", help="政策包文件或内置名称(须有 monitoring 一节)"),
    out_dir: Optional[Path] = typer.Option(None, "--out", "-o", help="输出目录: monitoring.csv 与 monitoring.xlsx"),
    as_json: bool = typer.Option(False, "--json", help="输出 JSON(证件号码与姓名已脱敏)"),
) -> None:
    """因病返贫致贫风险监测: 年度个人负担超过预警线的人员名单 (return-to-poverty monitoring, docs/monitoring.md)."""
    from yibao.batch.run import open_claims
    from yibao.monitoring.render import format_monitoring
    from yibao.monitoring.screen import monitor
    from yibao.monitoring.screen import thresholds_of

    try:
        pack = CompiledPack(resolve_pack(policy))
        thresholds_of(pack)  # a pack without monitoring is refused before the claims are read
        if out_dir is not None and out_dir.exists() and not out_dir.is_dir():
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


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    app.command("monitor")(monitor_cmd)
