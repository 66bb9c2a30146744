"""异地就医 at the pack's ratio with or without 备案 (issue 16 with #14's ``offsite_points``): the service derives
each visit's status from the 备案 facts of the 经办 workflow — local in the insured's city, filed when a 备案 valid on
the visit date covers the institution's area, unfiled otherwise — and the engine applies the pack's points."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy.orm import Session

from yibao.handling.effects import offsite_status, same_area
from yibao.handling.models import HdFact
from yibao.service import registry, sample
from yibao.service import transactions as tx
from yibao.service.auth import Principal
from yibao.service.packs import PackSet
from yibao.settlement.request import FeeItemIn
from yibao.store.database import make_engine

PACKS = PackSet.load(["shandong-2024-offsite"])
JINAN, QINGDAO = sample.OTHER_HOSPITAL, "H37020200002"


def ctx(day: date) -> tx.Context:
    return tx.Context("", "x", datetime.combine(day, datetime.min.time()).replace(hour=9))


def settle(engine, psn_no: str, code: str, day: date) -> dict:
    his = Principal("his", "institution", code)
    with Session(engine) as s, s.begin():
        v = tx.register_visit(s, his, ctx(day), fixmedins_code=code, psn_no=psn_no, insutype="390", med_type="21",
                              begntime=ctx(day).at)
        tx.upload_items(s, his, ctx(day), PACKS, mdtrt_id=v["mdtrt_id"],
                        items=[FeeItemIn.model_validate(x) for x in sample.items(12, price="500.00")])
    with Session(engine) as s, s.begin():
        return tx.settle(s, his, ctx(day), PACKS, mdtrt_id=v["mdtrt_id"])


def test_the_same_admission_pays_by_where_and_whether_filed(store_url):
    engine = make_engine(store_url)
    with Session(engine) as s, s.begin():
        sample.seed(s, 8)  # insured in 370102 (济南); residents are the odd-numbered persons
        registry.add_institution(s, code=QINGDAO, name="青岛示例医院", level="3", admdvs="370202",
                                 designated_from=date(2024, 1, 1), designated_to=date(2024, 12, 31))
        for psn, to in (("P000000003", date(2024, 12, 31)), ("P000000007", date(2024, 3, 31))):  # the second expires
            s.add(HdFact(psn_no=psn, kind="offsite_filing", code="临时外出", valid_from=date(2024, 1, 1), valid_to=to,
                         detail={"mdtrt_admdvs": "370200"}, case_no="HDTEST", recorded_by="rck1",
                         recorded_at=datetime(2024, 1, 2, 9)))
    day = date(2024, 6, 3)
    with Session(engine) as s:
        assert [offsite_status(s, p, "370102", a, day) for p, a in
                (("P000000001", "370103"), ("P000000003", "370202"), ("P000000005", "370202"), ("P000000007", "370202"))] \
            == ["local", "filed", "unfiled", "unfiled"]
    local = settle(engine, "P000000001", JINAN, day)
    filed = settle(engine, "P000000003", QINGDAO, day)
    unfiled = settle(engine, "P000000005", QINGDAO, day)
    expired = settle(engine, "P000000007", QINGDAO, day)
    pay = {k: r["setlinfo"]["hifp_pay"] for k, r in
           (("local", local), ("filed", filed), ("unfiled", unfiled), ("expired", expired))}
    # both hospitals are level 3: 济南 at the pack's ratio, 青岛 −10 points with a 备案, −20 without or expired
    assert pay["local"] > pay["filed"] > pay["unfiled"] == pay["expired"]
    engine.dispose()


def test_a_filing_covers_its_province_city_or_county():
    assert same_area("370000", "370202") and not same_area("370000", "410102")
    assert same_area("370200", "370202") and not same_area("370200", "370102")
    assert same_area("370202", "370202") and not same_area("370202", "370203")
