"""``yibao handling ...``: the service-item catalogue, cases and statistics from the command line.

The CLI acts as one staff member (``--user``/``--role``, the same roles as the API); every action
is written in one transaction with its audit entry, or not at all.
"""

from __future__ import annotations

import json
import uuid
from datetime import date, datetime
from pathlib import Path
from typing import Optional

import typer
from sqlalchemy.orm import Session

from yibao.console import fail, out, print_json
from yibao.errors import Problem, YibaoError
from yibao.handling import store
from yibao.handling.calendar import calendar
from yibao.handling.catalogue import HandlingError, catalogue
from yibao.handling.clearing import clearing_statement, issue
from yibao.handling.export import export_facts
from yibao.handling.stats import handling_stats
from yibao.handling.topup import reverse_topup, statement
from yibao.service.auth import ROLES, Principal
from yibao.service.packs import PackSet
from yibao.service.transactions import Context
from yibao.store.database import make_engine

USER = typer.Option("cli", "--user", help="办理人(工作人员账号)")
ROLE = typer.Option("clerk", "--role", help="角色: clerk 经办 / reviewer 审核 / rechecker 复核 / admin")
URL = typer.Option(None, "--url", help="数据库 URL; 默认 YIBAO_DATABASE_URL 或 YIBAO_DATA_DIR/yibao.db")
JSON = typer.Option(False, "--json", help="输出 JSON")


def _who(user: str, role: str) -> Principal:
    if role not in ROLES:
        raise HandlingError(Problem("HDL007", "role", f"角色须为 {'/'.join(ROLES)}"))
    return Principal(user, role)


def _pairs(values: list[str], option: str) -> dict[str, str]:
    out = {}
    for v in values:
        k, sep, val = v.partition("=")
        if not sep or not k:
            raise HandlingError(Problem("HDL008", option, f"应为 名称=值, 实际为 {v!r}"))
        out[k.strip()] = val.strip()
    return out


def _read_lines(path: Path) -> list:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise HandlingError(Problem("HDL086", "--fee-items", f"读不出费用明细 JSON: {exc}")) from None
    if not isinstance(data, list):
        raise HandlingError(Problem("HDL086", "--fee-items", "费用明细须为 JSON 数组"))
    return data


