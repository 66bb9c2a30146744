"""The enrolment registry: dated facts, their fold, the projection settlement reads, transactions."""

from __future__ import annotations

import itertools

from datetime import date, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session

from yibao.enrolment import facts as F
from yibao.enrolment import models as em
from yibao.enrolment import registry as er
from yibao.service import registry, sample
from yibao.service.auth import Principal
from yibao.service.errors import ServiceError
from yibao.service.transactions import Context
from yibao.store.base import Base
from yibao.store.database import make_engine
from yibao.store.migrate import current_heads, upgrade
from yibao.store.models import AuditLog, Enrollment, PersonCategory

CLERK = Principal("clerk1", "clerk")
CTX = Context("req-1", "clerk1", datetime(2024, 1, 2, 9, 0))
CATS = {"tekun", "dibao", "dibao_edge", "fanpin", "monitor"}


@pytest.fixture
def sqlite_url(tmp_path):
    url = f"sqlite:///{tmp_path / 'e.db'}"
    upgrade(url)
    return url


def _codes(exc) -> list[tuple[str, str]]:
    return [(p.code, p.path) for p in exc.value.problems]


def test_migration_reaches_the_enrolment_head_and_matches_the_models(store_url):
    assert "enrolment_0002" in current_heads(store_url)
    engine = make_engine(store_url)
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    ours = {t.name for t in em.Base.metadata.sorted_tables if t.name.startswith("en_")}
    assert len(ours) == 6
    assert [d for d in diffs if any(t in repr(d) for t in ours)] == []
    engine.dispose()


def test_register_suspend_resume_transfer_and_settlement_reads_the_fold(store_url):
    engine = make_engine(store_url)
    with Session(engine) as s, s.begin():
        out = er.register(s, CLERK, CTX, certno=sample.certno(1), psn_name="张三", insutype="390",
                          admdvs="370102", begndate=date(2024, 1, 1), psn_type="1401", new_psn_no="P1")
        assert out["psn_insu_stas"] == "1" and out["spells"] == [
            {"begndate": "2024-01-01", "enddate": "9999-12-31", "insuplc_admdvs": "370102", "psn_insu_stas": "1"}]
        er.change_status(s, CLERK, CTX, psn_no="P1", insutype="390", action="suspend", eff_date=date(2024, 4, 1),
                         reason="外出务工暂停")
        er.change_status(s, CLERK, CTX, psn_no="P1", insutype="390", action="resume", eff_date=date(2024, 5, 1),
                         reason="返乡恢复")
        out = er.transfer(s, CLERK, CTX, psn_no="P1", insutype="390", eff_date=date(2024, 9, 1),
                          to_admdvs="370203")
    assert out["from_admdvs"] == "370102" and out["carried_months"] == 4  # 2024-05-01..08-31
    with Session(engine) as s:
        rows = s.scalars(select(Enrollment).where(Enrollment.psn_no == "P1").order_by(Enrollment.valid_from)).all()
        assert [(r.valid_from, r.valid_to, r.insuplc_admdvs) for r in rows] == [
            (date(2024, 1, 1), date(2024, 3, 31), "370102"), (date(2024, 5, 1), date(2024, 8, 31), "370102"),
            (date(2024, 9, 1), F.OPEN_END, "370203")]
        # what register_visit and settle read: refused while suspended, in the new region after the transfer
        with pytest.raises(ServiceError) as exc:
            registry.enrollment(s, "P1", "390", date(2024, 4, 15))
        assert exc.value.problems[0].code == "REG020"
        assert registry.enrollment(s, "P1", "390", date(2024, 9, 1)).insuplc_admdvs == "370203"
        state = er.as_of(s, "P1", date(2024, 10, 31))
        assert state["enrolments"][0]["insuplc_admdvs"] == "370203"
        assert state["enrolments"][0]["continuous_months"] == 4 + 2
        actions = [a for (a,) in s.execute(select(AuditLog.action).order_by(AuditLog.id))]
        assert actions == ["enrol.register", "enrol.suspend", "enrol.resume", "enrol.transfer"]
        facts = s.scalars(select(em.EnrolmentFact).order_by(em.EnrolmentFact.id)).all()
        assert [f.kind for f in facts] == ["register", "suspend", "resume", "transfer_out", "transfer_in"]
        assert all(f.recorded_by == "clerk1" for f in facts)
    engine.dispose()


