"""Hostile but well-formed-looking input at the service's door: refused with a code, nothing written,
never an HTTP 500 (the platform endpoint promises HTTP 200 with an infcode).

Each test here failed before its fix: quantities finer than the store holds, identifiers carrying NUL /
RTL-override / zero-width characters / markup, lone surrogates, JSON nested 100k deep, amounts whose
sums overflow 64 bits, implausible visits and declared totals, an unknown psn_no.
"""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from yibao.errors import RequestError
from yibao.service import sample
from yibao.settlement.request import parse_request
from yibao.store.models import AuditLog, FeeItem, IdempotencyRecord, Settlement, Visit

from test_service_flow import PATH, Platform, world  # noqa: F401  (fixture)

IMPLANT = "SD-EX-M001"  # shandong-2024: 乙类植入耗材, price cap 3000.00, 先行自付 20%


def written(engine) -> dict[str, int]:
    with Session(engine) as s:
        return {m.__tablename__: s.scalar(select(func.count()).select_from(m)) or 0
                for m in (Visit, FeeItem, Settlement, IdempotencyRecord, AuditLog)}


def register(his: Platform, psn_no: str = "P000000001", med_type: str = "21") -> str:
    return his.ok("2201", {"data": {"psn_no": psn_no, "insutype": "390", "begntime": "2024-03-05 09:00:00",
                                    "med_type": med_type}})["data"]["mdtrt_id"]


def implant(mdtrt_id: str, cnt: str, amount: str) -> dict:
    return {"feedetl_sn": "F1", "med_list_codg": IMPLANT, "chrgitm_lv": "02", "pric": "4000.00", "cnt": cnt,
            "det_item_fee_sumamt": amount, "mdtrt_id": mdtrt_id, "psn_no": "P000000001"}


# --- stored amounts are exactly what was settled -------------------------------------------------


def test_a_quantity_finer_than_the_store_holds_is_refused_at_upload(world):
    client, keys, engine = world
    his = Platform(client, keys.keys["his1"])
    mdtrt_id = register(his)
    before = written(engine)
    # 4000.00 × 1.00005 = 4000.20; stored as cnt 1.0001 it would have settled 1000.10 over the cap, not 1000.05
    answer = his("2204", {"feedetail": [implant(mdtrt_id, "1.00005", "4000.20")]})
    assert answer["infcode"] == -1
    assert "[FSI020] input.feedetail[0].cnt: 数量 cnt 最多 4 位小数, 实际为 1.00005" in answer["err_msg"]
    assert written(engine) == before
    with pytest.raises(RequestError) as refused:  # yibao settle refuses it alike
        parse_request({"person": {"psn_no": "P1", "insutype": "390"},
                       "visit": {"mdtrt_id": "M1", "med_type": "21", "level": "1", "setl_time": "2024-03-05",
                                 "items": [{k: v for k, v in implant("M1", "1.00005", "4000.20").items()
                                            if k not in ("mdtrt_id", "psn_no")}]}})
    assert refused.value.problems[0].code == "REQ010" and "cnt" in refused.value.problems[0].path


def test_four_decimals_settle_exactly_as_classified_at_upload(world):
    client, keys, _ = world
    his = Platform(client, keys.keys["his1"])
    mdtrt_id = register(his)
    # 4000.00 × 1.0001 = 4000.40; over the cap (4000.00 − 3000.00) × 1.0001 = 1000.10
    line = his.ok("2204", {"feedetail": [implant(mdtrt_id, "1.0001", "4000.40")]})["result"][0]
    assert line["overlmt_amt"] == Decimal("1000.10")
    pre = his.ok("2206", {"data": {"psn_no": "P000000001", "mdtrt_id": mdtrt_id}})["setlinfo"]
    done = his.ok("2207", {"data": {"psn_no": "P000000001", "mdtrt_id": mdtrt_id}})["setlinfo"]
    assert pre["overlmt_selfpay"] == done["overlmt_selfpay"] == Decimal("1000.10")
    assert pre["hifp_pay"] == done["hifp_pay"]