def _day(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise HandlingError(Problem("HDL051", option, f"日期应为 YYYY-MM-DD, 实际为 {text!r}")) from None


def _run(url: Optional[str], fn, write: bool = True):
    engine = make_engine(url)
    try:
        with Session(engine) as s:
            if write:
                with s.begin():
                    return fn(s)
            return fn(s)
    finally:
        engine.dispose()


def _packs():
    return PackSet.load()


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    h = typer.Typer(help="经办: 服务事项、受理审核复核、一次性告知、时限、统计 (docs/handling.md)", no_args_is_help=True)
    app.add_typer(h, name="handling")

    def guarded(fn, as_json: bool):
        try:
            result = fn()
        except YibaoError as exc:
            fail(exc, as_json)  # prints the coded problems and exits 2
        return result

    @h.command("items")
    def items(as_json: bool = JSON):
        """服务事项清单 (the catalogue)."""
        cat = catalogue()
        if as_json:
            print_json({"version": cat.version, "items": [i.guide() for i in cat.items]})
            return
        for i in cat.items:
            out.print(f"{i.code:6} {i.name:10} 承诺时限 {i.promised_days:>2} 个工作日  步骤 {'→'.join(i.guide()['steps'])}")

    @h.command("guide")
    def guide(item_code: str = typer.Argument(..., help="事项编码, 如 MZMTB"), as_json: bool = JSON):
        """一个事项的办事指南."""
        g = guarded(lambda: catalogue().item(item_code).guide(), as_json)
        if as_json:
            print_json(g)
            return
        out.print(f"[b]{g['name']}[/b] ({g['code']}) 承诺时限 {g['promised_days']} 个工作日; 渠道 {'、'.join(g['channels'])}")
        out.print("依据: " + "; ".join(g["legal_basis"]))
        out.print("条件: " + "; ".join(g["conditions"]))
        for m in g["materials"]:
            out.print(f"  材料 {m['code']}: {m['name']}" + ("" if m["required"] else " (如有)"))
        for f in g["fields"]:
            out.print(f"  字段 {f['name']}: {f['label']} [{f['type']}]" + (f" 可选 {'/'.join(f['options'])}" if f.get("options") else ""))

    @h.command("apply")
    def apply_cmd(item: str = typer.Option(..., "--item", help="事项编码"),
                  psn_no: Optional[str] = typer.Option(None, "--psn-no", help="人员编号"),
                  certno: Optional[str] = typer.Option(None, "--certno", help="证件号码"),
                  channel: str = typer.Option("window", help="window/online/village/hospital"),
                  point: str = typer.Option(..., "--point", help="服务网点"),
                  field: list[str] = typer.Option([], "--field", help="表单字段 名称=值, 可重复"),
                  material: list[str] = typer.Option([], "--material", help="已交材料编码, 可重复"),
                  agent: list[str] = typer.Option([], "--agent", help="帮办代办 kind=proxy|helper name=.. relation=.. authorization_no=.."),
                  fee_items: Optional[Path] = typer.Option(None, "--fee-items", help="零星报销: 费用明细 JSON 文件(数组, 同结算接口)"),
                  user: str = USER, role: str = ROLE, url: Optional[str] = URL, as_json: bool = JSON):
        """申请一个事项(登记为待受理)."""
        def go():
            who = _who(user, role)
            ctx = Context(uuid.uuid4().hex, who.name, datetime.now())
            form = _pairs(field, "--field")
            ag = _pairs(agent, "--agent") or None
            lines = _read_lines(fee_items) if fee_items else None
            packs = _packs()
            return _run(url, lambda s: store.apply_for(s, who, ctx, item_code=item, psn_no=psn_no, certno=certno,
                                                       channel=channel, service_point=point, form=form,
                                                       materials=material, agent=ag, packs=packs, fee_items=lines))
        _show(guarded(go, as_json), as_json)

    @h.command("act")
    def act_cmd(case_no: str = typer.Argument(..., help="案件号"),
                action: str = typer.Argument(..., help="accept/review/recheck/return/refuse/reject/supplement/withdraw/rate"),
                version: Optional[int] = typer.Option(None, help="你读到的案件版本(防止并发覆盖)"),
                material: list[str] = typer.Option([], "--material", help="补正的材料编码"),
                notice: list[str] = typer.Option([], "--notice", help="一次性告知的补正事项"),
                reason: Optional[str] = typer.Option(None, help="不予受理/不予通过的理由"),
                rating: Optional[int] = typer.Option(None, help="好差评 1–5"),
                comment: Optional[str] = typer.Option(None, help="评价意见"),
                user: str = USER, role: str = ROLE, url: Optional[str] = URL, as_json: bool = JSON):
        """办理一个案件."""
        def go():
            who = _who(user, role)
            ctx = Context(uuid.uuid4().hex, who.name, datetime.now())
            packs = _packs()
            return _run(url, lambda s: store.act(s, who, ctx, case_no=case_no, kind=action, version=version,
                                                 materials=material, notice=notice, reason=reason, rating=rating,
                                                 comment=comment, packs=packs))
        _show(guarded(go, as_json), as_json)

    @h.command("payment")
    def payment_cmd(payment_no: str = typer.Argument(..., help="支付单号"),
                    status: str = typer.Argument(..., help="paid(已支付) 或 returned(退回)"),
                    on: str = typer.Option(..., "--on", help="支付或退回日期 YYYY-MM-DD"),
                    note: str = typer.Option("", help="退回原因(退回时必填)"),
                    user: str = USER, role: str = ROLE, url: Optional[str] = URL, as_json: bool = JSON):
        """登记支付单已支付或退回 (record a payment order paid or returned)."""
        def go():
            who = _who(user, role)
            ctx = Context(uuid.uuid4().hex, who.name, datetime.now())
            return _run(url, lambda s: store.record_payment(s, who, ctx, payment_no=payment_no, status=status,
                                                            on=_day(on, "--on"), note=note))
        _show(guarded(go, as_json), as_json)

    @h.command("show")
    def show(case_no: str, user: str = USER, role: str = ROLE, url: Optional[str] = URL, as_json: bool = JSON):
        """案件详情与办理记录."""
        _show(guarded(lambda: _run(url, lambda s: store.case_record(s, _who(user, role), case_no, date.today()),
                                   write=False), as_json), as_json)

    @h.command("worklist")
    def worklist(overdue: bool = typer.Option(False, help="只列已超期和即将超期"),
                 user: str = USER, role: str = ROLE, url: Optional[str] = URL, as_json: bool = JSON):
        """待办件及超期预警."""
        rows = guarded(lambda: _run(url, lambda s: store.worklist(s, _who(user, role), date.today(),
                                                                   overdue_only=overdue), write=False), as_json)
        if as_json:
            print_json(rows)
            return
        for r in rows:
            t = r["timeliness"] or {}
            out.print(f"{r['case_no']} {r['item_code']:6} {r['status_name']:5} 时限 {t.get('deadline') or '-'} {t.get('flag') or ''}")

    @h.command("stats")
    def stats(begndate: str = typer.Option(..., help="申请日期起 YYYY-MM-DD"), enddate: str = typer.Option(..., help="止"),
              by: str = typer.Option("item", help="item/channel/service_point/month"),
              user: str = USER, role: str = ROLE, url: Optional[str] = URL, as_json: bool = JSON):
        """办件量、按时办结率、平均办理工作日、网办率、满意度."""
        def go():
            try:
                b, e = date.fromisoformat(begndate), date.fromisoformat(enddate)
            except ValueError:
                raise HandlingError(Problem("HDL051", "begndate", "日期应为 YYYY-MM-DD")) from None
            return _run(url, lambda s: handling_stats(s, _who(user, role), begndate=b, enddate=e, by=by), write=False)
        rows = guarded(go, as_json)
        if as_json:
            print_json(rows)
            return
        out.print("分组 | 办件量 | 办结 | 按时办结率 | 平均工作日 | 网办率 | 评价数 | 平均分 | 好评率")
        for r in rows:
            out.print(" | ".join(str(r[k]) if r[k] is not None else "-" for k in (
                "label", "volume", "completed", "on_time_rate", "avg_working_days", "online_rate", "rated",
                "avg_rating", "good_rate")))

    @h.command("clearing")
    def clearing(month: str = typer.Argument(..., help="月份 YYYY-MM"), user: str = USER,
                 role: str = typer.Option("analyst", "--role", help="角色(须可读对账数据)"),
                 url: Optional[str] = URL, as_json: bool = JSON):
        """异地就医月度清算单: 就医地垫付、参保地清算."""
        st = guarded(lambda: _run(url, lambda s: clearing_statement(s, _who(user, role), month), write=False), as_json)
        if as_json:
            print_json(st)
            return
        out.print(f"{st['month']} 异地就医清算单")
        for ln in st["lines"]:
            out.print(f"  就医地 {ln['mdtrt_area']} ← 参保地 {ln['insu_area']} ({ln['scope']}) {ln['visits']} 人次 "
                      f"医疗费 {ln['medfee_sumamt']} 清算 {ln['clearing_amt']}")
        for k, v in st["advanced_by_mdtrt_area"].items():
            out.print(f"  就医地垫付 {k}: {v}")
        for k, v in st["owed_by_insu_area"].items():
            out.print(f"  参保地清算 {k}: {v}")

    @h.command("topup-reverse")
    def topup_reverse(topup_no: str = typer.Argument(..., help="补差单号"), user: str = USER,
                      role: str = typer.Option("rechecker", "--role", help="角色(复核或管理员)"),
                      url: Optional[str] = URL, as_json: bool = JSON):
        """撤销补差: 年度累计退回补差前, 撤销冲正单, 支付单标为退回, 个人账户收回 (须为该年度最近一次变动)."""
        def go():
            who = _who(user, role)
            return _run(url, lambda s: statement(reverse_topup(s, who, Context(uuid.uuid4().hex, who.name,
                                                                               datetime.now()), topup_no)))
        rec = guarded(go, as_json)
        if as_json:
            print_json(rec)
            return
        out.print(f"已撤销补差单 {topup_no}: 冲正单 {rec['topup_no']}, 合计 {rec['totals']}")

    @h.command("facts-export")
    def facts_export(out_path: Path = typer.Option(..., "--out", "-o", help="输出文件, 放在理赔目录中: 目录/handling_facts.parquet"),
                     user: str = USER, role: str = typer.Option("analyst", "--role", help="角色(经办机构工作人员)"),
                     url: Optional[str] = URL):
        """导出门诊慢特病认定与异地就医备案, 供批量结算按与联机结算相同的口径读取 (docs/handling.md)."""
        n = guarded(lambda: _run(url, lambda s: export_facts(s, _who(user, role), out_path), write=False), False)
        out.print(f"已导出 {n:,} 条认定/备案到 {out_path}")

    @h.command("clearing-issue")
    def clearing_issue(month: str = typer.Argument(..., help="月份 YYYY-MM"),
                       note: str = typer.Option("", help="更正原因(出具第 2 版起必填)"), user: str = USER,
                       role: str = typer.Option("rechecker", "--role", help="角色(须可出具清算单)"),
                       url: Optional[str] = URL, as_json: bool = JSON):
        """出具(冻结)异地就医月度清算单; 结算有变时出具新版本并写明原因."""
        def go():
            who = _who(user, role)
            return _run(url, lambda s: issue(s, who, Context(uuid.uuid4().hex, who.name, datetime.now()), month, note))
        _show(guarded(go, as_json), as_json)

    @h.command("deadline")
    def deadline(start: str = typer.Argument(..., help="受理日期 YYYY-MM-DD"), days: int = typer.Argument(..., min=1, max=60)):
        """承诺时限: 从受理日起第 N 个工作日(节假日与调休按日历)."""
        def go():
            try:
                d = date.fromisoformat(start)
            except ValueError:
                raise HandlingError(Problem("HDL051", "start", "日期应为 YYYY-MM-DD")) from None
            return calendar().add_working_days(d, days)
        out.print(guarded(go, False).isoformat())

    def _show(rec: dict, as_json: bool) -> None:
        if as_json:
            print_json(rec)
            return
        t = rec.get("timeliness") or {}
        out.print(f"{rec['case_no']} {rec['item_name']} 状态 {rec['status_name']} 版本 {rec['version']} "
                  f"渠道 {rec['channel_name']}@{rec['service_point']} 时限 {t.get('deadline') or '-'} {t.get('flag') or ''}")
        if rec["notice"]:
            out.print("一次性告知: " + "; ".join(n["name"] for n in rec["notice"]))
        if rec["reason"]:
            out.print("理由: " + rec["reason"])
