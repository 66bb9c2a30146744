"""Write a simulation's files: simulation.json, simulation.xlsx, chart_*.png, simulation.html.

Everything is written into a hidden temporary directory beside the outputs and moved into place
only when every file is complete, so a failure leaves no half-written report behind.
"""

from __future__ import annotations

import json
from pathlib import Path

from yibao.errors import Problem
from yibao.reports import publish
from yibao.simulation.charts import write_charts
from yibao.simulation.errors import SimulationError
from yibao.simulation.report import write_html
from yibao.simulation.result import SimulationResult
from yibao.simulation.workbook import write_workbook


def write_json(result: SimulationResult, path: Path) -> Path:
    path.write_text(json.dumps(result.to_dict(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return path


def write_outputs(result: SimulationResult, out_dir: Path) -> dict[str, Path]:
    def build(tmp: Path) -> dict[str, Path]:
        try:

            charts = write_charts(result, tmp)
        except ImportError:  # matplotlib missing: the report still has every table
            charts = {}
            result.warnings.append("未安装 matplotlib, 未生成 PNG 图表 (pip install matplotlib)")
        written: dict[str, Path] = {"json": write_json(result, tmp / "simulation.json"),
                                    "xlsx": write_workbook(result, tmp / "simulation.xlsx")}
        written.update({f"chart_{name}": path for name, path in charts.items()})
        written["html"] = write_html(result, charts, tmp / "simulation.html")
        return written

    return publish(out_dir, build, lambda message: SimulationError(Problem("SIM003", "out_dir", message)))
