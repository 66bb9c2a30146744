"""``yibao institutions …``: agreements, assessment, monthly applications and payments from a 经办 shell.

Each command is one transaction (a refused one writes nothing) and is recorded in the audit log under
``cli:<operator>`` with the role the step needs (``--operator`` names the person, so 岗位分离 — the
evaluator never signs, the reviewer never approves — holds on the command line too).
"""

from __future__ import annotations

import getpass
import json
from datetime import date
from pathlib import Path
from typing import Optional

import typer

from yibao.console import fail
from yibao.console import print_json as _show
from yibao.errors import Problem
from yibao.institutions import applications as ap
from yibao.institutions import prices
from yibao.institutions import procurement as pr
from yibao.institutions.agreements import EVALUATION_ITEMS, AgreementError
from yibao.institutions.bench import run as run_institutions
from yibao.institutions.bench_catalogue import run as run_catalogue
from yibao.institutions.bench_tariffs import run as run_tariffs
from yibao.institutions.payments import PaymentError
from yibao.service.auth import Principal
from yibao.store.command_session import command_context as _ctx  # the store helpers every domain's commands share
from yibao.store.command_session import command_session as _session

URL = typer.Option(None, "--url", help="数据库 URL; 默认 YIBAO_DATABASE_URL 或 YIBAO_DATA_DIR/yibao.db")
OPERATOR = typer.Option(None, "--operator", help="经办人(默认当前系统用户)")


def _who(operator: str | None, role: str = "admin"):
    return Principal(f"cli:{operator or getpass.getuser()}", role)


