"""simulation.html: a self-contained Chinese report (tables + the PNG charts inlined as base64).

No scripts, no web fonts, no links to outside resources: the file can be mailed or opened on
an offline machine. The browser's own fonts render the Chinese text.
"""

from __future__ import annotations

import base64
from html import escape
from pathlib import Path

from yibao.simulation.charts import CHARTS
from yibao.simulation.result import FIELD_NAMES, SimulationResult, percent
from yibao.simulation.tables import Sheet, all_sheets, fmt, used_fund_fields

STYLE = """
body { font-family: "Noto Sans CJK SC", "Microsoft YaHei", "PingFang SC", sans-serif; margin: 2em auto;
       max-width: 1200px; color: #222; line-height: 1.5; padding: 0 1em; }
h1 { font-size: 1.6em; border-bottom: 2px solid #c0392b; padding-bottom: .3em; }
h2 { font-size: 1.25em; margin-top: 2em; border-left: 4px solid #c0392b; padding-left: .5em; }
table { border-collapse: collapse; margin: .8em 0; font-size: .85em; }
th, td { border: 1px solid #ccd; padding: 3px 8px; }
th { background: #dde4ee; position: sticky; top: 0; }
td.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr:nth-child(even) td { background: #f6f8fb; }
.up { color: #c0392b; } .down { color: #1e7b34; }
.note { color: #555; font-size: .9em; }
.wrap { overflow-x: auto; }
figure { margin: 1em 0; } figcaption { color: #555; font-size: .9em; }
img { max-width: 100%; border: 1px solid #eee; }
.cards { display: flex; flex-wrap: wrap; gap: 1em; }
.card { border: 1px solid #ccd; border-radius: 6px; padding: .6em 1em; min-width: 13em; }
.card b { display: block; font-size: 1.3em; }
"""


def _table(sheet: Sheet, columns: list[int] | None = None) -> str:
    cols = columns if columns is not None else list(range(len(sheet.columns)))
    head = "".join(f"<th>{escape(sheet.columns[i].header)}</th>" for i in cols)
    body = []
    for row in sheet.rows:
        cells = []
        for i in cols:
            kind = sheet.columns[i].kind
            value = row[i]
            text = escape(fmt(value, kind))
            cls = "n" if kind not in ("text",) else ""
            if kind in ("chg", "points", "delta") and value is not None and value != 0:
                cls += " up" if value > 0 else " down"
            cells.append(f'<td class="{cls.strip()}">{text}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    note = f'<p class="note">{escape(sheet.note)}</p>' if sheet.note else ""
    return f'<div class="wrap"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>{note}'


def _card(title: str, body: str) -> str:
    return f'<div class="card">{escape(title)}<b>{escape(body)}</b></div>'


def _sign(text: str, value) -> str:
    return text if value is None or value == 0 else (("+" if value > 0 else "") + text)


def render_html(result: SimulationResult, charts: dict[str, Path]) -> str:
    sheets = {s.title: s for s in all_sheets(result)}
    g = result.overall
    mb, mr = g.burden.mean()
    hb, hr = g.households.shares()
    fund = g.fund
    cards = "".join([
        _card("基金支付变化", _sign(f"{fund.change / 100:,.2f} 元", fund.change)
              + (f" ({fund.pct:+.2f}%)" if fund.pct is not None else "")),
        _card("人均年个人负担", f"{fmt(mb, 'money')} → {fmt(mr, 'money')} 元"),
        _card("灾难性支出家庭占比", f"{fmt(hb, 'pct')}% → {fmt(hr, 'pct')}%"),
        _card("受影响人数 / 就诊人次", f"{g.persons_affected:,} 人 / {g.visits_affected:,} 次"),
    ])
    figures = []
    for name, path in charts.items():
        data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
        figures.append(f'<figure><img alt="{escape(name)}" src="data:image/png;base64,{data}">'
                       f"<figcaption>{escape(CHARTS.get(name, name))}</figcaption></figure>")
    group_cols = list(range(0, 7)) + list(range(7, 11)) + list(range(15, 19)) + list(range(19, 25))
    funds = used_fund_fields(result)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="zh-CN"><head><meta charset="utf-8">',
        f"<title>政策模拟报告 {escape(result.baseline['id'])} → {escape(result.reform['id'])}</title>",
        f"<style>{STYLE}</style></head><body>",
        "<h1>医保政策模拟报告 <small>Policy simulation</small></h1>",
        f"<p>基线 Baseline: <b>{escape(result.baseline['name'])}</b> ({escape(result.baseline['id'])} "
        f"版本 {escape(result.baseline['version'])})<br>改革 Reform: <b>{escape(result.reform['name'])}</b> "
        f"({escape(result.reform['id'])} 版本 {escape(result.reform['version'])})<br>"
        f"数据年度 {', '.join(map(str, result.years)) or '—'}; 就诊 {g.visits:,} 人次, 参保人 {g.burden.persons:,} 人年; "
        f"灾难性医疗支出: 家庭年度个人负担超过家庭年可支配收入的 {percent(result.catastrophic_share)}%。</p>",
        f'<div class="cards">{cards}</div>',
        "<h2>概览 Overview</h2>", _table(sheets["概览"]),
        "<h2>图表 Charts</h2>", "".join(figures) or '<p class="note">未生成图表(未安装 matplotlib)。</p>',
        "<h2>按险种 By scheme</h2>", _table(sheets["按险种"], group_cols),
        "<h2>按机构等级 By institution level</h2>", _table(sheets["按机构等级"], group_cols),
        "<h2>按人员类别 By person category</h2>", _table(sheets["按人员类别"], group_cols),
        "<h2>按医疗类别 By medical type</h2>", _table(sheets["按医疗类别"], group_cols),
        "<h2>按险种、等级、医疗类别 By scheme × level × medical type</h2>", _table(sheets["按险种等级类别"], group_cols),
        "<h2>负担分布 Burden deciles</h2>", _table(sheets["负担分布"]),
        "<h2>按支付规则 Fund payout by rule</h2>", _table(sheets["按支付规则"]),
        f'<p class="note">各层次基金支出字段: {escape("、".join(FIELD_NAMES[f] + " " + f for f in funds))}。'
        "金额单位: 元。变化 = 改革 − 基线; 变化% 以基线为分母; 百分点 = 改革占比 − 基线占比。"
        "由 yibao simulate 生成。</p>",
        "</body></html>",
    ]
    return "\n".join(parts)


def write_html(result: SimulationResult, charts: dict[str, Path], path: Path) -> Path:
    path.write_text(render_html(result, charts), encoding="utf-8")
    return path
