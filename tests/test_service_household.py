"""家庭年度限额 in the online service: household balances locked and written like a person's (issue #14, shape 6).

Pack ``shandong-2024-household``: 医疗救助 assistance_core (低保 ...) pays 70% of the in-scope personal share, at
most 30,000 yuan a person and 50,000 yuan a household a year. A resident 低保 member's inpatient bill of
300,200.00 yuan (one 甲类 line) at a 一级 hospital, first admission, works out by hand as:

- 基本医保:起付线 200, (300,200 − 200) × 85% = 255,000 > 年度限额 200,000 → hifp 200,000.00;
  personal in-scope share 300,200 − 200,000 = 100,200.00;
- 大病保险 (低保倾斜: 起付线 15,000 × 50% = 7,500, 比例 60% + 5 = 65%): (100,200 − 7,500) × 65% = 60,255.00;
- 医疗救助: (100,200 − 60,255) × 70% = 39,945 × 70% = 27,961.50 (< 个人限额 30,000).

So the household's first member gets 27,961.50, the second min(27,961.50, 50,000 − 27,961.50) = 22,038.50,
a third 0.00 — whoever settles first.
"""

from __future__ import annotations

import shutil
from datetime import date, datetime
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, update
from sqlalchemy.orm import Session
from test_service_flow import Platform

from yibao.errors import YibaoError
from yibao.handling.models import HdTopup
from yibao.handling.topup import topup
from yibao.money import yuan_to_fen
from yibao.policy.compiled import CompiledPack
from yibao.policy.loader import resolve_pack
from yibao.service import ledger, registry, sample
from yibao.service.app import create_app
from yibao.service import transactions as tx
from yibao.service.auth import Principal
from yibao.service.errors import Conflict
from yibao.service.packs import PackSet
from yibao.settlement import engine
from yibao.settlement.model import Accumulators
from yibao.settlement.model import FeeItem as EngineItem
from yibao.settlement.model import Person as EnginePerson
from yibao.settlement.model import Visit as EngineVisit
from yibao.settlement.request import FeeItemIn
from yibao.store import chain
from yibao.store.database import make_engine
from yibao.store.models import HouseholdBalance, HouseholdLedger, PersonCategory
from yibao.store.models import Person as PersonRow
from yibao.web.selfservice import limits

PACK = "shandong-2024-household"
HIS = Principal("his1", "institution", sample.HOSPITAL)
AT = datetime(2024, 6, 1, 10, 0)
BIG = "300200.00"
FIRST, SECOND = yuan_to_fen("27961.50"), yuan_to_fen("22038.50")
CAP = yuan_to_fen("50000")


def seed(store_url: str, members: dict[str, str | None], category: str = "dibao") -> tuple:
    """Institutions and resident members (psn_no → hh_no) of the given category; the store's engine and packs."""
    db = make_engine(store_url)
    with Session(db) as s, s.begin():
        sample.seed(s, 0)
        for i, (psn_no, hh_no) in enumerate(members.items()):
            registry.add_person(s, psn_no=psn_no, certno=sample.certno(100 + i), psn_name=f"户员{i}", insutype="390",
                                admdvs=sample.ADMDVS, valid_from=date(2024, 1, 1), valid_to=date(2024, 12, 31),
                                gend="1", categories={category: "民政"} if category else {}, hh_no=hh_no)
    return db, PackSet.load([PACK])


def visit(db, packs, psn_no: str, price: str = BIG, at: datetime = AT) -> str:
    ctx = tx.Context("setup", "op", at)
    with Session(db) as s, s.begin():
        v = tx.register_visit(s, HIS, ctx, fixmedins_code=sample.HOSPITAL, psn_no=psn_no, insutype="390",
                              med_type="21", begntime=at)
        line = {"feedetl_sn": "F000001", "med_list_codg": "X00001", "chrgitm_lv": "01", "pric": price, "cnt": "1",
                "det_item_fee_sumamt": price}
        tx.upload_items(s, HIS, ctx, packs, mdtrt_id=v["mdtrt_id"], items=[FeeItemIn.model_validate(line)])
    return v["mdtrt_id"]


