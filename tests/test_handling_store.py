"""经办 in the store, on SQLite and PostgreSQL: migrations, a case from 申请 to 办结 with its
audit entries and entitlement fact, bad input writing nothing, and two clerks on one case."""

from __future__ import annotations

import threading
from datetime import date, datetime
from decimal import Decimal

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from yibao.handling import store
from yibao.handling.catalogue import HandlingError
from yibao.handling.stats import handling_stats
from yibao.service import sample
from yibao.service.auth import Principal
from yibao.service.errors import Forbidden, NotFound
from yibao.service.packs import PackSet
from yibao.service.transactions import Context
from yibao.store.base import Base
from yibao.store.database import make_engine
from yibao.store.models import AuditLog

PACKS = PackSet.load(["shandong-2024"])
CLERK, CLERK2 = Principal("clerk1", "clerk"), Principal("clerk2", "clerk")
REVIEWER, RECHECKER = Principal("rev1", "reviewer"), Principal("rck1", "rechecker")
MZMTB_FORM = {"dise_codg": "MTB002", "valid_from": "2024-03-01"}
MZMTB_MATERIALS = ["id_doc", "diagnosis", "records"]


def ctx(day: date) -> Context:
    return Context("req", "x", datetime.combine(day, datetime.min.time()).replace(hour=9))


@pytest.fixture
def engine(store_url):
    eng = make_engine(store_url)
    with Session(eng) as s, s.begin():
        sample.seed(s, 3)
    yield eng
    eng.dispose()


def counts(engine) -> tuple[int, int, int]:
    with Session(engine) as s:
        return (s.scalar(select(func.count()).select_from(store.HdCase)),
                s.scalar(select(func.count()).select_from(store.HdEvent)),
                s.scalar(select(func.count()).select_from(AuditLog)))


def write(engine, fn):
    with Session(engine) as s, s.begin():
        return fn(s)


def test_migration_matches_the_models(store_url):
    eng = make_engine(store_url)
    with eng.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    ours = [d for d in diffs if "hd_" in repr(d)]
    assert ours == []
    eng.dispose()


def file_mzmtb(engine, day=date(2026, 2, 12), **kw):
    args = dict(item_code="MZMTB", psn_no="P000000001", channel="village", service_point="历城区港沟街道卫生室",
                form=MZMTB_FORM, materials=MZMTB_MATERIALS, packs=PACKS)
    args.update(kw)
    return write(engine, lambda s: store.apply_for(s, CLERK, ctx(day), **args))


def test_case_from_application_to_completion(engine):
    case = file_mzmtb(engine, agent={"kind": "proxy", "name": "张三", "relation": "子女", "authorization_no": "SQ-001"})
    no = case["case_no"]
    assert case["status"] == "submitted" and case["version"] == 1 and case["agent"]["kind_name"] == "代办"
    d = date(2026, 2, 12)
    r = write(engine, lambda s: store.act(s, CLERK, ctx(d), case_no=no, kind="accept", version=1))
    assert r["status"] == "accepted" and r["timeliness"]["deadline"] == "2026-03-11"
    with pytest.raises(HandlingError) as e:  # 受理人 may not also 审核, even as admin
        write(engine, lambda s: store.act(s, Principal("clerk1", "admin"), ctx(d), case_no=no, kind="review", version=2))
    assert e.value.problems[0].code == "HDL023"
    with pytest.raises(Forbidden) as e:  # a clerk lacks the 审核 role
        write(engine, lambda s: store.act(s, CLERK2, ctx(d), case_no=no, kind="review", version=2))
    assert e.value.problems[0].code == "AUT003"
    write(engine, lambda s: store.act(s, REVIEWER, ctx(d), case_no=no, kind="review", version=2))
    done = write(engine, lambda s: store.act(s, RECHECKER, ctx(date(2026, 3, 12)), case_no=no, kind="recheck", version=3))
    assert done["status"] == "completed" and done["timeliness"]["flag"] == "超期办结"
    write(engine, lambda s: store.act(s, CLERK, ctx(date(2026, 3, 12)), case_no=no, kind="rate", version=4, rating=4))
    with Session(engine) as s:
        facts = store.facts_on(s, "P000000001", "chronic", date(2024, 6, 1))
        assert [(f.code, f.valid_from, f.valid_to, f.case_no) for f in facts] == [
            ("MTB002", date(2024, 3, 1), date(9999, 12, 31), no)]
        assert store.facts_on(s, "P000000001", "chronic", date(2024, 2, 29)) == []
        actions = s.scalars(select(AuditLog.action).where(AuditLog.entity_id == no).order_by(AuditLog.id)).all()
        assert actions == ["handling.apply", "handling.accept", "handling.review", "handling.recheck", "handling.rate"]
        rec = store.case_record(s, Principal("an", "analyst"), no, date(2026, 3, 12))
        assert rec["agent"]["name"] == "张*" and [e["action"] for e in rec["events"]] == [
            "apply", "accept", "review", "recheck", "rate"]
        stats = handling_stats(s, Principal("an", "analyst"), begndate=date(2026, 1, 1), enddate=date(2026, 12, 31),
                               by="channel")
    assert stats == [{"channel": "village", "label": "村级服务点", "volume": 1, "completed": 1, "on_time_rate": "0.0000",
                      "avg_working_days": "16.00", "online_rate": "0.0000", "rated": 1, "avg_rating": "4.00",
                      "good_rate": "1.0000"}]


