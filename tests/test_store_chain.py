"""Tamper evidence: settlements, ledger rows, audit log and case events are hash-chained per stream;
``yibao db verify`` passes on an honest store and names the first altered or missing row; on
PostgreSQL the service's role can insert into these tables but not change or delete a row."""

from __future__ import annotations

import threading
import uuid
from datetime import datetime

import pytest
from sqlalchemy import create_engine, inspect, select, text
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from yibao.cli import app
from yibao.service import ledger, sample
from yibao.service import transactions as tx
from yibao.service.auth import Principal
from yibao.service.desk import Desk
from yibao.service.packs import PackSet
from yibao.settlement.request import FeeItemIn
from yibao.settlement.statement import dumps
from yibao.store import chain
from yibao.store.database import make_engine
from yibao.store.models import AccumulatorLedger, AuditLog, Settlement
from yibao.supervision import cases as C

HIS = Principal("his1", "institution", sample.HOSPITAL)
PACKS = PackSet.load(["shandong-2024"])
AT = datetime(2024, 7, 1, 9, 0)


def populate(url: str, persons: int = 3, seed: bool = True, cases: bool = True) -> dict:
    """A small honest history: per person two settled visits (one reversed, then settled again), a case."""
    engine = make_engine(url)
    if seed:
        with Session(engine) as s, s.begin():
            sample.seed(s, persons)
    desk = Desk(engine, PACKS)
    ctx = tx.Context("", "op", AT)
    setl_ids = []
    for i in range(persons):
        psn_no = f"P{i + 1:09d}"
        insutype = "310" if i % 2 else "390"
        for k in range(2):
            def make(session, k=k):
                v = tx.register_visit(session, HIS, ctx, fixmedins_code=sample.HOSPITAL, psn_no=psn_no,
                                      insutype=insutype, med_type="11", begntime=AT)
                tx.upload_items(session, HIS, ctx, PACKS, mdtrt_id=v["mdtrt_id"],
                                items=[FeeItemIn.model_validate(x) for x in sample.items(4 + k)])
                return v["mdtrt_id"]
            mdtrt_id = desk.write(None, "", make)[0]
            answer = desk.write(None, "", lambda s, m=mdtrt_id: dumps(tx.settle(s, HIS, ctx, PACKS, mdtrt_id=m)))[0]
            setl_ids.append(answer.split('"setl_id": "')[1].split('"')[0])
        desk.write(None, "", lambda s: dumps(tx.reverse(s, HIS, ctx, setl_id=setl_ids[-1])))
    if not cases:
        engine.dispose()
        return {"setl_ids": setl_ids}
    with Session(engine) as s, s.begin():
        hit = {"rule_id": "R1", "rule_name": "重复收费", "severity": "high", "subject": "M1", "amount_fen": 500}
        C.import_hits(s, [hit, {**hit, "subject": "M2"}])
    with Session(engine) as s, s.begin():
        case_id = s.scalar(select(C.Case.id).where(C.Case.subject == "M1"))
        C.move(s, case_id, "verifying", "稽核员甲")
        C.comment(s, case_id, "已调取病历", "稽核员甲")
        C.move(s, case_id, "confirmed", "稽核员乙")
    engine.dispose()
    return {"setl_ids": setl_ids, "case_id": case_id}


def problems(url: str) -> list:
    engine = make_engine(url)
    with engine.connect() as conn:
        found = chain.verify(conn).problems + ledger.verify(conn)
    engine.dispose()
    return found


def tamper(url: str, sql: str, **params) -> None:
    """What someone with the database's owner rights (or the SQLite file) can do, triggers included."""
    engine = make_engine(url)
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only"))
        else:
            conn.execute(text("DROP TRIGGER IF EXISTS audit_log_no_update"))
            conn.execute(text("DROP TRIGGER IF EXISTS audit_log_no_delete"))
        for statement in sql.split("; "):
            conn.execute(text(statement), params)
    engine.dispose()


def test_an_honest_store_verifies_and_every_row_is_chained(store_url):
    populate(store_url)
    assert problems(store_url) == []
    engine = make_engine(store_url)
    with engine.connect() as conn:
        report = chain.verify(conn)
        for table in (Settlement, AccumulatorLedger, AuditLog, C.CaseEvent):
            assert "" not in set(conn.execute(select(table.row_hash)).scalars())
    engine.dispose()
    # 3 persons × 2 settlements, one stream per person-year; ledger 3 rows each (2 settles, 1 reversal)
    assert report.rows["settlements"] == 6 and report.streams["settlements"] == 3
    assert report.rows["accumulator_ledger"] == 9 and report.streams["accumulator_ledger"] == 3
    assert report.rows["sv_case_events"] == 5 and report.streams["sv_case_events"] == 2
    assert report.rows["audit_log"] == 3 * (2 * 3 + 1)  # register, upload, settle per visit; one reverse