def settle(db, packs, mdtrt_id: str, write: bool = True, at: datetime = AT) -> dict:
    with Session(db) as s, s.begin():
        return tx.settle(s, HIS, tx.Context(f"m-{mdtrt_id}-{write}", "op", at), packs, mdtrt_id=mdtrt_id, write=write)


def reverse(db, setl_id: str) -> dict:
    with Session(db) as s, s.begin():
        return tx.reverse(s, HIS, tx.Context(f"r-{setl_id}", "op", AT), setl_id=setl_id)


def assistance(out: dict) -> int:
    """What assistance_core paid in a settlement (fen), from its setldetail."""
    return sum(yuan_to_fen(str(d["fund_payamt"])) for d in out["setldetail"] if d["rule_id"] == "assistance_core")


def household(db, hh_no: str = "H1") -> dict[str, int]:
    with Session(db) as s:
        row = s.get(HouseholdBalance, (hh_no, 2024))
        return {} if row is None else {k: int(v) for k, v in row.acc_values.items()}


def test_the_household_cap_bounds_members_in_sequence_to_the_fen(store_url):
    db, packs = seed(store_url, {"A1": "H1", "A2": "H1", "A3": "H1", "B1": "H2"})
    visits = {p: visit(db, packs, p) for p in ("A1", "A2", "A3", "B1")}
    pre = settle(db, packs, visits["A1"], write=False)
    assert assistance(pre) == FIRST and household(db) == {}  # 预结算 writes nothing
    a1 = settle(db, packs, visits["A1"])
    assert assistance(a1) == FIRST and a1["setlinfo"]["maf_pay"] >= Decimal("27961.50")
    assert household(db) == {"hhcap:assistance_core": FIRST, "hhpaid:assistance_core": FIRST}
    pre2 = settle(db, packs, visits["A2"], write=False)  # reads the household unlocked, as the person's balance
    a2 = settle(db, packs, visits["A2"])
    assert assistance(pre2) == assistance(a2) == SECOND  # 50,000.00 − 27,961.50
    a3 = settle(db, packs, visits["A3"])
    assert assistance(a3) == 0
    assert household(db) == {"hhcap:assistance_core": 3 * FIRST, "hhpaid:assistance_core": CAP}
    b1 = settle(db, packs, visits["B1"])  # another household: its own cap
    assert assistance(b1) == FIRST and household(db, "H2") == {"hhcap:assistance_core": FIRST,
                                                                 "hhpaid:assistance_core": FIRST}
    # the statement says the household's cap, what it had used and what this member got, with the arithmetic
    with Session(db) as s:
        _, rec = tx.settlement_record(s, HIS, a2["setlinfo"]["setl_id"])
    line = next(x for x in rec["explanation"] if "家庭年度限额" in x)
    assert line == ("  家庭年度限额 50,000.00 元(同户成员合计), 本户此前已用 27,961.50 元, 尚余 22,038.50 元;"
                    " 个人限额内本次可付 27,961.50 元, 本次可付 min(27,961.50, 22,038.50) = 22,038.50 元。")
    # the household ledger is chained and its balance is the fold of its rows
    with db.connect() as conn:
        report = chain.verify(conn)
        assert not report.problems and report.rows["household_ledger"] == 4
        assert ledger.verify(conn) == []


