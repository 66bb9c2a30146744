"""家庭共济 in settlement (2206/2207/2208): a linked family member's in-scope share paid from the holder's account.

Worked example (shandong-2024, 居民普通门诊 at a 一级 hospital): 4 lines of 100.00 = 400.00: 全自费 100.00,
先行自付 10.00, in scope 290.00; the fund pays 290.00 × 60% = 174.00; the in-scope personal share is 116.00,
which the holder's account pays (acct_mulaid_pay); the 110.00 out of scope stays cash.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from yibao.enrolment import ledger, mutual
from yibao.enrolment import registry as er
from yibao.enrolment.models import AccountEntry
from yibao.policy.loader import resolve_pack
from yibao.service import sample
from yibao.service import transactions as tx
from yibao.service.auth import Principal
from yibao.service.desk import Desk, request_hash
from yibao.service.errors import ServiceError
from yibao.service.packs import PackSet
from yibao.settlement.request import FeeItemIn
from yibao.settlement.statement import dumps
from yibao.store import chain
from yibao.store.database import make_engine
from yibao.store.models import AuditLog, Person, Settlement, Visit

from test_service_flow import Platform, world  # noqa: F401 - the fixture
from test_service_retry import together

HIS = Principal("his1", "institution", sample.HOSPITAL)
CLERK = Principal("clerk1", "clerk")
HOLDER, MEMBER = "P000000002", "P000000003"  # 职工 with 2,000.00; 居民 without an account
AT = datetime(2024, 6, 1, 9, 0)
PACKS = PackSet.load(["shandong-2024"])


@pytest.fixture
def engine(store_url):
    eng = make_engine(store_url)
    yield eng
    eng.dispose()


def _link(s, member=MEMBER, valid_from=date(2024, 1, 1), valid_to=date(2024, 12, 31), action="grant"):
    er.link_household(s, CLERK, tx.Context("link", "clerk1", AT), holder_psn_no=HOLDER, member_psn_no=member,
                      relation="子女", valid_from=valid_from, valid_to=valid_to, action=action)


def _visit(s, psn_no=MEMBER, insutype="390", lines=4, price="50.00", at=AT) -> str:
    ctx = tx.Context("v", "op", at)
    v = tx.register_visit(s, HIS, ctx, fixmedins_code=sample.HOSPITAL, psn_no=psn_no, insutype=insutype,
                          med_type="11", begntime=at)
    tx.upload_items(s, HIS, ctx, PACKS, mdtrt_id=v["mdtrt_id"],
                    items=[FeeItemIn.model_validate(x) for x in sample.items(lines, price=price)])
    return v["mdtrt_id"]


def _settle(s, mdtrt_id, *, write=True, acct_used=True, holder=HOLDER, msg="s"):
    return tx.settle(s, HIS, tx.Context(msg, "op", AT.replace(hour=10)), PACKS, mdtrt_id=mdtrt_id,
                     acct_used=acct_used, write=write, mulaid_psn_no=holder)


def _balance(s, psn_no=HOLDER) -> int:
    return s.scalar(select(Person.acct_balc_fen).where(Person.psn_no == psn_no))


def test_payable_is_the_in_scope_share_within_cash_and_balance():
    assert mutual.payable(11600, 22600, 200000) == 11600
    assert mutual.payable(11600, 22600, 5000) == 5000
    assert mutual.payable(11600, 3000, 200000) == 3000  # the member's own account already paid the rest
    assert mutual.payable(11600, 22600, 0) == 0


def test_settle_pays_the_in_scope_share_from_the_holder_and_2208_gives_it_back(engine):
    with Session(engine) as s, s.begin():
        sample.seed(s, 3)
        _link(s)
        mdtrt_id = _visit(s)
    with Session(engine) as s, s.begin():
        pre = _settle(s, mdtrt_id, write=False)["setlinfo"]
        assert (pre["psn_part_amt"], pre["acct_pay"], pre["acct_mulaid_pay"], pre["psn_cash_pay"]) == \
            (Decimal("226.00"), Decimal("0.00"), Decimal("116.00"), Decimal("110.00"))
        assert _balance(s) == 200000  # pre-settlement writes nothing
        out = _settle(s, mdtrt_id)["setlinfo"]
        assert {k: out[k] for k in pre if k not in ("setl_id", "balc")} == \
            {k: pre[k] for k in pre if k not in ("setl_id", "balc")}  # 2206 answered what 2207 did
        setl_id = out["setl_id"]
    with Session(engine) as s, s.begin():
        assert _balance(s) == 200000 - 11600
        row = s.get(Settlement, setl_id)
        assert (row.psn_part_amt, row.acct_pay, row.psn_cash_pay) == (22600, 0, 11000)  # cash net of 共济
        _, record = tx.settlement_record(s, HIS, setl_id)
        assert record["setlinfo"]["acct_mulaid_pay"] == Decimal("116.00")
        assert any(line.startswith("【家庭共济】") and "支付 116.00 元" in line for line in record["explanation"])
        stmt = ledger.account_statement(s, HOLDER, date(2024, 6, 1), date(2024, 6, 30))
        assert (stmt["opening"], stmt["closing"]) == (Decimal("2000.00"), Decimal("1884.00"))
        assert [(x["kind"], x["amount"], x["ref"]) for x in stmt["lines"]] == [("mulaid_pay", Decimal("-116.00"), setl_id)]
    with Session(engine) as s, s.begin():
        rev = tx.reverse(s, HIS, tx.Context("r", "op", AT.replace(hour=11)), setl_id=setl_id)["setlinfo"]
        assert (rev["acct_mulaid_pay"], rev["psn_cash_pay"]) == (Decimal("-116.00"), Decimal("-110.00"))
    with Session(engine) as s:
        assert _balance(s) == 200000
        stmt = ledger.account_statement(s, HOLDER, date(2024, 6, 1), date(2024, 6, 30))
        assert [x["kind"] for x in stmt["lines"]] == ["mulaid_pay", "mulaid_rev"] and stmt["closing"] == Decimal("2000.00")
        trail = {a.action: a.detail for a in s.scalars(select(AuditLog).where(AuditLog.entity_id == setl_id))}
        assert trail["settle"]["acct_mulaid_pay"] == trail["reverse"]["acct_mulaid_pay"] == 11600
        assert trail["settle"]["mulaid_psn_no"] == trail["reverse"]["mulaid_psn_no"] == HOLDER
        assert chain.verify(s.connection()).problems == []


def test_the_holder_balance_bounds_the_payment_and_the_own_account_pays_first(engine):
    with Session(engine) as s, s.begin():
        sample.seed(s, 4)
        _link(s)
        _link(s, member="P000000004")  # a 职工 member with an account of their own
        s.execute(update(Person).where(Person.psn_no == HOLDER).values(acct_balc_fen=5000))
        s.execute(update(Person).where(Person.psn_no == "P000000004").values(acct_balc_fen=20000))
        small = _visit(s)
        own = _visit(s, psn_no="P000000004", insutype="310", lines=30)
    with Session(engine) as s, s.begin():
        out = _settle(s, small)["setlinfo"]
        assert (out["acct_mulaid_pay"], out["psn_cash_pay"]) == (Decimal("50.00"), Decimal("176.00"))  # 50 of 116
        assert _balance(s) == 0
    with Session(engine) as s, s.begin():
        s.execute(update(Person).where(Person.psn_no == HOLDER).values(acct_balc_fen=100000))
        out = _settle(s, own)["setlinfo"]
        # the member's own 200.00 goes first; 共济 pays what is left of the in-scope share, never past the cash owed
        assert out["acct_pay"] == Decimal("200.00")
        assert out["acct_mulaid_pay"] + out["acct_pay"] + out["psn_cash_pay"] == out["psn_part_amt"]
        assert out["acct_mulaid_pay"] > 0 and _balance(s) == 100000 - int(out["acct_mulaid_pay"] * 100)


@pytest.mark.parametrize("case, code", [
    ("no_link", "ENR059"), ("expired", "ENR062"), ("revoked", "ENR059"), ("not_yet", "ENR062"),
    ("self", "ENR030"), ("no_flag", "ENR064"), ("no_holder", "REG010")])
def test_refusals_are_coded_and_write_nothing(engine, case, code):
    with Session(engine) as s, s.begin():
        sample.seed(s, 3)
        if case == "expired":
            _link(s, valid_to=date(2024, 3, 31))
        elif case == "not_yet":
            _link(s, valid_from=date(2024, 7, 1))
        elif case == "revoked":
            _link(s)
            _link(s, valid_from=date(2024, 5, 1), action="revoke")
        mdtrt_id = _visit(s, psn_no=HOLDER, insutype="310") if case == "self" else _visit(s)
    holder = {"self": HOLDER, "no_holder": "P000000999"}.get(case, HOLDER)
    for write in (False, True):
        with Session(engine) as s, s.begin():
            with pytest.raises(ServiceError) as exc:
                _settle(s, mdtrt_id, write=write, holder=holder, acct_used=case != "no_flag")
            assert exc.value.problems[0].code == code
    with Session(engine) as s:
        assert _balance(s) == 200000
        assert s.scalar(select(func.count()).select_from(Settlement)) == 0
        assert s.scalar(select(func.count()).select_from(AccountEntry)) == 0
        assert s.get(Visit, mdtrt_id).status == "registered"


def test_family_pay_at_the_clerk_desk_uses_the_same_rule(engine):
    fin = resolve_pack("shandong-2024").financing
    with Session(engine) as s, s.begin():
        sample.seed(s, 3)
        _link(s, valid_to=date(2024, 3, 31))
        with pytest.raises(ServiceError) as exc:  # the link ended before the payment's date: the same ENR062
            ledger.family_pay(s, CLERK, tx.Context("f", "clerk1", AT), fin, holder_psn_no=HOLDER,
                              member_psn_no=MEMBER, amount_fen=100, on=date(2024, 6, 1), ref="门诊")
        assert exc.value.problems[0].code == "ENR062"


def test_platform_2206_2207_2208_with_acct_mulaid_psn_no(world):
    """30 lines of 25.00 (see test_service_flow): in scope 475.00, fund 285.00, in-scope own 190.00 → 共济."""
    client, keys, engine = world
    his = Platform(client, keys.keys["his1"])
    mdtrt_id = his.visit("P000000003")
    data = {"psn_no": "P000000003", "mdtrt_id": mdtrt_id, "acct_used_flag": "1", "acct_mulaid_psn_no": HOLDER}
    refused = his("2207", {"data": data})
    assert refused["infcode"] == -1 and "ENR059" in refused["err_msg"] and "acct_mulaid_psn_no" in refused["err_msg"]
    assert his.ok("1101", {"data": {"psn_no": "P000000003"}})["mulaidinfo"] == []
    with Session(engine) as s, s.begin():
        _link(s)
    assert his.ok("1101", {"data": {"psn_no": "P000000003"}})["mulaidinfo"] == [
        {"holder_psn_no": HOLDER, "relation": "子女", "begndate": "2024-01-01", "enddate": "2024-12-31"}]
    pre = his.ok("2206", {"data": data})["setlinfo"]
    out = his.ok("2207", {"data": data})["setlinfo"]
    for info in (pre, out):
        assert (info["psn_part_amt"], info["acct_mulaid_pay"], info["psn_cash_pay"]) == \
            (Decimal("465.00"), Decimal("190.00"), Decimal("275.00"))
    rev = his.ok("2208", {"data": {"psn_no": "P000000003", "mdtrt_id": mdtrt_id, "setl_id": out["setl_id"]}})
    assert rev["setlinfo"]["acct_mulaid_pay"] == Decimal("-190.00")
    with Session(engine) as s:
        assert _balance(s) == 200000


PER_KIND = 4


def test_concurrent_settlements_on_one_holder_account_never_overdraw(store_url):
    """Members (each their own balance lock) and the holder's own visits draw on one account at once."""
    engine = make_engine(store_url)
    members = ["P000000001", "P000000003", "P000000005", "P000000007"]
    with Session(engine) as s, s.begin():
        sample.seed(s, 8)
        for m in members:
            _link(s, member=m)
        s.execute(update(Person).where(Person.psn_no == HOLDER).values(acct_balc_fen=30000))  # 300.00
    desk = Desk(make_engine(store_url, pool_size=10), PACKS)
    visits = [desk.read(lambda s, m=m: (_visit(s, psn_no=m, lines=8), HOLDER if m != HOLDER else None))
              for m in members] + \
             [desk.read(lambda s: (_visit(s, psn_no=HOLDER, insutype="310", lines=8), None)) for _ in range(PER_KIND)]

    def settle(k: int):
        mdtrt_id, holder = visits[k]
        c = tx.Context(f"msg-{k}", "op", AT.replace(hour=10))
        return desk.write(f"t:{mdtrt_id}", request_hash(mdtrt_id), lambda s: dumps(
            tx.settle(s, HIS, c, desk.packs, mdtrt_id=mdtrt_id, acct_used=True, mulaid_psn_no=holder)))

    results = together(len(visits), settle)
    assert not [r for r in results if isinstance(r, BaseException)], results
    with Session(engine) as s:
        balance = _balance(s)
        own = sum(x.acct_pay for x in s.scalars(select(Settlement).where(Settlement.psn_no == HOLDER)))
        mulaid = -sum(s.scalars(select(AccountEntry.amount_fen).where(AccountEntry.kind == mutual.PAY)))
        rows = s.scalars(select(Settlement).where(Settlement.psn_no != HOLDER)).all()
        assert balance >= 0
        assert balance + own + mulaid == 30000  # every fen drawn is a settlement's acct_pay or 共济 debit
        assert balance == 0  # 8 visits of 160.00 in-scope shares exhaust 300.00
        assert sum(r.psn_part_amt - r.acct_pay - r.psn_cash_pay for r in rows) == mulaid
        assert len(rows) == len(members)
        assert chain.verify(s.connection()).problems == []
    desk.engine.dispose()
    engine.dispose()


