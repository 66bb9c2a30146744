"""The personal account (个人账户) under concurrent settlements: never debited below zero.

The account is one row for all years, while the accumulator lock is per (person, year): two settlements of
one employee dated in different years (the client chooses ``inf_time``) hold different balance locks and,
unless the account row is locked too, both read the same balance and both draw on it (seen on PostgreSQL:
−500.00 and −750.00). Eight settlements at once, four dated 2024 and four 2025, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from yibao.money import yuan_to_fen
from yibao.policy.loader import shipped_pack_path
from yibao.service import sample
from yibao.service import transactions as tx
from yibao.service.auth import Principal
from yibao.service.desk import Desk, request_hash
from yibao.service.errors import ServiceError
from yibao.service.packs import PackSet
from yibao.settlement.request import FeeItemIn
from yibao.settlement.statement import dumps
from yibao.store.database import make_engine
from yibao.store.models import Enrollment, Institution, Person, Settlement

from test_service_retry import together

HIS = Principal("his1", "institution", sample.HOSPITAL)
EMPLOYEE = "P000000002"  # 职工, 个人账户 2000.00
PER_YEAR = 4


def two_years(tmp_path) -> PackSet:
    """shandong-2024 and the same pack dated 2025 (a second accumulator year)."""
    text = shipped_pack_path("shandong-2024").read_text(encoding="utf-8")
    text = (text.replace("id: shandong-2024", "id: shandong-2025").replace('version: "2024.1"', 'version: "2025.1"')
            .replace("effective_from: 2024-01-01", "effective_from: 2025-01-01")
            .replace("effective_to: 2024-12-31", "effective_to: 2025-12-31"))
    path = tmp_path / "shandong-2025.yaml"
    path.write_text(text, encoding="utf-8")
    return PackSet.load(["shandong-2024", str(path)])


def test_concurrent_settlements_across_two_years_never_overdraw_the_account(store_url, tmp_path):
    engine = make_engine(store_url)
    with Session(engine) as s, s.begin():
        sample.seed(s, 2)
        s.add(Enrollment(psn_no=EMPLOYEE, insutype="310", insuplc_admdvs=sample.ADMDVS, valid_from=date(2025, 1, 1),
                         valid_to=date(2025, 12, 31)))
        s.execute(update(Institution).values(designated_to=date(2025, 12, 31)))
    desk = Desk(make_engine(store_url, pool_size=10), two_years(tmp_path))
    lines = [FeeItemIn.model_validate(x) for x in sample.items(30, price="50.00")]  # 3,000.00 a visit
    visits = []
    for k in range(2 * PER_YEAR):
        at = datetime(2024 + k % 2, 6, 1, 9, 0)
        ctx = tx.Context("setup", "op", at)

        def make(session, at=at, ctx=ctx):
            v = tx.register_visit(session, HIS, ctx, fixmedins_code=sample.HOSPITAL, psn_no=EMPLOYEE,
                                  insutype="310", med_type="11", begntime=at)
            tx.upload_items(session, HIS, ctx, desk.packs, mdtrt_id=v["mdtrt_id"], items=lines)
            return v["mdtrt_id"], at
        visits.append(desk.read(make))

    def settle(k: int):
        mdtrt_id, at = visits[k]
        c = tx.Context(f"msg-{k}", "op", at.replace(hour=10))
        return desk.write(f"t:{mdtrt_id}", request_hash(mdtrt_id), lambda s: dumps(
            tx.settle(s, HIS, c, desk.packs, mdtrt_id=mdtrt_id, psn_no=EMPLOYEE, acct_used=True)))

    results = together(2 * PER_YEAR, settle)
    assert not [r for r in results if isinstance(r, BaseException) and not isinstance(r, ServiceError)], results
    with Session(engine) as s:
        balance = s.get(Person, EMPLOYEE).acct_balc_fen
        paid = [x.acct_pay for x in s.scalars(select(Settlement).where(Settlement.status == "valid"))]
    assert balance >= 0
    assert balance + sum(paid) == yuan_to_fen("2000.00")  # every fen drawn is a settlement's acct_pay
    assert balance == 0 and len(paid) == 2 * PER_YEAR  # 2,000.00 runs out: later visits pay cash
    desk.engine.dispose()
    engine.dispose()
