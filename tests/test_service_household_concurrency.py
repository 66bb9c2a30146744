"""Members of one household settling at the same moment never take more than the household's cap.

Pack ``shandong-2024-household``: 医疗救助 assistance_core at most 50,000 yuan a household a year. Six 低保
members of one household and two of another each settle two inpatient visits from their own client (threads,
separate sessions) released together by a barrier. Each member's own balance row serialises only that
member; the household's row (:func:`yibao.service.ledger.lock_household`) is what makes the members of one
household run one after the other. So, whatever the order: the household ledger reads as a sequential year
(seq 1..n, each row's values = the running sum), what the tier paid the household equals
min(what the members' own caps let through, cap) — never more — and equals the sum of the members' payments.
"""

from __future__ import annotations

import json
import threading
import uuid
from datetime import date, datetime
from decimal import Decimal

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.orm import Session

from yibao.enrolment import registry as er
from yibao.money import yuan_to_fen
from yibao.service import ledger, registry, sample
from yibao.service import transactions as tx
from yibao.service.auth import Principal
from yibao.service import desk as desk_module
from yibao.service.desk import Desk, request_hash
from yibao.service.errors import Conflict
from yibao.service.packs import PackSet
from yibao.settlement.request import FeeItemIn
from yibao.settlement.statement import dumps
from yibao.store import chain
from yibao.store.database import make_engine
from yibao.store.models import HouseholdBalance, HouseholdLedger, Settlement, SettlementDetail

HIS = Principal("his1", "institution", sample.HOSPITAL)
CAP = yuan_to_fen("50000")
MEMBERS = {**{f"A{i}": "H1" for i in range(6)}, "B0": "H2", "B1": "H2"}
PRICES = ("300200.00", "41000.00")  # each member: a big admission, then a smaller one


def at_once(client, people) -> None:
    """``client(psn_no)`` for every person, each on its own thread (they meet at the clients' barrier)."""
    threads = [threading.Thread(target=client, args=(p,)) for p in people]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def household_store(store_url: str, members: dict[str, str], certnos: int):
    """A store with ``members`` (psn_no → hh_no), 低保, and for each member the visits of :data:`PRICES` uploaded."""
    db = make_engine(store_url)
    with Session(db) as s, s.begin():
        sample.seed(s, 0)
        for i, (psn_no, hh_no) in enumerate(members.items()):
            registry.add_person(s, psn_no=psn_no, certno=sample.certno(certnos + i), psn_name=f"户员{i}",
                                insutype="390", admdvs=sample.ADMDVS, valid_from=date(2024, 1, 1),
                                valid_to=date(2024, 12, 31), categories={"dibao": "民政"}, hh_no=hh_no)
    desk = Desk(make_engine(store_url), PackSet.load(["shandong-2024-household"]))
    at = datetime(2024, 6, 1, 10, 0)
    ctx = tx.Context("setup", "op", at)
    visits: dict[str, list[str]] = {}
    for psn_no in members:
        for price in PRICES:
            def make(session, psn_no=psn_no, price=price):
                v = tx.register_visit(session, HIS, ctx, fixmedins_code=sample.HOSPITAL, psn_no=psn_no,
                                      insutype="390", med_type="21", begntime=at)
                line = {"feedetl_sn": "F1", "med_list_codg": "X1", "chrgitm_lv": "01", "pric": price, "cnt": "1",
                        "det_item_fee_sumamt": price}
                tx.upload_items(session, HIS, ctx, desk.packs, mdtrt_id=v["mdtrt_id"],
                                items=[FeeItemIn.model_validate(line)])
                return v["mdtrt_id"]
            visits.setdefault(psn_no, []).append(desk.read(make))
    return db, desk, at, visits