def _exact(response) -> dict:
    return json.loads(response.text, parse_float=Decimal)


def test_rest_presettle_settle_and_reverse_with_acct_mulaid_psn_no(sample_api):
    """REST face: 3 lines (sample.items(3)): 丙 25.00 全自费, 乙 25.00 with 2.50 先行自付, in scope 47.50;
    fund 47.50 × 60% = 28.50; the in-scope 19.00 from the holder's account; cash 2.50 + 25.00 = 27.50."""
    call, engine = sample_api
    with Session(engine) as s, s.begin():
        _link(s)
    v = call("his1", "POST", "/api/v1/visits", {"fixmedins_code": sample.HOSPITAL, "psn_no": MEMBER, "insutype": "390",
                                                "begntime": "2024-04-01T09:00:00"}).json()
    assert call("his1", "POST", f"/api/v1/visits/{v['mdtrt_id']}/fee-items",
                {"items": sample.items(3), "at": "2024-04-01T10:00:00"}).status_code == 200
    body = {"acct_used": True, "acct_mulaid_psn_no": HOLDER, "setl_time": "2024-04-01T10:00:00"}
    no_flag = call("his1", "POST", f"/api/v1/visits/{v['mdtrt_id']}/presettle", {**body, "acct_used": False})
    assert no_flag.status_code == 422 and no_flag.json()["problems"][0]["code"] == "ENR064"
    pre = _exact(call("his1", "POST", f"/api/v1/visits/{v['mdtrt_id']}/presettle", body))["setlinfo"]
    out = _exact(call("his1", "POST", f"/api/v1/visits/{v['mdtrt_id']}/settle", body))["setlinfo"]
    for info in (pre, out):
        assert (info["psn_part_amt"], info["acct_mulaid_pay"], info["psn_cash_pay"]) == \
            (Decimal("46.50"), Decimal("19.00"), Decimal("27.50"))
    with Session(engine) as s:
        assert _balance(s) == 200000 - 1900
    page = call("his1", "GET", f"/api/v1/settlements/{out['setl_id']}/statement.html")
    assert page.status_code == 200 and "账户共济支付(家庭共济)" in page.text and "【家庭共济】" in page.text
    rev = call("his1", "POST", f"/api/v1/settlements/{out['setl_id']}/reverse", {"at": "2024-04-01T11:00:00"})
    assert rev.status_code == 200 and _exact(rev)["setlinfo"]["acct_mulaid_pay"] == Decimal("-19.00")
    with Session(engine) as s:
        assert _balance(s) == 200000


