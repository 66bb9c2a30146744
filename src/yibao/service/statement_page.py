"""The statement (结算单) as a printable HTML page, from a stored settlement.

Explanation lines are the ones the engine's statement produced at settlement time (stored with
the settlement), so the page says exactly what was computed then, whatever packs are loaded now.
:func:`statement_view` is the one place that decides what a statement shows; the HTML page here
and the PDF (:mod:`yibao.service.statement_pdf`) only lay it out.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from yibao.money import yuan_to_fen, format_yuan
from yibao.settlement.model import SETLINFO_FIELDS
from yibao.settlement.statement import FIELD_NAMES

TITLE = "医疗保障基金结算单"
SETLINFO_HEADING = "结算信息 setlinfo(元)"
SETLINFO_COLUMNS = ("字段", "名称", "金额")
SETLINFO_AMOUNT = 2  # the yuan column, right-aligned
MULAID_NAME = "账户共济支付(家庭共济)"
DETAIL_HEADING = "基金支付明细 setldetail"
DETAIL_COLUMNS = ("fund_pay_type", "金额(元)", "字段", "规则")
DETAIL_AMOUNT = 1
EXPLANATION_HEADING = "计算说明"

STYLE = """body{font-family:"Noto Sans CJK SC","Microsoft YaHei",sans-serif;max-width:860px;margin:2em auto;color:#222}
h1{font-size:1.4em}table{border-collapse:collapse;width:100%;margin:1em 0}td,th{border:1px solid #999;padding:4px 8px}
td.n{text-align:right;font-variant-numeric:tabular-nums}.stas{color:#b00}ol li{margin:.3em 0}
@media print{body{margin:0}}"""


@dataclass(frozen=True)
class StatementView:
    """The statement's text, already formatted (yuan, masked identity); renderers only place it."""

    setl_id: str
    reversed_notice: str | None  # set when the settlement is no longer valid
    header: tuple[str, ...]  # ids, person, institution and pack lines
    setlinfo: tuple[tuple[str, str, str], ...]  # field, Chinese name, yuan
    details: tuple[tuple[str, str, str, str], ...]  # fund_pay_type, yuan, setl_field, rule
    explanation: tuple[str, ...]


def statement_view(record: dict, person: dict, institution: dict) -> StatementView:
    """``person`` holds certno/psn_name as the caller may see them (already masked for its role)."""
    info = record["setlinfo"]
    notice = None if info.get("setl_stas") == "valid" else f"本结算已撤销(撤销流水 {info.get('revs_setl_id')})"
    header = (
        f"结算流水号 {info['setl_id']} · 就诊 {info['mdtrt_id']} · 结算时间 {info['setl_time']}",
        f"参保人 {person.get('psn_name')}(人员编号 {info['psn_no']}, 证件号码 {person.get('certno')}) · "
        f"险种 {info['insutype']} · 医疗类别 {info['med_type']}",
        f"定点机构 {institution['fixmedins_name']}({institution['fixmedins_code']}) · "
        f"政策包 {info['pack_id']} 版本 {info['pack_version']}",
    )
    rows = []
    for f in SETLINFO_FIELDS:
        rows.append((f, FIELD_NAMES[f], format_yuan(yuan_to_fen(info[f]))))
        if f == "acct_pay" and yuan_to_fen(info.get("acct_mulaid_pay") or 0):  # 家庭共济 paid part of the share
            rows.append(("acct_mulaid_pay", MULAID_NAME, format_yuan(yuan_to_fen(info["acct_mulaid_pay"]))))
    setlinfo = tuple(rows)
    details = tuple((str(d["fund_pay_type"]), format_yuan(yuan_to_fen(d["fund_payamt"])), str(d["setl_field"]),
                     f"{d['rule_name']}({d['rule_id']})") for d in record["setldetail"])
    return StatementView(str(info["setl_id"]), notice, header, setlinfo, details,
                         tuple(str(line) for line in record.get("explanation", [])))


def render_html(record: dict, person: dict, institution: dict) -> str:
    v = statement_view(record, person, institution)

    def cells(row, amount: int) -> str:
        return "".join(f"<td class=n>{escape(c)}</td>" if i == amount else f"<td>{escape(c)}</td>"
                       for i, c in enumerate(row))

    def head(columns) -> str:
        return "<tr>" + "".join(f"<th>{escape(c)}</th>" for c in columns) + "</tr>"

    rows = "".join(f"<tr>{cells(r, SETLINFO_AMOUNT)}</tr>" for r in v.setlinfo)
    details = "".join(f"<tr>{cells(r, DETAIL_AMOUNT)}</tr>" for r in v.details)
    lines = "".join(f"<li>{escape(line)}</li>" for line in v.explanation)
    stas = "" if v.reversed_notice is None else f"<p class=stas>{escape(v.reversed_notice)}</p>"
    header = "\n".join(f"<p>{escape(line)}</p>" for line in v.header)
    return f"""<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">
<title>结算单 {escape(v.setl_id)}</title><style>{STYLE}</style></head><body>
<h1>{escape(TITLE)}</h1>{stas}
{header}
<h2>{escape(SETLINFO_HEADING)}</h2><table>{head(SETLINFO_COLUMNS)}{rows}</table>
<h2>{escape(DETAIL_HEADING)}</h2><table>{head(DETAIL_COLUMNS)}{details}</table>
<h2>{escape(EXPLANATION_HEADING)}</h2><ol>{lines}</ol></body></html>"""
