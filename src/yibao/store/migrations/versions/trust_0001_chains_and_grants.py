"""trust: hash chains on the ledgers, the audit log and case events; insert-only grants (PostgreSQL)

Adds ``prev_hash``/``row_hash`` to settlements, accumulator_ledger, audit_log and sv_case_events,
the chain heads to accumulator_balances and the lane to audit_log, then seals the rows already
there (creating the store keys file if there is none: the chains are keyed, see
yibao.store.keys). On PostgreSQL the group role ``yibao_service`` (``YIBAO_SERVICE_ROLE``) gets
ordinary rights on every table but only SELECT and INSERT on the chained tables (settlements:
UPDATE of the reversal marks only); the login role the service uses is made a member of it, and
the owner that runs migrations keeps everything.

Revision ID: trust_0001
Revises:
Create Date: 2026-12-05
"""

from __future__ import annotations

import os

import sqlalchemy as sa
from alembic import op

revision = "trust_0001"
down_revision = None
branch_labels = ("trust",)
depends_on = ("svc0001", "supervision_0001")

HASHED = ("settlements", "accumulator_ledger", "audit_log", "sv_case_events")
INSERT_ONLY = ("settlements", "settlement_details", "accumulator_ledger", "audit_log", "sv_case_events")
SETTLEMENT_MARKS = ("status", "revs_setl_id", "revs_time")  # a reversal sets these (chained by its ledger row)


def service_role() -> str:
    role = os.environ.get("YIBAO_SERVICE_ROLE", "yibao_service")
    if not role.replace("_", "").isalnum():
        raise ValueError(f"YIBAO_SERVICE_ROLE must be an identifier, got {role!r}")
    return role


def upgrade() -> None:
    from yibao.store import chain, keys

    keys.ensure()
    for table in HASHED:
        op.add_column(table, sa.Column("prev_hash", sa.String(64), nullable=False, server_default=""))
        op.add_column(table, sa.Column("row_hash", sa.String(64), nullable=False, server_default=""))
    op.add_column("audit_log", sa.Column("chain_stream", sa.String(40), nullable=False, server_default=""))
    op.add_column("accumulator_balances", sa.Column("setl_head", sa.String(64), nullable=False, server_default=""))
    op.add_column("accumulator_balances", sa.Column("ledger_head", sa.String(64), nullable=False, server_default=""))
    _seal_existing(op.get_bind(), chain)
    if op.get_bind().dialect.name == "postgresql":
        _grants(service_role())


def _seal_existing(conn, chain) -> None:
    """Chain the rows written before this revision, in the order they were written."""
    import yibao.supervision.cases  # noqa: F401  (sv_case_events on the metadata)
    from yibao.store import models  # noqa: F401
    from yibao.store.base import Base

    t = Base.metadata.tables
    s, d, led, bal = t["settlements"], t["settlement_details"], t["accumulator_ledger"], t["accumulator_balances"]
    details: dict[str, list[dict]] = {}
    for row in conn.execute(sa.select(d).order_by(d.c.setl_id, d.c.seq)).mappings():
        details.setdefault(row["setl_id"], []).append(dict(row))
    setls = []
    for row in conn.execute(sa.select(s).order_by(s.c.psn_no, s.c.year, s.c.setl_time, s.c.setl_id)).mappings():
        setls.append({**row, "_children": details.get(row["setl_id"], [])})
    setl_heads = chain.backfill(conn, chain.SETTLEMENTS, setls)
    ledger_heads = chain.backfill(conn, chain.LEDGER, [dict(r) for r in conn.execute(
        sa.select(led).order_by(led.c.psn_no, led.c.year, led.c.seq)).mappings()])
    for (psn_no, year) in set(setl_heads) | set(ledger_heads):
        conn.execute(bal.update().where(bal.c.psn_no == psn_no, bal.c.year == year).values(
            setl_head=setl_heads.get((psn_no, year), ""), ledger_head=ledger_heads.get((psn_no, year), "")))
    ev = t["sv_case_events"]
    chain.backfill(conn, chain.CASE_EVENTS, [dict(r) for r in conn.execute(
        sa.select(ev).order_by(ev.c.case_id, ev.c.id)).mappings()])
    audit = t["audit_log"]
    rows = [{**r, "chain_stream": "before-trust_0001"} for r in conn.execute(
        sa.select(audit).order_by(audit.c.id)).mappings()]
    if rows:  # the audit log refuses UPDATE (svc0001's triggers): lift them for this one transaction
        _audit_triggers(conn, drop=True)
        for row in rows:
            conn.execute(audit.update().where(audit.c.id == row["id"]).values(chain_stream=row["chain_stream"]))
        chain.backfill(conn, chain.AUDIT, rows)
        _audit_triggers(conn, drop=False)


def _audit_triggers(conn, drop: bool) -> None:
    if conn.dialect.name == "postgresql":
        op.execute(f"ALTER TABLE audit_log {'DISABLE' if drop else 'ENABLE'} TRIGGER audit_log_append_only")
        return
    for event in ("UPDATE", "DELETE"):
        name = f"audit_log_no_{event.lower()}"
        op.execute(f"DROP TRIGGER IF EXISTS {name}" if drop else
                   f"CREATE TRIGGER {name} BEFORE {event} ON audit_log "
                   "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END")


def _grants(role: str) -> None:
    op.execute(f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') "
               f"THEN CREATE ROLE {role} NOLOGIN; END IF; END $$")
    op.execute(f"GRANT USAGE ON SCHEMA public TO {role}")
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}")
    op.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}")
    # tables later migrations create (the owner runs them) get the ordinary rights too
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {role}")
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {role}")
    op.execute(f"REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON alembic_version FROM {role}")
    for table in INSERT_ONLY:
        op.execute(f"REVOKE UPDATE, DELETE, TRUNCATE ON {table} FROM {role}")
    op.execute(f"GRANT UPDATE ({', '.join(SETTLEMENT_MARKS)}) ON settlements TO {role}")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        role = service_role()
        op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON TABLES FROM {role}")
        op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON SEQUENCES FROM {role}")
        op.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {role}")
        op.execute(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {role}")
    for table, cols in (("accumulator_balances", ("setl_head", "ledger_head")), ("audit_log", ("chain_stream",))):
        with op.batch_alter_table(table, recreate="never") as batch:
            for col in cols:
                batch.drop_column(col)
    for table in HASHED:
        with op.batch_alter_table(table, recreate="never") as batch:
            batch.drop_column("row_hash")
            batch.drop_column("prev_hash")