def test_online_settlement_equals_settle_in_order_to_the_fen(store_url):
    members = {"A1": "H1", "A2": "H1", "A3": "H1", "B1": "H2", "B2": "H2"}
    db, packs = seed(store_url, members)
    order = [("A1", "52000.00"), ("B1", "180000.00"), ("A2", BIG), ("A1", "86000.00"), ("B2", BIG),
             ("A3", BIG), ("B1", "120000.00")]
    online, days = [], {}
    for k, (psn_no, price) in enumerate(order):
        at = datetime(2024, 3 + k, 2, 9, 0)
        mdtrt_id = visit(db, packs, psn_no, price, at)
        out = settle(db, packs, mdtrt_id, at=at)
        online.append(out)
        days[mdtrt_id] = at.date()
    pack = CompiledPack(resolve_pack(PACK))
    persons = {p: EnginePerson(p, "390", frozenset({"dibao"}), False, 64, "1", hh_no=h) for p, h in members.items()}
    ref = engine.settle_in_order(pack, persons, [
        (o["setlinfo"]["psn_no"], EngineVisit(
            mdtrt_id=o["setlinfo"]["mdtrt_id"], med_type="21", level="1", setl_date=days[o["setlinfo"]["mdtrt_id"]],
            fixmedins_code=sample.HOSPITAL,
            items=(EngineItem("F000001", "X00001", yuan_to_fen(price), Decimal(1), yuan_to_fen(price), "01"),)))
        for o, (_, price) in zip(online, order)])
    for o, r in zip(online, ref):
        assert {f: yuan_to_fen(str(o["setlinfo"][f])) for f in r.setlinfo.as_dict()} == r.setlinfo.as_dict()
        assert [(d["rule_id"], yuan_to_fen(str(d["fund_payamt"]))) for d in o["setldetail"]] == [
            (d.rule_id, d.fund_payamt) for d in r.setldetail]
    assert household(db, "H1") == dict(ref[5].household_after.values)  # A3's settlement is H1's last
    assert household(db, "H2") == dict(ref[6].household_after.values)
    h1 = household(db, "H1")
    assert h1["hhpaid:assistance_core"] == min(h1["hhcap:assistance_core"], CAP) == CAP  # H1 reached its cap
    assert sum(assistance(o) for o in online[:1] + online[2:4] + online[5:6]) == CAP
    assert assistance(online[5]) < FIRST  # A3 was cut by the household's cap, not its own


def test_reversal_takes_the_latest_off_and_refuses_an_earlier_one(store_url):
    db, packs = seed(store_url, {"A1": "H1", "A2": "H1", "A3": "H1"})
    a1, a2, a3 = (settle(db, packs, visit(db, packs, p)) for p in ("A1", "A2", "A3"))
    ids = [x["setlinfo"]["setl_id"] for x in (a1, a2, a3)]
    with pytest.raises(Conflict) as refused:  # A2 counted against the cap after A1 (后结先撤 within the household)
        reverse(db, ids[0])
    assert refused.value.problems[0].code == "SET041" and refused.value.status == 409
    assert household(db) == {"hhcap:assistance_core": 3 * FIRST, "hhpaid:assistance_core": CAP}  # nothing written
    with pytest.raises(Conflict) as also:
        reverse(db, ids[1])
    assert also.value.problems[0].code == "SET041"
    back = reverse(db, ids[2])  # A3 let 27,961.50 through its own cap and was paid 0: both come off
    assert back["setlinfo"]["refd_setl_id"] == ids[2]
    assert household(db) == {"hhcap:assistance_core": 2 * FIRST, "hhpaid:assistance_core": CAP}
    reverse(db, ids[1])
    assert household(db) == {"hhcap:assistance_core": FIRST, "hhpaid:assistance_core": FIRST}
    again = settle(db, packs, visit(db, packs, "A3"))  # A3 again, now second in the household
    assert assistance(again) == SECOND
    with pytest.raises(Conflict):
        reverse(db, ids[0])
    with Session(db) as s:
        kinds = [(r.setl_id, r.kind) for r in s.scalars(select(HouseholdLedger).order_by(HouseholdLedger.seq))]
    assert kinds == [(ids[0], "settle"), (ids[1], "settle"), (ids[2], "settle"), (ids[2], "reverse"),
                     (ids[1], "reverse"), (again["setlinfo"]["setl_id"], "settle")]
    with db.connect() as conn:
        assert not chain.verify(conn).problems and ledger.verify(conn) == []


