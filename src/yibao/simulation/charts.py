"""PNG charts of a simulation (matplotlib, Agg canvas, no pyplot state, no system fonts).

Labels are in English on purpose: a machine without a CJK font (most CI runners, many
servers) would draw Chinese as empty boxes, and matplotlib's bundled DejaVu fonts have no
Chinese glyphs. The HTML report and the workbook carry the Chinese names beside each chart.
Amounts are converted from fen to yuan (or 10,000 yuan) only here, for drawing.
"""

from __future__ import annotations

from pathlib import Path

from yibao.simulation.result import DECILES, FIELD_ENGLISH, FUND_FIELDS, SimulationResult, percent

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
    ax.bar(x - 0.2, base, 0.4, label="baseline", color=BASE_COLOUR)
    ax.bar(x + 0.2, reform, 0.4, label="reform", color=REFORM_COLOUR)
    ax.set_xticks(x, labels)
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)
    ax.legend()


def fund_by_tier(result: SimulationResult, path: Path) -> Path:
    overall = result.overall
    fields = [f for f in FUND_FIELDS if overall.amounts[f].baseline or overall.amounts[f].reform]
    labels = [f"{FIELD_ENGLISH[f]}\n({f})" for f in fields]
    fig = _figure(11, 4.2)
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
    _bars(left, labels, [overall.amounts[f].baseline / 1e6 for f in fields],
          [overall.amounts[f].reform / 1e6 for f in fields], "10,000 yuan")
    left.set_title("Fund payout by tier")
    change = [overall.amounts[f].change / 1e6 for f in fields]
    right.bar(range(len(fields)), change, 0.6, color=[REFORM_COLOUR if v >= 0 else GAIN_COLOUR for v in change])
    right.set_xticks(range(len(fields)), fields, rotation=20)
    right.axhline(0, color="black", linewidth=0.6)
    right.grid(axis="y", alpha=0.3)
    right.set_ylabel("10,000 yuan")
    right.set_title("Change (reform - baseline)")
    fig.suptitle(f"{result.baseline['id']} vs {result.reform['id']}")
    return _save(fig, path)


def burden_deciles(result: SimulationResult, path: Path) -> Path:
    burden = result.overall.burden
    fig = _figure(8, 4.2)
    ax = fig.add_subplot()
    _bars(ax, [f"P{p}" for p in DECILES], [d.baseline / 100 for d in burden.deciles],
          [d.reform / 100 for d in burden.deciles], "yuan per person-year")
    ax.set_title("Annual out-of-pocket burden per person, deciles (all insured)")
    return _save(fig, path)


def change_by_group(result: SimulationResult, path: Path) -> Path:
    groups = [g for dim in ("insutype", "level", "category", "med_type") for g in result.dimension(dim)]
    labels = [g.label for g in groups]
    fig = _figure(10, max(3.5, 0.32 * len(groups) + 1.5))
    left, right = fig.subplots(1, 2, sharey=True)
    y = list(range(len(groups)))[::-1]
    fund = [g.fund.change / 1e6 for g in groups]
    left.barh(y, fund, color=[REFORM_COLOUR if v >= 0 else BASE_COLOUR for v in fund])
    left.set_yticks(y, labels)
    left.set_xlabel("change in fund payout, 10,000 yuan")
    left.axvline(0, color="black", linewidth=0.6)
    left.grid(axis="x", alpha=0.3)
    mean = []
    for g in groups:
        change, _ = g.burden.mean_change()
        mean.append(float(change) if change is not None else 0.0)
    right.barh(y, mean, color=[BASE_COLOUR if v >= 0 else GAIN_COLOUR for v in mean])
    right.set_xlabel("change in mean annual OOP, yuan per person")
    right.axvline(0, color="black", linewidth=0.6)
    right.grid(axis="x", alpha=0.3)
    fig.suptitle("Reform minus baseline, by scheme / level / category / medical type")
    return _save(fig, path)


def catastrophic(result: SimulationResult, path: Path) -> Path:
    groups = [g for dim in ("overall", "insutype", "category") for g in result.dimension(dim)]
    shares = [g.households.shares() for g in groups]
    fig = _figure(max(6, 0.9 * len(groups) + 2), 4.2)
    ax = fig.add_subplot()
    _bars(ax, [g.label.replace(" ", "\n", 1) for g in groups], [float(b or 0) for b, _ in shares],
          [float(r or 0) for _, r in shares], "% of households")
    ax.set_title(f"Households with catastrophic expenditure (OOP > {percent(result.catastrophic_share)}% of income)")
    return _save(fig, path)


def write_charts(result: SimulationResult, out_dir: Path) -> dict[str, Path]:
    """Draw every chart into ``out_dir/chart_<name>.png``; returns {name: path}."""
    drawers = {"fund_by_tier": fund_by_tier, "burden_deciles": burden_deciles,
               "change_by_group": change_by_group, "catastrophic": catastrophic}
    return {name: draw(result, out_dir / f"chart_{name}.png") for name, draw in drawers.items()}
