"""The monitoring list in the terminal: thresholds, counts and the heaviest burdens (masked)."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text

from yibao.money import format_yuan
from yibao.reports import outputs_table
from yibao.monitoring.assistance import ROUTE_NAMES, AssistanceCheck
from yibao.monitoring.measures import MEASURE_NAMES
from yibao.monitoring.screen import MonitoringResult
from yibao.codes import INSUTYPE_SHORT
from yibao.simulation.result import percent

SHOWN = 20
STATUS = {"paid": "已享受", "eligible": "可申请", "below": "未达起付线", "superseded": "已由同组救助"}


def short(check: AssistanceCheck) -> str:
    """A check in a few words: 依申请救助 可申请 ≈3,480.00 / 再救助 已享受 700.00."""
    text = f"{ROUTE_NAMES[check.route]} {STATUS[check.status]}"
    if check.status == "paid":
        return f"{text} {format_yuan(check.paid)}"
    if check.status == "eligible" and check.estimate is not None:
        return f"{text} ≈{format_yuan(check.estimate)}"
    return text


def format_monitoring(result: MonitoringResult, limit: int = SHOWN) -> Group:
    """Rich renderables: thresholds with counts, the first ``limit`` flagged persons, outputs."""
    head = Table(title=f"因病返贫致贫风险监测 Return-to-poverty monitoring: {result.pack['id']}"
                       f"(上年人均可支配收入 {format_yuan(result.income)} 元)", title_justify="left")
    head.add_column("预警 threshold")
    head.add_column("指标 measure")
    head.add_column("阈值 amount(元)", justify="right")
    head.add_column("触发 persons", justify="right")
    for t in result.thresholds:
        head.add_row(t.name, f"{MEASURE_NAMES[t.measure]} > {percent(t.income_share)}%", format_yuan(t.amount),
                     f"{result.counts.get(t.id, 0):,}")
    head.add_row("任一 any", "", "", f"{len(result.people):,}", style="bold")
    parts: list = [head, Text(f"筛查 {result.persons_screened:,} 人年(有结算就诊 {result.persons_with_visits:,});"
                              f" 数据年度 {', '.join(map(str, result.years)) or '—'}", style="dim")]
    if result.people:
        people = Table(title=f"预警名单(前 {min(limit, len(result.people))} / {len(result.people):,} 人, 证件号码与姓名已脱敏)",
                       title_justify="left")
        # four columns so the list fits an 80-column terminal; each cell stacks its details
        people.add_column("人员 person\n证件号码 ID · 类别", min_width=18)
        people.add_column("政策内 / 总负担\nin-scope / OOP", justify="right")
        people.add_column("预警 flags\n就诊 visits")
        people.add_column("救助\nassistance")
        flags = {t.id: f"{'政策内' if t.measure == 'inscp_psn_part' else '总负担'}>{percent(t.income_share)}%"
                 for t in result.thresholds}
        for p in result.people[:limit]:
            people.add_row(f"{p.name} {INSUTYPE_SHORT.get(p.insutype, p.insutype)} {p.psn_no}\n{p.certno or ''}"
                           f"\n{'、'.join(p.category_names) or '普通参保人'}",
                           f"{format_yuan(p.inscp_psn_part)}\n{format_yuan(p.psn_part_amt)}",
                           "\n".join(flags[t] for t in p.thresholds) + f"\n{p.burden_visits}/{p.visits} 次",
                           "\n".join(short(a) for a in p.assistance) or "—")
        parts.append(people)
        counts = result.assistance_counts()
        if counts:
            summary = Table(title="救助适用情况 Assistance (人年)", title_justify="left")
            summary.add_column("层次: 情况")
            summary.add_column("人数", justify="right")
            for label, n in counts.items():
                summary.add_row(label, f"{n:,}")
            parts.append(summary)
    if result.outputs:
        parts.append(outputs_table(result.outputs))
    return Group(*parts)
