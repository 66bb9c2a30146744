"""fund.json, fund.xlsx and PNG charts of a fund-operation run (Chinese labels, drawn with the CJK font
shipped in a package: :mod:`yibao.charts`; years on the axis are whole years)."""

from __future__ import annotations

import json
from dataclasses import asdict
from decimal import Decimal
from pathlib import Path

from yibao.charts import chinese
from yibao.fund.operation import LEVELS, SCHEMES, ProjectionRow, SchemeYear
from yibao.money import fen_to_yuan
from yibao.payment.workbook import write_sheets


def _yuan_fields(d: dict, keys=("income", "expense", "balance", "accumulated", "opening", "closing",
                                "account_income")) -> dict:
    return {k: (fen_to_yuan(v) if k in keys else v) for k, v in d.items()}


def sheets(years: list[SchemeYear], projection: list[ProjectionRow]) -> dict[str, list[dict]]:
    monthly = [_yuan_fields({"险种 insutype": m.insutype, "月份 month": m.month, "income": m.income,
                             "expense": m.expense, "balance": m.balance, "accumulated": m.accumulated,
                             "可支付月数 months": m.months_of_payout, "预警 level": LEVELS[m.level]})
               for y in years for m in y.months]
    annual = [{"险种 insutype": f"{y.insutype} {SCHEMES[y.insutype]}", "年度 year": y.year, "参保人数 members": y.members,
               "缴费人数 contributors": y.contributors, "收入 income": fen_to_yuan(y.income),
               **{f"其中 {k}": fen_to_yuan(v) for k, v in y.income_sources.items()},
               "个人账户划入 account income": fen_to_yuan(y.account_income), "支出 expense": fen_to_yuan(y.expense),
               "当年结余 balance": fen_to_yuan(y.balance), "年初累计结余 opening": fen_to_yuan(y.opening),
               "年末累计结余 closing": fen_to_yuan(y.closing), "可支付月数 months": y.months_of_payout,
               "预警 level": LEVELS[y.level]} for y in years]
    proj = [{"情景 scenario": p.scenario, "险种 insutype": p.insutype, "年度 year": p.year,
             "收入 income": fen_to_yuan(p.income), "支出 expense": fen_to_yuan(p.expense),
             "累计结余 closing": fen_to_yuan(p.closing), "可支付月数 months": p.months_of_payout,
             "预警 level": LEVELS[p.level]} for p in projection]
    return {"年度 annual": annual, "月度 monthly": monthly, "预测 projection": proj}


def to_json(years: list[SchemeYear], projection: list[ProjectionRow], assumptions: dict) -> str:
    def default(o):
        if isinstance(o, Decimal):
            return str(o)
        raise TypeError(type(o))

    doc = {"kind": "yibao.fund", "units": "金额为分(整数) amounts in fen; months 为可支付月数",
           "years": [y.to_dict() for y in years], "projection": [asdict(p) for p in projection],
           "assumptions": assumptions}
    return json.dumps(doc, ensure_ascii=False, indent=2, default=default) + "\n"


def _line_chart(series: dict[str, tuple[list, list]], xlabel: str, ylabel: str, path: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    with chinese():
        fig = Figure(figsize=(8, 4), dpi=100)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
        for label, (xs, ys) in series.items():
            ax.plot(xs, [float(y or 0) for y in ys], marker="o", label=label)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # months and years are whole numbers
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.legend()
        fig.tight_layout()
        fig.savefig(path, format="png", metadata={"Software": None})
    return path


def charts(years: list[SchemeYear], projection: list[ProjectionRow], tmp: Path) -> dict[str, Path]:
    monthly = {f"{SCHEMES[y.insutype]} 可支付月数": ([m.month for m in y.months], [m.months_of_payout for m in y.months])
               for y in years}
    paths = {"months_of_payout.png": _line_chart(monthly, "月份", "可支付月数", tmp / "months_of_payout.png")}
    if projection:
        series = {}
        for key in sorted({(p.scenario, p.insutype) for p in projection}):
            rows = [p for p in projection if (p.scenario, p.insutype) == key]
            scenario = {"baseline": "基线", "reform": "改革"}.get(key[0], key[0])
            series[f"{SCHEMES[key[1]]} {scenario}"] = ([p.year for p in rows], [p.months_of_payout for p in rows])
        paths["projection.png"] = _line_chart(series, "年度", "年末可支付月数", tmp / "projection.png")
    return paths


def write(years, projection, assumptions: dict, tmp: Path) -> dict[str, Path]:

    paths = {"fund.json": tmp / "fund.json"}
    paths["fund.json"].write_text(to_json(years, projection, assumptions), encoding="utf-8")
    book = sheets(years, projection)
    book["假设 assumptions"] = [{"项目 item": k, "值 value": str(v)} for k, v in assumptions.items()]
    paths["fund.xlsx"] = write_sheets(tmp / "fund.xlsx", book)
    paths.update(charts(years, projection, tmp))
    return paths
