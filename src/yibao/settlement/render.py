"""Print statements (结算单) to a terminal with rich: explanation, setlinfo, setldetail."""

from __future__ import annotations

from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from yibao.codes import INSUTYPE_NAMES, MED_TYPE_NAMES
from yibao.money import format_yuan
from yibao.policy.compiled import CompiledPack
from yibao.settlement.model import SETLINFO_FIELDS, Settlement
from yibao.settlement.request import to_person, to_visit
from yibao.settlement.statement import FIELD_NAMES, explain

INSUTYPES, MED_TYPES = INSUTYPE_NAMES, MED_TYPE_NAMES


def print_statement(console: Console, pack: CompiledPack, person, visit, s: Settlement) -> None:
    cats = "、".join(pack.categories.get(c, c) for c in sorted(person.categories)) or "普通参保人"
    title = (
        f"结算单 · 就诊 {s.mdtrt_id} · {MED_TYPES.get(visit.med_type, visit.med_type)} · "
        f"{pack.levels.get(visit.level, visit.level)} · {visit.setl_date}"
    )
    header = (
        f"参保人 {s.psn_no}({INSUTYPES.get(person.insutype, person.insutype)}"
        f"{', 退休' if person.retiree else ''}; {cats})\n政策包 {pack.name}({s.pack_id} 版本 {s.pack_version})"
    )
    console.print(Panel("\n".join([header, ""] + explain(s, pack)), title=title, expand=False))
    info = s.setlinfo
    table = Table(title="结算信息 setlinfo(元)", show_lines=False)
    table.add_column("字段 field")
    table.add_column("名称")
    table.add_column("金额", justify="right")
    for name in SETLINFO_FIELDS:
        value = getattr(info, name)
        style = "bold" if name in ("fund_pay_sumamt", "psn_part_amt", "medfee_sumamt") else None
        table.add_row(name, FIELD_NAMES[name], format_yuan(value), style=style)
    console.print(table)
    if s.setldetail:
        detail = Table(title="基金支付明细 setldetail")
        for col in ("fund_pay_type", "金额(元)", "字段", "规则"):
            detail.add_column(col, justify="right" if col.startswith("金额") else "left")
        for d in s.setldetail:
            detail.add_row(d.fund_pay_type, format_yuan(d.fund_payamt), d.setl_field, f"{d.rule_name}({d.rule_id})")
        console.print(detail)


def print_statements(console: Console, pack: CompiledPack, req, results: list[Settlement]) -> None:

    person = to_person(req.person)
    for visit_in, s in zip(req.visit_list(), results):
        print_statement(console, pack, person, to_visit(visit_in), s)
    if len(results) > 1:
        year = Table(title=f"本年度合计({len(results)} 次就诊, 元)")
        for col in ("医疗费总额", "基金支付", "其中统筹", "大病/大额", "医疗救助", "其他", "个人负担"):
            year.add_column(col, justify="right")
        tot = {f: sum(getattr(s.setlinfo, f) for s in results) for f in SETLINFO_FIELDS}
        year.add_row(*(format_yuan(v) for v in (
            tot["medfee_sumamt"], tot["fund_pay_sumamt"], tot["hifp_pay"], tot["hifmi_pay"] + tot["hifob_pay"],
            tot["maf_pay"], tot["oth_pay"] + tot["cvlserv_pay"] + tot["hifes_pay"], tot["psn_part_amt"])))
        console.print(year)
