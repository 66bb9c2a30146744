"""Issued clearing statements (issue 16): once sent, a month's 异地就医 clearing statement is frozen; a reversal
afterwards changes the live statement, not the issued one; issuing again makes version 2, which must say why;
issuing an unchanged statement is refused; roles; nothing written on a refusal."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from yibao.errors import YibaoError
from yibao.handling import clearing
from yibao.handling.models import HdClearing
from yibao.service import registry, sample
from yibao.service import transactions as tx
from yibao.service.auth import Principal
from yibao.service.errors import Forbidden
from yibao.service.packs import PackSet
from yibao.settlement.request import FeeItemIn
from yibao.store.database import make_engine

PACKS = PackSet.load(["shandong-2024"])
RECHECKER, ANALYST = Principal("rck1", "rechecker"), Principal("an1", "analyst")
QINGDAO = "H37020200001"


def ctx(day: date) -> tx.Context:
    return tx.Context("", "x", datetime.combine(day, datetime.min.time()).replace(hour=10))


def write(engine, fn):
    with Session(engine) as s, s.begin():
        return fn(s)


def settle_in_qingdao(engine, psn_no: str, day: date) -> str:
    his = Principal("his", "institution", QINGDAO)
    v = write(engine, lambda s: tx.register_visit(s, his, ctx(day), fixmedins_code=QINGDAO, psn_no=psn_no,
                                                  insutype="390" if int(psn_no[1:]) % 2 else "310", med_type="21",
                                                  begntime=ctx(day).at))
    write(engine, lambda s: tx.upload_items(s, his, ctx(day), PACKS, mdtrt_id=v["mdtrt_id"],
                                            items=[FeeItemIn.model_validate(x) for x in sample.items(12, price="300.00")]))
    return write(engine, lambda s: tx.settle(s, his, ctx(day), PACKS, mdtrt_id=v["mdtrt_id"]))["setlinfo"]["setl_id"]


def test_an_issued_statement_is_frozen_and_a_correction_is_a_new_version(store_url):
    engine = make_engine(store_url)
    with Session(engine) as s, s.begin():
        sample.seed(s, 4)
        registry.add_institution(s, code=QINGDAO, name="青岛示例医院", level="2", admdvs="370202",
                                 designated_from=date(2024, 1, 1), designated_to=date(2024, 12, 31))
    first = settle_in_qingdao(engine, "P000000001", date(2024, 5, 6))
    settle_in_qingdao(engine, "P000000002", date(2024, 5, 8))
    with pytest.raises(Forbidden):
        write(engine, lambda s: clearing.issue(s, ANALYST, ctx(date(2024, 6, 1)), "2024-05"))
    v1 = write(engine, lambda s: clearing.issue(s, RECHECKER, ctx(date(2024, 6, 1)), "2024-05"))
    assert v1["version"] == 1 and v1["statement"]["lines"][0]["visits"] == 2
    with pytest.raises(YibaoError) as same:
        write(engine, lambda s: clearing.issue(s, RECHECKER, ctx(date(2024, 6, 2)), "2024-05", "再出一次"))
    assert same.value.problems[0].code == "HDL071"
    # a reversal after sending: the live statement changes, the issued one does not
    write(engine, lambda s: tx.reverse(s, Principal("his", "institution", QINGDAO), ctx(date(2024, 6, 3)),
                                       setl_id=first))
    with Session(engine) as s:
        got = clearing.issued(s, ANALYST, "2024-05")
        assert not got["live_equals_latest"] and got["versions"][0]["statement"] == v1["statement"]
        assert clearing.clearing_statement(s, ANALYST, "2024-05")["lines"][0]["visits"] == 1
    with pytest.raises(YibaoError) as why:
        write(engine, lambda s: clearing.issue(s, RECHECKER, ctx(date(2024, 6, 4)), "2024-05"))
    assert why.value.problems[0].code == "HDL072"
    v2 = write(engine, lambda s: clearing.issue(s, RECHECKER, ctx(date(2024, 6, 4)), "2024-05", "6 月 3 日撤销一笔结算"))
    assert (v2["version"], v2["note"], v2["statement"]["lines"][0]["visits"]) == (2, "6 月 3 日撤销一笔结算", 1)
    with Session(engine) as s:
        rows = s.scalars(select(HdClearing).order_by(HdClearing.version)).all()
        assert [(r.version, r.statement["lines"][0]["visits"]) for r in rows] == [(1, 2), (2, 1)]
        assert clearing.issued(s, ANALYST, "2024-05")["live_equals_latest"]
    engine.dispose()
