"""``yibao enrol …``: the registry's transactions from a 经办 desk's shell, and ``yibao bench enrol``.

Writes run as role clerk under the name ``cli:<user>`` (recorded on every fact and audit entry);
each command is one transaction, so a refused one writes nothing.
"""

from __future__ import annotations

import getpass
import uuid
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Optional

import typer

URL = typer.Option(None, "--url", help="数据库 URL; 默认 YIBAO_DATABASE_URL 或 YIBAO_DATA_DIR/yibao.db")


def _who():
    from yibao.service.auth import Principal

    return Principal(f"cli:{getpass.getuser()}", "clerk")


def _ctx(who):
    from yibao.service.transactions import Context

    return Context(request_id="cli-" + uuid.uuid4().hex[:12], opter=who.name, at=datetime.now().replace(microsecond=0))


@contextmanager
def _session(url: str | None, write: bool = True):
    from sqlalchemy.orm import Session

    from yibao.cli import fail
    from yibao.errors import YibaoError
    from yibao.store.database import default_url, make_engine

    engine = make_engine(url or default_url())
    try:
        with Session(engine) as s:
            try:
                if write:
                    with s.begin():
                        yield s
                else:
                    yield s
            except YibaoError as exc:
                fail(exc)
    finally:
        engine.dispose()


def _show(data) -> None:
    from yibao.cli import print_json

    print_json(data)


def _known(pack: str) -> set[str]:
    from yibao.policy.loader import resolve_pack

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
            from yibao.enrolment import registry as er

            _show(er.register(s, who, _ctx(who), insutype=insutype, admdvs=admdvs, begndate=_date(begndate),
                              psn_type=psn_type, psn_no=psn_no, certno=certno, psn_name=name))

    def status_command(action: str, title: str):
        def run(psn_no: str = typer.Argument(..., help="人员编号"), insutype: str = typer.Option(..., help="险种"),
                on: str = typer.Option(..., "--on", help="新状态开始的日期 YYYY-MM-DD"),
                reason: str = typer.Option(..., help="办理原因"), url: Optional[str] = URL):
            who = _who()
            with _session(url) as s:
                from yibao.enrolment import registry as er

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
            from yibao.enrolment import registry as er

            _show(er.transfer(s, who, _ctx(who), psn_no=psn_no, insutype=insutype, eff_date=_date(on), to_admdvs=to))

    @enrol.command("show")
    def cmd_show(psn_no: str = typer.Argument(...), on: str = typer.Option(date.today().isoformat(), "--on"),
                 url: Optional[str] = URL):
        """某日的参保状态与人员类别 / state as of a date (fold of the facts)."""
        with _session(url, write=False) as s:
            from yibao.enrolment import registry as er
            from yibao.service import registry

            registry.person(s, psn_no)
            _show(er.as_of(s, psn_no, _date(on)))

    @enrol.command("history")
    def cmd_history(psn_no: str = typer.Argument(...), url: Optional[str] = URL):
        """全部参保事实(谁、何时、为何) / every fact with who and why."""
        with _session(url, write=False) as s:
            from yibao.enrolment import registry as er

            _show(er.history(s, _who(), psn_no))

    @enrol.command("import")
    def cmd_import(path: Path = typer.Argument(..., help="名单文件 .csv 或 .xlsx"),
                   dept: str = typer.Option(..., help="认定部门: 民政 / 乡村振兴 / 残联 …"),
                   pack: str = typer.Option("shandong-2024", help="政策包(其声明的人员类别)"),
                   url: Optional[str] = URL):
        """导入类别名单(民政/乡村振兴); 任一行有误则整份拒收并逐行报告 / import a category list."""
        from yibao.cli import out

        who = _who()
        with _session(url) as s:
            from yibao.enrolment import importer

            r = importer.import_categories(s, who, _ctx(who), path, dept=dept, known=_known(pack))
        out.print(f"已导入 {r.rows:,} 行, 涉及 {r.persons:,} 人, 类别记录 {r.projection_rows:,} 条 (批次 {r.batch_id})")

    @bench_app.command("enrol")
    def bench_enrol(rows: int = typer.Option(1_000_000, help="类别名单行数(每行一人)"),
                    naive_rows: int = typer.Option(2_000, help="逐行办理对照组的行数"),
                    lookups: int = typer.Option(10_000, help="as-of 查询次数"),
                    url: Optional[str] = typer.Option(None, "--url", help="数据库 URL; 默认临时 SQLite 文件")):
        """名单导入与 as-of 查询基准 / category import and as-of lookup benchmark."""
        from yibao.enrolment.bench import run

        run(rows=rows, naive_rows=naive_rows, lookups=lookups, url=url)


def _date(text: str) -> date:
    from yibao.cli import fail
    from yibao.errors import Problem
    from yibao.service.errors import ServiceError

    try:
        return date.fromisoformat(text)
    except ValueError:
        fail(ServiceError(Problem("ENR042", "date", f"不是日期(YYYY-MM-DD): {text!r}")))
        raise
