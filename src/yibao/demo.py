"""``yibao demo``: settle the shipped example visits under the shipped packs and explain them.

Each example is a request file in ``yibao/examples`` paired with the pack it is meant for; the
demo prints every statement and a summary table, so a newcomer sees the whole one-stop
settlement on embedded data with nothing to install or configure.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from rich.console import Console
from rich.rule import Rule
from rich.table import Table

from yibao.money import format_yuan
from yibao.policy.compiled import CompiledPack
from yibao.policy.loader import resolve_pack
from yibao.settlement.engine import settle_year
from yibao.settlement.render import print_statements
from yibao.settlement.request import load_request, to_accumulators, to_person, to_visit

DEMOS = [
    ("shandong-2024", "shandong-dibao-inpatient.json", "山东低保", "山东: 低保居民在基层住院, 逐条明细分类, 基本医保 + 大病 + 医疗救助"),
    ("shandong-2024", "shandong-employee-retiree.json", "山东职工", "山东: 退休职工三级医院大额住院, 统筹 + 大额补助 + 个人账户"),
    ("jishou-2022", "jishou-tekun-two-admissions.json", "吉首特困", "吉首: 特困人员一年两次住院, 再次住院起付线减半, 大病倾斜"),
    ("sichuan-county-2020", "sichuan-poor-inpatient.json", "四川贫困", "四道医疗保障线: 贫困人口住院, 商业补充 90%/75%, 兜底 90%"),
]


def example_path(name: str) -> Path:
    return Path(str(resources.files("yibao") / "examples" / name))


def run_demo(console: Console) -> list[tuple[str, str, int, int, int]]:
    summary = []
    for pack_name, file_name, label, title in DEMOS:
        pack = CompiledPack(resolve_pack(pack_name))
        req = load_request(example_path(file_name))
        results = settle_year(pack, to_person(req.person), [to_visit(v) for v in req.visit_list()],
                              to_accumulators(req))
        console.print(Rule(f"[bold]{title}[/]"))
        console.print(f"[dim]yibao settle --policy {pack_name} --request {example_path(file_name)}[/]")
        print_statements(console, pack, req, results)
        for s in results:
            info = s.setlinfo
            summary.append((label, s.mdtrt_id, info.medfee_sumamt, info.fund_pay_sumamt, info.psn_part_amt))
    table = Table(title="演示汇总 Demo summary(元)")
    for col in ("示例", "就诊", "医疗费总额", "基金支付", "个人负担", "基金占比"):
        table.add_column(col, justify="right" if col not in ("示例", "就诊") else "left", no_wrap=True)
    for region, mdtrt_id, total, fund, own in summary:
        share = f"{fund * 100 / total:.1f}%" if total else "-"
        table.add_row(region, mdtrt_id, format_yuan(total), format_yuan(fund), format_yuan(own), share)
    console.print(table)
    console.print("以上金额均可由结算单中的政策包数字逐项复算; 政策包见 `yibao policy list`。")
    return summary