def test_a_member_without_household_number_is_refused_with_set009(store_url):
    db, packs = seed(store_url, {"A1": None, "N1": None}, category="dibao")
    mdtrt_id = visit(db, packs, "A1")
    for write in (False, True):
        with pytest.raises(YibaoError) as refused:
            settle(db, packs, mdtrt_id, write=write)
        assert [p.code for p in refused.value.problems] == ["SET009"]
    with Session(db) as s:
        assert s.scalars(select(HouseholdBalance)).all() == []


def test_a_member_no_household_capped_tier_touches_settles_without_household_rows(store_url):
    db, packs = seed(store_url, {"N1": "H9"}, category="")  # no 救助 category: assistance tiers never apply
    out = settle(db, packs, visit(db, packs, "N1"))
    assert assistance(out) == 0
    assert household(db, "H9") == {}
    with Session(db) as s:
        assert s.scalars(select(HouseholdLedger)).all() == []
    reverse(db, out["setlinfo"]["setl_id"])  # reverses as any settlement


# --- 补差 (handling/topup) with household caps ---------------------------------------------------------------


def _topup(db, packs, psn_no: str, category: str):
    """A late category (as an approval records it) and the 补差 of 2024 re-run under it."""
    with Session(db) as s, s.begin():
        s.add(PersonCategory(psn_no=psn_no, category=category, issuing_dept="医保依申请救助",
                             valid_from=date(2024, 1, 1), valid_to=date(2024, 12, 31)))
        s.flush()
        row = topup(s, Principal("rechecker", "rechecker"), packs, case_no="C1", psn_no=psn_no, year=2024,
                    at=datetime(2024, 11, 1, 9, 0))
        return None if row is None else dict(row.totals)


def test_topup_reruns_on_the_stored_household_state_when_the_household_count_is_unchanged(store_url):
    db, packs = seed(store_url, {"A1": "H1", "A2": "H1"})
    with Session(db) as s, s.begin():  # N1: same household, no category yet; T1: its twin approved from 1 January
        for i, (psn_no, hh_no, cats) in enumerate((("N1", "H1", {}), ("T1", "H3", {"illness_poverty": "民政"}))):
            registry.add_person(s, psn_no=psn_no, certno=sample.certno(150 + i), psn_name=f"户员N{i}", insutype="390",
                                admdvs=sample.ADMDVS, valid_from=date(2024, 1, 1), valid_to=date(2024, 12, 31),
                                gend="1", categories=cats, hh_no=hh_no)
    a1, a2 = (settle(db, packs, visit(db, packs, p)) for p in ("A1", "A2"))
    assert (assistance(a1), assistance(a2)) == (FIRST, SECOND)
    n1 = settle(db, packs, visit(db, packs, "N1", "100000.00"))
    t1 = settle(db, packs, visit(db, packs, "T1", "100000.00"))
    before = household(db)
    # A2 approved late (illness_poverty) changes nothing: its re-run on the household state it found (A1's
    # 27,961.50 already counted) pays the same 22,038.50 — on an empty household it would pay 27,961.50
    assert _topup(db, packs, "A2", "illness_poverty") is None
    # N1's 依申请救助 tier has no household cap: the 补差 is made, equal to its twin's fresh settlement
    totals = _topup(db, packs, "N1", "illness_poverty")
    assert totals is not None and yuan_to_fen(str(n1["setlinfo"]["maf_pay"])) + totals["maf_pay"] == yuan_to_fen(str(t1["setlinfo"]["maf_pay"]))
    assert totals["maf_pay"] > 0 and household(db) == before


