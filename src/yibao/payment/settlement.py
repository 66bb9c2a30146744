"""Settle a period's cases against a catalog: groups, points, point value, institution payments.

The case-level work (grouping, reference costs, deviation, points) is SQL over DuckDB tables;
the period's few aggregates per institution then go through :mod:`yibao.payment.point_value`
in exact fractions. Every case of the period is accounted for: settled, or excluded with a
reason code (``cases_all.reason``).
"""

from __future__ import annotations

import csv
import json
import re
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import duckdb

from yibao.errors import Problem
from yibao.money import fen_to_yuan, format_yuan
from yibao.payment import dip, drg
from yibao.payment.cases import EXCLUSIONS, PaymentError, exclusions
from yibao.payment.catalog import CASE_KEYS, score_text
from yibao.payment.point_value import (
    Institution,
    PointSettlement,
    budget_fen,
    settle_points,
    yuan_per_point,
)
from yibao.payment.sql import group_report_sql, institution_sql, points_sql
from yibao.payment.workbook import write_sheets
from yibao.policy.model import PointPayment
from yibao.sql import q


def period_filter(period: str) -> str:
    """``2024`` (a year) or ``2024-03`` (a month) as a predicate on ``cases_all``."""
    if re.fullmatch(r"\d{4}", period):
        return f"year = {int(period)}"
    if re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", period):
        return f"month = '{period}'"
    raise PaymentError(Problem("PAY006", "--period", f"结算期写作 2024(年度)或 2024-03(月份), 实际为 {period!r}"))


@dataclass
class SettleResult:
    kind: str
    catalog: dict
    period: str
    settlement: PointSettlement
    params: PointPayment
    counts: dict[str, int]
    budget_source: str
    groups: list[dict] = field(default_factory=list)
    names: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict:
        s = self.settlement
        return {
            "kind": f"yibao.{self.kind}.settlement", "catalog": self.catalog.get("version"), "period": self.period,
            "cases": self.counts,
            "budget": str(fen_to_yuan(s.budget)), "budget_source": self.budget_source,
            "total_points": score_text(s.total_points_e4),
            "total_cost": str(fen_to_yuan(s.total_cost)), "others_paid": str(fen_to_yuan(s.total_others)),
            "budget_point_value": str(yuan_per_point(s.budget_point_value)),
            "cost_point_value": str(yuan_per_point(s.cost_point_value)),
            "settlement_point_value": str(yuan_per_point(s.point_value)),
            "point_value_exact_fen": f"{s.point_value.numerator}/{s.point_value.denominator}",
            "total_due": str(fen_to_yuan(s.total_due)), "band_adjustment": str(fen_to_yuan(s.total_adjustment)),
            "fund_paid": str(fen_to_yuan(s.total_paid)),
            "units": "金额为元; 点值为元/分(点), 显示 6 位小数, 计算用精确分数 point_value_exact_fen(分/点)",
        }

    def institution_rows(self) -> list[dict]:
        return [{"fixmedins_code": i.fixmedins_code, "level": i.level, "cases": i.cases,
                 "points": score_text(i.points_e4), "high_cases": i.high_cases, "low_cases": i.low_cases,
                 "comprehensive_cases": i.comprehensive_cases,
                 "medfee_sumamt": fen_to_yuan(i.cost), "others_paid": fen_to_yuan(i.others),
                 "hifp_pay_by_item": fen_to_yuan(i.hifp), "due": fen_to_yuan(i.due),
                 "band_adjustment": fen_to_yuan(i.adjustment), "fund_paid": fen_to_yuan(i.paid),
                 "difference_vs_item": fen_to_yuan(i.difference)} for i in self.settlement.institutions]

    def to_dict(self) -> dict:
        rows = [{k: str(v) if isinstance(v, Decimal) else v for k, v in r.items()} for r in self.institution_rows()]
        return {**self.summary(), "institutions": rows}


