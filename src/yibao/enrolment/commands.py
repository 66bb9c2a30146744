"""``yibao enrol …``: the registry's transactions from a 经办 desk's shell, and ``yibao bench enrol``.

Writes run as role clerk under the name ``cli:<user>`` (recorded on every fact and audit entry);
each command is one transaction, so a refused one writes nothing.
"""

from __future__ import annotations

import csv
import getpass
from datetime import date
from pathlib import Path
from typing import Optional

import typer

from yibao.console import fail, out
from yibao.console import print_json as _show
from yibao.enrolment import registry as er
from yibao.errors import Problem
from yibao.money import fen_to_yuan, yuan_to_fen
from yibao.policy.loader import resolve_pack
from yibao.service import registry
from yibao.service.auth import Principal
from yibao.service.errors import ServiceError
from yibao.store.command_session import command_context as _ctx  # the store helpers every domain's commands share
from yibao.store.command_session import command_session as _session
from yibao.synth import generate

URL = typer.Option(None, "--url", help="数据库 URL; 默认 YIBAO_DATABASE_URL 或 YIBAO_DATA_DIR/yibao.db")


def _who():
    return Principal(f"cli:{getpass.getuser()}", "clerk")


def _known(pack: str) -> set[str]:
    return set(resolve_pack(pack).categories)


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    enrol = typer.Typer(help="参保登记与筹资: 参保/变更/暂停/终止/恢复/转移接续、类别名单导入 (enrolment)",
                        no_args_is_help=True)
    app.add_typer(enrol, name="enrol")

    @enrol.command("register")
    def cmd_register(insutype: str = typer.Option(..., help="险种 310 职工 / 390 居民 / 510 长护"),
                     admdvs: str = typer.Option(..., help="参保地区划(6 位)"),
                     begndate: str = typer.Option(..., help="参保开始日期 YYYY-MM-DD"),
                     psn_no: Optional[str] = typer.Option(None, help="已有人员编号(否则给出 --certno 与 --name)"),
                     certno: Optional[str] = typer.Option(None, help="证件号码(新人员)"),
                     name: Optional[str] = typer.Option(None, help="姓名(新人员)"),
                     psn_type: str = typer.Option("", help="1101 在职 / 1102 退休 / 1301 灵活就业 / 1401 居民"),
                     url: Optional[str] = URL):
        """参保登记 / enrol a new or an existing person."""
        who = _who()
        with _session(url) as s:
            _show(er.register(s, who, _ctx(who), insutype=insutype, admdvs=admdvs, begndate=_date(begndate),
                              psn_type=psn_type, psn_no=psn_no, certno=certno, psn_name=name))

    def status_command(action: str, title: str):
        def run(psn_no: str = typer.Argument(..., help="人员编号"), insutype: str = typer.Option(..., help="险种"),
                on: str = typer.Option(..., "--on", help="新状态开始的日期 YYYY-MM-DD"),
                reason: str = typer.Option(..., help="办理原因"), url: Optional[str] = URL):
            who = _who()
            with _session(url) as s:
                _show(er.change_status(s, who, _ctx(who), psn_no=psn_no, insutype=insutype, action=action,
                                       eff_date=_date(on), reason=reason))
        run.__doc__ = f"{title} / {action}"
        enrol.command(action)(run)

    status_command("suspend", "暂停参保")
    status_command("terminate", "终止参保")
    status_command("resume", "恢复参保")

    @enrol.command("transfer")
    def cmd_transfer(psn_no: str = typer.Argument(..., help="人员编号"), insutype: str = typer.Option(...),
                     on: str = typer.Option(..., "--on", help="转入地参保开始日期; 转出地止于前一日"),
                     to: str = typer.Option(..., "--to", help="转入地区划(6 位)"), url: Optional[str] = URL):
        """转移接续 / transfer, continuous months carried."""
        who = _who()
        with _session(url) as s:
            _show(er.transfer(s, who, _ctx(who), psn_no=psn_no, insutype=insutype, eff_date=_date(on), to_admdvs=to))

    @enrol.command("show")
    def cmd_show(psn_no: str = typer.Argument(...), on: str = typer.Option(date.today().isoformat(), "--on"),
                 url: Optional[str] = URL):
        """某日的参保状态与人员类别 / state as of a date (fold of the facts)."""
        with _session(url, write=False) as s:
            registry.person(s, psn_no)
            _show(er.as_of(s, psn_no, _date(on)))

    @enrol.command("history")
    def cmd_history(psn_no: str = typer.Argument(...), url: Optional[str] = URL):
        """全部参保事实(谁、何时、为何) / every fact with who and why."""
        with _session(url, write=False) as s:
            _show(er.history(s, _who(), psn_no))

    @enrol.command("import")
    def cmd_import(path: Path = typer.Argument(..., help="名单文件 .csv 或 .xlsx"),
                   dept: str = typer.Option(..., help="认定部门: 民政 / 乡村振兴 / 残联 …"),
                   pack: str = typer.Option("shandong-2024", help="政策包(其声明的人员类别)"),
                   url: Optional[str] = URL):
        """导入类别名单(民政/乡村振兴); 任一行有误则整份拒收并逐行报告 / import a category list."""
        who = _who()
        with _session(url) as s:
            from yibao.enrolment import importer

            r = importer.import_categories(s, who, _ctx(who), path, dept=dept, known=_known(pack))
        out.print(f"已导入 {r.rows:,} 行, 涉及 {r.persons:,} 人, 类别记录 {r.projection_rows:,} 条 (批次 {r.batch_id})")

    @enrol.command("declare")
    def cmd_declare(path: Path = typer.Argument(..., help="CSV: psn_no,wage(月工资, 元)"),
                    emp_no: str = typer.Option(..., help="单位编号"), sector: str = typer.Option(..., help="行业"),
                    admdvs: str = typer.Option(..., help="参保地区划"), period: str = typer.Option(..., help="YYYY-MM"),
                    paid: bool = typer.Option(True, help="已缴(--no-paid 记为应缴未缴)"),
                    pack: str = typer.Option("shandong-2024", help="政策包(financing)"), url: Optional[str] = URL):
        """职工缴费申报 / an employer's monthly declaration into the ledger."""
        with path.open(encoding="utf-8-sig") as fh:
            lines = [(r["psn_no"], yuan_to_fen(r["wage"])) for r in csv.DictReader(fh)]
        who = _who()
        with _session(url) as s:
            from yibao.enrolment import ledger

            _show(ledger.declare_employer(s, who, _ctx(who), _fin(pack), emp_no=emp_no, sector=sector, admdvs=admdvs,
                                          period=_date(period + "-01"), lines=lines, paid=paid))

    @enrol.command("pay")
    def cmd_pay(psn_no: str = typer.Argument(...), period: str = typer.Option(..., help="所属期 YYYY-MM"),
                pack: str = typer.Option("shandong-2024"), url: Optional[str] = URL):
        """补缴欠费; 因欠费暂停且已缴清者, 按政策包等待期恢复待遇 / pay arrears."""
        who = _who()
        with _session(url) as s:
            from yibao.enrolment import ledger

            _show(ledger.pay_arrears(s, who, _ctx(who), psn_no=psn_no, period=period, fin=_fin(pack)))

    @enrol.command("load")
    def cmd_load(pack: str = typer.Option("shandong-2024", help="与 yibao service load 相同的政策包"),
                 persons: int = typer.Option(1000, min=1, max=2_000_000, help="与 yibao service load 相同的人数"),
                 seed: int = typer.Option(1, help="与 yibao service load 相同的种子"), url: Optional[str] = URL):
        """合成地区的参保事实与一年缴费台账装入库(在 yibao service load 之后) / load a synthetic ledger."""
        p = resolve_pack(pack)
        table = generate(p, persons=persons, seed=seed)["persons"]
        who = _who()
        with _session(url) as s:
            from yibao.enrolment import ledger

            _show(ledger.load_synthetic(s, who, _ctx(who), p, table, p.pack.effective_from.year, seed))

    @enrol.command("resident")
    def cmd_resident(year: int = typer.Option(...), pack: str = typer.Option("shandong-2024"),
                     dynamic: bool = typer.Option(True, help="动态参保: 资助对象未参保者自认定日起参保"),
                     url: Optional[str] = URL):
        """居民年度缴费入账(资助参保、个人缴费、财政补助) / the year's resident contributions."""
        who = _who()
        with _session(url) as s:
            from yibao.enrolment import ledger

            _show(ledger.resident_contributions(s, who, _ctx(who), _fin(pack), year, dynamic=dynamic))

    @enrol.command("roster")
    def cmd_roster(year: int = typer.Option(...), pack: str = typer.Option("shandong-2024"),
                   admdvs: str = typer.Option("", help="区划前缀"), url: Optional[str] = URL):
        """资助参保名单与缴费台账核对(记入医疗救助基金) / subsidy roster reconciled against the ledger."""
        with _session(url, write=False) as s:
            from yibao.enrolment import ledger

            lines = ledger.subsidy_roster(s, _fin(pack), year, admdvs)
        by: dict[str, list] = {}
        for line in lines:
            by.setdefault(line.status, []).append(line)
        _show({"year": year, "persons": len(lines),
               "maf_charge": fen_to_yuan(sum(x.assistance_fen for x in lines)),
               "by_status": {k: len(v) for k, v in sorted(by.items())},
               "by_category": {c: fen_to_yuan(sum(x.assistance_fen for x in lines if x.category == c))
                               for c in sorted({x.category for x in lines})},
               "exceptions": [{"psn_no": x.psn_no, "category": x.category, "status": x.status,
                               "subsidy": fen_to_yuan(x.assistance_fen),
                               "ledger": None if x.contributed_fen is None else fen_to_yuan(x.contributed_fen)}
                              for x in lines if x.status != "ok"][:200]})

    @enrol.command("arrears")
    def cmd_arrears(on: str = typer.Option(..., "--on"), pack: str = typer.Option("shandong-2024"),
                    url: Optional[str] = URL):
        """欠费超过政策包月数者暂停待遇(记一条暂停事实) / suspend by arrears."""
        who = _who()
        with _session(url) as s:
            from yibao.enrolment import ledger

            _show(ledger.apply_arrears(s, who, _ctx(who), _fin(pack), _date(on)))

    @enrol.command("flags")
    def cmd_flags(period: str = typer.Option(..., help="YYYY-MM"), pack: str = typer.Option("shandong-2024"),
                  sector_avg: list[str] = typer.Option(..., help="行业=月平均工资(元), 可重复"),
                  url: Optional[str] = URL):
        """瞒报基数提示 / employers declaring every base at the floor in a well-paid sector."""
        avg = {k: yuan_to_fen(v) for k, _, v in (x.partition("=") for x in sector_avg)}
        with _session(url, write=False) as s:
            from yibao.enrolment import ledger

            _show(ledger.floor_flags(s, _fin(pack), period, avg))

    @enrol.command("coverage")
    def cmd_coverage(path: Path = typer.Argument(..., help="人口名单 CSV 或 .xlsx: 证件号码,区划[,类别]"),
                     begin: str = typer.Option(..., "--from"), end: str = typer.Option(..., "--to"),
                     url: Optional[str] = URL):
        """应保尽保: 未参保名单(脱敏)与按区划/类别/月的参保率 / who is not enrolled; enrolment rate."""
        with _session(url, write=False) as s:
            from yibao.enrolment import coverage

            _show(coverage.report(s, coverage.read_roster(path), coverage.month_ends(_date(begin), _date(end))))

    @enrol.command("statement")
    def cmd_statement(psn_no: str = typer.Argument(...), begin: str = typer.Option(..., "--from"),
                      end: str = typer.Option(..., "--to"), url: Optional[str] = URL):
        """个人账户对账单 / personal account balance statement."""
        with _session(url, write=False) as s:
            from yibao.enrolment import ledger

            _show(ledger.account_statement(s, psn_no, _date(begin), _date(end)))

    @enrol.command("certificate")
    def cmd_certificate(psn_no: str = typer.Argument(...), on: str = typer.Option(date.today().isoformat(), "--on"),
                        output: Path = typer.Option(..., "--out", "-o", help="PDF 文件"), url: Optional[str] = URL):
        """参保证明 PDF / certificate of enrolment."""
        from yibao.enrolment.certificate import certificate_view, render_certificate

        with _session(url, write=False) as s:
            view = certificate_view(s, _who(), psn_no, _date(on))
        output.write_bytes(render_certificate(view))
        out.print(f"已写入 {output}")

    @bench_app.command("enrol")
    def bench_enrol(rows: int = typer.Option(1_000_000, help="类别名单行数(每行一人)"),
                    naive_rows: int = typer.Option(2_000, help="逐行办理对照组的行数"),
                    lookups: int = typer.Option(10_000, help="as-of 查询次数"),
                    excel: bool = typer.Option(True, "--excel/--no-excel", help="同一名单另以 .xlsx 导入(导入后回滚)"),
                    naive_excel_rows: int = typer.Option(100_000, help="openpyxl 逐格读取对照组读的行数(按比例外推)"),
                    url: Optional[str] = typer.Option(None, "--url", help="数据库 URL; 默认临时 SQLite 文件")):
        """名单导入(CSV 与 Excel)与 as-of 查询基准 / category import (CSV and Excel) and as-of lookup benchmark."""
        from yibao.enrolment.bench import run

        run(rows=rows, naive_rows=naive_rows, lookups=lookups, url=url, excel=excel,
            naive_excel_rows=naive_excel_rows)


def _fin(pack: str):
    fin = resolve_pack(pack).financing
    if fin is None:
        fail(ServiceError(Problem("ENR050", "financing", f"政策包 {pack} 没有筹资规则(financing)")))
    return fin


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        fail(ServiceError(Problem("ENR042", "date", f"不是日期(YYYY-MM-DD): {text!r}")))
        raise