def _date(text: str, name: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        fail(AgreementError(Problem("INS007", name, f"须为日期 YYYY-MM-DD, 实际为 {text!r}")))
        raise


def _list(text: str) -> list[str]:
    return [t.strip() for t in text.replace("，", ",").split(",") if t.strip()]


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    @bench_app.command("institutions")
    def bench_institutions(settlements: int = typer.Option(1_000_000, "--settlements", help="当月结算笔数"),
                           institutions: int = typer.Option(500, "--institutions", help="机构数"),
                           fold_rows: int = typer.Option(100_000, "--fold-rows", help="逐行 Python 折叠对照的行数(有界)"),
                           url: Optional[str] = typer.Option(None, "--url", help="空白的临时数据库(默认临时 SQLite 文件)")):
        """月度结算申请: SQL 汇总 vs 逐行 Python 折叠 / building a month's applications."""
        r = run_institutions(settlements, institutions, fold_rows, url=url)
        _show(r)
        typer.echo(f"{r['settlements']:,} 笔结算 → {r['applications']} 份申请: SQL 汇总 {r['build_month_s']} 秒 "
                   f"({r['sql_rows_per_s']:,} 笔/秒); 逐行折叠 {r['fold_rows']:,} 笔 {r['fold_s']} 秒 "
                   f"({r['fold_rows_per_s']:,} 笔/秒, 全量约 {r['fold_extrapolated_s']} 秒); 结果一致: {r['fold_agrees']}",
                   err=True)

    @bench_app.command("catalogue")
    def bench_catalogue(rows: int = typer.Option(100_000, "--rows", help="目录行数"),
                        alt_rows: Optional[int] = typer.Option(None, "--alt-rows", help="逐行对照的行数(默认与 --rows 相同)")):
        """目录导入: DuckDB 整表校验 + 批量写入 vs 逐行 pydantic + ORM / catalogue import."""
        r = run_catalogue(rows, alt_rows)
        _show(r)
        typer.echo(f"{r['rows']:,} 行目录导入 {r['import_s']} 秒 ({r['import_rows_per_s']:,} 行/秒); 逐行 "
                   f"{r['row_by_row_rows']:,} 行 {r['row_by_row_s']} 秒 ({r['row_by_row_rows_per_s']:,} 行/秒); "
                   f"结果一致: {r['same_entries']}", err=True)

    @bench_app.command("tariffs")
    def bench_tariffs(rows: int = typer.Option(100_000, "--rows", help="集采清单行数与价格表项目数"),
                      alt_rows: int = typer.Option(5_000, "--alt-rows", help="逐行对照的行数"),
                      institutions: int = typer.Option(200, "--institutions", help="集采清单涉及的机构数")):
        """价格表与集采清单导入: 整文件校验 + 批量写入 vs 逐行登记(每行一个 ORM 对象与审计记录) / tariff file import."""
        r = run_tariffs(rows, alt_rows, institutions)
        _show(r)
        for kind, zh in (("vbp", "集采清单"), ("price", "价格表")):
            x = r[kind]
            typer.echo(f"{zh} {r['rows']:,} 行导入 {x['import_s']} 秒 ({x['import_rows_per_s']:,} 行/秒); 逐行 "
                       f"{r['row_by_row_rows']:,} 行 {x['row_by_row_s']} 秒 ({x['row_by_row_rows_per_s']:,} 行/秒); "
                       f"结果一致: {x['same_records']}", err=True)

    ins = typer.Typer(help="两定机构: 定点协议、考核、结算申请与拨付、目录与价格 (docs/institutions.md)",
                      no_args_is_help=True)
    app.add_typer(ins, name="institutions")

    @ins.command("apply")
    def cmd_apply(code: str = typer.Option(..., "--code", help="定点机构编码 fixmedins_code"),
                  name: str = typer.Option(..., "--name", help="机构名称"),
                  kind: str = typer.Option("hospital", "--kind", help="hospital 定点医疗机构 / pharmacy 定点零售药店"),
                  admdvs: str = typer.Option(..., "--admdvs", help="行政区划(6 位)"),
                  levels: str = typer.Option(..., "--levels", help="机构等级, 逗号分隔: 1/2/3/0"),
                  services: str = typer.Option(..., "--services", help="服务类别(医疗类别), 逗号分隔: 11,14,21,41…"),
                  care_modes: str = typer.Option("", "--care-modes", help="服务方式, 逗号分隔: day_surgery,internet,dual_channel…"),
                  operator: Optional[str] = OPERATOR, url: Optional[str] = URL):
        """定点申请 / apply for designation."""
        from yibao.institutions import store

        who = _who(operator, "clerk")
        with _session(url) as s:
            _show(store.apply_designation(s, who, _ctx(who), fixmedins_code=code, fixmedins_name=name, kind=kind,
                                          admdvs=admdvs, scope={"levels": _list(levels), "services": _list(services),
                                                                "care_modes": _list(care_modes)}))

    @ins.command("evaluate")
    def cmd_evaluate(application_no: str = typer.Argument(..., help="定点申请号 DA…"),
                     passed: str = typer.Option("", "--pass", help="通过的评估项, 逗号分隔(未列出的记为不通过)"),
                     note: str = typer.Option("", "--note"), operator: Optional[str] = OPERATOR, url: Optional[str] = URL):
        """专业评估 / evaluate an application (审核岗)."""
        from yibao.institutions import store

        ok = set(_list(passed))
        items = {k: k in ok for k in EVALUATION_ITEMS} | {k: True for k in ok if k not in EVALUATION_ITEMS}
        who = _who(operator, "reviewer")
        with _session(url) as s:
            _show(store.evaluate(s, who, _ctx(who), application_no=application_no, items=items, note=note))

    @ins.command("sign")
    def cmd_sign(application_no: str = typer.Argument(..., help="定点申请号 DA…"),
                 valid_from: str = typer.Option(..., "--valid-from"), valid_to: str = typer.Option(..., "--valid-to"),
                 operator: Optional[str] = OPERATOR, url: Optional[str] = URL):
        """签订定点服务协议 / sign the agreement (复核岗, 不得是评估人)."""
        from yibao.institutions import store

        who = _who(operator, "rechecker")
        with _session(url) as s:
            _show(store.sign(s, who, _ctx(who), application_no=application_no,
                             valid_from=_date(valid_from, "--valid-from"), valid_to=_date(valid_to, "--valid-to")))

    def event_command(kind: str, title: str):
        def run(agreement_no: str = typer.Argument(..., help="协议号 AG…"),
                on: str = typer.Option(..., "--on", help="生效日期 YYYY-MM-DD"),
                reason: str = typer.Option("", "--reason", help="原因"),
                case: Optional[int] = typer.Option(None, "--case", help="援引的监管案件号(仅暂停)"),
                levels: str = typer.Option("", "--levels", help="变更后的机构等级(仅变更)"),
                services: str = typer.Option("", "--services", help="变更后的服务类别(仅变更)"),
                care_modes: str = typer.Option("", "--care-modes", help="变更后的服务方式(仅变更)"),
                operator: Optional[str] = OPERATOR, url: Optional[str] = URL):
            from yibao.institutions import store

            scope = ({"levels": _list(levels), "services": _list(services), "care_modes": _list(care_modes)}
                     if kind == "change" else None)
            who = _who(operator, "rechecker")
            with _session(url) as s:
                _show(store.record_event(s, who, _ctx(who), agreement_no=agreement_no, kind=kind,
                                         eff_date=_date(on, "--on"), reason=reason, scope=scope, case_id=case))
        run.__doc__ = f"{title} / {kind}"
        ins.command(kind)(run)

    event_command("change", "协议变更(范围)")
    event_command("suspend", "暂停协议")
    event_command("resume", "恢复协议")
    event_command("terminate", "解除协议")

    @ins.command("show")
    def cmd_show(code: str = typer.Argument(..., help="定点机构编码"),
                 on: Optional[str] = typer.Option(None, "--on", help="查看哪一天的状态(默认今天)"),
                 url: Optional[str] = URL):
        """机构的协议、当日状态与范围、暂停区间、历年考核 / an institution's agreements."""
        from yibao.institutions import store

        who = _who(None, "auditor")
        with _session(url, write=False) as s:
            _show(store.institution_agreements(s, who, code, _date(on, "--on") if on else date.today()))

    @ins.command("assess")
    def cmd_assess(code: str = typer.Argument(..., help="定点机构编码"), year: int = typer.Option(..., "--year"),
                   on: Optional[str] = typer.Option(None, "--on", help="考核日期: 监管认定与信用分取该日的状态(默认今天)"),
                   operator: Optional[str] = OPERATOR, url: Optional[str] = URL):
        """年度考核 / annual assessment from supervision findings and credit as of the assessment date."""
        from yibao.institutions import store

        who = _who(operator, "reviewer")
        with _session(url) as s:
            _show(store.assess(s, who, _ctx(who), fixmedins_code=code, year=year, on=_date(on, "--on") if on else None))

    # --- 结算申请与拨付 ------------------------------------------------------------------------------

    @ins.command("apply-month")
    def cmd_apply_month(month: str = typer.Option(..., "--month", help="结算月份 YYYY-MM(须已结束)"),
                        code: Optional[str] = typer.Option(None, "--code", help="只为这一家机构申请(默认全部)"),
                        operator: Optional[str] = OPERATOR, url: Optional[str] = URL):
        """月度结算申请: 按机构、基金汇总当月结算(减当月撤销) / build a month's applications."""
        who = _who(operator, "clerk")
        with _session(url) as s:
            _show(ap.build_month(s, who, _ctx(who), month=month, fixmedins_code=code))

    def step_command(action: str, title: str, role: str):
        def run(app_no: str = typer.Argument(..., help="结算申请号 SA…"), note: str = typer.Option("", "--note"),
                paid_on: Optional[str] = typer.Option(None, "--paid-on", help="拨付日期(仅 pay; 默认今天)"),
                operator: Optional[str] = OPERATOR, url: Optional[str] = URL):
            who = _who(operator, role)
            with _session(url) as s:
                _show(ap.act(s, who, _ctx(who), app_no=app_no, action=action, note=note,
                             paid_on=_date(paid_on, "--paid-on") if paid_on else None))
        run.__doc__ = f"{title} / {action}"
        ins.command(action)(run)

    step_command("review", "初审结算申请", "reviewer")
    step_command("reject", "退回结算申请", "reviewer")
    step_command("approve", "审批结算申请(不得是初审人)", "rechecker")
    step_command("order", "下达支付指令", "clerk")
    step_command("pay", "登记拨付(记入基金支出台账)", "clerk")

    @ins.command("applications")
    def cmd_applications(month: Optional[str] = typer.Option(None, "--month"), code: Optional[str] = typer.Option(None, "--code"),
                         status: Optional[str] = typer.Option(None, "--status"),
                         warnings: bool = typer.Option(False, "--warnings", help="只列未拨付且已超期或 5 个工作日内到期的"),
                         url: Optional[str] = URL):
        """结算申请清单与 30 个工作日拨付时限预警 / applications with their deadline flags."""
        with _session(url, write=False) as s:
            _show(ap.worklist(s, _who(None, "auditor"), date.today(), month=month, fixmedins_code=code, status=status,
                              warnings_only=warnings))

    @ins.command("advance")
    def cmd_advance(code: str = typer.Option(..., "--code"), fund: str = typer.Option("basic", "--fund"),
                    amount: str = typer.Option(..., "--amount", help="预付金额(元)"),
                    months: int = typer.Option(..., "--months", help="从此后几个月的结算申请中等额冲抵"),
                    reason: str = typer.Option(..., "--reason"), operator: Optional[str] = OPERATOR,
                    url: Optional[str] = URL):
        """预付金: 拨付并按月冲抵 / pay an advance, offset from later applications."""
        who = _who(operator, "rechecker")
        with _session(url) as s:
            _show(ap.grant_advance(s, who, _ctx(who), fixmedins_code=code, fund=fund, amount=amount,
                                   offset_months=months, reason=reason))

    @ins.command("clearing")
    def cmd_clearing(year: int = typer.Option(..., "--year"),
                     result: Path = typer.Option(..., "--result", help="yibao dip|drg settle 的 settlement.json 或 --json 输出"),
                     operator: Optional[str] = OPERATOR, url: Optional[str] = URL):
        """DIP/DRG 年终清算: 按机构记入基本医保基金的最终调整, 冲抵未冲完的预付金 / year-end clearing."""
        try:
            data = json.loads(result.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            fail(PaymentError(Problem("INS230", str(result), f"无法读取结算结果: {exc.__class__.__name__}")))
            return
        who = _who(operator, "clerk")
        with _session(url) as s:
            _show(ap.post_clearing(s, who, _ctx(who), year=year, result=data))

    @ins.command("statement")
    def cmd_statement(code: str = typer.Argument(...), year: int = typer.Option(..., "--year"), url: Optional[str] = URL):
        """机构年度对账(分): 结算份额、撤销、清算调整、冲抵、应付、已付、台账 / an institution's year."""
        with _session(url, write=False) as s:
            _show(ap.institution_year(s, _who(None, "auditor"), code, year))

    # --- 目录、集采、双通道、价格 ------------------------------------------------------------------------

    cat = typer.Typer(help="医保目录版本: 国家编码表导入、在用版本、限定支付范围审核 (docs/institutions.md §4)",
                      no_args_is_help=True)
    ins.add_typer(cat, name="catalogue")

    @cat.command("import")
    def cmd_cat_import(path: Path = typer.Argument(..., help="国家编码表 CSV/Excel(列见 docs/institutions.md §4)"),
                       kind: str = typer.Option(..., "--kind", help="drug 西药中成药 / consumable 医用耗材 / service 医疗服务项目"),
                       version: str = typer.Option(..., "--version", help="版本号, 如 2024-A"),
                       effective_from: str = typer.Option(..., "--effective-from", help="生效日期 YYYY-MM-DD"),
                       share: str = typer.Option("0.10", "--default-preselfpay", help="本版本乙类默认先行自付比例"),
                       operator: Optional[str] = OPERATOR, url: Optional[str] = URL):
        """导入一个目录版本(全部通过才写入, 否则逐行报告) / import a catalogue version, all or nothing."""
        from yibao.institutions import catalogue_store as cs

        who = _who(operator, "clerk")
        with _session(url) as s:
            _show(cs.import_version(s, who, _ctx(who), path, kind=kind, version=version,
                                    effective_from=_date(effective_from, "--effective-from"), default_preselfpay=share))

    @cat.command("versions")
    def cmd_cat_versions(url: Optional[str] = URL):
        """目录版本清单 / the versions and when each takes effect."""
        from yibao.institutions import catalogue_store as cs

        with _session(url, write=False) as s:
            _show(cs.versions(s, _who(None, "auditor")))

    @cat.command("show")
    def cmd_cat_show(code: str = typer.Argument(..., help="医保目录编码"),
                     on: Optional[str] = typer.Option(None, "--on", help="日期(默认今天)"), url: Optional[str] = URL):
        """某编码在某日生效目录中的分类、先行自付、支付标准、限定范围 / a code as the catalogue in force has it."""
        from yibao.institutions import catalogue_store as cs

        with _session(url, write=False) as s:
            _show(cs.entry_on(s, _who(None, "auditor"), code, _date(on, "--on") if on else date.today()))

    @cat.command("export")
    def cmd_cat_export(policy: str = typer.Option(..., "--policy", help="基础政策包"),
                       on: str = typer.Option(..., "--on", help="目录生效日"),
                       out_path: Path = typer.Option(..., "--out", help="写出的政策包 YAML"), url: Optional[str] = URL):
        """导出政策包: 目录为某日生效的版本, 供批量结算、政策模拟使用 / a pack carrying the catalogue in force."""
        from yibao.institutions import catalogue_store as cs

        with _session(url, write=False) as s:
            _show(cs.export_pack(s, _who(None, "auditor"), policy=policy, on=_date(on, "--on"), path=out_path))

    @cat.command("check")
    def cmd_cat_check(mdtrt_id: str = typer.Argument(..., help="就诊 ID"), url: Optional[str] = URL):
        """限定支付范围审核: 就诊费用明细对照就诊日生效目录的限定条件 / limit conditions of a visit."""
        from yibao.institutions import catalogue_store as cs

        with _session(url, write=False) as s:
            _show(cs.limit_hits(s, _who(None, "auditor"), mdtrt_id))

    @ins.command("vbp-add")
    def cmd_vbp_add(code: str = typer.Option(..., "--code", help="定点机构编码"), drug: str = typer.Option(..., "--drug"),
                    name: str = typer.Option(..., "--name"), batch: str = typer.Option(..., "--batch", help="采购批次"),
                    year: int = typer.Option(..., "--year"), volume: str = typer.Option(..., "--volume", help="约定采购量"),
                    selected: str = typer.Option(..., "--selected-price", help="中选价(元)"),
                    reference: str = typer.Option(..., "--reference-price", help="集采前参考价(元)"),
                    period_from: str = typer.Option(..., "--from"), period_to: str = typer.Option(..., "--to"),
                    operator: Optional[str] = OPERATOR, url: Optional[str] = URL):
        """集采中选产品及约定采购量 / a selected product with its agreed volume."""
        who = _who(operator, "clerk")
        with _session(url) as s:
            _show(pr.add_product(s, who, _ctx(who), batch=batch, year=year, fixmedins_code=code, med_list_codg=drug,
                                 name=name, contract_volume=volume, selected_price=selected, reference_price=reference,
                                 period_from=_date(period_from, "--from"), period_to=_date(period_to, "--to")))

    def _import(path: Path, kind: str, version: str, eff: str, operator: Optional[str], url: Optional[str]):
        from yibao.institutions import tariffs

        who = _who(operator, "clerk")
        with _session(url) as s:
            _show(tariffs.import_file(s, who, _ctx(who), path, kind=kind, version=version,
                                      effective_from=_date(eff, "--from")))

    @ins.command("price-import")
    def cmd_price_import(path: Path = typer.Argument(..., help="医疗服务价格表 CSV/Excel(列见 docs/institutions.md §5)"),
                         doc_no: str = typer.Option(..., "--doc", help="定价/调价文件号(即版本)"),
                         eff: str = typer.Option(..., "--from", help="生效日期 YYYY-MM-DD"),
                         operator: Optional[str] = OPERATOR, url: Optional[str] = URL):
        """导入价格表: 每个项目一至三级价格, 全部通过才写入 / import a price table, all or nothing."""
        _import(path, "price", doc_no, eff, operator, url)

    @ins.command("vbp-import")
    def cmd_vbp_import(path: Path = typer.Argument(..., help="集采中选产品清单 CSV/Excel(列见 docs/institutions.md §4)"),
                       version: str = typer.Option(..., "--version", help="清单文件号或批次(即版本)"),
                       eff: str = typer.Option(..., "--from", help="生效日期(行内未写执行期时为执行期起)"),
                       operator: Optional[str] = OPERATOR, url: Optional[str] = URL):
        """导入集采中选产品与各机构约定采购量, 全部通过才写入 / import a 集采 list, all or nothing."""
        _import(path, "vbp", version, eff, operator, url)

    @ins.command("tariff-files")
    def cmd_tariff_files(kind: Optional[str] = typer.Option(None, "--kind", help="price 价格表 / vbp 集采清单"),
                         url: Optional[str] = URL):
        """已导入的价格表与集采清单(版本) / imported price tables and 集采 lists."""
        from yibao.institutions import tariffs

        with _session(url, write=False) as s:
            _show(tariffs.files(s, _who(None, "auditor"), kind))

    @ins.command("vbp-usage")
    def cmd_vbp_usage(year: int = typer.Option(..., "--year"), batch: Optional[str] = typer.Option(None, "--batch"),
                      url: Optional[str] = URL):
        """全部机构的集采执行进度(使用量 ÷ 约定量) / 集采 usage of every institution."""
        from yibao.institutions import tariffs

        with _session(url, write=False) as s:
            _show(tariffs.vbp_usage(s, _who(None, "auditor"), year=year, batch=batch))

    @ins.command("vbp-progress")
    def cmd_vbp_progress(code: str = typer.Argument(...), year: int = typer.Option(..., "--year"), url: Optional[str] = URL):
        """集采执行进度与结余留用(分) / progress and retention."""
        with _session(url, write=False) as s:
            _show(pr.progress(s, _who(None, "auditor"), code, year))

    @ins.command("vbp-retain")
    def cmd_vbp_retain(code: str = typer.Argument(...), year: int = typer.Option(..., "--year"),
                       operator: Optional[str] = OPERATOR, url: Optional[str] = URL):
        """结余留用申请(走初审、审批、拨付) / the year's retention as an application."""
        who = _who(operator, "clerk")
        with _session(url) as s:
            _show(pr.post_retention(s, who, _ctx(who), fixmedins_code=code, year=year))

    @ins.command("dual-channel")
    def cmd_dual(drug: str = typer.Option(..., "--drug"), pharmacy: str = typer.Option(..., "--pharmacy"),
                 valid_from: str = typer.Option(..., "--from"), valid_to: str = typer.Option(..., "--to"),
                 operator: Optional[str] = OPERATOR, url: Optional[str] = URL):
        """双通道: 谈判药品在定点药店供应 / a dual-channel drug at a pharmacy."""
        who = _who(operator, "clerk")
        with _session(url) as s:
            _show(pr.add_dual_channel(s, who, _ctx(who), med_list_codg=drug, fixmedins_code=pharmacy,
                                      valid_from=_date(valid_from, "--from"), valid_to=_date(valid_to, "--to")))

    @ins.command("price-set")
    def cmd_price_set(item: str = typer.Option(..., "--item", help="医疗服务项目编码"),
                      level: str = typer.Option(..., "--level", help="机构等级 1/2/3"),
                      price: str = typer.Option(..., "--price", help="价格(元)"),
                      eff: str = typer.Option(..., "--from", help="生效日期"), doc_no: str = typer.Option(..., "--doc"),
                      reason: str = typer.Option("", "--reason"), operator: Optional[str] = OPERATOR,
                      url: Optional[str] = URL):
        """定价/调价(带生效日期与文件号) / set a service-item price from a date."""
        who = _who(operator, "clerk")
        with _session(url) as s:
            _show(prices.set_price(s, who, _ctx(who), med_list_codg=item, level=level, price=price,
                                   eff_date=_date(eff, "--from"), doc_no=doc_no, reason=reason))

    @ins.command("prices")
    def cmd_prices(level: str = typer.Option(..., "--level"), on: Optional[str] = typer.Option(None, "--on"),
                   url: Optional[str] = URL):
        """某日生效的价格表 / the price list in force."""
        with _session(url, write=False) as s:
            _show(prices.price_list(s, _who(None, "auditor"), level=level, on=_date(on, "--on") if on else date.today()))

    @ins.command("price-monitor")
    def cmd_price_monitor(begndate: str = typer.Option(..., "--from"), enddate: str = typer.Option(..., "--to"),
                          url: Optional[str] = URL):
        """价格监测: 超标准收费、价格异常变动 / charges above the price in force, abnormal moves."""
        with _session(url, write=False) as s:
            _show(prices.monitor(s, _who(None, "auditor"), begndate=_date(begndate, "--from"),
                                 enddate=_date(enddate, "--to")))