def settle(con: duckdb.DuckDBPyConnection, kind: str, catalog: dict, params: PointPayment, period: str,
           budget_override: int | None = None) -> SettleResult:
    """Settle the period's cases in ``cases_all`` against the catalog tables in ``con``."""
    started = time.perf_counter()
    where = period_filter(period)
    total, pre_excluded = con.sql(f"SELECT COUNT(*), COUNT(reason) FROM cases_all WHERE {where}").fetchone()
    if total == 0:
        raise PaymentError(Problem("PAY052", "--period", f"结算期 {period} 没有住院病例"))
    con.sql(f"CREATE OR REPLACE VIEW period_ok AS SELECT {', '.join(CASE_KEYS)}, 1 AS w FROM cases_all "
            f"WHERE {where} AND reason IS NULL")
    grouping = dip.settle_grouping_sql("period_ok") if kind == "dip" else drg.grouping_sql("period_ok")
    # views, not copies: the period's rows are materialised once, as ``points``; the exclusion
    # update below only drops rows the view would not pass on anyway (``why`` not NULL)
    con.sql(f"""CREATE OR REPLACE VIEW assigned AS
        SELECT a.*, CASE WHEN g.group_code IS NULL THEN 'PAY030' WHEN l.level IS NULL THEN 'PAY031' END AS why
        FROM ({grouping}) a LEFT JOIN cat_groups g ON g.group_code = a.group_code
        LEFT JOIN cat_levels l ON l.level = a.level""")
    con.sql("UPDATE cases_all SET reason = x.why FROM (SELECT mdtrt_id, why FROM assigned WHERE why IS NOT NULL) x "
            "WHERE cases_all.mdtrt_id = x.mdtrt_id AND cases_all.reason IS NULL")
    con.sql("CREATE OR REPLACE VIEW assigned_ok AS SELECT * EXCLUDE (why) FROM assigned WHERE why IS NULL")
    try:
        con.sql("CREATE OR REPLACE TABLE points AS " + points_sql(
            "assigned_ok", "cat_groups", "cat_group_levels", "cat_levels", params.high_multiple, params.low_fraction))
    except duckdb.OutOfRangeException as exc:
        raise PaymentError(Problem("PAY060", "points", f"分值计算超出 64 位整数范围(费用或分值过大): {exc}")) from None
    grouped = time.perf_counter()
    rows = con.sql(institution_sql("points") + " ORDER BY fixmedins_code").fetchall()
    institutions = [Institution(r[0], r[1], *(int(x) for x in r[2:])) for r in rows]
    hifp_total = sum(i.hifp for i in institutions)
    if budget_override is not None:
        budget, source = budget_override, "--budget"
    elif period in params.budgets:
        budget, source = budget_fen(params.budgets[period], hifp_total), f"policy payment.{kind}.budgets.{period}"
    else:
        raise PaymentError(Problem("PAY050", f"payment.{kind}.budgets.{period}",
                                   f"结算期 {period} 没有预算: 请在政策包 payment.{kind}.budgets 中给出, 或用 --budget(元)"))
    result = settle_points(period, budget, institutions, params.cap_at_cost, params.surplus_bands, params.overspend_bands)
    settled = con.sql("SELECT COUNT(*) FROM points").fetchone()[0]
    counts = {"in_period": total, "settled": settled, "excluded": total - settled}
    groups = [dict(zip(("group_code", "group_kind", "cases", "points_e4", "cost", "score_e4", "catalog_avg_cost",
                        "high_cases", "low_cases"), r))
              for r in con.sql(group_report_sql("points") + " ORDER BY group_code").fetchall()]
    names = drg_names(con) if kind == "drg" else {}
    timings = {"points": grouped - started, "point_value": time.perf_counter() - grouped}
    return SettleResult(kind, catalog, period, result, params, counts, source, groups, names, timings)


