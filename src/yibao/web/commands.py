"""``yibao user add`` (web users, argon2id hashes only) and ``yibao bench web`` (server time per page)."""

from __future__ import annotations

from typing import Optional

import typer
from sqlalchemy.orm import Session

from yibao.console import fail, out
from yibao.errors import YibaoError
from yibao.store.database import make_engine
from yibao.web.bench import run
from yibao.web.users import add_user


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    user_app = typer.Typer(help="网页用户 / users of the web front door", no_args_is_help=True)
    app.add_typer(user_app, name="user")

    @user_app.command("add")
    def user_add(username: str = typer.Argument(..., help="用户名(字母、数字、_ . -)"),
                 role: str = typer.Option(..., help="角色: clerk, reviewer, rechecker, auditor, analyst, admin, "
                                                    "institution, insured"),
                 fixmedins_code: Optional[str] = typer.Option(None, help="机构用户的机构编码"),
                 psn_no: Optional[str] = typer.Option(None, help="参保人用户本人的人员编号"),
                 password: Optional[str] = typer.Option(None, envvar="YIBAO_NEW_PASSWORD",
                                                        help="密码(省略则提示输入, 不回显); 也可由环境变量给出"),
                 url: Optional[str] = typer.Option(None, help="数据库 URL")):
        """开通网页用户(密码只存 argon2 摘要) / add a web user."""
        if password is None:
            password = typer.prompt("密码", hide_input=True, confirmation_prompt=True)
        engine = make_engine(url)
        try:
            with Session(engine) as s, s.begin():
                add_user(s, username, password, role, fixmedins_code=fixmedins_code, psn_no=psn_no)
        except YibaoError as exc:
            fail(exc)
        finally:
            engine.dispose()
        out.print(f"已开通网页用户 {username}(角色 {role})")

    @bench_app.command("web")
    def bench_web(persons: int = typer.Option(5000, help="参保人数"),
                  visits: int = typer.Option(2000, help="已结算就诊数"),
                  repeat: int = typer.Option(30, help="每个页面请求次数")):
        """网页服务端用时(中位数、P95), 与同一结算的 JSON 接口对照 / server time per page."""
        rows = run(persons, visits, repeat)
        out.print(f"{persons:,} 参保人, {visits:,} 次已结算就诊, 每页 {repeat} 次(进程内, 无网络)")
        for label, median, p95 in rows:
            out.print(f"{label:<40} 中位数 {median:7.1f} ms   P95 {p95:7.1f} ms")
