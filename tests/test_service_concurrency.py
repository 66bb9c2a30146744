"""Sixteen settlements of one person from eight concurrent clients: no accumulator update is lost.

Each client settles its own visits of the same person at the same moment (a barrier releases
them together). The balance row lock serialises them, so the ledger must read like a sequential
year: settlement k saw exactly k−1 earlier ones (``setl:count``), the balance equals the sum of
the ledger, and every settlement's accumulators-after equal the running sum of the ledger up to it.
"""

from __future__ import annotations

import threading
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from yibao.service import ledger, sample
from yibao.service import transactions as tx
from yibao.service.auth import Principal
from yibao.service.desk import Desk, request_hash
from yibao.service.packs import PackSet
from yibao.settlement.request import FeeItemIn
from yibao.settlement.statement import dumps
from yibao.store.database import make_engine
from yibao.store.models import AccumulatorBalance, AccumulatorLedger, Settlement

CLIENTS = 8
PER_CLIENT = 2
HIS = Principal("his1", "institution", sample.HOSPITAL)


def test_concurrent_settlements_of_one_person_lose_nothing(store_url):
    engine = make_engine(store_url)
    with Session(engine) as s, s.begin():
        sample.seed(s, 2)
    desk = Desk(make_engine(store_url), PackSet.load(["shandong-2024"]))
    at = datetime(2024, 6, 1, 10, 0)
    ctx = tx.Context("setup", "op", at)
    lines = [FeeItemIn.model_validate(x) for x in sample.items(30)]
    visits = []
    for _ in range(CLIENTS * PER_CLIENT):
        def make(session):
            v = tx.register_visit(session, HIS, ctx, fixmedins_code=sample.HOSPITAL, psn_no="P000000001",
                                  insutype="390", med_type="21", begntime=at)
            tx.upload_items(session, HIS, ctx, desk.packs, mdtrt_id=v["mdtrt_id"], items=lines)
            return v["mdtrt_id"]
        visits.append(desk.read(make))

    barrier = threading.Barrier(CLIENTS)
    errors: list[BaseException] = []

    def client(k: int) -> None:
        try:
            barrier.wait()
            for mdtrt_id in visits[k * PER_CLIENT:(k + 1) * PER_CLIENT]:
                c = tx.Context(f"msg-{mdtrt_id}", "op", at)
                desk.write(f"t:{mdtrt_id}", request_hash(mdtrt_id), lambda s, m=mdtrt_id, c=c: dumps(
                    tx.settle(s, HIS, c, desk.packs, mdtrt_id=m)))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors

    n = CLIENTS * PER_CLIENT
    with Session(engine) as s:
        balance = s.get(AccumulatorBalance, ("P000000001", 2024))
        assert balance.entries == n and balance.acc_values["setl:count"] == n
        assert ledger.ledger_sum(s, "P000000001", 2024) == balance.acc_values
        admissions = {k: v for k, v in balance.acc_values.items() if k.startswith("adm:")}
        assert list(admissions.values()) == [n]  # every admission counted once
        rows = s.scalars(select(AccumulatorLedger).order_by(AccumulatorLedger.seq)).all()
        settlements = {x.setl_id: x for x in s.scalars(select(Settlement))}
        assert len(settlements) == n and [r.seq for r in rows] == list(range(1, n + 1))
        running: dict[str, int] = {}
        for row in rows:
            for key, value in row.delta.items():
                running[key] = running.get(key, 0) + value
            after = settlements[row.setl_id].acc_after
            assert after == {k: v for k, v in running.items() if v}
            assert after["setl:count"] == row.seq
        # each admission (shandong-2024 基层 inpatient: deductible 200.00, 85%): (475.00 − 200.00) × 85%
        assert {(x.act_pay_dedc, x.hifp_pay) for x in settlements.values()} == {(20000, 23375)}
    desk.engine.dispose()
    engine.dispose()