def drg_names(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    try:
        return dict(con.sql("SELECT code, name FROM drg_names").fetchall())
    except duckdb.Error:
        return {}


def _csv(path: Path, rows: list[dict], header: list[str] | None = None) -> Path:
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=header or (list(rows[0]) if rows else ["none"]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def _scaled(column: str, places: int) -> str:
    """SQL: integer fen (or points × 10⁴) as exact decimal text. ``DECIMAL / 100`` is a DOUBLE in
    DuckDB, so scale by multiplying with a decimal literal instead."""
    return f"CAST(CAST({column} AS DECIMAL(38,0)) * 0.{'0' * (places - 1)}1 AS VARCHAR)"


def write_outputs(con: duckdb.DuckDBPyConnection, result: SettleResult, tmp: Path) -> dict[str, Path]:
    """settlement.json, institutions.csv, groups.csv, cases.parquet, moves.csv, exclusions.csv, report.md, .xlsx."""

    paths: dict[str, Path] = {}
    paths["settlement.json"] = tmp / "settlement.json"
    paths["settlement.json"].write_text(json.dumps(result.to_dict(), ensure_ascii=False, indent=2) + "\n", "utf-8")
    inst = result.institution_rows()
    paths["institutions.csv"] = _csv(tmp / "institutions.csv", inst)
    group_rows = [{"group_code": g["group_code"], "name": result.names.get(g["group_code"], ""),
                   "group_kind": g["group_kind"], "cases": g["cases"], "score": score_text(g["score_e4"]),
                   "points": score_text(g["points_e4"]), "medfee_sumamt": fen_to_yuan(g["cost"]),
                   "catalog_avg_cost": fen_to_yuan(g["catalog_avg_cost"]), "high_cases": g["high_cases"],
                   "low_cases": g["low_cases"]} for g in result.groups]
    paths["groups.csv"] = _csv(tmp / "groups.csv", group_rows)
    paths["cases.parquet"] = tmp / "cases.parquet"
    con.sql(f"""COPY (SELECT mdtrt_id, psn_no, fixmedins_code, level, dise_codg, oprn_combo AS oprn_oprt_code,
                   group_code, group_kind, deviation, cost AS medfee_fen, ref_cost AS ref_cost_fen,
                   score_e4, coeff_e4, points_e4 FROM points ORDER BY mdtrt_id)
                TO {q(paths['cases.parquet'].as_posix())} (FORMAT parquet)""")
    m = result.params.high_multiple
    f = result.params.low_fraction
    moves = con.sql(f"""SELECT mdtrt_id, fixmedins_code, group_code, group_kind, deviation,
          {_scaled('cost', 2)} AS medfee_sumamt, {_scaled('ref_cost', 2)} AS ref_avg_cost,
          {_scaled('points_e4', 4)} AS points,
          CASE deviation
            WHEN 'high' THEN '高倍率: 费用 > {m} × 同级次均费用, 分值 = [(费用/次均 − {m}) + 1] × 病种分值'
            WHEN 'low' THEN '低倍率: 费用 < {f} × 同级次均费用, 分值 = 费用/次均 × 病种分值'
            ELSE '综合病种: 该诊断与手术操作组合在历史中病例数不足, 按诊断类目与操作类型入组' END AS why
        FROM points WHERE deviation <> 'normal' OR group_kind = 'comprehensive' ORDER BY mdtrt_id""")
    paths["moves.csv"] = tmp / "moves.csv"
    moves.write_csv(paths["moves.csv"].as_posix())
    excl = exclusions(con, period_filter(result.period))
    header = ["mdtrt_id", "psn_no", "fixmedins_code", "dise_codg", "oprn_oprt_code", "medfee_fen", "code", "reason"]
    paths["exclusions.csv"] = _csv(tmp / "exclusions.csv", excl, header)
    paths["report.md"] = tmp / "report.md"
    paths["report.md"].write_text(markdown(result, excl), encoding="utf-8")
    paths["settlement.xlsx"] = write_sheets(tmp / "settlement.xlsx", {
        "汇总 summary": [{"项目 item": k, "值 value": str(v)} for k, v in result.summary().items()
                       if not isinstance(v, dict)],
        "机构 institutions": inst, "病种 groups": group_rows, "排除 exclusions": excl})
    return paths


def markdown(result: SettleResult, excl: list[dict]) -> str:
    s = result.settlement
    title = "DIP 病种分值结算" if result.kind == "dip" else "DRG 点数法结算"
    lines = [f"# {title} {result.period}", "",
             f"目录 catalog: `{result.catalog.get('version')}`; 预算来源 budget from: {result.budget_source}", "",
             "| 项目 | 值 |", "| --- | ---: |",
             f"| 本期病例 cases in period | {result.counts['in_period']:,} |",
             f"| 结算病例 settled | {result.counts['settled']:,} |",
             f"| 排除病例 excluded (见 exclusions.csv) | {result.counts['excluded']:,} |",
             f"| 统筹基金预算 budget (元) | {format_yuan(s.budget)} |",
             f"| 个人及其他基金已付 patients' and other funds' payments (元) | {format_yuan(s.total_others)} |",
             f"| 医疗费总额 total cost (元) | {format_yuan(s.total_cost)} |",
             f"| 总分值 total points | {score_text(s.total_points_e4)} |",
             f"| 预算点值 budget point value (元/分) | {yuan_per_point(s.budget_point_value)} |",
             f"| 费用点值 cost point value (元/分) | {yuan_per_point(s.cost_point_value)} |",
             f"| 结算点值 settlement point value (元/分) | {yuan_per_point(s.point_value)} |",
             f"| 应付总额 total due = 总分值 × 结算点值 (元) | {format_yuan(s.total_due)} |",
             f"| 结余留用/超支分担调整 band adjustment (元) | {format_yuan(s.total_adjustment)} |",
             f"| 基金拨付 fund pays institutions (元) | {format_yuan(s.total_paid)} |", "",
             "## 机构 Institutions", "",
             "| 机构 | 等级 | 病例 | 分值 | 高/低倍率 | 应付(元) | 调整(元) | 基金拨付(元) | 按项目统筹(元) | 差额(元) |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for i in s.institutions:
        lines.append(f"| {i.fixmedins_code} | {i.level} | {i.cases:,} | {score_text(i.points_e4)} | "
                     f"{i.high_cases}/{i.low_cases} | {format_yuan(i.due)} | {format_yuan(i.adjustment)} | "
                     f"{format_yuan(i.paid)} | {format_yuan(i.hifp)} | {format_yuan(i.difference)} |")
    lines += ["", "差额 = 点数法基金拨付 − 按项目结算时统筹基金支付; 原因见 moves.csv(偏差病例、综合病种)。", ""]
    if excl:
        by_code: dict[str, int] = {}
        for e in excl:
            by_code[e["code"]] = by_code.get(e["code"], 0) + 1
        lines += ["## 排除 Exclusions", "", "| 代码 | 原因 | 病例 |", "| --- | --- | ---: |"]
        lines += [f"| {c} | {EXCLUSIONS[c]} | {n:,} |" for c, n in sorted(by_code.items())]
    return "\n".join(lines) + "\n"
