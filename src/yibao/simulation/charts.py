"""PNG charts of a simulation (matplotlib, Agg canvas, no pyplot state, no system fonts).

Labels are Chinese, drawn with the CJK font shipped inside a package (:mod:`yibao.charts`), so
they render the same on every machine. Amounts are converted from fen to yuan (or 10,000 yuan)
only here, for drawing.
"""

from __future__ import annotations

from pathlib import Path

from yibao.charts import chinese
from yibao.simulation.result import DECILES, FIELD_NAMES, FUND_FIELDS, SimulationResult, percent

BASE_COLOUR = "#8c9bab"
REFORM_COLOUR = "#c0392b"
GAIN_COLOUR = "#1e7b34"  # a fall in burden
CHARTS = {
    "fund_by_tier": "各层次基金支出 Fund payout by tier",
    "burden_deciles": "年度个人负担十分位数 Annual out-of-pocket burden, deciles",
    "change_by_group": "各人群基金支出与人均负担的变化 Change by group",
    "catastrophic": "灾难性医疗支出家庭占比 Households with catastrophic expenditure",
}


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, format="png", metadata={"Software": None})
    return path


def _bars(ax, labels, base, reform, ylabel):
    import numpy as np

    x = np.arange(len(labels))
    ax.bar(x - 0.2, base, 0.4, label="基线", color=BASE_COLOUR)
    ax.bar(x + 0.2, reform, 0.4, label="改革", color=REFORM_COLOUR)
    ax.set_xticks(x, labels)
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)
    ax.legend()


def fund_by_tier(result: SimulationResult, path: Path) -> Path:
    overall = result.overall
    fields = [f for f in FUND_FIELDS if overall.amounts[f].baseline or overall.amounts[f].reform]
    labels = [f"{FIELD_NAMES[f]}\n({f})" for f in fields]
    fig = _figure(11, 4.2)
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
    _bars(left, labels, [overall.amounts[f].baseline / 1e6 for f in fields],
          [overall.amounts[f].reform / 1e6 for f in fields], "万元")
    left.set_title("各层次基金支出")
    change = [overall.amounts[f].change / 1e6 for f in fields]
    right.bar(range(len(fields)), change, 0.6, color=[REFORM_COLOUR if v >= 0 else GAIN_COLOUR for v in change])
    right.set_xticks(range(len(fields)), fields, rotation=20)
    right.axhline(0, color="black", linewidth=0.6)
    right.grid(axis="y", alpha=0.3)
    right.set_ylabel("万元")
    right.set_title("变化(改革 − 基线)")
    fig.suptitle(f"{result.baseline['id']} vs {result.reform['id']}")
    return _save(fig, path)


def burden_deciles(result: SimulationResult, path: Path) -> Path:
    burden = result.overall.burden
    fig = _figure(8, 4.2)
    ax = fig.add_subplot()
    _bars(ax, [f"P{p}" for p in DECILES], [d.baseline / 100 for d in burden.deciles],
          [d.reform / 100 for d in burden.deciles], "元/人·年")
    ax.set_title("年度个人负担十分位数(全体参保人)")
    return _save(fig, path)


def change_by_group(result: SimulationResult, path: Path) -> Path:
    groups = [g for dim in ("insutype", "level", "category", "med_type") for g in result.dimension(dim)]
    labels = [g.name for g in groups]
    fig = _figure(10, max(3.5, 0.32 * len(groups) + 1.5))
    left, right = fig.subplots(1, 2, sharey=True)
    y = list(range(len(groups)))[::-1]
    fund = [g.fund.change / 1e6 for g in groups]
    left.barh(y, fund, color=[REFORM_COLOUR if v >= 0 else BASE_COLOUR for v in fund])
    left.set_yticks(y, labels)
    left.set_xlabel("基金支出变化(万元)")
    left.axvline(0, color="black", linewidth=0.6)
    left.grid(axis="x", alpha=0.3)
    mean = []
    for g in groups:
        change, _ = g.burden.mean_change()
        mean.append(float(change) if change is not None else 0.0)
    right.barh(y, mean, color=[BASE_COLOUR if v >= 0 else GAIN_COLOUR for v in mean])
    right.set_xlabel("人均年度个人负担变化(元)")
    right.axvline(0, color="black", linewidth=0.6)
    right.grid(axis="x", alpha=0.3)
    fig.suptitle("改革 − 基线: 按险种、机构等级、人员类别、医疗类别")
    return _save(fig, path)


def _wrap(name: str, width: int = 5) -> str:
    """Chinese tick labels broken every few characters so neighbours do not overlap."""
    return "\n".join(name[i:i + width] for i in range(0, len(name), width))


def catastrophic(result: SimulationResult, path: Path) -> Path:
    groups = [g for dim in ("overall", "insutype", "category") for g in result.dimension(dim)]
    shares = [g.households.shares() for g in groups]
    fig = _figure(max(6, 0.9 * len(groups) + 2), 4.2)
    ax = fig.add_subplot()
    _bars(ax, [_wrap(g.name) for g in groups], [float(b or 0) for b, _ in shares],
          [float(r or 0) for _, r in shares], "家庭占比(%)")
    ax.set_title(f"灾难性医疗支出家庭占比(个人负担 > 家庭收入的 {percent(result.catastrophic_share)}%)")
    return _save(fig, path)


def write_charts(result: SimulationResult, out_dir: Path) -> dict[str, Path]:
    """Draw every chart into ``out_dir/chart_<name>.png``; returns {name: path}."""
    drawers = {"fund_by_tier": fund_by_tier, "burden_deciles": burden_deciles,
               "change_by_group": change_by_group, "catastrophic": catastrophic}
    with chinese():
        return {name: draw(result, out_dir / f"chart_{name}.png") for name, draw in drawers.items()}
