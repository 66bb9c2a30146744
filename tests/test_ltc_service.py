"""LTC in the service on SQLite and PostgreSQL: migration, designate → assess → upload → settle → reverse → settle.

Hand-computed: 重度失能二级 (ADL 15), employee enrolled 2024-01-01 (6 months' continuous enrolment
reached 2024-07-01), August 2024 居家护理 31 days billed 2,170.00 (70.00 a day): limit 60 × 31 =
1,860.00, × 70% = 1,302.00 paid by the LTC fund, 868.00 by the person.
"""

from __future__ import annotations

from datetime import datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from yibao.ltc import store as ltc_store
from yibao.service import sample
from yibao.store.base import Base
from yibao.store.database import make_engine
from yibao.store.models import AuditLog, Visit

PSN = "P000000002"  # an employee (310) of the sample region
SCORES = {"adl": {"feeding": 0, "bathing": 0, "grooming": 0, "dressing": 0, "bowels": 0, "bladder": 5, "toilet": 0,
                  "transfer": 5, "mobility": 5, "stairs": 0},
          "cognition": {"orientation_time": 2, "orientation_person": 2, "memory": 2},
          "perception": {"vision": 2, "hearing": 2, "communication": 2}}


@pytest.fixture
def world(sample_api):
    call, engine = sample_api
    yield (lambda who, method, path, body=None: call(who, method, "/api/v1/ltc" + path, body)), engine


def test_the_migration_builds_the_models(store_url):
    engine = make_engine(store_url)
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    names = {t.name for t in ltc_store.TABLES}
    assert [d for d in diffs if any(n in repr(d) for n in names)] == []
    engine.dispose()


def records(n=1, srv="S1", **kw):
    base = {"srv_id": srv, "psn_no": PSN, "srv_date": "2024-08-01", "days": 31, "mode": "home", "item_class": "care",
            "amount": "2170.00"}
    return [{**base, **kw}]


def test_designate_assess_upload_settle_reverse_and_settle_again(world):
    call, engine = world
    r = call("admin", "POST", "/institutions", {"fixmedins_code": sample.HOSPITAL, "fixmedins_name": "示例护理院",
                                                "admdvs": "370102", "modes": ["home", "visit"], "beds": 0,
                                                "designated_from": "2024-01-01", "designated_to": "2024-12-31"})
    assert r.status_code == 201, r.text
    r = call("clerk", "POST", "/assessments", {"psn_no": PSN, "assessor": "E001", "effective": "2024-07-01", "scores": SCORES})
    assert r.status_code == 201, r.text
    assert (r.json()["level"], r.json()["end"]) == ("4", "2026-06-30")
    r = call("his1", "POST", "/records", {"fixmedins_code": sample.HOSPITAL, "month": "2024-08", "records": records()})
    assert r.status_code == 200, r.text
    with Session(engine) as s, s.begin():  # an inpatient stay 10–15 August: care on the 11th–14th is suspect
        s.add(Visit(mdtrt_id="M1", psn_no=PSN, fixmedins_code=sample.OTHER_HOSPITAL, insutype="310",
                    insuplc_admdvs="370102", med_type="21", begntime=datetime(2024, 8, 10, 9), endtime=datetime(2024, 8, 15, 10),
                    status="settled", created_at=datetime(2024, 8, 10, 9)))
    r = call("clerk", "POST", "/settlements", {"psn_no": PSN, "month": "2024-08"})
    assert r.status_code == 201, r.text
    first = r.json()
    assert [(h["rule_id"], h["srv_ids"], h["amount"]) for h in first["hits"]] == [("LTC-A02", ["S1"], "2170.00")]
    assert (first["ltc_sumamt"], first["allowed_amt"], first["fund_pay"], first["psn_pay"]) == (
        "2170.00", "1860.00", "1302.00", "868.00")
    assert first["lines"][0]["units"] == 31 and "31 护理日 × 限额 60.00 元" in first["explanation"][0]
    again = call("clerk", "POST", "/settlements", {"psn_no": PSN, "month": "2024-08"})
    assert again.status_code == 409 and again.json()["problems"][0]["code"] == "LTC041"
    late = call("his1", "POST", "/records", {"fixmedins_code": sample.HOSPITAL, "month": "2024-08",
                                             "records": records(srv="S2", srv_date="2024-08-02", days=1, amount="10.00")})
    assert late.status_code == 422 and late.json()["problems"][0]["code"] == "LTC041"
    r = call("clerk", "POST", f"/settlements/{first['setl_id']}/reverse", {"reason": "机构补传记录"})
    assert r.status_code == 200 and r.json()["status"] == "reversed"
    r = call("clerk", "POST", "/settlements", {"psn_no": PSN, "month": "2024-08"})
    assert r.status_code == 201 and r.json()["fund_pay"] == "1302.00" and r.json()["setl_id"] != first["setl_id"]
    assert call("analyst", "GET", f"/settlements/{first['setl_id']}").json()["reverse_reason"] == "机构补传记录"
    with Session(engine) as s:
        actions = s.scalars(select(AuditLog.action).where(AuditLog.action.like("ltc.%")).order_by(AuditLog.id)).all()
    assert actions == ["ltc.designate", "ltc.assess", "ltc.upload", "ltc.settle", "ltc.reverse", "ltc.settle"]


def test_bad_uploads_and_roles_are_refused_and_write_nothing(world):
    call, engine = world
    call("admin", "POST", "/institutions", {"fixmedins_code": sample.HOSPITAL, "fixmedins_name": "示例护理院",
                                            "admdvs": "370102", "modes": ["home"], "beds": 0,
                                            "designated_from": "2024-01-01", "designated_to": "2024-12-31"})
    bad = records(mode="institution") + records(srv="S1", srv_date="2024-09-03", days=1)
    r = call("his1", "POST", "/records", {"fixmedins_code": sample.HOSPITAL, "month": "2024-08", "records": bad})
    assert r.status_code == 422
    assert sorted((p["code"], p["path"]) for p in r.json()["problems"]) == [
        ("LTC013", "records[1].srv_date"), ("LTC045", "records[0].mode"), ("LTC046", "records[1].srv_id")]
    r = call("his2", "POST", "/records", {"fixmedins_code": sample.HOSPITAL, "month": "2024-08", "records": records()})
    assert r.status_code == 403
    assert call("analyst", "POST", "/settlements", {"psn_no": PSN, "month": "2024-08"}).status_code == 403
    r = call("clerk", "POST", "/assessments", {"psn_no": PSN, "assessor": "E001", "effective": "2024-07-01", "scores": SCORES})
    assert r.status_code == 201
    r = call("clerk", "POST", "/assessments", {"psn_no": PSN, "assessor": "E001", "effective": "2024-10-01", "scores": SCORES})
    assert r.status_code == 422 and r.json()["problems"][0]["code"] == "LTC004"
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(ltc_store.LtcRecord)) == 0
        assert s.scalar(select(func.count()).select_from(ltc_store.LtcAssessment)) == 1