@pytest.fixture(scope="module")
def one_store(tmp_path_factory):
    """One SQLite store for the property test's examples (each example settles new visits in it)."""
    from yibao.store.migrate import upgrade

    url = f"sqlite:///{tmp_path_factory.mktemp('mulaid') / 'p.db'}"
    upgrade(url)
    eng = make_engine(url)
    with Session(eng) as s, s.begin():
        sample.seed(s, 4)
        _link(s)
        _link(s, member="P000000004")
    yield eng
    eng.dispose()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(member=st.sampled_from([MEMBER, "P000000004"]), lines=st.integers(1, 12),
       price=st.sampled_from(["3.33", "12.50", "50.00", "199.99"]),
       holder_fen=st.integers(0, 50_000), own_fen=st.integers(0, 20_000))
def test_every_fen_of_the_personal_share_is_accounted_for(one_store, member, lines, price, holder_fen, own_fen):
    """psn_part_amt = acct_pay + acct_mulaid_pay + psn_cash_pay; the 共济 part is at most the in-scope share
    left and the holder's balance; 2206 answers what 2207 does; the holder loses exactly the 共济 part."""
    insutype = "390" if member == MEMBER else "310"
    with Session(one_store) as s, s.begin():
        s.execute(update(Person).where(Person.psn_no == HOLDER).values(acct_balc_fen=holder_fen))
        s.execute(update(Person).where(Person.psn_no == member).values(acct_balc_fen=own_fen if insutype == "310" else 0))
        mdtrt_id = _visit(s, psn_no=member, insutype=insutype, lines=lines, price=price,
                          at=datetime(2024, 1 + lines % 12, 1 + lines, 9))
    with Session(one_store) as s, s.begin():
        pre = _settle(s, mdtrt_id, write=False)
        out = _settle(s, mdtrt_id)
    info = out["setlinfo"]
    assert {k: v for k, v in pre["setlinfo"].items() if k not in ("setl_id", "balc")} == \
        {k: v for k, v in info.items() if k not in ("setl_id", "balc")}
    assert info["psn_part_amt"] == info["acct_pay"] + info["acct_mulaid_pay"] + info["psn_cash_pay"]
    assert Decimal(0) <= info["acct_mulaid_pay"] <= Decimal(holder_fen) / 100 and info["psn_cash_pay"] >= 0
    with Session(one_store) as s:
        assert _balance(s) == holder_fen - int(info["acct_mulaid_pay"] * 100)
        inscp_left = s.get(Settlement, info["setl_id"]).explanation[-1]
        assert inscp_left.startswith("【家庭共济】")


