"""Command-line commands of this domain, registered under ``yibao`` by ``yibao.cli``."""

from __future__ import annotations

import json
import time
from datetime import date
from pathlib import Path
from typing import Optional

import pyarrow as pa
import pyarrow.parquet as pq
import typer
import yaml
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from yibao.console import err, fail, out, print_json
from yibao.errors import Problem, YibaoError
from yibao.money import format_yuan, yuan_to_fen
from yibao.policy.loader import resolve_pack
from yibao.supervision.bench import run_bench
from yibao.supervision.evaluate import by_pattern, overall, render
from yibao.supervision.evaluate import evaluate as ev
from yibao.supervision.model import SEVERITIES, STAGES, AuditInputError, CaseError, SupervisionError
from yibao.supervision.ruleset import load_ruleset, with_pack_caps
from yibao.synth.fraud import PATTERN_RULE, PATTERN_ZH


def _fail(exc):
    fail(exc)


def _date(text: str | None, option: str):
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise AuditInputError(Problem("AUD002", option, f"日期应为 YYYY-MM-DD, 实际为 {text!r}")) from None


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add this domain's commands to the ``yibao`` app and its benchmarks to ``yibao bench``."""
    audit_app = typer.Typer(help="基金监管审核: 规则库批量审核、单次就诊预审核 (fund supervision audit)",
                            invoke_without_command=True, no_args_is_help=False)
    case_app = typer.Typer(help="疑点案件: 导入、分派、核实、认定/排除、追回 (suspect cases)", no_args_is_help=True)
    app.add_typer(audit_app, name="audit")
    app.add_typer(case_app, name="case")

    @audit_app.callback()
    def audit(
        ctx: typer.Context,
        claims: Optional[Path] = typer.Option(None, "--claims", "-c", help="理赔数据目录"),
        rules: Optional[str] = typer.Option(None, "--rules", help="只运行这些规则, 逗号分隔, 如 SV-GEND-01,SV-ADM-01"),
        ruleset: str = typer.Option("default", "--ruleset", help="规则参数文件或内置名称(default, shandong-2024)"),
        since: Optional[str] = typer.Option(None, "--since", help="审核期起(结算日期, 含)"),
        until: Optional[str] = typer.Option(None, "--until", help="审核期止(结算日期, 含)"),
        skip_invalid: bool = typer.Option(False, "--skip-invalid", help="跳过参数有误或缺少输入的规则, 其余照常运行"),
        evaluate: bool = typer.Option(False, "--evaluate", help="按目录中的 labels.parquet 输出各规则的召回率与精确率"),
        out_dir: Optional[Path] = typer.Option(None, "--out", "-o", help="输出目录(默认 <claims>/audit)"),
        excel: bool = typer.Option(True, "--excel/--no-excel", help="同时写 audit.xlsx"),
        db: Optional[str] = typer.Option(None, "--db", help="案件库 URL: 给出时在汇总中加入信用评价"),
        catalogue_db: Optional[str] = typer.Option(None, "--catalogue-db",
                                                   help="目录库 URL: 加审就诊日生效的限定支付范围与医疗服务价格(docs/institutions.md §4)"),
        pack: Optional[str] = typer.Option(None, "--pack",
                                           help="政策包: SV-PRICE-03 另审其目录的最高支付限价(默认取 yibao synth 数据记录的政策包)"),
    ) -> None:
        """批量审核理赔数据, 写出疑点(Parquet + Excel)与按规则/机构/医师的汇总。"""
        if ctx.invoked_subcommand is not None:
            return
        if claims is None:
            typer.echo(ctx.get_help())
            raise typer.Exit(code=0)
        _run_audit(claims, rules, ruleset, since, until, skip_invalid, evaluate, out_dir, excel, db, catalogue_db, pack)

    @audit_app.command("rules")
    def audit_rules(
        rule_id: Optional[str] = typer.Argument(None, help="只看一条规则的全文与参数, 如 SV-GEND-01"),
        ruleset: str = typer.Option("default", "--ruleset", help="规则参数文件或内置名称"),
    ) -> None:
        """列出规则库(编号、名称、类别、环节、严重程度、是否拦截); 给出编号时显示全文与参数 (list the rules)."""
        try:
            rs = load_ruleset(ruleset)
            if rule_id is not None and rule_id not in rs.by_id():
                raise SupervisionError(Problem("SUP010", "rule_id", f"未知的规则编号 {rule_id!r}; 可用的规则见 yibao audit rules"))
        except YibaoError as exc:
            _fail(exc)
            return
        stages = lambda r: "/".join(STAGES[s][:2] for s in ("pre", "during", "after") if s in r.rule.stages)  # noqa: E731
        if rule_id is not None:
            r = rs.by_id()[rule_id]
            out.print(f"[bold]{r.id} {r.rule.name}[/] ({r.rule.family}; {stages(r)}; 严重程度 "
                      f"{SEVERITIES[r.severity]}{'; 拦截结算' if r.blocking else ''})")
            out.print(r.rule.description)
            out.print("参数 parameters:")
            out.print(yaml.safe_dump(r.params.model_dump(mode="json"), allow_unicode=True, sort_keys=False).rstrip(),
                      markup=False)
            return
        t = Table("编号", "名称", "类别", "环节", "严重", "拦截")
        for r in rs.rules:
            t.add_row(r.id, r.rule.name, r.rule.family, stages(r), SEVERITIES[r.severity], "是" if r.blocking else "")
        out.print(t)
        out.print(f"共 {len(rs.rules)} 条规则 ({rs.id}); 全文与参数: yibao audit rules <编号>")

    @audit_app.command("check")
    def audit_check(
        visit: Path = typer.Option(..., "--visit", help="JSON: {person, institution, visit, items, history}"),
        stage: str = typer.Option("during", "--stage", help="pre 事前提醒 或 during 事中预警"),
        ruleset: str = typer.Option("default", "--ruleset", help="规则参数文件或内置名称"),
        baselines: Optional[Path] = typer.Option(None, "--baselines",
                                                 help="批量审核学得的基线表 baselines.parquet(统计类规则用)"),
    ) -> None:
        """对一次就诊做预审核(联机路径), 输出提醒与拦截 (online pre-check of one visit)."""
        from yibao.supervision.online import Baselines, precheck

        try:
            rs = load_ruleset(ruleset)
            learned = Baselines.read(baselines, rs) if baselines is not None else None
            try:
                doc = json.loads(visit.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise AuditInputError(Problem("AUD003", "--visit", f"无法读取 JSON: {exc}")) from None
            for key in ("person", "institution", "visit", "items"):
                if key not in doc:
                    raise AuditInputError(Problem("AUD004", key, f"缺少 {key}"))
            history = [(h["visit"], h.get("items", [])) for h in doc.get("history", [])]
            result = precheck(doc["person"], doc["institution"], doc["visit"], doc["items"], history,
                              stage=stage, params=rs, baselines=learned,
                              history_institutions=doc.get("history_institutions", []))
        except YibaoError as exc:
            _fail(exc)
            return
        print_json(result.to_dict())
        if result.blocked:
            raise typer.Exit(code=3)

    _register_cases(case_app)

    @bench_app.command("audit")
    def bench_audit(
        lines: int = typer.Option(1_000_000, "--lines", help="费用明细行数(约值); 议题规模为 10000000"),
        online_visits: int = typer.Option(500, "--online", help="联机预审核计时的就诊数"),
        seed: int = typer.Option(1, "--seed"),
    ) -> None:
        """规则库批量审核与联机预审核的速度 (whole library over N fee lines; online p50/p99)."""
        run_bench(lines, online_visits, seed)


def _synth_pack(claims: Path) -> str | None:
    """The policy pack a ``yibao synth`` region was generated under (its Parquet metadata), if any."""
    path = Path(claims) / "institutions.parquet"
    try:
        meta = pq.read_schema(path).metadata or {}
        return json.loads(meta[b"yibao.synth"]).get("pack") if b"yibao.synth" in meta else None
    except (OSError, ValueError, KeyError):
        return None


def _run_audit(claims, rules, ruleset, since, until, skip_invalid, evaluate, out_dir, excel, db, catalogue_db=None,
               pack=None) -> None:
    from yibao.supervision import audit as A

    try:
        s, u = _date(since, "--since"), _date(until, "--until")
        if s is not None and u is not None and s > u:
            raise AuditInputError(Problem("AUD006", "--since", f"审核期起 {s} 晚于审核期止 {u}"))
        only = [r.strip() for r in rules.split(",") if r.strip()] if rules else None
        rs = load_ruleset(ruleset, only, skip_invalid)
        recorded = pack is None
        pack = pack or _synth_pack(claims)
        if pack:  # SV-PRICE-03 also judges the pack's own catalogue caps
            rs = with_pack_caps(rs, resolve_pack(pack))
            err.print(f"SV-PRICE-03 另审政策包 {pack} 目录的最高支付限价"
                      + ("(数据由 yibao synth 按该政策包生成; 用 --pack 指定其他政策包)" if recorded else ""))
        started = time.perf_counter()
        run = A.open_claims(claims, s, u)
        A.run_rules(run, rs, skip_invalid)
        if catalogue_db:  # 限定支付范围 and prices in force on each visit's date, from the catalogue store (#18)
            from yibao.institutions.batch_catalogue import add_catalogue_hits_from_store

            add_catalogue_hits_from_store(run, catalogue_db)
        credit = _credit_tables(db) if db else None
        summary = A.summaries(run, credit)
        paths = A.write_outputs(run, out_dir or Path(claims) / "audit", summary, excel)
        elapsed = time.perf_counter() - started
        labels = None
        if evaluate:
            lp = Path(claims) / "labels.parquet"
            if not lp.is_file():
                raise AuditInputError(Problem("AUD005", "--evaluate", f"{lp} 不存在: 用 yibao synth --fraud 生成带标注的数据"))
            labels = pq.read_table(lp)
    except YibaoError as exc:
        _fail(exc)
        return
    by_rule = summary["by_rule"].to_pylist()
    t = Table("规则", "名称", "疑点数", "违规金额(元)", "用时(秒)")
    for r in by_rule:
        t.add_row(r["rule_id"], r["rule_name"], f"{r['hits']:,}", f"{r['amount_yuan']:,.2f}",
                  f"{run.timings.get(r['rule_id'], 0):.2f}")
    out.print(t)
    inst = summary["by_institution"].slice(0, 10).to_pylist()
    if inst:
        t2 = Table("风险排名", "机构", "名称", "疑点", "违规金额(元)", "疑点就诊占比", "风险分")
        for r in inst:
            t2.add_row(str(r["risk_rank"]), r["fixmedins_code"], r["fixmedins_name"] or "", str(r["hits"]),
                       f"{r['amount_yuan']:,.2f}", f"{r['flagged_share']:.1%}", f"{r['risk_score']:.3f}")
        out.print(t2)
    peers = [r for r in summary["peer_scores"].to_pylist() if r["outlier"]][:8]
    if peers:
        t5 = Table("同级离群 机构/医师", "指标(医疗类别)", "值", "同级中位数 / MAD (n)", "离群分")
        for r in peers:
            t5.add_row(r["subject"], f"{r['metric_zh']}({r['med_type']})", f"{r['value']:,.4g}",
                       f"{r['peer_median']:,.4g} / {r['peer_mad']:,.4g} ({r['peers']})", f"{r['score']:.2f}")
        out.print(t5)
    for sk in run.skipped:
        for p in sk.problems:
            err.print(f"[yellow]已跳过 {sk.rule_id}[/]: [{p.code}] {p.path}: {p.message}")
    out.print(f"{run.visits:,} 次就诊, {run.items:,} 行明细; {sum(r['hits'] for r in by_rule):,} 条疑点; "
              f"用时 {elapsed:.1f} 秒。输出: {', '.join(str(p) for p in paths.values())}")
    if labels is not None:
        q = ev(A.hits_table(run), labels, [r.id for r in rs.rules])
        t3 = Table("规则", "名称", "注入", "命中", "命中注入", "召回率", "精确率")
        for row in render(q, {r.id: r.rule.name for r in rs.rules}):
            t3.add_row(*row)
        out.print(t3)
        # the evaluation patterns, built from the region's data rather than from the rules' parameters
        precision = {x.rule_id: x.precision for x in q}
        t4 = Table("模式 pattern", "规则", "注入", "命中注入", "召回率", "规则精确率")
        for x in by_pattern(A.hits_table(run), labels, PATTERN_RULE):
            p = precision.get(x.rule_id)
            t4.add_row(PATTERN_ZH[x.pattern], x.rule_id, str(x.labelled), str(x.true_hits), f"{x.recall:.1%}",
                       "—" if p is None else f"{p:.1%}")
        out.print(t4)
        hits = A.hits_table(run)
        visit_ids = [m for (m,) in run.con.sql("SELECT mdtrt_id FROM vx").fetchall()]
        o = overall(q, hits, labels, visit_ids)
        out.print(f"全部注入: 召回率 {o.recall or 0:.1%} ({o.true_hits}/{o.labelled}), 精确率 {o.precision or 0:.1%} "
                  f"({o.true_hits}/{o.hits}); 未注入的就诊 {o.clean_visits:,} 次, 被任一规则标记 {o.clean_flagged:,} 次 "
                  f"({o.clean_rate or 0:.2%}) / recall, precision, clean visits flagged")


def _credit_tables(url: str):
    from yibao.supervision.cases import credit_scores, open_store

    engine = open_store(url)
    try:
        with Session(engine) as s:
            inst, doc = credit_scores(s)
    except DBAPIError as exc:
        raise CaseError(Problem("CAS022", "--db", f"读取案件库失败: {str(exc.orig).strip()}")) from None
    finally:
        engine.dispose()
    return {"credit_institutions": pa.Table.from_pylist(inst) if inst else pa.table({"fixmedins_code": pa.array([], pa.string())}),
            "credit_physicians": pa.Table.from_pylist(doc) if doc else pa.table({"atddr_no": pa.array([], pa.string())})}


def _register_cases(case_app: typer.Typer) -> None:
    DB = typer.Option(None, "--db", help="案件库 URL, 默认 YIBAO_DATABASE_URL 或 ./yibao-data/yibao.db")
    ACTOR = typer.Option("cli", "--actor", help="操作人")

    def act(db, fn):
        """``fn`` in one transaction on the case store (migrated first); errors as CAS problems."""
        from yibao.supervision.cases import open_store

        try:
            engine = open_store(db)
            try:
                with Session(engine) as s, s.begin():
                    result = fn(s)
            except DBAPIError as exc:
                raise CaseError(Problem("CAS022", "--db", f"案件库操作失败, 未作任何修改: {str(exc.orig).strip()}")) from None
            finally:
                engine.dispose()
        except YibaoError as exc:
            _fail(exc)
            return None
        return result

    def show_case(c) -> str:
        from yibao.supervision.cases import STATUS_ZH

        return (f"#{c.id} [{STATUS_ZH[c.status]}] {c.rule_id} {c.rule_name} 对象 {c.subject} 机构 {c.fixmedins_code or ''} "
                f"违规金额 {format_yuan(c.amount_fen)} 元 追回 {format_yuan(c.recovered_fen)} 元 承办 {c.assignee or '—'}")

    @case_app.command("import")
    def case_import(hits: Path = typer.Option(..., "--hits", help="yibao audit 输出的 hits.parquet"), db: Optional[str] = DB,
                    actor: str = ACTOR) -> None:
        """把审核疑点导入为案件(同一规则同一对象只建一次)。"""
        from yibao.supervision.cases import check_hit_columns, import_hits

        try:
            if not hits.is_file():
                raise CaseError(Problem("CAS002", "--hits", f"文件不存在: {hits}"))
            try:
                table = pq.read_table(hits)
            except (pa.ArrowException, OSError) as exc:
                raise CaseError(Problem("CAS004", "--hits", f"无法读取 Parquet 文件 {hits}: {exc}")) from None
            check_hit_columns(table.column_names)
        except YibaoError as exc:
            _fail(exc)
            return
        rows = table.to_pylist()
        n = act(db, lambda s: import_hits(s, rows, actor))
        out.print(f"新建 {n} 个疑点案件(共 {len(rows)} 条疑点)")

    @case_app.command("list")
    def case_list(status: Optional[str] = typer.Option(None, "--status", help="suspect/verifying/confirmed/excluded/recovered"),
                  limit: int = typer.Option(50, "--limit"), db: Optional[str] = DB) -> None:
        """列出案件。"""
        from yibao.supervision.cases import Case, check_status

        if status is not None:
            try:
                check_status(status)
            except YibaoError as exc:
                _fail(exc)
                return

        def q(s):
            stmt = select(Case).order_by(Case.amount_fen.desc(), Case.id).limit(limit)
            if status:
                stmt = stmt.where(Case.status == status)
            return [show_case(c) for c in s.scalars(stmt)]
        for line in act(db, q) or []:
            out.print(line)

    @case_app.command("show")
    def case_show(case_id: int = typer.Argument(...), db: Optional[str] = DB) -> None:
        """案件详情与全部操作记录。"""
        from yibao.supervision.cases import STATUS_ZH, events, get

        def q(s):
            c = get(s, case_id)
            lines = [show_case(c), c.message]
            for e in events(s, case_id):
                move = f"{STATUS_ZH.get(e.from_status, '') or ''}→{STATUS_ZH.get(e.to_status, '')}" if e.to_status else ""
                amt = f" {format_yuan(e.amount_fen)} 元" if e.amount_fen else ""
                lines.append(f"  {e.at} {e.actor} {e.action} {move}{amt} {e.note}")
            return lines
        for line in act(db, q) or []:
            out.print(line)

    @case_app.command("assign")
    def case_assign(case_id: int = typer.Argument(...), to: str = typer.Option(..., "--to"), db: Optional[str] = DB,
                    actor: str = ACTOR) -> None:
        """分派承办人。"""
        from yibao.supervision.cases import assign

        out.print(act(db, lambda s: show_case(assign(s, case_id, to, actor))) or "")

    @case_app.command("comment")
    def case_comment(case_id: int = typer.Argument(...), text: str = typer.Argument(...), db: Optional[str] = DB,
                     actor: str = ACTOR) -> None:
        """添加核查意见。"""
        from yibao.supervision.cases import comment

        out.print(act(db, lambda s: show_case(comment(s, case_id, text, actor))) or "")

    def status_command(name: str, to: str, doc: str, needs_amount: bool = False, note_flag: str = "--note"):
        def command(case_id: int = typer.Argument(...), note: str = typer.Option("", note_flag, help="说明"),
                    amount: Optional[str] = typer.Option(None, "--amount", help="追回金额(元)"),
                    db: Optional[str] = DB, actor: str = ACTOR) -> None:
            from yibao.supervision.cases import move

            fen = None
            if amount is not None:
                try:
                    fen = yuan_to_fen(amount)
                except Exception:  # noqa: BLE001 - any unparsable amount is a user error
                    _fail(CaseError(Problem("CAS012", "--amount", f"金额应为元, 最多两位小数, 实际为 {amount!r}")))
            out.print(act(db, lambda s: show_case(move(s, case_id, to, actor, note, fen))) or "")
        command.__doc__ = doc
        case_app.command(name)(command)

    status_command("verify", "verifying", "开始核实(疑点 → 核实中)。")
    status_command("confirm", "confirmed", "认定违规(核实中 → 认定违规)。")
    status_command("exclude", "excluded", "排除疑点(核实中 → 排除), 须 --reason 说明理由。", note_flag="--reason")
    status_command("recover", "recovered", "追回(认定违规 → 追回), 须 --amount 给出追回金额(元)。", True)

    @case_app.command("credit")
    def case_credit(db: Optional[str] = DB) -> None:
        """机构信用评价与医保医师积分(由认定违规的案件计算)。"""
        from yibao.supervision.cases import credit_scores

        inst, doc = act(db, credit_scores) or ([], [])
        t = Table("机构", "认定案件", "扣分", "信用分", "等级", "违规金额(元)", "已追回(元)")
        for r in inst:
            t.add_row(r["fixmedins_code"], str(r["confirmed"]), str(r["deducted"]), str(r["score"]), r["grade"],
                      format_yuan(r["amount_fen"]), format_yuan(r["recovered_fen"]))
        out.print(t)
        t2 = Table("医师", "机构", "认定案件", "扣分", "剩余积分(满分 12)")
        for d in doc:
            t2.add_row(d["atddr_no"], d["fixmedins_code"] or "", str(d["confirmed"]), str(d["deducted"]), str(d["score"]))
        out.print(t2)
