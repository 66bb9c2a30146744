"""``yibao ltc``: 长期护理保险 from the command line — assess, synthesise, settle, explain, simulate (docs/ltc.md)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from yibao.console import fail, out, print_json
from yibao.errors import Problem, YibaoError
from yibao.ltc.assess import LtcError, assess, check_assessor, due_for_reassessment
from yibao.ltc.settle import settle_month
from yibao.ltc.synth import generate, write
from yibao.money import fen_to_yuan, format_yuan
from yibao.policy.loader import resolve_pack
from yibao.policy.model import CARE_MODE_NAMES
from yibao.reports import outputs_table


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    ltc_app = typer.Typer(help="长期护理保险: 失能评估、护理结算、审核、改革模拟 (long-term care, docs/ltc.md)",
                          no_args_is_help=True)
    app.add_typer(ltc_app, name="ltc")

    @ltc_app.command("assess")
    def ltc_assess(
        scores: Path = typer.Option(..., "--scores", help="评估得分 JSON: {adl: {...}, cognition: {...}, perception: {...}}"),
        policy: str = typer.Option("shandong-2024", "--policy", "-p", help="政策包(须有 ltc 一节)"),
        assessor: Optional[str] = typer.Option(None, "--assessor", help="本次评估员"),
        previous_assessor: Optional[str] = typer.Option(None, "--previous-assessor", help="上一次评估员"),
        as_json: bool = typer.Option(False, "--json", help="输出 JSON"),
    ) -> None:
        """失能评估: 各项得分 → 失能等级 (scores → disability level)."""
        try:
            ltc = _ltc(policy)
            try:
                data = json.loads(scores.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise LtcError(Problem("LTC005", "--scores", f"无法读取 JSON: {exc}")) from None
            if not isinstance(data, dict):
                raise LtcError(Problem("LTC005", "--scores", "顶层应为对象 {adl: {...}, ...}"))
            if assessor is not None:
                check_assessor(ltc.assessment, previous_assessor, assessor, "--assessor")
            result = assess(ltc.assessment, data)
        except YibaoError as exc:
            fail(exc, as_json)
            return
        if as_json:
            print_json({"level": result.level, "level_name": result.level_name, "totals": result.totals,
                        "reason": result.reason})
            return
        out.print(f"失能等级 [bold]{result.level} {result.level_name}[/]  ({result.reason})")

    @ltc_app.command("synth")
    def ltc_synth(
        claims: Path = typer.Option(..., "--claims", "-c", help="yibao synth 生成的地区目录; 长护数据写在旁边"),
        policy: str = typer.Option("shandong-2024", "--policy", "-p"),
        seed: int = typer.Option(7, "--seed"),
    ) -> None:
        """合成长护数据: 评估对象、护理机构、一年的护理记录 (synthetic LTC data)."""
        try:
            written = synth_region(policy, claims, seed)
        except YibaoError as exc:
            fail(exc)
            return
        for name, (path, rows) in written.items():
            out.print(f"  已写出 {name}: {path} ({rows:,} 行)")

    @ltc_app.command("settle")
    def ltc_settle(
        data: Path = typer.Option(..., "--data", "-d", help="含 ltc_persons/ltc_assessments/ltc_records 的目录"),
        policy: str = typer.Option("shandong-2024", "--policy", "-p"),
        out_dir: Path = typer.Option(..., "--out", "-o", help="输出目录"),
    ) -> None:
        """按人按月结算护理费用并审核 (monthly care settlement and audit)."""
        try:
            settled, hits, outputs = settle_dir(policy, data, out_dir)
        except YibaoError as exc:
            fail(exc)
            return
        fund = sum(s.fund_pay for s in settled)
        total = sum(s.ltc_sumamt for s in settled)
        out.print(f"结算 {len(settled):,} 个人月: 护理费用 {format_yuan(total)} 元, 长护基金支付 {format_yuan(fund)} 元, "
                  f"审核疑点 {len(hits):,} 条")
        out.print(outputs_table(outputs))

    @ltc_app.command("statement")
    def ltc_statement(
        data: Path = typer.Option(..., "--data", "-d"),
        psn_no: str = typer.Option(..., "--psn", help="人员编号"),
        month: str = typer.Option(..., "--month", help="结算月 YYYY-MM"),
        policy: str = typer.Option("shandong-2024", "--policy", "-p"),
        as_json: bool = typer.Option(False, "--json"),
    ) -> None:
        """一个人一个月的护理结算单, 逐项说明 (one person-month, explained)."""
        try:
            s = statement(policy, data, psn_no, month)
        except YibaoError as exc:
            fail(exc, as_json)
            return
        if as_json:
            print_json(statement_json(s))
            return
        out.print(render_statement(s))

    @ltc_app.command("simulate")
    def ltc_simulate(
        data: Path = typer.Option(..., "--data", "-d"),
        baseline: str = typer.Option(..., "--baseline"),
        reform: str = typer.Option(..., "--reform"),
        as_json: bool = typer.Option(False, "--json"),
    ) -> None:
        """长护险改革模拟: 同一批护理记录按两个政策包结算 (cost of an LTC reform)."""
        try:
            sim = simulate_dir(baseline, reform, data)
        except YibaoError as exc:
            fail(exc, as_json)
            return
        if as_json:
            print_json({"rows": [{"group": r.group, "person_months": r.person_months,
                                  "baseline_fund": str(r.baseline_fund / 100), "reform_fund": str(r.reform_fund / 100),
                                  "change": str(r.change / 100)} for r in sim.rows],
                        "persons_better": sim.persons_better, "persons_worse": sim.persons_worse})
            return
        view = Table(title=f"长护险改革模拟 {baseline} → {reform}")
        for col in ("分组", "人月", "基线基金支付(元)", "改革后(元)", "变化(元)"):
            view.add_column(col, justify="right")
        for r in sim.rows:
            view.add_row(group_name(r.group), f"{r.person_months:,}", format_yuan(r.baseline_fund),
                         format_yuan(r.reform_fund), format_yuan(r.change))
        out.print(view)
        out.print(f"个人负担下降 {sim.persons_better:,} 人, 上升 {sim.persons_worse:,} 人")

    @ltc_app.command("due")
    def ltc_due(
        data: Path = typer.Option(..., "--data", "-d", help="含 ltc_assessments 的目录"),
        on: str = typer.Option(..., "--on", help="统计日 YYYY-MM-DD"),
        within: int = typer.Option(60, "--within", help="多少天内到期"),
    ) -> None:
        """到期须重新评估的名单 (assessments ending soon: re-assessment list)."""
        import duckdb

        from yibao.ltc.batch import open_inputs

        try:
            try:
                day = date.fromisoformat(on)
            except ValueError:
                raise LtcError(Problem("LTC007", "--on", f"日期应为 YYYY-MM-DD, 实际为 {on!r}")) from None
            con = duckdb.connect()
            open_inputs(con, Path(data))
            latest = {psn: (level, end) for psn, level, end in con.sql(
                """SELECT psn_no, arg_max(level, CAST(begin AS DATE)), arg_max(CAST("end" AS DATE), CAST(begin AS DATE))
                   FROM ltc_assessments GROUP BY psn_no""").fetchall()}
        except YibaoError as exc:
            fail(exc)
            return
        rows = due_for_reassessment(latest, day, within)
        out.print(f"{within} 天内(至 {date.fromordinal(day.toordinal() + within)})到期须重新评估: {len(rows):,} 人")
        for psn, level, end in rows:
            out.print(f"  {psn}  等级 {level}  有效期至 {end}")

    @bench_app.command("ltc")
    def bench_ltc(persons: int = typer.Option(20000, "--persons", help="合成地区人数")) -> None:
        """长护结算吞吐: DuckDB 一次读入 vs 逐人查询 (LTC settlement throughput)."""
        from yibao.ltc.bench import run

        run(persons)


def _ltc(policy: str):
    pack = resolve_pack(policy)
    if pack.ltc is None:
        raise LtcError(Problem("LTC006", "ltc", f"政策包 {pack.pack.id} 没有 ltc(长期护理保险)一节"))
    return pack.ltc


def synth_region(policy: str, claims: Path, seed: int = 7) -> dict[str, tuple[Path, int]]:
    pack = resolve_pack(policy)
    _ltc(policy)
    for name in ("persons", "institutions", "visits"):
        if not (Path(claims) / f"{name}.parquet").exists():
            raise LtcError(Problem("LTC020", str(Path(claims) / f"{name}.parquet"), "文件不存在: 先用 yibao synth 生成地区"))
    tables = generate(pack, Path(claims), seed)
    paths = write(tables, Path(claims))
    return {name: (paths[name], tables[name].num_rows) for name in tables}


def _region(data: Path):
    import duckdb

    from yibao.ltc.batch import load

    return load(duckdb.connect(), Path(data))


def settle_dir(policy: str, data: Path, out_dir: Path):
    from yibao.ltc.batch import settle_region, write_outputs

    ltc = _ltc(policy)
    settled, hits = settle_region(ltc, _region(data))
    return settled, hits, write_outputs(out_dir, settled, hits)


def statement(policy: str, data: Path, psn_no: str, month: str):
    ltc = _ltc(policy)
    region = _region(data)
    if psn_no not in region.persons:
        raise LtcError(Problem("LTC024", "--psn", f"人员 {psn_no} 不在 ltc_persons 中"))
    return settle_month(ltc, region.persons[psn_no], month, region.records.get((psn_no, month), []))


def simulate_dir(baseline: str, reform: str, data: Path):
    from yibao.ltc.simulate import simulate

    return simulate(_region(data), _ltc(baseline), _ltc(reform))


def group_name(group: str) -> str:
    kind, _, value = group.partition(":")
    if kind == "mode":
        return CARE_MODE_NAMES.get(value, value)
    if kind == "level":
        return f"失能等级 {value}"
    return "合计"


def statement_json(s) -> dict:
    y = lambda fen: str(fen_to_yuan(fen))  # noqa: E731
    return {"psn_no": s.psn_no, "month": s.month, "ltc_sumamt": y(s.ltc_sumamt), "excluded_amt": y(s.excluded_amt),
            "over_limit_amt": y(s.over_limit_amt), "allowed_amt": y(s.allowed_amt), "fund_pay": y(s.fund_pay),
            "psn_pay": y(s.psn_pay), "month_cap": y(s.month_cap),
            "lines": [{"benefit_id": ln.benefit_id, "name": ln.name, "ratio": ln.ratio, "units": ln.units,
                       "limit": y(ln.limit), "covered": y(ln.covered), "allowed": y(ln.allowed), "pay": y(ln.pay)}
                      for ln in s.lines],
            "excluded": [{"srv_id": sid, "reason": reason, "amount": y(fen)} for sid, reason, fen in s.excluded],
            "explanation": list(s.steps)}


def render_statement(s) -> str:
    lines = [f"长期护理保险结算单  人员 {s.psn_no}  {s.month}",
             f"  护理费用总额 {format_yuan(s.ltc_sumamt)} 元 = 不予支付 {format_yuan(s.excluded_amt)} + 超限额自付 "
             f"{format_yuan(s.over_limit_amt)} + 纳入基金支付基数 {format_yuan(s.allowed_amt)}",
             f"  长护基金支付 {format_yuan(s.fund_pay)} 元, 个人负担 {format_yuan(s.psn_pay)} 元 (每月限额 {format_yuan(s.month_cap)} 元)"]
    lines += [f"  · {step}" for step in s.steps]
    reasons: dict[str, int] = {}
    for _, reason, fen in s.excluded:
        reasons[reason] = reasons.get(reason, 0) + fen
    lines += [f"  · 不予支付 {format_yuan(fen)} 元: {reason}" for reason, fen in sorted(reasons.items())]
    return "\n".join(lines)
