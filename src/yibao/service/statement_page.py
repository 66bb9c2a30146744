"""The statement (结算单) as a printable HTML page, from a stored settlement.

Explanation lines are the ones the engine's statement produced at settlement time (stored with
the settlement), so the page says exactly what was computed then, whatever packs are loaded now.
"""

from __future__ import annotations

from html import escape

from yibao.money import yuan_to_fen, format_yuan
from yibao.settlement.model import SETLINFO_FIELDS
from yibao.settlement.statement import FIELD_NAMES

STYLE = """body{font-family:"Noto Sans CJK SC","Microsoft YaHei",sans-serif;max-width:860px;margin:2em auto;color:#222}
h1{font-size:1.4em}table{border-collapse:collapse;width:100%;margin:1em 0}td,th{border:1px solid #999;padding:4px 8px}
td.n{text-align:right;font-variant-numeric:tabular-nums}.stas{color:#b00}ol li{margin:.3em 0}
@media print{body{margin:0}}"""


def render_html(record: dict, person: dict, institution: dict) -> str:
    info = record["setlinfo"]
    rows = "".join(
        f"<tr><td>{f}</td><td>{FIELD_NAMES[f]}</td><td class=n>{format_yuan(yuan_to_fen(info[f]))}</td></tr>"
        for f in SETLINFO_FIELDS)
    details = "".join(
        f"<tr><td>{escape(d['fund_pay_type'])}</td><td class=n>{format_yuan(yuan_to_fen(d['fund_payamt']))}</td>"
        f"<td>{escape(d['setl_field'])}</td><td>{escape(d['rule_name'])}({escape(d['rule_id'])})</td></tr>"
        for d in record["setldetail"])
    lines = "".join(f"<li>{escape(line)}</li>" for line in record.get("explanation", []))
    stas = "" if info.get("setl_stas") == "valid" else f"<p class=stas>本结算已撤销(撤销流水 {escape(str(info.get('revs_setl_id')))})</p>"
    return f"""<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">
<title>结算单 {escape(info['setl_id'])}</title><style>{STYLE}</style></head><body>
<h1>医疗保障基金结算单</h1>{stas}
<p>结算流水号 {escape(info['setl_id'])} · 就诊 {escape(info['mdtrt_id'])} · 结算时间 {escape(info['setl_time'])}</p>
<p>参保人 {escape(str(person.get('psn_name')))}(人员编号 {escape(info['psn_no'])}, 证件号码 {escape(str(person.get('certno')))}) ·
险种 {escape(info['insutype'])} · 医疗类别 {escape(info['med_type'])}</p>
<p>定点机构 {escape(institution['fixmedins_name'])}({escape(institution['fixmedins_code'])}) ·
政策包 {escape(info['pack_id'])} 版本 {escape(info['pack_version'])}</p>
<h2>结算信息 setlinfo(元)</h2><table><tr><th>字段</th><th>名称</th><th>金额</th></tr>{rows}</table>
<h2>基金支付明细 setldetail</h2><table><tr><th>fund_pay_type</th><th>金额(元)</th><th>字段</th><th>规则</th></tr>{details}</table>
<h2>计算说明</h2><ol>{lines}</ol></body></html>"""
