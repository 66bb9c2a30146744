"""The simulation's figures laid out as tables (headers + rows), shared by the workbook and the
HTML report so both say the same thing under the same Chinese headers.

Cells are Python values: money as exact ``Decimal`` yuan, counts as ``int``, percentages as
``Decimal`` percent, text as ``str``; ``None`` where a figure does not exist (a % change from 0).
Each column also names its kind so an exporter can format it: ``money``, ``delta`` (a signed
change of money), ``count``, ``pct`` (a share in %), ``chg`` (a change in %), ``points`` (a change
in percentage points), ``text``, ``any``.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from yibao.money import fen_to_yuan
from yibao.simulation.result import (
    AMOUNT_FIELDS, DECILES, DIMENSIONS, FIELD_NAMES, FUND_FIELDS, Pair, SimulationResult,
)


@dataclass(frozen=True)
class Column:
    header: str
    kind: str  # money | delta (signed money) | count | pct | chg | points | text | any


@dataclass
class Sheet:
    title: str
    columns: list[Column]
    rows: list[list]
    note: str = ""


def _m(fen: int | None) -> Decimal | None:
    return None if fen is None else fen_to_yuan(fen)


def money_cols(label: str) -> list[Column]:
    return [Column(f"{label}(基线)", "money"), Column(f"{label}(改革)", "money"),
            Column(f"{label}变化", "delta"), Column(f"{label}变化%", "chg")]


def money_cells(p: Pair) -> list:
    return [_m(p.baseline), _m(p.reform), _m(p.change), p.pct]


def used_fund_fields(result: SimulationResult) -> list[str]:
    overall = result.overall
    return [f for f in FUND_FIELDS if overall.amounts[f].baseline or overall.amounts[f].reform]


def group_sheet(result: SimulationResult, dimension: str, title: str) -> Sheet:
    funds = used_fund_fields(result)
    columns = [Column("分组代码", "text"), Column("分组", "text"), Column("就诊人次", "count"),
               Column("受影响就诊人次", "count"), Column("人数(人年)", "count"), Column("有就诊人数", "count"),
               Column("受影响人数", "count")]
    columns += money_cols("基金支付")
    columns += money_cols("个人负担")
    columns += [Column("人均年个人负担(基线)", "money"), Column("人均年个人负担(改革)", "money"),
                Column("人均年个人负担变化", "delta"), Column("人均年个人负担变化%", "chg")]
    columns += [Column("灾难性支出家庭%(基线)", "pct"), Column("灾难性支出家庭%(改革)", "pct"),
                Column("家庭占比变化(百分点)", "points"),
                Column("灾难性支出人员%(基线)", "pct"), Column("灾难性支出人员%(改革)", "pct"),
                Column("人员占比变化(百分点)", "points")]
    for f in funds:
        columns += [Column(f"{FIELD_NAMES[f]}(基线)", "money"), Column(f"{FIELD_NAMES[f]}(改革)", "money"),
                    Column(f"{FIELD_NAMES[f]}变化", "delta")]
    rows = []
    for g in result.dimension(dimension):
        mb, mr = g.burden.mean()
        change, change_pct = g.burden.mean_change()
        hb, hr = g.households.shares()
        pb, pr = g.persons.shares()
        row = [g.key or "", g.name, g.visits, g.visits_affected, g.burden.persons, g.persons_with_visits,
               g.persons_affected]
        row += money_cells(g.fund) + money_cells(g.amounts["psn_part_amt"])
        row += [mb, mr, change, change_pct, hb, hr, g.households.change_points(), pb, pr, g.persons.change_points()]
        for f in funds:
            p = g.amounts[f]
            row += [_m(p.baseline), _m(p.reform), _m(p.change)]
        rows.append(row)
    note = ("人数与负担: 该险种/类别的全部参保人(含无就诊者)" if dimension in ("overall", "insutype", "category")
            else "人数与负担: 有此类就诊的参保人, 负担为其在此类就诊上的年度个人负担")
    return Sheet(title, columns, rows, note + "; 灾难性支出按家庭全年个人负担判断。")


def overview_sheet(result: SimulationResult) -> Sheet:
    g = result.overall
    columns = [Column("指标", "text"), Column("单位", "text"), Column("基线", "any"), Column("改革", "any"),
               Column("变化", "any"), Column("变化%", "chg")]
    rows: list[list] = [
        ["政策包", "", result.baseline["id"], result.reform["id"], None, None],
        ["就诊人次", "次", g.visits, g.visits, 0, None],
        ["参保人数(人年)", "人", g.burden.persons, g.burden.persons, 0, None],
        ["受影响就诊人次", "次", None, g.visits_affected, None, None],
        ["受影响人数", "人", None, g.persons_affected, None, None],
    ]
    for f in AMOUNT_FIELDS:
        rows.append([FIELD_NAMES[f] + f" ({f})", "元", *money_cells(g.amounts[f])])
    for rule in result.rules:
        rows.append([f"按规则: {rule.name} ({rule.id})", "元", *money_cells(g.rules[rule.id])])
    mb, mr = g.burden.mean()
    change, change_pct = g.burden.mean_change()
    rows.append(["人均年个人负担", "元/人", mb, mr, change, change_pct])
    for p, d in zip(DECILES, g.burden.deciles):
        rows.append([f"年个人负担 P{p}", "元/人", *money_cells(d)])
    for label, share in (("家庭", g.households), ("人员", g.persons)):
        b, r = share.shares()
        rows.append([f"灾难性支出{label}数", "户" if label == "家庭" else "人", share.catastrophic.baseline,
                     share.catastrophic.reform, share.catastrophic.change, share.catastrophic.pct])
        rows.append([f"灾难性支出{label}占比", "%", b, r, share.change_points(), None])
    note = (f"基线 {result.baseline['name']}; 改革 {result.reform['name']}; 灾难性支出: 家庭年度个人负担 > "
            f"{result.catastrophic_share} × 家庭年可支配收入; 数据年度 {', '.join(map(str, result.years))}。")
    return Sheet("概览", columns, rows, note)


def distribution_sheet(result: SimulationResult) -> Sheet:
    columns = [Column("维度", "text"), Column("分组", "text"), Column("情景", "text"), Column("人数(人年)", "count"),
               Column("人均年个人负担", "money")] + [Column(f"P{p}", "money") for p in DECILES]
    rows = []
    for g in result.groups:
        mb, mr = g.burden.mean()
        for label, mean, attr in (("基线", mb, "baseline"), ("改革", mr, "reform")):
            rows.append([DIMENSIONS[g.dimension][0], g.name, label, g.burden.persons, mean]
                        + [_m(getattr(d, attr)) for d in g.burden.deciles])
        change, _ = g.burden.mean_change()
        rows.append([DIMENSIONS[g.dimension][0], g.name, "变化", g.burden.persons, change]
                    + [_m(d.change) for d in g.burden.deciles])
    return Sheet("负担分布", columns, rows,
                 "年度个人负担(psn_part_amt 按人年合计)的十分位数, 最近秩法: 第 k 个十分位数为排序后第 ⌈k·n/10⌉ 个值。")


def rules_sheet(result: SimulationResult) -> Sheet:
    columns = [Column("规则代码", "text"), Column("规则名称", "text"), Column("类型", "text"), Column("结算字段", "text")]
    columns += money_cols("基金支付")
    kinds = {"basic": "基本医保", "tier": "后续层次", "guarantee": "兜底"}
    g = result.overall
    rows = [[r.id, r.name, kinds[r.kind], r.setl_field, *money_cells(g.rules[r.id])] for r in result.rules]
    return Sheet("按支付规则", columns, rows, "各支付规则(基本医保规则、大病/大额、医疗救助、再救助、兜底等)的基金支付合计。")


def all_sheets(result: SimulationResult) -> list[Sheet]:
    return [
        overview_sheet(result),
        group_sheet(result, "insutype", "按险种"),
        group_sheet(result, "level", "按机构等级"),
        group_sheet(result, "category", "按人员类别"),
        group_sheet(result, "med_type", "按医疗类别"),
        group_sheet(result, "visit_kind", "按险种等级类别"),
        distribution_sheet(result),
        rules_sheet(result),
    ]


def fmt(value, kind: str) -> str:
    """Text of a cell for HTML / terminal: money with thousands separators, % with 2 decimals."""
    if value is None:
        return "—"
    if kind in ("money",) or (kind == "any" and isinstance(value, Decimal)):
        return f"{value:,.2f}"
    if kind == "delta":
        return f"{value:+,.2f}"
    if kind == "pct":
        return f"{value:.2f}"
    if kind in ("chg", "points"):
        return f"{value:+.2f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)
