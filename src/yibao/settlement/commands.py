"""``yibao settle``: one visit, or a person's visits in order, settled and explained."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from yibao.console import fail, out
from yibao.errors import YibaoError
from yibao.policy.compiled import CompiledPack
from yibao.policy.loader import resolve_pack
from yibao.settlement.engine import settle, settle_year
from yibao.settlement.render import print_statements
from yibao.settlement.request import load_request, to_accumulators, to_household, to_person, to_visit
from yibao.settlement.statement import dumps, settlement_json


def settle_cmd(
    policy: str = typer.Option(..., "--policy", "-p", help="政策包文件或内置名称"),
    request: Path = typer.Option(..., "--request", "-r", help="结算请求 JSON 文件(见 docs/settle-request.md)"),
    as_json: bool = typer.Option(False, "--json", help="输出 JSON(金额为元, 两位小数)"),
) -> None:
    """一站式结算一次或多次就诊, 输出结算单 (settle one visit, or a person's visits in order)."""
    try:
        pack = CompiledPack(resolve_pack(policy))
        req = load_request(request)
        person = to_person(req.person)
        visits = [to_visit(v) for v in req.visit_list()]
        acc = to_accumulators(req)
        if req.visit is not None:
            results = [settle(pack, person, visits[0], acc, to_household(req))]
        else:
            results = settle_year(pack, person, visits, acc, to_household(req))
    except YibaoError as exc:
        fail(exc, as_json)
        return
    if as_json:
        docs = [settlement_json(s, pack) for s in results]
        sys.stdout.write(dumps(docs[0] if req.visit is not None else docs) + "\n")
        return
    print_statements(out, pack, req, results)


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    app.command("settle")(settle_cmd)