def test_return_with_one_time_notice_then_supplement(engine):
    no = file_mzmtb(engine, materials=["id_doc"])["case_no"]
    d = date(2026, 4, 1)
    r = write(engine, lambda s: store.act(s, CLERK, ctx(d), case_no=no, kind="return", version=1,
                                          notice=["诊断证明须加盖医院公章"]))
    assert r["status"] == "returned"
    assert [n["name"] for n in r["notice"]] == ["二级及以上定点医疗机构诊断证明", "病历资料及相关检查检验报告", "诊断证明须加盖医院公章"]
    r = write(engine, lambda s: store.act(s, CLERK, ctx(d), case_no=no, kind="supplement", version=2,
                                          materials=["diagnosis", "records"]))
    assert r["status"] == "submitted" and r["missing_materials"] == []


@pytest.mark.parametrize("change, code", [
    ({"form": {"dise_codg": "J45", "valid_from": "2024-03-01"}}, "HDL015"),  # a disease outside the pack's list
    ({"materials": ["id_doc", "passport_photo"]}, "HDL017"),
    ({"item_code": "XYZ"}, "HDL001"),
    ({"channel": "fax"}, "HDL018"),
    ({"agent": {"kind": "proxy", "name": "李四"}}, "HDL004"),  # 代办 without the authorisation
    ({"psn_no": "P999999999"}, "REG010"),
])
def test_bad_input_is_coded_and_writes_nothing(engine, change, code):
    before = counts(engine)
    with pytest.raises((HandlingError, NotFound)) as e:
        file_mzmtb(engine, **change)
    assert code in [p.code for p in e.value.problems]
    assert counts(engine) == before


def test_accepting_with_materials_missing_writes_nothing(engine):
    no = file_mzmtb(engine, materials=["id_doc"])["case_no"]
    before = counts(engine)
    with pytest.raises(HandlingError) as e:
        write(engine, lambda s: store.act(s, CLERK, ctx(date(2026, 4, 1)), case_no=no, kind="accept", version=1))
    assert e.value.problems[0].code == "HDL024" and counts(engine) == before


def test_two_clerks_on_one_case_one_wins(engine):
    no = file_mzmtb(engine)["case_no"]
    barrier = threading.Barrier(2)
    results: list[object] = []

    def clerk(who):
        barrier.wait()
        try:
            results.append(write(engine, lambda s: store.act(s, who, ctx(date(2026, 4, 1)), case_no=no,
                                                             kind="accept", version=1))["status"])
        except HandlingError as exc:
            results.append(exc)

    threads = [threading.Thread(target=clerk, args=(w,)) for w in (CLERK, CLERK2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wins = [r for r in results if r == "accepted"]
    lost = [r for r in results if isinstance(r, HandlingError)]
    assert len(wins) == 1 and len(lost) == 1
    assert lost[0].problems[0].code == "HDL040" and lost[0].status == 409
    with Session(engine) as s:
        row = s.scalars(select(store.HdCase).where(store.HdCase.case_no == no)).one()
        assert row.version == 2 and len(row.step_actors) == 1
        assert s.scalar(select(func.count()).select_from(store.HdEvent).where(store.HdEvent.case_id == row.id)) == 2


def test_conflict_when_the_version_read_is_stale(engine):
    no = file_mzmtb(engine)["case_no"]
    write(engine, lambda s: store.act(s, CLERK, ctx(date(2026, 4, 1)), case_no=no, kind="accept", version=1))
    with pytest.raises(HandlingError) as e:
        write(engine, lambda s: store.act(s, REVIEWER, ctx(date(2026, 4, 1)), case_no=no, kind="review", version=1))
    assert e.value.problems[0].code == "HDL040"


def test_maternity_allowance_payment_order(engine):
    form = {"delivery_date": "2026-03-02", "leave_days": "158", "avg_wage": "8000.00"}
    no = write(engine, lambda s: store.apply_for(
        s, CLERK, ctx(date(2026, 4, 1)), item_code="SYJT", psn_no="P000000002", channel="online",
        service_point="网上服务大厅", form=form, materials=["id_doc", "birth_cert", "employer_form"]))["case_no"]
    d = date(2026, 4, 1)
    write(engine, lambda s: store.act(s, CLERK, ctx(d), case_no=no, kind="accept", version=1))
    write(engine, lambda s: store.act(s, REVIEWER, ctx(d), case_no=no, kind="review", version=2))
    done = write(engine, lambda s: store.act(s, RECHECKER, ctx(d), case_no=no, kind="recheck", version=3))
    assert done["payments"][0]["amount"] == Decimal("42133.33")  # 8,000 ÷ 30 × 158 = 42,133.33 元
    with Session(engine) as s:
        assert s.scalars(select(store.HdPayment.amount_fen).where(store.HdPayment.case_no == no)).all() == [4213333]


def test_completing_an_item_that_settles_needs_the_packs(engine):
    form = {"category": "illness_poverty", "valid_from": "2024-01-01"}
    no = write(engine, lambda s: store.apply_for(
        s, CLERK, ctx(date(2026, 4, 1)), item_code="YSQJZ", psn_no="P000000002", channel="window",
        service_point="大厅", form=form, materials=["id_doc", "recognition", "bank_card"], packs=PACKS))["case_no"]
    d = date(2026, 4, 1)
    write(engine, lambda s: store.act(s, CLERK, ctx(d), case_no=no, kind="accept", version=1))
    write(engine, lambda s: store.act(s, REVIEWER, ctx(d), case_no=no, kind="review", version=2))
    before = counts(engine)
    with pytest.raises(HandlingError) as e:
        write(engine, lambda s: store.act(s, RECHECKER, ctx(d), case_no=no, kind="recheck", version=3))
    assert e.value.problems[0].code == "HDL085" and counts(engine) == before
    done = write(engine, lambda s: store.act(s, RECHECKER, ctx(d), case_no=no, kind="recheck", version=3, packs=PACKS))
    assert done["status"] == "completed" and done["topups"] == []  # nothing settled yet: no 补差