def test_members_of_one_household_settling_at_once_never_exceed_its_cap(store_url, monkeypatch):
    monkeypatch.setattr(desk_module, "RETRY_SQLSTATES", set())  # a deadlock would show, not be retried
    db, desk, at, visits = household_store(store_url, MEMBERS, 200)

    barrier = threading.Barrier(len(MEMBERS))
    errors: list[BaseException] = []

    def client(psn_no: str) -> None:
        try:
            barrier.wait()
            for mdtrt_id in visits[psn_no]:
                c = tx.Context(f"msg-{mdtrt_id}", "op", at)
                desk.write(f"t:{mdtrt_id}", request_hash(mdtrt_id), lambda s, m=mdtrt_id, c=c: dumps(
                    tx.settle(s, HIS, c, desk.packs, mdtrt_id=m)))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    at_once(client, MEMBERS)
    assert not errors, errors

    with Session(db) as s:
        paid = {}
        for d in s.scalars(select(SettlementDetail).where(SettlementDetail.rule_id == "assistance_core")):
            paid[d.setl_id] = d.fund_payamt
        for hh_no, n in (("H1", 6), ("H2", 2)):
            rows = s.scalars(select(HouseholdLedger).where(HouseholdLedger.hh_no == hh_no)
                             .order_by(HouseholdLedger.seq)).all()
            assert [r.seq for r in rows] == list(range(1, 2 * n + 1))  # every settlement of every member counted once
            running: dict[str, int] = {}
            for r in rows:  # each saw exactly the rows before it: a sequential year
                for k, v in r.delta.items():
                    running[k] = running.get(k, 0) + int(v)
                assert {k: int(v) for k, v in r.acc_after.items()} == {k: v for k, v in running.items() if v}
                assert int(r.delta.get("hhpaid:assistance_core", 0)) == paid.get(r.setl_id, 0)
            balance = s.get(HouseholdBalance, (hh_no, 2024))
            through = int(balance.acc_values["hhcap:assistance_core"])
            total = int(balance.acc_values["hhpaid:assistance_core"])
            assert balance.acc_values == running and balance.entries == 2 * n
            assert total == min(through, CAP) and total <= CAP
            assert total == sum(paid.get(r.setl_id, 0) for r in rows)  # what the members got, to the fen
        assert int(s.get(HouseholdBalance, ("H1", 2024)).acc_values["hhpaid:assistance_core"]) == CAP
    with db.connect() as conn:
        assert not chain.verify(conn).problems and ledger.verify(conn) == []


def test_the_service_role_writes_household_rows_but_cannot_change_the_household_ledger(pg_url, _pg_template):
    """PostgreSQL grants: the service settles and reverses household members, and household_ledger is insert-only
    for it (as accumulator_ledger is), so a household's chained rows cannot be edited by the service's login."""
    name, login = "t_" + uuid.uuid4().hex[:12], "svc_" + uuid.uuid4().hex[:8]
    with _pg_template.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name} TEMPLATE yibao_template"))
        conn.execute(text(f"CREATE ROLE {login} LOGIN IN ROLE yibao_service"))
    url = pg_url.rsplit("/", 1)[0] + "/" + name
    try:
        owner = make_engine(url)
        with Session(owner) as s, s.begin():
            sample.seed(s, 0)
            for i, psn_no in enumerate(("A0", "A1")):
                registry.add_person(s, psn_no=psn_no, certno=sample.certno(300 + i), psn_name=f"户员{i}",
                                    insutype="390", admdvs=sample.ADMDVS, valid_from=date(2024, 1, 1),
                                    valid_to=date(2024, 12, 31), categories={"dibao": "民政"}, hh_no="H1")
        owner.dispose()
        service = make_engine(url.replace("://yibao@", f"://{login}@"))
        packs = PackSet.load(["shandong-2024-household"])
        at = datetime(2024, 6, 1, 10, 0)
        ids = []
        for psn_no in ("A0", "A1"):
            with Session(service) as s, s.begin():
                ctx = tx.Context(f"m-{psn_no}", "op", at)
                v = tx.register_visit(s, HIS, ctx, fixmedins_code=sample.HOSPITAL, psn_no=psn_no, insutype="390",
                                      med_type="21", begntime=at)
                line = {"feedetl_sn": "F1", "med_list_codg": "X1", "chrgitm_lv": "01", "pric": PRICES[0], "cnt": "1",
                        "det_item_fee_sumamt": PRICES[0]}
                tx.upload_items(s, HIS, ctx, packs, mdtrt_id=v["mdtrt_id"], items=[FeeItemIn.model_validate(line)])
                ids.append(tx.settle(s, HIS, ctx, packs, mdtrt_id=v["mdtrt_id"])["setlinfo"]["setl_id"])
        with Session(service) as s, s.begin():
            tx.reverse(s, HIS, tx.Context("r", "op", at), setl_id=ids[1])
        for sql in ("UPDATE household_ledger SET delta = '{}'", "DELETE FROM household_ledger",
                    "TRUNCATE household_ledger"):
            with service.connect() as conn:
                with pytest.raises(ProgrammingError, match="permission denied"):
                    conn.execute(text(sql))
        with service.connect() as conn:
            assert conn.execute(text("SELECT kind FROM household_ledger ORDER BY seq")).scalars().all() == [
                "settle", "settle", "reverse"]
            assert ledger.verify(conn) == [] and not chain.verify(conn).problems
        service.dispose()
    finally:
        with _pg_template.connect() as conn:
            conn.execute(text(f"DROP DATABASE {name} WITH (FORCE)"))
            conn.execute(text(f"DROP ROLE {login}"))