def test_bad_input_is_coded_and_writes_nothing(sqlite_url):
    engine = make_engine(sqlite_url)
    good = sample.certno(2)
    bad = good[:17] + ("0" if good[17] != "0" else "1")
    with Session(engine) as s, s.begin():
        er.register(s, CLERK, CTX, certno=good, psn_name="李四", insutype="390", admdvs="370102",
                    begndate=date(2024, 1, 1), new_psn_no="P2")
    cases = [
        (lambda s: er.register(s, CLERK, CTX, certno=bad, psn_name="王五", insutype="390", admdvs="370102",
                               begndate=date(2024, 1, 1)), ("REG001", "certno")),
        (lambda s: er.register(s, CLERK, CTX, certno=good, psn_name="李四", insutype="390", admdvs="370102",
                               begndate=date(2024, 1, 1)), ("ENR010", "certno")),
        (lambda s: er.register(s, CLERK, CTX, psn_no="P2", insutype="390", admdvs="370102",
                               begndate=date(2024, 3, 1)), ("ENR011", "insutype")),
        (lambda s: er.record_category(s, CLERK, CTX, psn_no="P2", category="rich", action="grant",
                                      valid_from=date(2024, 1, 1), valid_to=date(2024, 12, 31), dept="民政",
                                      known=CATS), ("ENR020", "category")),
        (lambda s: er.record_category(s, CLERK, CTX, psn_no="P2", category="dibao", action="grant",
                                      valid_from=date(2024, 6, 1), valid_to=date(2024, 1, 31), dept="民政",
                                      known=CATS), ("ENR021", "valid_to")),
        (lambda s: er.change_status(s, CLERK, CTX, psn_no="P2", insutype="390", action="resume",
                                    eff_date=date(2024, 2, 1), reason="x"), ("ENR013", "psn_insu_stas")),
        (lambda s: er.transfer(s, CLERK, CTX, psn_no="P2", insutype="390", eff_date=date(2024, 2, 1),
                               to_admdvs="370102"), ("ENR015", "to_admdvs")),
        (lambda s: er.change_status(s, CLERK, CTX, psn_no="P2", insutype="390", action="suspend",
                                    eff_date=date(2023, 12, 1), reason="x"), ("ENR012", "insutype")),
    ]
    for fn, want in cases:
        with Session(engine) as s:
            before = s.scalar(select(em.EnrolmentFact.id).order_by(em.EnrolmentFact.id.desc()))
        with pytest.raises(ServiceError) as exc, Session(engine) as s, s.begin():
            fn(s)
        assert _codes(exc)[0] == want
        with Session(engine) as s:
            assert s.scalar(select(em.EnrolmentFact.id).order_by(em.EnrolmentFact.id.desc())) == before
            assert s.scalars(select(em.CategoryFact)).all() == []
    with pytest.raises(ServiceError) as exc, Session(engine) as s, s.begin():
        er.change_status(s, CLERK, CTX, psn_no="P2", insutype="390", action="suspend", eff_date=date(2024, 6, 1),
                         reason="x")
        er.change_status(s, CLERK, CTX, psn_no="P2", insutype="390", action="terminate", eff_date=date(2024, 3, 1),
                         reason="x")
    assert _codes(exc)[0] == ("ENR014", "begndate")
    with pytest.raises(ServiceError) as exc, Session(engine) as s:
        er.register(s, Principal("h", "institution", "H1"), CTX, psn_no="P2", insutype="310", admdvs="370102",
                    begndate=date(2024, 1, 1))
    assert exc.value.problems[0].code == "AUT003"
    engine.dispose()


