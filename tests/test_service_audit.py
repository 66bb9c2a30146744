"""The online audit inside the service: the store's rows reach the rules in the same form as the
claims schema's rows do, and a settlement's hits are the library's hits for that visit and history.

The service skips the claims-schema path (Decimal yuan, every value checked) because its rows come
from its own store; these tests hold it to the same values and the same hits.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session

from test_service_flow import Platform, world  # noqa: F401  (fixture)
from yibao.money import fen_to_yuan
from yibao.service import precheck, registry, sample
from yibao.store.models import FeeItem, Institution, Person, Visit
from yibao.supervision import online

AT = datetime(2024, 3, 5, 10, 0)


@pytest.fixture(autouse=True)
def _audit_on(monkeypatch):
    monkeypatch.setenv("YIBAO_ONLINE_AUDIT", "on")


def claims_item(i: FeeItem) -> dict:
    """A stored fee item as the claims schema names it (the reference form: Decimal yuan)."""
    return {"feedetl_sn": i.feedetl_sn, "mdtrt_id": i.mdtrt_id, "med_list_codg": i.med_list_codg,
            "chrgitm_lv": i.chrgitm_lv, "pric": None if i.pric_fen is None else fen_to_yuan(i.pric_fen),
            "cnt": i.cnt, "det_item_fee_sumamt": fen_to_yuan(i.det_item_fee_sumamt_fen),
            "preselfpay_ratio": i.preselfpay_ratio, "fee_ocur_time": i.fee_ocur_time}


def claims_visit(v: Visit, level: str, setl_time: datetime, items: list[FeeItem]) -> dict:
    return {"mdtrt_id": v.mdtrt_id, "psn_no": v.psn_no, "insutype": v.insutype, "med_type": v.med_type,
            "fixmedins_code": v.fixmedins_code, "level": level, "begntime": v.begntime,
            "endtime": v.endtime or setl_time, "setl_time": setl_time, "dise_codg": v.dise_codg,
            "referral_from_level": v.referral_from_level,
            "medfee_sumamt": fen_to_yuan(sum(i.det_item_fee_sumamt_fen for i in items))}


@given(st.integers(min_value=0, max_value=10**15 - 1))
def test_an_amount_in_fen_is_the_float_the_checked_path_makes_of_its_yuan(fen):
    field = online._schema("fee_items").field("det_item_fee_sumamt")
    assert online.amount_value(fen) == online._value("fee_items", field, fen_to_yuan(fen))


@given(st.decimals(min_value=0, max_value=10**6, places=4, allow_nan=False, allow_infinity=False),
       st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)))
def test_counts_and_times_take_the_checked_path_form(cnt, t):
    schema = online._schema("fee_items")
    assert online.count_value(cnt) == online._value("fee_items", schema.field("cnt"), cnt)
    assert online.time_value(t) == online._value("fee_items", schema.field("fee_ocur_time"), t)


def lines(codes: list[str], start: int) -> list[dict]:
    return [{"feedetl_sn": f"F{start + k:06d}", "med_list_codg": code, "chrgitm_lv": "01", "pric": "120.00",
             "cnt": "1", "det_item_fee_sumamt": "120.00"} for k, code in enumerate(codes)]


def visit_with(his: Platform, psn_no: str, codes: list[str], start: int, begntime: str = "2024-03-05 09:00:00") -> str:
    mdtrt_id = his.ok("2201", {"data": {"psn_no": psn_no, "insutype": "310", "begntime": begntime,
                                        "med_type": "11"}})["data"]["mdtrt_id"]
    his.ok("2204", {"feedetail": [dict(x, mdtrt_id=mdtrt_id, psn_no=psn_no) for x in lines(codes, start)]})
    return mdtrt_id


def hit_key(h: dict) -> tuple:
    return h["rule_id"], h["mdtrt_id"], tuple(h["feedetl_sns"]), Decimal(str(h["amount"]))


def test_settlement_hits_are_the_library_hits_for_the_visit_and_its_history(world):  # noqa: F811
    """Chest CT twice within 7 days (SV-DUP-02 needs the earlier, settled visit); a 宫颈 test for a
    man (SV-GEND-01, blocking) refuses 2207 and writes nothing."""
    client, keys, engine = world
    his = Platform(client, keys.keys["his1"])
    psn_no = "P000000002"  # gend 1
    first = visit_with(his, psn_no, ["SV-S-CTCH", "X00001"], 1, begntime="2024-03-01 09:00:00")
    his.ok("2207", {"data": {"psn_no": psn_no, "mdtrt_id": first}})
    second = visit_with(his, psn_no, ["SV-S-CTCH", "X00002", "SV-S-TCT"], 11)

    with Session(engine) as s:
        visits = {v.mdtrt_id: v for v in s.scalars(select(Visit).where(Visit.psn_no == psn_no))}
        items = {m: list(s.scalars(select(FeeItem).where(FeeItem.mdtrt_id == m).order_by(FeeItem.feedetl_sn)))
                 for m in visits}
        person = s.get(Person, psn_no)
        inst = s.get(Institution, sample.HOSPITAL)
        v2, v1 = visits[second], visits[first]
        person_row = precheck.person_row(person, "310", frozenset(), registry.age_on(person.brdy, AT.date()))
        inst_row = {"fixmedins_code": inst.fixmedins_code, "fixmedins_name": inst.fixmedins_name,
                    "level": inst.level, "admdvs": inst.admdvs}
        # of the earlier visit's lines, only the listed exam the current visit also has (SV-DUP-02)
        wanted = online.history_codes(precheck._ruleset(), "during", items[second])
        assert wanted == {"SV-S-CTCH"}
        earlier_lines = [i for i in items[first] if i.med_list_codg in wanted]
        reference = {"persons": [person_row], "institutions": [inst_row],
                     "visits": [claims_visit(v2, inst.level, AT, items[second]),
                                claims_visit(v1, inst.level, v1.endtime, items[first])],
                     "fee_items": [claims_item(i) for i in items[second] + earlier_lines]}
        # the store path's values, table by table, equal the checked path's
        history = precheck.history(s, v2, AT, wanted)
        assert [(h.mdtrt_id, [i.item_feedetl_sn for i in its]) for h, its in history] == [
            (first, [i.feedetl_sn for i in earlier_lines])]
        store_values = {"visits": [precheck.visit_values(v2, inst.level, AT, 360_00)]
                        + [precheck.visit_values(h, h.inst_level, h.endtime, h.medfee_fen) for h, _ in history],
                        "fee_items": [precheck.item_values(i) for i in items[second]]
                        + [precheck.item_values(i, "item_") for _, its in history for i in its]}
    checked = online._database().convert(reference)
    assert store_values["visits"] == checked["visits"]
    assert store_values["fee_items"] == checked["fee_items"]

    expected = online.precheck(person_row, inst_row, reference["visits"][0], reference["fee_items"][:3],
                               [(reference["visits"][1], reference["fee_items"][3:])], stage="during",
                               params=precheck._ruleset()).to_dict()
    assert {h["rule_id"] for h in expected["blocking"]} == {"SV-GEND-01"}
    assert "SV-DUP-02" in {h["rule_id"] for h in expected["warnings"]}

    pre = his.ok("2206", {"data": {"psn_no": psn_no, "mdtrt_id": second}})
    assert [h["rule_id"] for h in pre["blocking"]] == ["SV-GEND-01"]
    refused = his("2207", {"data": {"psn_no": psn_no, "mdtrt_id": second}})
    assert refused["infcode"] == -1 and "SUP001" in refused["err_msg"] and "SV-GEND-01" in refused["err_msg"]

    # the same hits through the service: drop the blocking line's rule from the comparison by
    # settling a copy of the visit without it
    third = visit_with(his, psn_no, ["SV-S-CTCH", "X00002"], 21)
    done = his.ok("2207", {"data": {"psn_no": psn_no, "mdtrt_id": third}})
    assert done["blocking"] == []
    with Session(engine) as s:
        v3 = s.get(Visit, third)
        its3 = list(s.scalars(select(FeeItem).where(FeeItem.mdtrt_id == third).order_by(FeeItem.feedetl_sn)))
        v3_row = claims_visit(v3, inst.level, AT, its3)
        v3_row["endtime"] = v3_row["setl_time"] = AT
    expected3 = online.precheck(person_row, inst_row, v3_row, [claims_item(i) for i in its3],
                                [(reference["visits"][1], reference["fee_items"][3:])], stage="during",
                                params=precheck._ruleset()).to_dict()
    assert "SV-DUP-02" in {h["rule_id"] for h in expected3["warnings"]}
    assert sorted(map(hit_key, done["warnings"])) == sorted(map(hit_key, expected3["warnings"]))


def test_history_codes_are_the_listed_codes_the_visit_has():
    rules = precheck._ruleset()
    assert online.history_codes(rules, "during", [{"med_list_codg": "SV-S-CTCH"}, {"med_list_codg": "X1"},
                                                  {"feedetl_sn": "F3"}]) == {"SV-S-CTCH"}
    assert online.history_codes(rules, "pre", [{"med_list_codg": "SV-S-CTCH"}]) == frozenset()  # no pre rule reads them
