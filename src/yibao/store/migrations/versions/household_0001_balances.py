"""household: 家庭年度限额 — household balances and their ledger (issue #14, shape 6)

A pack tier may bound what a household's members together receive in a year (``household_cap``). The
household's year-to-date accumulators live in ``household_balances`` (one row per hh_no and year, locked
like a person's balance) and every movement in ``household_ledger`` (hash-chained per hh_no and year); the
settlement rows are not changed, so their hash chain still verifies.

Revision ID: household_0001
Revises:
Create Date: 2026-12-05
"""

from __future__ import annotations

import os

import sqlalchemy as sa
from alembic import op

revision = "household_0001"
down_revision = None
branch_labels = ("household",)
depends_on = ("svc0001", "trust_0001")  # refers to settlements and persons; chained, insert-only as trust's ledgers


def upgrade() -> None:
    op.create_table(
        "household_balances",
        sa.Column("hh_no", sa.String(length=40), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("acc_values", sa.JSON(), nullable=False),
        sa.Column("entries", sa.Integer(), nullable=False),
        sa.Column("ledger_head", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("hh_no", "year", name=op.f("pk_household_balances")),
    )
    op.create_table(
        "household_ledger",
        sa.Column("hh_no", sa.String(length=40), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("setl_id", sa.String(length=40), nullable=False),
        sa.Column("psn_no", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("delta", sa.JSON(), nullable=False),
        sa.Column("acc_after", sa.JSON(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("row_hash", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["psn_no"], ["persons.psn_no"], name=op.f("fk_household_ledger_psn_no_persons")),
        sa.ForeignKeyConstraint(["setl_id"], ["settlements.setl_id"],
                                name=op.f("fk_household_ledger_setl_id_settlements")),
        sa.PrimaryKeyConstraint("hh_no", "year", "seq", name=op.f("pk_household_ledger")),
    )
    with op.batch_alter_table("household_ledger", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_household_ledger_setl_id"), ["setl_id"], unique=False)
    if op.get_bind().dialect.name == "postgresql":  # the ledger is insert-only for the service, as accumulator_ledger
        role = os.environ.get("YIBAO_SERVICE_ROLE", "yibao_service")
        if not role.replace("_", "").isalnum():
            raise ValueError(f"YIBAO_SERVICE_ROLE must be an identifier, got {role!r}")
        op.execute(f"DO $$ BEGIN IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') "
                   f"THEN REVOKE UPDATE, DELETE, TRUNCATE ON household_ledger FROM {role}; END IF; END $$")


def downgrade() -> None:
    with op.batch_alter_table("household_ledger", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_household_ledger_setl_id"))
    op.drop_table("household_ledger")
    op.drop_table("household_balances")