def test_totals_count_the_mulaid_payment_until_it_is_reversed(engine):
    """3201 对总账: the institution was paid the 共济 amount as it is paid the person's own account money."""
    with Session(engine) as s, s.begin():
        sample.seed(s, 3)
        _link(s)
        mdtrt_id = _visit(s)
    with Session(engine) as s, s.begin():
        setl_id = _settle(s, mdtrt_id)["setlinfo"]["setl_id"]
    window = {"fixmedins_code": sample.HOSPITAL, "begndate": date(2024, 6, 1), "enddate": date(2024, 6, 30)}
    with Session(engine) as s:
        listed = tx.settlement_list(s, HIS, psn_no=MEMBER)["settlements"]
        assert [(x["setl_id"], x["acct_mulaid_pay"], x["psn_cash_pay"]) for x in listed] == [
            (setl_id, Decimal("116.00"), Decimal("110.00"))]
        ours = tx.totals(s, HIS, **window)["totals"]
        assert (ours["acct_pay"], ours["acct_mulaid_pay"], ours["fixmedins_setl_cnt"]) == (Decimal("0.00"), Decimal("116.00"), 1)
        declared = {"medfee_sumamt": ours["medfee_sumamt"], "fund_pay_sumamt": ours["fund_pay_sumamt"],
                    "acct_pay": ours["acct_pay"], "acct_mulaid_pay": Decimal("0.00"), "fixmedins_setl_cnt": 1}
        out = tx.totals(s, HIS, **window, declared=declared)
        assert out["stmt_rslt"] == "1" and "acct_mulaid_pay" in out["stmt_rslt_dscr"]
    with Session(engine) as s, s.begin():
        tx.reverse(s, HIS, tx.Context("r", "op", AT.replace(hour=11)), setl_id=setl_id)
    with Session(engine) as s:
        assert tx.totals(s, HIS, **window)["totals"]["acct_mulaid_pay"] == Decimal("0.00")