def test_topup_that_would_change_a_household_count_is_refused_with_hhd001(store_url):
    db, packs = seed(store_url, {"A1": "H1"})
    with Session(db) as s, s.begin():  # D1, same household, was not 低保 when it settled
        registry.add_person(s, psn_no="D1", certno=sample.certno(160), psn_name="户员D", insutype="390",
                            admdvs=sample.ADMDVS, valid_from=date(2024, 1, 1), valid_to=date(2024, 12, 31),
                            gend="1", hh_no="H1")
    settle(db, packs, visit(db, packs, "A1"))
    d1 = settle(db, packs, visit(db, packs, "D1"))
    assert assistance(d1) == 0
    before = household(db)
    with pytest.raises(YibaoError) as refused:
        _topup(db, packs, "D1", "dibao")  # 低保 recognised late: assistance_core would now count D1's share
    assert [p.code for p in refused.value.problems] == ["HHD001"]
    assert "同户此后的结算是在原金额之上计算限额的" in refused.value.problems[0].message
    assert household(db) == before
    with Session(db) as s:
        assert s.scalars(select(HdTopup)).all() == []  # nothing written


def test_self_service_page_shows_the_household_cap_left(store_url):
    db, packs = seed(store_url, {"A1": "H1", "A2": "H1"})
    settle(db, packs, visit(db, packs, "A1"))
    pack = packs.pick(sample.ADMDVS, date(2024, 6, 1))
    acc = Accumulators(2024)  # A2 has settled nothing yet; its household has
    with Session(db) as s:
        hh = ledger.household_accumulators(s, "H1", 2024)
    rows = [r for r in limits(pack, "390", frozenset({"dibao"}), acc, household=hh) if r["kind"].startswith("家庭")]
    assert [(r["name"], r["limit"], r["used"], r["left"], r["share"]) for r in rows] == [
        ("医疗救助(特困人员、低保对象、返贫致贫人口)", Decimal("50000.00"), Decimal("27961.50"), Decimal("22038.50"), 56)]
    assert not [r for r in limits(pack, "390", frozenset({"dibao"}), acc) if r["kind"].startswith("家庭")]


# --- property: online with reversals = the scalar reference of what stays settled --------------------------------

OPS = st.lists(st.one_of(st.tuples(st.sampled_from(["A1", "A2", "A3"]),
                                   st.sampled_from(["41000.00", "100000.00", "180000.00", BIG])),
                         st.just(("reverse", ""))), min_size=1, max_size=7)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
def test_any_order_of_members_and_reversals_matches_settle_in_order(ops, _sqlite_template, tmp_path_factory):
    """Members of one household settle in any order, and the latest settlement is reversed at any point: what
    stays settled online equals, to the fen, ``engine.settle_in_order`` of those settlements in their order —
    so the household's cap is never exceeded (hhpaid = min(hhcap, cap)) whatever the order."""
    path = tmp_path_factory.mktemp("hh") / "yibao.db"
    shutil.copy(_sqlite_template, path)
    members = {"A1": "H1", "A2": "H1", "A3": "H1"}
    db, packs = seed(f"sqlite:///{path}", members)
    stack: list[tuple[dict, str, date]] = []  # valid settlements, latest last
    for k, (who, price) in enumerate(ops):
        at = datetime(2024, 1 + k, 3, 9, 0)
        if who == "reverse":
            if stack:
                reverse(db, stack.pop()[0]["setlinfo"]["setl_id"])
            continue
        stack.append((settle(db, packs, visit(db, packs, who, price, at), at=at), price, at.date()))
    pack = CompiledPack(resolve_pack(PACK))
    persons = {p: EnginePerson(p, "390", frozenset({"dibao"}), False, 63, "1", hh_no=h) for p, h in members.items()}
    ref = engine.settle_in_order(pack, persons, [
        (o["setlinfo"]["psn_no"], EngineVisit(
            mdtrt_id=o["setlinfo"]["mdtrt_id"], med_type="21", level="1", setl_date=day, fixmedins_code=sample.HOSPITAL,
            items=(EngineItem("F000001", "X00001", yuan_to_fen(price), Decimal(1), yuan_to_fen(price), "01"),)))
        for o, price, day in stack])
    for (o, _, _), r in zip(stack, ref):
        assert {f: yuan_to_fen(str(o["setlinfo"][f])) for f in r.setlinfo.as_dict()} == r.setlinfo.as_dict()
    hh = household(db)
    assert hh == (dict(ref[-1].household_after.values) if ref else {})
    assert hh.get("hhpaid:assistance_core", 0) == min(hh.get("hhcap:assistance_core", 0), CAP)
    db.dispose()