@pytest.mark.parametrize("what", ["ledger_delta", "settlement_amount", "detail_amount", "audit_detail",
                                  "case_note", "ledger_row_deleted", "settlement_reversal_mark",
                                  "balance_values", "ledger_tail_deleted", "person_year_erased"])
def test_verify_names_the_first_altered_row(store_url, what):
    made = populate(store_url)
    first = made["setl_ids"][0]
    expected = {
        "ledger_delta": ("UPDATE accumulator_ledger SET delta = :d WHERE psn_no = 'P000000002' AND seq = 1",
                         {"d": '{"setl:count": 1}'}, "CHN001", "accumulator_ledger(psn_no=P000000002, year=2024, seq=1)"),
        "settlement_amount": ("UPDATE settlements SET hifp_pay = hifp_pay + 100 WHERE setl_id = :s", {"s": first},
                              "CHN001", f"settlements(setl_id={first})"),
        "detail_amount": ("UPDATE settlement_details SET fund_payamt = fund_payamt + 1 WHERE setl_id = :s AND seq = 0",
                          {"s": first}, "CHN001", f"settlements(setl_id={first})"),
        "audit_detail": ("UPDATE audit_log SET actor = 'someone' WHERE id = (SELECT min(id) + 4 FROM audit_log)", {},
                         "CHN001", "audit_log(id="),
        "case_note": ("UPDATE sv_case_events SET note = '无' WHERE action = 'comment'", {}, "CHN001", "sv_case_events(id="),
        "ledger_row_deleted": ("DELETE FROM accumulator_ledger WHERE psn_no = 'P000000001' AND seq = 2", {},
                               "CHN002", "accumulator_ledger(psn_no=P000000001, year=2024, seq=3)"),
        "settlement_reversal_mark": ("UPDATE settlements SET status = 'reversed' WHERE setl_id = :s", {"s": first},
                                     "CHN011", f"settlements(setl_id={first})"),
        "balance_values": ("UPDATE accumulator_balances SET acc_values = :v WHERE psn_no = 'P000000003'",
                           {"v": '{"setl:count": 5}'}, "CHN010", "accumulator_balances(psn_no=P000000003, year=2024)"),
        "ledger_tail_deleted": ("DELETE FROM accumulator_ledger WHERE psn_no = 'P000000001' AND seq = 3", {},
                                "CHN003", "accumulator_balances.ledger_head"),
        # a whole person-year erased consistently (details, ledger, settlements, balance): the audit log remembers
        "person_year_erased": ("DELETE FROM settlement_details WHERE setl_id IN (SELECT setl_id FROM settlements "
                               "WHERE psn_no = 'P000000003'); DELETE FROM accumulator_ledger WHERE psn_no = 'P000000003'; "
                               "DELETE FROM settlements WHERE psn_no = 'P000000003'; "
                               "DELETE FROM accumulator_balances WHERE psn_no = 'P000000003'", {},
                               "CHN012", "settlements(setl_id=S"),
    }[what]
    sql, params, code, where = expected
    tamper(store_url, sql, **params)
    found = problems(store_url)
    assert found and found[0].code == code and found[0].path.startswith(where), found


def test_db_verify_command_passes_then_fails_with_a_code(store_url):
    made = populate(store_url, persons=1)
    runner = CliRunner()
    ok = runner.invoke(app, ["db", "verify", "--url", store_url])
    assert ok.exit_code == 0 and "台账校验通过" in ok.output, ok.output
    tamper(store_url, "UPDATE settlements SET psn_cash_pay = 0 WHERE setl_id = :s", s=made["setl_ids"][0])
    bad = runner.invoke(app, ["db", "verify", "--url", store_url])
    assert bad.exit_code == 2 and "CHN001" in bad.output and made["setl_ids"][0] in bad.output, bad.output


def test_audit_lanes_survive_concurrent_writers_and_rollbacks(store_url):
    engine = make_engine(store_url)
    with Session(engine) as s, s.begin():
        sample.seed(s, 4)
    desk = Desk(engine, PACKS)
    ctx = tx.Context("", "op", AT)

    def work(n: int) -> None:
        for k in range(6):
            psn_no = f"P{n + 1:09d}"
            try:
                def register(session, k=k):
                    v = tx.register_visit(session, HIS, ctx, fixmedins_code=sample.HOSPITAL, psn_no=psn_no,
                                          insutype="310" if n % 2 else "390", med_type="11", begntime=AT)
                    if k % 3 == 2:  # written, then rolled back: the lane it used must not be reused
                        raise RuntimeError("roll back")
                    return v["mdtrt_id"]
                desk.write(None, "", register)
            except RuntimeError:
                pass

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with Session(engine) as s:
        assert s.scalar(select(AuditLog.id).order_by(AuditLog.id.desc()).limit(1)) is not None
        assert len(s.scalars(select(AuditLog)).all()) == 4 * 4
    engine.dispose()
    assert problems(store_url) == []


