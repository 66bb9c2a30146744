"""Issue 20's rules through the settlement service: the store keeps what they read (收费项目类别 per
line, 主治医生 per visit, 机构类型), the pre-check passes the earlier visits' institutions and the
baseline table batch learned, so a visit the batch audit flags is flagged online with the same rule id,
lines and amount. Before this, the service passed none of them and these rules found nothing online.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

import pyarrow.parquet as pq
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from test_service_flow import Platform, world  # noqa: F401  (fixture)
from test_supervision_issue20 import INSTS, LEARNED, NEW, batch_hits, region  # noqa: F401  (fixture)
from yibao.money import yuan_to_fen
from yibao.service import precheck, registry, sample
from yibao.store.database import make_engine
from yibao.store.models import FeeItem, Institution, Person, Visit
from yibao.supervision import online

ONLINE = [r for r in NEW if r != "SV-ID-04"]  # SV-ID-04 (travel time) is an after-settlement rule


@pytest.fixture(autouse=True)
def _audit_on(monkeypatch):
    monkeypatch.setenv("YIBAO_ONLINE_AUDIT", "on")


@pytest.fixture
def learned():
    online.set_baselines(online.Baselines(LEARNED))
    yield
    online.set_baselines(None)


def _store(store_url, tables) -> None:
    """The issue-20 region as the service stores it: what 2201 and 2204 would have written."""
    start, end = date(2024, 1, 1), date(2024, 12, 31)
    with Session(make_engine(store_url)) as s, s.begin():
        for i in INSTS:
            registry.add_institution(s, code=i["fixmedins_code"], name=i["fixmedins_name"], level=i["level"],
                                     admdvs=i["admdvs"], designated_from=start, designated_to=end,
                                     fixmedins_type=i["fixmedins_type"])
        for k, p in enumerate(tables["persons"].to_pylist()):
            registry.add_person(s, psn_no=p["psn_no"], certno=sample.certno(k + 1), psn_name="稽核测试人",
                                insutype="390", admdvs="370102", valid_from=start, valid_to=end, gend=p["gend"])
        for v in tables["visits"].to_pylist():
            s.add(Visit(mdtrt_id=v["mdtrt_id"], psn_no=v["psn_no"], fixmedins_code=v["fixmedins_code"],
                        insutype="390", insuplc_admdvs="370102", med_type=v["med_type"], begntime=v["begntime"],
                        endtime=v["endtime"], dise_codg=v["dise_codg"], ipt_otp_no=v["mdtrt_id"],
                        atddr_no=v["atddr_no"], referral_from_level=v["referral_from_level"], status="registered",
                        created_at=v["begntime"]))
        s.flush()
        for it in tables["fee_items"].to_pylist():
            s.add(FeeItem(mdtrt_id=it["mdtrt_id"], feedetl_sn=it["feedetl_sn"], med_list_codg=it["med_list_codg"],
                          chrgitm_lv=it["chrgitm_lv"], pric_fen=yuan_to_fen(it["pric"]), cnt=it["cnt"],
                          det_item_fee_sumamt_fen=yuan_to_fen(it["det_item_fee_sumamt"]),
                          fee_ocur_time=it["fee_ocur_time"], med_chrgitm_type=it["med_chrgitm_type"]))
        # a visit the region gives a total but no lines: in the service a visit's total is the sum of its
        # lines, so it gets one line of that total (a bed-day code no rule lists)
        billed = {it["mdtrt_id"] for it in tables["fee_items"].to_pylist()}
        for v in tables["visits"].to_pylist():
            if v["mdtrt_id"] not in billed:
                s.add(FeeItem(mdtrt_id=v["mdtrt_id"], feedetl_sn=v["mdtrt_id"] + "-BED", med_list_codg="SV-X-BED",
                              chrgitm_lv="01", pric_fen=yuan_to_fen(v["medfee_sumamt"]), cnt=1,
                              det_item_fee_sumamt_fen=yuan_to_fen(v["medfee_sumamt"]), fee_ocur_time=v["begntime"],
                              med_chrgitm_type="01"))


def _service_hits(store_url) -> dict:
    """Each visit pre-checked as the service does at 2207, in the order they happened; a visit counts as
    settled (history for the later ones) once checked."""
    seen = {}
    with Session(make_engine(store_url)) as s:
        for v in s.scalars(select(Visit).order_by(Visit.begntime, Visit.mdtrt_id)):
            person, inst = s.get(Person, v.psn_no), s.get(Institution, v.fixmedins_code)
            items = list(s.scalars(select(FeeItem).where(FeeItem.mdtrt_id == v.mdtrt_id).order_by(FeeItem.feedetl_sn)))
            row = precheck.person_row(person, "390", frozenset(), 40)
            res = precheck.run(s, "during", person, row, inst, v, v.endtime, items)
            for h in res["warnings"] + res["blocking"]:
                if h["rule_id"] in ONLINE:
                    seen[(h["rule_id"], h["mdtrt_id"])] = (yuan_to_fen(Decimal(str(h["amount"]))), h["feedetl_sns"] or [])
            v.status = "settled"
            s.flush()
    return seen


def test_every_issue20_family_flags_online_what_batch_flags(store_url, region, learned):  # noqa: F811
    tables, run = region
    batch = {k: v[:2] for k, v in batch_hits(run).items() if k[0] in ONLINE}
    assert {k[0] for k in batch} == set(ONLINE)  # dates, near-duplicate, cross-institution, price, qty, tests
    _store(store_url, tables)
    assert _service_hits(store_url) == batch


def test_without_what_the_rules_read_they_find_nothing(store_url, region):  # noqa: F811
    """The gap this closes: no categories, no other institutions, no baselines → no issue-20 hit online."""
    tables, _ = region
    _store(store_url, tables)
    with Session(make_engine(store_url)) as s, s.begin():
        for it in s.scalars(select(FeeItem)):
            it.med_chrgitm_type = None
    hits = _service_hits(store_url)
    # no baselines set: price, quantity and test-count outliers cannot be judged; no category: no near-duplicate;
    # the listed caps of SV-PRICE-03 need neither
    assert {k[0] for k in hits} == {"SV-DATE-01", "SV-ADM-04", "SV-PRICE-03"}


def test_the_service_reads_the_baselines_batch_wrote(tmp_path, monkeypatch):
    path = tmp_path / "baselines.parquet"
    pq.write_table(LEARNED, path)
    monkeypatch.setenv(precheck.BASELINES_ENV, str(path))
    try:
        precheck.warm()
        assert online.DEFAULT_BASELINES[0] is not None
        assert online.DEFAULT_BASELINES[0].rows("2", "11", "J06.900", {"SV-X-PRICE"})[0][:4] == ("price", "SV-X-PRICE", "2", "11")
    finally:
        online.set_baselines(None)


def test_2201_and_2204_store_physician_and_category_and_2207_warns(world):  # noqa: F811
    """SV-DUP-04 end to end: an inpatient CT billed twice 150 minutes apart on one day."""
    client, keys, engine = world
    his = Platform(client, keys.keys["his1"])
    psn_no = "P000000002"
    mdtrt_id = his.ok("2201", {"data": {"psn_no": psn_no, "insutype": "310", "begntime": "2024-03-01 09:00:00",
                                        "med_type": "21", "dise_codg": "J18.900", "atddr_no": "D-0001"}})["data"]["mdtrt_id"]
    t = datetime(2024, 3, 2, 9, 0)
    lines = [{"feedetl_sn": f"F{k}", "mdtrt_id": mdtrt_id, "psn_no": psn_no, "med_list_codg": "X-CT", "chrgitm_lv": "01",
              "pric": "45.00", "cnt": "1", "det_item_fee_sumamt": "45.00", "med_chrgitm_type": "03",
              "fee_ocur_time": (t + timedelta(minutes=150 * k)).isoformat(" ")} for k in range(2)]
    his.ok("2204", {"feedetail": lines})
    with Session(engine) as s:
        assert s.get(Visit, mdtrt_id).atddr_no == "D-0001"
        assert [i.med_chrgitm_type for i in s.scalars(select(FeeItem).where(FeeItem.mdtrt_id == mdtrt_id))] == ["03", "03"]
    done = his.ok("2207", {"data": {"psn_no": psn_no, "mdtrt_id": mdtrt_id}})
    dup = [h for h in done["warnings"] if h["rule_id"] == "SV-DUP-04"]
    assert [(h["feedetl_sns"], str(h["amount"])) for h in dup] == [(["F1"], "45.00")]


def test_a_bad_category_is_refused_with_its_field(world):  # noqa: F811
    client, keys, engine = world
    his = Platform(client, keys.keys["his1"])
    mdtrt_id = his.visit("P000000002", n_items=1)
    bad = his("2204", {"feedetail": [{"feedetl_sn": "G1", "mdtrt_id": mdtrt_id, "med_list_codg": "X-CT",
                                      "chrgitm_lv": "01", "det_item_fee_sumamt": "45.00", "med_chrgitm_type": "CT"}]})
    assert bad["infcode"] == -1 and "FSI020" in bad["err_msg"] and "med_chrgitm_type" in bad["err_msg"]
    with Session(engine) as s:
        assert s.get(FeeItem, (mdtrt_id, "G1")) is None


def test_the_service_judges_the_pack_caps_it_is_told(monkeypatch):
    """YIBAO_AUDIT_PACK: the online SV-PRICE-03 reads the pack's catalogue caps, as yibao audit --pack does."""
    precheck._ruleset.cache_clear()
    try:
        monkeypatch.delenv(precheck.PACK_ENV, raising=False)
        assert [i.code for i in precheck._ruleset().by_id()["SV-PRICE-03"].params.items] == ["SV-D-CAPX"]
        precheck._ruleset.cache_clear()
        monkeypatch.setenv(precheck.PACK_ENV, "shandong-2024")
        items = precheck._ruleset().by_id()["SV-PRICE-03"].params.items
        assert [(i.code, i.cap) for i in items][1:] == [("SD-EX-D001", Decimal("0.50")), ("SD-EX-D002", Decimal("45.00")),
                                                        ("SD-EX-M001", Decimal("3000.00"))]
    finally:
        precheck._ruleset.cache_clear()