# --- the platform face: 2206 / 2207 / 2208 ---------------------------------------------------------------------


def test_platform_answers_household_caps_and_set041(store_url):
    db, packs = seed(store_url, {"A1": "H1", "A2": "H1", "N1": None})
    keys = sample.make_keys()
    app = create_app(store_url, packs=packs, keys=keys.ring)
    with TestClient(app) as client:
        his = Platform(client, keys.keys["his1"])

        def admit(psn_no: str) -> str:
            mdtrt_id = his.ok("2201", {"data": {"psn_no": psn_no, "insutype": "390", "med_type": "21",
                                                "begntime": "2024-03-05 09:00:00"}})["data"]["mdtrt_id"]
            his.ok("2204", {"feedetail": [{"feedetl_sn": "F1", "med_list_codg": "X1", "chrgitm_lv": "01", "pric": BIG,
                                           "cnt": "1", "det_item_fee_sumamt": BIG, "mdtrt_id": mdtrt_id,
                                           "psn_no": psn_no}]})
            return mdtrt_id

        first, second, none = admit("A1"), admit("A2"), admit("N1")
        s1 = his.ok("2207", {"data": {"psn_no": "A1", "mdtrt_id": first}})
        pre = his.ok("2206", {"data": {"psn_no": "A2", "mdtrt_id": second}})
        s2 = his.ok("2207", {"data": {"psn_no": "A2", "mdtrt_id": second}})
        assert [assistance(x) for x in (s1, pre, s2)] == [FIRST, SECOND, SECOND]
        refused = his("2208", {"data": {"psn_no": "A1", "mdtrt_id": first, "setl_id": s1["setlinfo"]["setl_id"]}})
        assert refused["infcode"] == -1 and "SET041" in refused["err_msg"]
        no_hh = his("2207", {"data": {"psn_no": "N1", "mdtrt_id": none}})
        assert no_hh["infcode"] == -1 and "SET009" in no_hh["err_msg"] and "hh_no" in no_hh["err_msg"]
        his.ok("2208", {"data": {"psn_no": "A2", "mdtrt_id": second, "setl_id": s2["setlinfo"]["setl_id"]}})
        his.ok("2208", {"data": {"psn_no": "A1", "mdtrt_id": first, "setl_id": s1["setlinfo"]["setl_id"]}})
    app.state.desk.engine.dispose()
    assert household(db) == {}


def test_a_household_number_changed_between_the_read_and_the_lock_is_refused_with_hhd002(store_url, monkeypatch):
    """The household is found by an unlocked read before the locks; a person whose hh_no is not the locked
    household's by the time the visit is read under its lock is answered 409, nothing written."""
    db, packs = seed(store_url, {"A1": "H1"})
    mdtrt_id = visit(db, packs, "A1")
    found = tx._lock_household_of

    def moved(session, packs, mdtrt_id, on):  # H1 locked, then the person is seen in H7
        state = found(session, packs, mdtrt_id, on)
        session.execute(update(PersonRow).where(PersonRow.psn_no == "A1").values(hh_no="H7"))
        return state

    monkeypatch.setattr(tx, "_lock_household_of", moved)
    with pytest.raises(Conflict) as refused:
        settle(db, packs, mdtrt_id)
    assert refused.value.problems[0].code == "HHD002" and refused.value.status == 409
    monkeypatch.setattr(tx, "_lock_household_of", found)
    assert assistance(settle(db, packs, mdtrt_id)) == FIRST  # nothing was written: it settles as before
