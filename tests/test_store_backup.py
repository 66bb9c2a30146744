"""Backup and restore drill on SQLite and PostgreSQL: a backup taken from a store in use, restored into a
fresh database, passes ``yibao db verify`` and reconciles (3201) to the fen with what the institution
declares from the original; a restore never writes over a database that has data."""

from __future__ import annotations

import os
import stat
import uuid
from datetime import date

from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from test_store_chain import HIS, populate, problems, tamper
from yibao.cli import app
from yibao.service import sample
from yibao.service import transactions as tx
from yibao.store.database import make_engine

DAY = date(2024, 7, 1)


def totals(url: str, declared: dict | None = None) -> dict:
    engine = make_engine(url)
    with Session(engine) as s:
        answer = tx.totals(s, HIS, fixmedins_code=sample.HOSPITAL, begndate=DAY, enddate=DAY, declared=declared)
    engine.dispose()
    return answer


def fresh_database(store_url: str, tmp_path) -> str:
    """An empty database on the same backend: a new SQLite file, or CREATE DATABASE (nothing migrated)."""
    if store_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / 'restored' / 'yibao.db'}"
    name = "r_" + uuid.uuid4().hex[:12]
    admin = create_engine(store_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    admin.dispose()
    return store_url.rsplit("/", 1)[0] + "/" + name


def test_backup_restores_into_a_fresh_database_that_verifies_and_reconciles(store_url, tmp_path):
    populate(store_url)
    declared = totals(store_url)["totals"]  # what the institution's own books say (from the original)
    assert declared["fixmedins_setl_cnt"] == 3  # 6 settled, 3 reversed
    runner = CliRunner()
    backup_file = tmp_path / "backups" / "yibao.backup"
    made = runner.invoke(app, ["db", "backup", str(backup_file), "--url", store_url])
    assert made.exit_code == 0 and "SHA-256" in made.output, made.output
    assert stat.S_IMODE(os.stat(backup_file).st_mode) == 0o600
    again = runner.invoke(app, ["db", "backup", str(backup_file), "--url", store_url])
    assert again.exit_code == 2 and "BAK002" in again.output  # an existing backup is never overwritten

    target = fresh_database(store_url, tmp_path)
    restored = runner.invoke(app, ["db", "restore", str(backup_file), "--url", target])
    assert restored.exit_code == 0 and "台账校验通过" in restored.output, restored.output
    verified = runner.invoke(app, ["db", "verify", "--url", target])
    assert verified.exit_code == 0, verified.output
    answer = totals(target, declared=declared)
    assert answer["stmt_rslt"] == "0" and answer["totals"] == declared, answer
    # the restored store goes on working: another settlement chains on from the restored heads
    populate(target, persons=1, seed=False, cases=False)
    assert problems(target) == []

    over = runner.invoke(app, ["db", "restore", str(backup_file), "--url", target])
    assert over.exit_code == 2 and "BAK010" in over.output  # never over a database with data


def test_a_backup_altered_after_it_was_made_fails_the_restore_check(store_url, tmp_path):
    made = populate(store_url, persons=1)
    tamper(store_url, "UPDATE settlements SET hifp_pay = hifp_pay + 1000 WHERE setl_id = :s", s=made["setl_ids"][0])
    backup_file = tmp_path / "tampered.backup"
    assert CliRunner().invoke(app, ["db", "backup", str(backup_file), "--url", store_url]).exit_code == 0
    result = CliRunner().invoke(app, ["db", "restore", str(backup_file), "--url", fresh_database(store_url, tmp_path)])
    assert result.exit_code == 2 and "CHN001" in result.output and made["setl_ids"][0] in result.output, result.output
