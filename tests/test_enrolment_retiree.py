"""退休 folded by the visit's date (issue 15): a 变更 to 1102 effective 1 July is recorded in January; a June visit
is settled as 在职 and an August visit as 退休 (+5 points on the employee ratio in shandong-2024), whatever the
day each is settled and however the person's flag stands; 1101 answers the 人员类别 of the day asked."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy.orm import Session

from yibao.enrolment import registry as er
from yibao.enrolment.asof import psn_type_on, retiree_on
from yibao.service import sample
from yibao.service import transactions as tx
from yibao.service.auth import Principal
from yibao.service.packs import PackSet
from yibao.settlement.request import FeeItemIn
from yibao.store.database import make_engine
from yibao.store.models import Person

CLERK, HIS = Principal("clerk1", "clerk"), Principal("his", "institution", sample.HOSPITAL)
PACKS = PackSet.load(["shandong-2024"])
ITEMS = [{"feedetl_sn": f"F{k}", "med_list_codg": f"X{k:05d}", "chrgitm_lv": "01", "pric": "1000.00", "cnt": "1",
          "det_item_fee_sumamt": "1000.00"} for k in range(4)]


def ctx(day: date) -> tx.Context:
    return tx.Context("", "clerk1", datetime.combine(day, datetime.min.time()).replace(hour=9))


def settle(engine, psn_no: str, day: date) -> dict:
    with Session(engine) as s, s.begin():
        v = tx.register_visit(s, HIS, ctx(day), fixmedins_code=sample.HOSPITAL, psn_no=psn_no, insutype="310",
                              med_type="21", begntime=ctx(day).at)
        tx.upload_items(s, HIS, ctx(day), PACKS, mdtrt_id=v["mdtrt_id"], items=[FeeItemIn.model_validate(x) for x in ITEMS])
    with Session(engine) as s, s.begin():
        return tx.settle(s, HIS, ctx(day), PACKS, mdtrt_id=v["mdtrt_id"])["setlinfo"]


def test_retirement_counts_from_its_effective_date(store_url):
    engine = make_engine(store_url)
    with Session(engine) as s, s.begin():
        sample.seed(s, 1)
        for n, psn, psn_type in ((101, "A", "1101"), (102, "B", "1101"), (103, "C", "1102")):
            er.register(s, CLERK, ctx(date(2024, 1, 2)), certno=sample.certno(n), psn_name="退休测试人", insutype="310",
                        admdvs=sample.ADMDVS, begndate=date(2024, 1, 1), psn_type=psn_type, new_psn_no=psn)
        er.change(s, CLERK, ctx(date(2024, 1, 2)), psn_no="A", insutype="310", eff_date=date(2024, 7, 1),
                  reason="办理退休", psn_type="1102")
    with Session(engine) as s:
        assert s.get(Person, "A").retiree  # the flag turned at once: settlement must not read it for June
        assert [psn_type_on(s, "A", "310", d) for d in (date(2024, 6, 30), date(2024, 7, 1))] == ["1101", "1102"]
        assert (retiree_on(s, "A", "310", date(2024, 6, 30), True), retiree_on(s, "ZZ", "310", date(2024, 6, 30), True)) \
            == (False, True)  # no facts: the person's flag
        info = tx.person_info(s, CLERK, psn_no="A", on=date(2024, 6, 30))
        assert info["insuinfo"][0]["psn_type"] == "1101"
        assert tx.person_info(s, CLERK, psn_no="A", on=date(2024, 8, 1))["insuinfo"][0]["psn_type"] == "1102"
    june = {p: settle(engine, p, date(2024, 6, 10)) for p in ("A", "B", "C")}
    august = {p: settle(engine, p, date(2024, 8, 12)) for p in ("A", "B", "C")}
    assert june["A"]["hifp_pay"] == june["B"]["hifp_pay"] < june["C"]["hifp_pay"]  # 在职 in June
    assert august["A"]["hifp_pay"] == august["C"]["hifp_pay"] > august["B"]["hifp_pay"]  # 退休 from July
    engine.dispose()