def test_settlements_and_reversals_of_one_household_at_once_keep_the_household_exact(store_url, monkeypatch):
    """Four members each settle, try to reverse that settlement, and settle again, all at once: a reversal is
    refused only with SET041 (another member counted after it), nothing deadlocks (the desk's retry of a
    deadlocked transaction is switched off, so one would show as an error), and the household's balance is
    exactly what its valid settlements counted, within the cap."""
    monkeypatch.setattr(desk_module, "RETRY_SQLSTATES", set())
    members = {f"C{i}": "H1" for i in range(4)}
    db, desk, at, visits = household_store(store_url, members, 400)

    barrier = threading.Barrier(len(members))
    errors: list[BaseException] = []
    refused: list[str] = []

    def client(psn_no: str) -> None:
        try:
            barrier.wait()
            first, second = visits[psn_no]
            out = desk.write(f"t:{first}", request_hash(first), lambda s: dumps(
                tx.settle(s, HIS, tx.Context(f"msg-{first}", "op", at), desk.packs, mdtrt_id=first)))
            setl_id = json.loads(out[0])["setlinfo"]["setl_id"]
            try:
                desk.write(f"r:{setl_id}", request_hash(setl_id), lambda s: dumps(
                    tx.reverse(s, HIS, tx.Context(f"rev-{setl_id}", "op", at), setl_id=setl_id)))
            except Conflict as exc:
                refused.append(exc.problems[0].code)
            desk.write(f"t:{second}", request_hash(second), lambda s: dumps(
                tx.settle(s, HIS, tx.Context(f"msg-{second}", "op", at), desk.packs, mdtrt_id=second)))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    at_once(client, members)
    assert not errors, errors
    assert set(refused) <= {"SET041"}

    with Session(db) as s:
        valid = {x.setl_id for x in s.scalars(select(Settlement).where(Settlement.status == "valid"))}
        assert len(valid) == 2 * len(members) - (len(members) - len(refused))
        paid = {d.setl_id: d.fund_payamt for d in s.scalars(
            select(SettlementDetail).where(SettlementDetail.rule_id == "assistance_core"))}
        rows = s.scalars(select(HouseholdLedger).order_by(HouseholdLedger.seq)).all()
        counted: dict[str, int] = {}
        for r in rows:
            if r.setl_id in valid:
                for k, v in r.delta.items():
                    counted[k] = counted.get(k, 0) + int(v)
        balance = s.get(HouseholdBalance, ("H1", 2024))
        assert {k: int(v) for k, v in balance.acc_values.items()} == counted
        total = counted.get("hhpaid:assistance_core", 0)
        assert total == min(counted["hhcap:assistance_core"], CAP) == sum(paid.get(x, 0) for x in valid)
    with db.connect() as conn:
        assert not chain.verify(conn).problems and ledger.verify(conn) == []