def test_categories_fold_and_legacy_rows_are_adopted(sqlite_url):
    engine = make_engine(sqlite_url)
    with Session(engine) as s, s.begin():
        registry.add_person(s, psn_no="P3", certno=sample.certno(3), psn_name="赵六", insutype="390",
                            admdvs="370102", valid_from=date(2024, 1, 1), valid_to=date(2024, 12, 31),
                            categories={"dibao": "民政"})
    with Session(engine) as s, s.begin():
        assert er.as_of(s, "P3", date(2024, 6, 1))["categories"][0]["category"] == "dibao"
        er.record_category(s, CLERK, CTX, psn_no="P3", category="dibao", action="revoke",
                           valid_from=date(2024, 7, 1), valid_to=date(2024, 12, 31), dept="民政", known=CATS,
                           reason="收入超标退出")
        er.record_category(s, CLERK, CTX, psn_no="P3", category="tekun", action="grant",
                           valid_from=date(2024, 7, 1), valid_to=date(2024, 12, 31), dept="民政", known=CATS,
                           recognised_on=date(2024, 6, 20))
        er.change_status(s, CLERK, CTX, psn_no="P3", insutype="390", action="terminate",
                         eff_date=date(2024, 11, 1), reason="死亡")
    with Session(engine) as s:
        cats = s.scalars(select(PersonCategory).order_by(PersonCategory.category)).all()
        assert [(c.category, c.valid_from, c.valid_to) for c in cats] == [
            ("dibao", date(2024, 1, 1), date(2024, 6, 30)), ("tekun", date(2024, 7, 1), date(2024, 12, 31))]
        rows = s.scalars(select(Enrollment)).all()
        assert [(r.valid_from, r.valid_to) for r in rows] == [(date(2024, 1, 1), date(2024, 10, 31))]
        kinds = [f.kind for f in s.scalars(select(em.EnrolmentFact).order_by(em.EnrolmentFact.id))]
        assert kinds == ["adopt", "adopt", "terminate"]
        assert [c["category"] for c in er.as_of(s, "P3", date(2024, 8, 1))["categories"]] == ["tekun"]
    engine.dispose()


# --- properties -----------------------------------------------------------------------------------

DAY0 = date(2024, 1, 1)
_op = st.tuples(st.sampled_from(["register", "suspend", "terminate", "resume", "change", "transfer"]),
                st.integers(0, 400), st.sampled_from(["370102", "370203", "433101"]))


def _days(n: int = 500):
    return (DAY0 + timedelta(days=i) for i in range(0, n, 7))


@given(st.lists(st.tuples(st.integers(0, 500), st.sampled_from("124"), st.sampled_from(["A", "B"])), max_size=12))
def test_spells_are_the_fold_on_every_day(raw):
    fs = [F.EnrolFact(i, "P", "390", DAY0 + timedelta(days=d), status, adm) for i, (d, status, adm) in enumerate(raw)]
    sp = F.spells(fs)
    for a, b in zip(sp, sp[1:]):
        assert a.end + F.ONE_DAY == b.start  # no gap, no overlap between periods
    for day in (DAY0 + timedelta(days=i) for i in range(-1, 520)):
        want = F.state_on(fs, day)
        got = [x for x in sp if x.start <= day <= x.end]
        if want is None:
            assert got == []
        else:
            assert len(got) == 1 and (got[0].status, got[0].admdvs) == (want.status, want.admdvs)


@given(st.lists(st.tuples(st.sampled_from(["grant", "revoke"]), st.integers(0, 300), st.integers(0, 200)),
                max_size=8))
def test_memberships_are_the_category_fold_on_every_day(raw):
    fs = [F.CategoryFact(i, "P", "dibao", act, DAY0 + timedelta(days=a), DAY0 + timedelta(days=a + n))
          for i, (act, a, n) in enumerate(raw)]
    ms = F.memberships(fs)
    for day in (DAY0 + timedelta(days=i) for i in range(-1, 520, 3)):
        assert (F.member_on(fs, "dibao", day) is not None) == any(m.start <= day <= m.end for m in ms)


