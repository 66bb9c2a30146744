"""异地就医: 就医地目录、参保地政策 (issue 16). An offsite visit's lines are classified by the catalogue of the
pack loaded for the institution's area, and settled by the insured's pack: a 济南 resident in a 吉首 hospital has
吉首's catalogue codes accepted and classified as 吉首 lists them, and Shandong's ratio (with its 异地 points)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import pytest
from sqlalchemy.orm import Session

from yibao.errors import YibaoError
from yibao.service import registry, sample
from yibao.service import transactions as tx
from yibao.service.auth import Principal
from yibao.service.packs import PackSet
from yibao.settlement.classify import classify_items
from yibao.settlement.engine import settle as engine_settle
from yibao.settlement.model import Accumulators, FeeItem, Person, Visit
from yibao.settlement.request import FeeItemIn
from yibao.store.database import make_engine

JISHOU_2024 = """extends: jishou-2022
pack: {id: jishou-2024-example, version: "2024.1", effective_from: 2024-01-01, effective_to: 2024-12-31}
"""  # 吉首's rules and catalogue moved to 2024, so a 2024 visit there has a 就医地 pack in force


@pytest.fixture(scope="module")
def PACKS(tmp_path_factory):
    path = tmp_path_factory.mktemp("packs") / "jishou-2024.yaml"
    path.write_text(JISHOU_2024, encoding="utf-8")
    return PackSet.load(["shandong-2024-offsite", str(path)])
JISHOU = "H43310100001"
DAY = date(2024, 6, 3)
AT = datetime(2024, 6, 3, 9)
LINES = [  # 吉首 catalogue codes, no class given: only 吉首's catalogue knows them
    {"feedetl_sn": "F1", "med_list_codg": "JS-EX-D001", "pric": "12.00", "cnt": "100", "det_item_fee_sumamt": "1200.00"},
    {"feedetl_sn": "F2", "med_list_codg": "JS-EX-S001", "pric": "300.00", "cnt": "5", "det_item_fee_sumamt": "1500.00"},
    {"feedetl_sn": "F3", "med_list_codg": "JS-EX-S002", "pric": "500.00", "cnt": "1", "det_item_fee_sumamt": "500.00"},
]


@pytest.fixture
def engine(store_url):
    eng = make_engine(store_url)
    with Session(eng) as s, s.begin():
        sample.seed(s, 4)  # insured in 370102 (济南)
        registry.add_institution(s, code=JISHOU, name="吉首示例医院", level="3", admdvs="433101",
                                 designated_from=date(2024, 1, 1), designated_to=date(2024, 12, 31))
    yield eng
    eng.dispose()


def _visit(s, his, lines, PACKS):
    v = tx.register_visit(s, his, tx.Context("v", "x", AT), fixmedins_code=JISHOU, psn_no="P000000003",
                          insutype="390", med_type="21", begntime=AT)
    tx.upload_items(s, his, tx.Context("u", "x", AT), PACKS, mdtrt_id=v["mdtrt_id"],
                    items=[FeeItemIn.model_validate(x) for x in lines])
    return v["mdtrt_id"]


def test_offsite_lines_follow_the_mdtrt_catalogue_and_the_insured_rules(engine, PACKS):
    his = Principal("his", "institution", JISHOU)
    with Session(engine) as s, s.begin():
        mdtrt_id = _visit(s, his, LINES, PACKS)
    with Session(engine) as s, s.begin():
        out = tx.settle(s, his, tx.Context("s", "x", AT), PACKS, mdtrt_id=mdtrt_id)
    info = out["setlinfo"]
    # 吉首's catalogue (within its price caps): D001 甲类 in scope, S001 乙类 with 10% first paid by the person,
    # S002 丙类 out of scope: 1,200 + 1,350 in scope, 150 先行自付, 500 全自费
    assert (info["inscp_scp_amt"], info["preselfpay_amt"], info["fulamt_ownpay_amt"], info["overlmt_selfpay"]) == (
        Decimal("2550.00"), Decimal("150.00"), Decimal("500.00"), Decimal("0.00"))
    # Shandong's rules settle it: the same amounts through the engine with the insured's pack
    jishou, shandong = PACKS.pick("433101", DAY), PACKS.pick("370102", DAY)
    items = tuple(FeeItem(x["feedetl_sn"], x["med_list_codg"], int(Decimal(x["det_item_fee_sumamt"]) * 100),
                          cnt=Decimal(x["cnt"]), pric=int(Decimal(x["pric"]) * 100)) for x in LINES)
    expected = engine_settle(shandong, Person("P000000003", "390"),
                             Visit("V", "21", "3", DAY, offsite_status="unfiled", amounts=classify_items(jishou, items)),
                             Accumulators(2024)).setlinfo
    assert info["hifp_pay"] == Decimal(expected.hifp_pay) / 100 and info["pack_id"] == shandong.id
    assert any(w["rule_id"] == "HDL062" and "jishou-2024-example" in w["message"] for w in out["warnings"])


def test_a_code_only_the_insured_catalogue_knows_is_refused_offsite(engine, PACKS):
    his = Principal("his", "institution", JISHOU)
    with pytest.raises(YibaoError) as e, Session(engine) as s, s.begin():
        _visit(s, his, [{"feedetl_sn": "F9", "med_list_codg": "SD-EX-D001", "pric": "10.00", "cnt": "1",
                         "det_item_fee_sumamt": "10.00"}], PACKS)
    assert e.value.problems[0].path.startswith("input.feedetail[0]")
