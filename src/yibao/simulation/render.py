"""The simulation in the terminal: rich tables, Chinese first with English alongside."""

from __future__ import annotations

from decimal import Decimal

from rich.console import Group
from rich.table import Table
from rich.text import Text

from yibao.money import format_yuan
from yibao.codes import INSUTYPE_SHORT
from yibao.reports import outputs_table
from yibao.simulation.result import (
    DECILES, DIMENSIONS, FIELD_ENGLISH, FIELD_NAMES, Pair, SimulationResult, percent,
)
from yibao.simulation.tables import used_fund_fields


def _chg(value: int | Decimal | None, money: bool = True, suffix: str = "") -> Text:
    if value is None:
        return Text("—", style="dim")
    text = (("+" if value > 0 else "") + (format_yuan(int(value)) if money else f"{value:,}")) + suffix
    style = "red" if value > 0 else "green" if value < 0 else "dim"
    return Text(text, style=style)


def _pct(value: Decimal | None) -> Text:
    if value is None:
        return Text("—", style="dim")
    return Text(f"{value:+.2f}%", style="red" if value > 0 else "green" if value < 0 else "dim")


def _money_row(table: Table, label: str, pair: Pair) -> None:
    table.add_row(label, format_yuan(pair.baseline), format_yuan(pair.reform), _chg(pair.change), _pct(pair.pct))


def _y(value: Decimal | None) -> str:
    return "—" if value is None else f"{value:,.2f}"


def overview_table(result: SimulationResult) -> Table:
    g = result.overall
    table = Table(title=f"政策模拟 Policy simulation: {result.baseline['id']} → {result.reform['id']}(元 yuan)",
                  title_justify="left")
    table.add_column("指标 measure")
    for col in ("基线 baseline", "改革 reform", "变化 change", "变化% change"):
        table.add_column(col, justify="right")
    _money_row(table, "基金支付总额 all funds", g.fund)
    for f in used_fund_fields(result):
        _money_row(table, f"  {FIELD_NAMES[f]} {FIELD_ENGLISH[f]}", g.amounts[f])
    _money_row(table, "个人负担总额 out-of-pocket", g.amounts["psn_part_amt"])
    _money_row(table, "政策范围内个人负担 in-scope own share", g.amounts["inscp_psn_part"])
    mb, mr = g.burden.mean()
    change, change_pct = g.burden.mean_change()
    table.add_row("人均年个人负担 mean annual OOP", _y(mb), _y(mr),
                  _chg(None if change is None else int(change * 100)), _pct(change_pct))
    for p in (50, 90):
        _money_row(table, f"年个人负担 P{p}", g.burden.deciles[DECILES.index(p)])
    for label, share in (("灾难性支出家庭 households", g.households), ("灾难性支出人员 persons", g.persons)):
        b, r = share.shares()
        table.add_row(f"{label} (OOP > {percent(result.catastrophic_share)}% 收入)",
                      f"{share.catastrophic.baseline:,} ({_y(b)}%)", f"{share.catastrophic.reform:,} ({_y(r)}%)",
                      _chg(share.catastrophic.change, money=False),
                      Text("—" if share.change_points() is None else f"{share.change_points():+.2f} 点",
                           style="dim"))
    table.add_row("受影响 affected", "", f"{g.persons_affected:,} 人 / {g.visits_affected:,} 次", "", "")
    return table


def rules_table(result: SimulationResult) -> Table:
    table = Table(title="各支付规则基金支出 Fund payout by rule(元)", title_justify="left")
    table.add_column("规则 rule")
    for col in ("基线 baseline", "改革 reform", "变化 change", "变化%"):
        table.add_column(col, justify="right")
    for rule in result.rules:
        pair = result.overall.rules[rule.id]
        if pair.baseline or pair.reform:
            _money_row(table, f"{rule.name} [dim]{rule.id}[/]", pair)
    return table


def dimension_table(result: SimulationResult, dimension: str) -> Table:
    zh, en = DIMENSIONS[dimension]
    table = Table(title=f"按{zh} By {en}(元)", title_justify="left")
    table.add_column("分组\ngroup", min_width=6)
    for col in ("人数\npersons", "基金支付变化\nfund Δ", "变化%\nΔ%", "人均负担\nmean OOP", "负担变化\nOOP Δ",
                "灾难性家庭%\ncatastrophic", "受影响人数\naffected"):
        table.add_column(col, justify="right")
    for g in result.dimension(dimension):
        mb, mr = g.burden.mean()
        change, _ = g.burden.mean_change()
        hb, hr = g.households.shares()
        name = f"{INSUTYPE_SHORT.get(g.key, g.key)} {g.key}" if dimension == "insutype" else g.name
        table.add_row(name, f"{g.burden.persons:,}", _chg(g.fund.change), _pct(g.fund.pct),
                      f"{_y(mb)} → {_y(mr)}", _chg(None if change is None else int(change * 100)),
                      f"{_y(hb)} → {_y(hr)}", f"{g.persons_affected:,}")
    return table


def format_simulation(result: SimulationResult) -> Group:
    """Rich renderables for the terminal: overview, by rule, by each dimension, outputs."""
    parts: list = [overview_table(result), rules_table(result)]
    for dimension in ("insutype", "level", "category", "med_type"):
        parts.append(dimension_table(result, dimension))
    if result.outputs:
        parts.append(outputs_table(result.outputs))
    for warning in result.warnings:
        parts.append(Text(f"注意: {warning}", style="yellow"))
    return Group(*parts)
