"""Any sequence of settlements and reversals keeps the ledger exact (hypothesis).

Invariants after every step: the balance equals the sum of the ledger rows, equals the sum of the
deltas of the settlements still valid; a refused operation (reversing out of order, settling a
settled visit) changes nothing; reversing everything returns the accumulators to empty.
"""

from __future__ import annotations

from datetime import datetime

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session

from yibao.errors import YibaoError
from yibao.service import ledger, sample
from yibao.service import transactions as tx
from yibao.service.auth import Principal
from yibao.service.desk import Desk
from yibao.service.packs import PackSet
from yibao.settlement.request import FeeItemIn
from yibao.settlement.statement import dumps
from yibao.store.database import make_engine
from yibao.store.migrate import upgrade
from yibao.store.models import AccumulatorBalance, Settlement

HIS = Principal("his1", "institution", sample.HOSPITAL)
PACKS = PackSet.load(["shandong-2024"])
AT = datetime(2024, 7, 1, 9, 0)


def _valid_delta_sum(s: Session) -> dict[str, int]:
    total: dict[str, int] = {}
    for row in s.scalars(select(Settlement).where(Settlement.status == "valid")):
        for k, v in row.delta.items():
            total[k] = total.get(k, 0) + v
    return {k: v for k, v in total.items() if v}


@settings(max_examples=12)
@given(ops=st.lists(st.tuples(st.sampled_from(["settle", "reverse"]), st.integers(0, 3),
                              st.sampled_from(["11", "21"])), min_size=1, max_size=12))
def test_any_sequence_keeps_the_ledger_exact(tmp_path_factory, ops):
    import os

    os.environ["YIBAO_ONLINE_AUDIT"] = "off"  # this test is about the ledger; the audit rules are tested elsewhere
    try:
        _run(tmp_path_factory, ops)
    finally:
        os.environ.pop("YIBAO_ONLINE_AUDIT", None)


def _run(tmp_path_factory, ops) -> None:
    url = f"sqlite:///{tmp_path_factory.mktemp('ledger') / 'y.db'}"
    upgrade(url)
    engine = make_engine(url)
    with Session(engine) as s, s.begin():
        sample.seed(s, 1)
    desk = Desk(engine, PACKS)
    ctx = tx.Context("", "op", AT)
    visits: list[str] = []
    for k in range(4):
        def make(session, k=k):
            v = tx.register_visit(session, HIS, ctx, fixmedins_code=sample.HOSPITAL, psn_no="P000000001",
                                  insutype="390", med_type=ops[k % len(ops)][2], begntime=AT)
            tx.upload_items(session, HIS, ctx, PACKS, mdtrt_id=v["mdtrt_id"],
                            items=[FeeItemIn.model_validate(x) for x in sample.items(5 + 7 * k)])
            return v["mdtrt_id"]
        visits.append(desk.write(None, "", make)[0])
    setl_of: dict[int, str] = {}
    for op, k, _ in ops:
        try:
            if op == "settle":
                text = desk.write(None, "", lambda s, k=k: dumps(tx.settle(s, HIS, ctx, PACKS, mdtrt_id=visits[k])))[0]
                setl_of[k] = text.split('"setl_id": "')[1].split('"')[0]
            elif k in setl_of:
                desk.write(None, "", lambda s, k=k: dumps(tx.reverse(s, HIS, ctx, setl_id=setl_of[k])))
        except YibaoError:
            pass  # refused (settled twice, reversed out of order or twice): must have changed nothing
        with Session(engine) as s:
            bal = s.get(AccumulatorBalance, ("P000000001", 2024))
            values = {} if bal is None else {k2: v for k2, v in bal.acc_values.items() if v}
            assert values == ledger.ledger_sum(s, "P000000001", 2024) == _valid_delta_sum(s)
    # reverse whatever is left, latest first: the year is empty again
    with Session(engine) as s:
        valid = s.scalars(select(Settlement).where(Settlement.status == "valid").order_by(Settlement.setl_time)).all()
        order = [x.setl_id for x in sorted(valid, key=lambda x: x.acc_after["setl:count"], reverse=True)]
    for setl_id in order:
        desk.write(None, "", lambda s, i=setl_id: dumps(tx.reverse(s, HIS, ctx, setl_id=i)))
    with Session(engine) as s:
        assert ledger.ledger_sum(s, "P000000001", 2024) == {}
    engine.dispose()
