"""monitoring.csv and monitoring.xlsx: the list a civil-affairs office can act on.

One row per flagged person and year, ID numbers and names masked, amounts in yuan. The CSV is
UTF-8 with a byte-order mark so that Excel (Chinese Windows) opens it with the right encoding;
amounts are plain decimals without thousands separators so Excel reads them as numbers. The
workbook has the same list (sheet 预警名单), the thresholds (阈值) and a summary (汇总).
"""

from __future__ import annotations

import csv
from pathlib import Path

from yibao.errors import Problem
from yibao.money import fen_to_yuan
from yibao.monitoring.measures import MEASURE_NAMES, MonitoringError, income_pct
from yibao.policy.compiled import CompiledPack
from yibao.reports import publish
from yibao.codes import INSUTYPE_NAMES, MED_TYPE_NAMES

HEADERS = [
    ("年度", "text"), ("人员编号", "text"), ("证件号码(脱敏)", "text"), ("姓名(脱敏)", "text"), ("险种", "text"),
    ("人员类别", "text"), ("家庭编号", "text"), ("参保地区划", "text"), ("触发预警", "text"),
    ("政策范围内个人负担(元)", "money"), ("个人负担总额(元)", "money"),
    ("政策范围内个人负担占上年人均可支配收入%", "pct"), ("个人负担总额占上年人均可支配收入%", "pct"),
    ("医疗费总额(元)", "money"), ("基金支付(元)", "money"), ("其中医疗救助(元)", "money"),
    ("结算就诊次数", "count"), ("有个人负担的就诊次数", "count"), ("个人负担最高的就诊", "text"),
    ("再救助", "text"), ("依申请救助", "text"), ("预计依申请救助金额(元)", "money"),
]


def _visit_text(v, levels: dict[str, str]) -> str:
    return (f"{v.mdtrt_id} {v.setl_time:%Y-%m-%d} {MED_TYPE_NAMES.get(v.med_type, v.med_type)} "
            f"{levels.get(v.level, v.level)} 个人负担 {fen_to_yuan(v.psn_part_amt)} 元")


def rows(result, pack: CompiledPack) -> tuple[list[tuple[str, str]], list[list]]:
    """(headers with kinds, rows of Python values): money as Decimal yuan, % as Decimal."""
    names = {t.id: t.name for t in result.thresholds}
    headers = HEADERS[:9] + [(f"{t.name}", "flag") for t in result.thresholds] + HEADERS[9:]
    out = []
    for p in result.people:
        estimates = [a.estimate for a in p.route("application") if a.status == "eligible" and a.estimate]
        row = [p.yr, p.psn_no, p.certno, p.name, INSUTYPE_NAMES.get(p.insutype, p.insutype),
               "、".join(p.category_names) or "普通参保人", p.hh_no, p.admdvs,
               "；".join(names[t] for t in p.thresholds)]
        row += ["是" if t.id in p.thresholds else "否" for t in result.thresholds]
        row += [fen_to_yuan(p.inscp_psn_part), fen_to_yuan(p.psn_part_amt),
                income_pct(p.inscp_psn_part, result.income), income_pct(p.psn_part_amt, result.income),
                fen_to_yuan(p.medfee_sumamt), fen_to_yuan(p.fund_pay_sumamt), fen_to_yuan(p.maf_pay),
                p.visits, p.burden_visits, "；".join(_visit_text(v, pack.levels) for v in p.top_visits),
                p.route_text("reassistance"), p.route_text("application"),
                fen_to_yuan(sum(estimates)) if estimates else None]
        out.append(row)
    return headers, out


def write_csv(result, pack: CompiledPack, path: Path) -> Path:
    headers, data = rows(result, pack)
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([h for h, _ in headers])
        for row in data:
            writer.writerow(["" if v is None else str(v) for v in row])
    return path


def write_xlsx(result, pack: CompiledPack, path: Path) -> Path:
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    headers, data = rows(result, pack)
    wb = Workbook()
    ws = wb.active
    ws.title = "预警名单"
    ws.append([h for h, _ in headers])
    for row in data:
        ws.append(row)
    formats = {"money": "#,##0.00", "pct": "0.00", "count": "#,##0"}
    for idx, (header, kind) in enumerate(headers, start=1):
        letter = get_column_letter(idx)
        head = ws.cell(row=1, column=idx)
        head.font = Font(bold=True)
        head.fill = PatternFill("solid", fgColor="DDE4EE")
        head.alignment = Alignment(wrap_text=True, vertical="center")
        if kind in formats:
            for (cell,) in ws.iter_rows(min_row=2, min_col=idx, max_col=idx):
                cell.number_format = formats[kind]
        width = {"money": 14, "pct": 12, "count": 10, "flag": 12}.get(kind, 16)
        if header in ("个人负担最高的就诊", "再救助", "依申请救助", "触发预警"):
            width = 48
        ws.column_dimensions[letter].width = width
    ws.freeze_panes = "C2"
    if data:
        ws.auto_filter.ref = f"A1:{get_column_letter(len(headers))}{len(data) + 1}"

    th = wb.create_sheet("阈值")
    th.append(["阈值代码", "名称", "指标", "上年人均可支配收入比例", "阈值(元)", "触发人数"])
    for t in result.thresholds:
        th.append([t.id, t.name, MEASURE_NAMES[t.measure], t.income_share, fen_to_yuan(t.amount),
                   result.counts.get(t.id, 0)])
    for col, width in zip("ABCDEF", (18, 56, 20, 20, 14, 10)):
        th.column_dimensions[col].width = width

    summary = wb.create_sheet("汇总")
    summary.append(["项目", "数值"])
    summary.append(["政策包", f"{result.pack['name']} ({result.pack['id']} 版本 {result.pack['version']})"])
    summary.append([f"上年({result.reference_year})人均可支配收入(元)", fen_to_yuan(result.income)])
    summary.append(["数据年度", ", ".join(map(str, result.years))])
    summary.append(["筛查参保人(人年)", result.persons_screened])
    summary.append(["有结算就诊的参保人(人年)", result.persons_with_visits])
    summary.append(["触发任一预警(人年)", len(result.people)])
    for label, n in result.assistance_counts().items():
        summary.append([label, n])
    summary.append(["说明", "年度金额严格大于阈值即触发; 证件号码保留前 6 位和后 4 位, 姓名保留第一个字; "
                    "预计救助金额为按政策包规则的估算, 以经办结算为准。"])
    summary.column_dimensions["A"].width = 40
    summary.column_dimensions["B"].width = 60
    wb.save(path)
    return path


def write_outputs(result, pack: CompiledPack, out_dir: Path) -> dict[str, Path]:
    """Both files written to a temporary directory first, then moved into ``out_dir``."""
    return publish(out_dir,
                   lambda tmp: {"csv": write_csv(result, pack, tmp / "monitoring.csv"),
                                "xlsx": write_xlsx(result, pack, tmp / "monitoring.xlsx")},
                   lambda message: MonitoringError(Problem("MON004", "out_dir", message)))