@pytest.fixture
def pg_store(pg_url, _pg_template):
    """A freshly migrated PostgreSQL store (the roles and grants are PostgreSQL's)."""
    name = "t_" + uuid.uuid4().hex[:12]
    with _pg_template.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name} TEMPLATE yibao_template"))
    yield pg_url.rsplit("/", 1)[0] + "/" + name
    with _pg_template.connect() as conn:
        conn.execute(text(f"DROP DATABASE {name} WITH (FORCE)"))


def test_the_service_role_can_settle_but_not_change_a_chained_row(pg_store):
    login = "svc_" + uuid.uuid4().hex[:8]
    owner = create_engine(pg_store, isolation_level="AUTOCOMMIT")
    with owner.connect() as conn:
        conn.execute(text(f"CREATE ROLE {login} LOGIN IN ROLE yibao_service"))
    as_service = pg_store.replace("://yibao@", f"://{login}@")
    try:
        engine = make_engine(pg_store)
        with Session(engine) as s, s.begin():
            sample.seed(s, 2)
        engine.dispose()
        populate(as_service, persons=2, seed=False)  # the whole flow (settle, reverse, cases) as the service
        assert problems(pg_store) == []
        service = create_engine(as_service)
        for sql in ("UPDATE accumulator_ledger SET delta = '{}'", "DELETE FROM accumulator_ledger",
                    "UPDATE settlements SET hifp_pay = 0", "DELETE FROM settlements",
                    "UPDATE settlement_details SET fund_payamt = 0", "UPDATE audit_log SET actor = 'x'",
                    "DELETE FROM audit_log", "UPDATE sv_case_events SET note = 'x'", "TRUNCATE accumulator_ledger",
                    "UPDATE alembic_version SET version_num = 'x'"):
            with service.connect() as conn:
                with pytest.raises(ProgrammingError, match="permission denied"):
                    conn.execute(text(sql))
        with service.begin() as conn:  # the reversal marks are the one change a settlement row allows
            assert conn.execute(text("UPDATE settlements SET revs_time = revs_time WHERE status = 'reversed'")).rowcount == 2
        service.dispose()
    finally:
        with owner.connect() as conn:
            conn.execute(text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{login}'"))
            conn.execute(text(f"DROP ROLE {login}"))
        owner.dispose()


def test_the_migration_seals_rows_written_before_it(store_url):
    """Rows written before trust_0001 (here: made, then the revision taken off) are chained by it."""
    from alembic import command

    from yibao.store.migrate import alembic_config, upgrade

    populate(store_url, persons=2)
    command.downgrade(alembic_config(store_url), "trust@base")
    engine = make_engine(store_url)
    with engine.connect() as conn:
        assert "row_hash" not in {c["name"] for c in inspect(conn).get_columns("settlements")}
    engine.dispose()
    upgrade(store_url)
    assert problems(store_url) == []
    populate(store_url, persons=2, seed=False, cases=False)  # and the chains go on from the sealed heads
    engine = make_engine(store_url)
    with Session(engine) as s, s.begin():
        C.comment(s, 1, "迁移后的意见", "稽核员丙")
    engine.dispose()
    assert problems(store_url) == []


def test_verify_reads_a_snapshot_without_holding_up_sqlite_writers(tmp_path):
    from yibao.store.database import read_snapshot
    from yibao.store.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'y.db'}"
    upgrade(url)
    populate(url, persons=1, cases=False)
    reader, writer = make_engine(url), make_engine(url)
    with reader.connect() as raw:
        conn = read_snapshot(raw)
        with conn.begin():
            before = chain.verify(conn).rows["audit_log"]
            with writer.begin() as w:  # BEGIN IMMEDIATE while the verify transaction is open: not blocked
                w.execute(text("UPDATE persons SET acct_balc_fen = acct_balc_fen WHERE psn_no = 'P000000001'"))
            populate(url, persons=1, seed=False, cases=False)  # whole settlements commit meanwhile
            assert chain.verify(conn).rows["audit_log"] == before  # and the snapshot does not see them
    reader.dispose()
    writer.dispose()
    assert problems(url) == []