_EXAMPLE = itertools.count(1000)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(_op, min_size=1, max_size=8))
def test_store_state_as_of_any_date_is_the_fold_and_transfers_leave_no_gap(sqlite_url, ops):
    """Random transactions (refused ones included) against the store: the projection settlement reads
    equals the fold of the stored facts on every day; every 转移接续 ends one region's cover the day
    before the other's starts."""
    engine = make_engine(sqlite_url)
    n = next(_EXAMPLE)  # examples share one store: a fresh person each (hash() of the ops varied per process)
    psn = f"Q{n:012d}"
    with Session(engine) as s, s.begin():
        er.register(s, CLERK, CTX, certno=sample.certno(n), psn_name="测试",
                    insutype="390", admdvs="370102", begndate=DAY0, new_psn_no=psn)
    last = DAY0
    transfers = []
    for kind, offset, adm in sorted(ops, key=lambda o: o[1]):
        on = max(last, DAY0 + timedelta(days=offset))
        try:
            with Session(engine) as s, s.begin():
                if kind == "register":
                    er.register(s, CLERK, CTX, psn_no=psn, insutype="390", admdvs=adm, begndate=on)
                elif kind == "transfer":
                    er.transfer(s, CLERK, CTX, psn_no=psn, insutype="390", eff_date=on, to_admdvs=adm)
                    transfers.append(on)
                elif kind == "change":
                    er.change(s, CLERK, CTX, psn_no=psn, insutype="390", eff_date=on, reason="变更", psn_type="1401")
                else:
                    er.change_status(s, CLERK, CTX, psn_no=psn, insutype="390", action=kind, eff_date=on,
                                     reason="测试")
            last = on
        except ServiceError:
            pass
    with Session(engine) as s:
        fs = er.enrol_facts(s, psn, "390")["390"]
        rows = s.scalars(select(Enrollment).where(Enrollment.psn_no == psn)).all()
        for day in _days(520):
            st_ = F.state_on(fs, day)
            covering = [r for r in rows if r.valid_from <= day <= r.valid_to]
            assert len(covering) <= 1
            if st_ is not None and st_.status == F.ACTIVE:
                assert covering and covering[0].insuplc_admdvs == st_.admdvs
            else:
                assert covering == []
        for on in transfers:
            before = [r for r in rows if r.valid_from <= on - F.ONE_DAY <= r.valid_to]
            after = [r for r in rows if r.valid_from <= on <= r.valid_to]
            # not superseded by a later fact of the same day, and cover existed the day before (a transfer on the
            # registration day has nothing before it to join up with)
            if F.state_on(fs, on).kind == "transfer_in" and on > DAY0:
                assert len(before) == 1 and len(after) == 1
                assert before[0].valid_to + F.ONE_DAY == after[0].valid_from
    engine.dispose()


def test_cli_register_suspend_show_and_a_rejected_import(sqlite_url, tmp_path):
    import json

    from typer.testing import CliRunner

    from yibao.cli import app

    runner = CliRunner()
    r = runner.invoke(app, ["enrol", "register", "--insutype", "390", "--admdvs", "370102", "--begndate", "2024-01-01",
                            "--certno", sample.certno(55), "--name", "孙七", "--url", sqlite_url])
    assert r.exit_code == 0, r.output
    psn_no = json.loads(r.stdout)["psn_no"]
    r = runner.invoke(app, ["enrol", "suspend", psn_no, "--insutype", "390", "--on", "2024-03-01", "--reason", "断缴",
                            "--url", sqlite_url])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["enrol", "show", psn_no, "--on", "2024-03-02", "--url", sqlite_url])
    assert json.loads(r.stdout)["enrolments"][0]["status_name"] == "暂停"
    bad = tmp_path / "bad.csv"
    bad.write_text("证件号码,类别,有效期起,有效期止\n123,dibao,2024-01-01,2024-12-31\n", encoding="utf-8")
    r = runner.invoke(app, ["enrol", "import", str(bad), "--dept", "民政", "--url", sqlite_url])
    assert r.exit_code == 2 and "REG001" in r.output and "第2行.certno" in r.output


def test_concurrent_writers_of_one_person_keep_projection_equal_to_the_fold(store_url):
    """Two clerks recording categories for one person at once: each projection includes the other's fact."""
    import threading

    engine = make_engine(store_url)
    with Session(engine) as s, s.begin():
        er.register(s, CLERK, CTX, certno=sample.certno(66), psn_name="周八", insutype="390", admdvs="370102",
                    begndate=date(2024, 1, 1), new_psn_no="PC")
    errors = []

    def grant(cat: str, month: int) -> None:
        try:
            for k in range(3):
                with Session(engine) as s, s.begin():
                    er.record_category(s, CLERK, CTX, psn_no="PC", category=cat, action="grant",
                                       valid_from=date(2024, month + k, 1), valid_to=date(2024, month + k, 20),
                                       dept="民政", known=CATS)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=grant, args=(c, m)) for c, m in (("dibao", 1), ("tekun", 5))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with Session(engine) as s:
        fs = er.category_facts(s, "PC")
        rows = s.scalars(select(PersonCategory).where(PersonCategory.psn_no == "PC")).all()
        assert len(fs) == 6
        assert sorted((r.category, r.valid_from, r.valid_to) for r in rows) == sorted(
            (m.category, m.start, m.end) for m in F.memberships(fs))
    engine.dispose()
