"""基金看板: the latest fund-operation run (``yibao fund run --out DIR`` writes ``fund.json``) as tables
and ECharts charts with Chinese labels: monthly income and expense per insurance type, the
accumulated balance, months of payout against the pack's warning band, and the projection
(baseline vs reform) on integer years.

The page computes nothing of its own: every figure is read from fund.json (fen, exact), the band
from the pack named in its assumptions. Which run is shown: the file named by ``YIBAO_FUND_REPORT``
(a fund.json, or the directory holding it), read at each request so a new run shows at once.
"""

from __future__ import annotations

import json
import os
from decimal import Decimal
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from yibao.fund.operation import LEVELS, SCHEMES
from yibao.money import fen_to_yuan
from yibao.service.desk import Desk
from yibao.web import site
from yibao.web.packs import shipped
from yibao.web.site import nav_entry, render, require

nav_entry("/fund", "基金看板", "fund.read", order=50)
ENV = "YIBAO_FUND_REPORT"


def report_path() -> Path | None:
    value = os.environ.get(ENV, "").strip()
    if not value:
        return None
    path = Path(value)
    return path / "fund.json" if path.is_dir() else path


def load(path: Path) -> dict:
    doc = json.loads(path.read_text(encoding="utf-8"))
    if doc.get("kind") != "yibao.fund":
        raise ValueError("不是 yibao fund run 输出的 fund.json")
    return doc


def chart_data(doc: dict) -> dict:
    """What the charts draw (yuan as strings of exact decimals, months, integer years)."""

    pack = shipped().get(str(doc.get("assumptions", {}).get("pack", "")))
    band = pack.fund.warning.model_dump(mode="json") if pack is not None and pack.fund else None
    schemes = []
    for y in doc["years"]:
        scenarios: dict[str, dict] = {}
        for p in doc["projection"]:
            if p["insutype"] == y["insutype"]:
                s = scenarios.setdefault(p["scenario"], {"years": [], "closing": [], "months": []})
                s["years"].append(int(p["year"]))
                s["closing"].append(str(fen_to_yuan(p["closing"])))
                s["months"].append(p["months_of_payout"])
        schemes.append({"insutype": y["insutype"], "name": SCHEMES.get(y["insutype"], y["insutype"]),
                        "months": [f"{m['month']}月" for m in y["months"]],
                        "income": [str(fen_to_yuan(m["income"])) for m in y["months"]],
                        "expense": [str(fen_to_yuan(m["expense"])) for m in y["months"]],
                        "accumulated": [str(fen_to_yuan(m["accumulated"])) for m in y["months"]],
                        "payout": [m["months_of_payout"] for m in y["months"]],
                        "projection": scenarios})
    return {"schemes": schemes, "band": band,
            "scenario_names": {"baseline": "基线", "reform": "改革方案"}}


def routes(router: APIRouter, desk: Desk) -> None:

    @router.get("/fund", response_class=HTMLResponse)
    def fund_page(request: Request):
        who = site.current(request, desk)
        require(who, "fund.read")
        path = report_path()
        problem, doc = None, None
        if path is None:
            problem = f"尚未发布基金运行结果: 请先运行 yibao fund run --out 目录, 并以环境变量 {ENV} 指向该目录。"
        else:
            try:
                doc = load(path)
            except (OSError, ValueError, KeyError):
                problem = "基金运行结果文件无法读取(应为 yibao fund run 输出的 fund.json)。"
        if doc is None:
            return render(request, "fund.html", problem=problem, years=[], data_json="{}")
        years = [dict(y, name=SCHEMES.get(y["insutype"], y["insutype"]), level_zh=LEVELS.get(y["level"], y["level"]))
                 for y in doc["years"]]
        data = json.dumps(chart_data(doc), ensure_ascii=False).replace("</", "<\\/")
        return render(request, "fund.html", problem=None, years=years, data_json=data, yuan_of=fen_to_yuan,
                      assumptions=doc.get("assumptions", {}), Decimal=Decimal)