ROUNDS = 16


def test_a_member_paying_from_the_holders_account_while_the_holder_settles_never_deadlocks(store_url, monkeypatch):
    """家庭共济 inside one household: Y's settlements are paid from X's account (Y's transaction locks X's account
    row after the household's), while X settles its own visits, every other one from its own account (X's first
    settlement creates X's balance row, whose foreign key takes a key-share lock on X's person row before the
    household lock). Both are members of a household under a household-capped pack, so both take the household
    lock. With the account locked FOR UPDATE this deadlocked on PostgreSQL; FOR NO KEY UPDATE does not conflict
    with the key-share lock. The desk's deadlock retry is off, so a deadlock would show as an error."""
    monkeypatch.setattr(desk_module, "RETRY_SQLSTATES", set())
    db = make_engine(store_url)
    clerk = Principal("clerk1", "clerk")
    with Session(db) as s, s.begin():
        sample.seed(s, 0)
        registry.add_person(s, psn_no="X0", certno=sample.certno(500), psn_name="户主", insutype="310",
                            admdvs=sample.ADMDVS, valid_from=date(2024, 1, 1), valid_to=date(2024, 12, 31),
                            hh_no="H1", acct_balc=Decimal("2000.00"))
        registry.add_person(s, psn_no="Y0", certno=sample.certno(501), psn_name="户员", insutype="390",
                            admdvs=sample.ADMDVS, valid_from=date(2024, 1, 1), valid_to=date(2024, 12, 31),
                            categories={"dibao": "民政"}, hh_no="H1")
        er.link_household(s, clerk, tx.Context("link", "clerk1", datetime(2024, 1, 2)), holder_psn_no="X0",
                          member_psn_no="Y0", relation="子女", valid_from=date(2024, 1, 1), valid_to=date(2024, 12, 31))
    desk = Desk(make_engine(store_url), PackSet.load(["shandong-2024-household"]))
    at = datetime(2024, 6, 1, 10, 0)
    ctx = tx.Context("setup", "op", at)
    visits: dict[str, list[str]] = {"X0": [], "Y0": []}
    for psn_no, insutype in (("X0", "310"), ("Y0", "390")):
        for _ in range(ROUNDS):
            def make(session, psn_no=psn_no, insutype=insutype):
                v = tx.register_visit(session, HIS, ctx, fixmedins_code=sample.HOSPITAL, psn_no=psn_no,
                                      insutype=insutype, med_type="11", begntime=at)
                tx.upload_items(session, HIS, ctx, desk.packs, mdtrt_id=v["mdtrt_id"],
                                items=[FeeItemIn.model_validate(x) for x in sample.items(4, price="50.00")])
                return v["mdtrt_id"]
            visits[psn_no].append(desk.read(make))

    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def client(psn_no: str) -> None:
        try:
            barrier.wait()
            for k, mdtrt_id in enumerate(visits[psn_no]):
                c = tx.Context(f"msg-{mdtrt_id}", "op", at)
                extra = ({"acct_used": True, "mulaid_psn_no": "X0"} if psn_no == "Y0"
                         else {"acct_used": bool(k % 2)})
                desk.write(f"t:{mdtrt_id}", request_hash(mdtrt_id), lambda s, m=mdtrt_id, c=c, e=extra: dumps(
                    tx.settle(s, HIS, c, desk.packs, mdtrt_id=m, **e)))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    at_once(client, ("X0", "Y0"))
    assert not errors, errors
    with Session(db) as s:
        assert len(s.scalars(select(Settlement).where(Settlement.status == "valid")).all()) == 2 * ROUNDS
    with db.connect() as conn:
        assert not chain.verify(conn).problems and ledger.verify(conn) == []
