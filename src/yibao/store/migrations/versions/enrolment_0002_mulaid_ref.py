"""enrolment: index the account journal's ref, so 2208 finds a settlement's 家庭共济 debit by its setl_id

Revision ID: enrolment_0002
Revises: enrolment_0001
Create Date: 2026-12-05 17:10:00
"""

from __future__ import annotations

from alembic import op


revision = 'enrolment_0002'
down_revision = 'enrolment_0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('en_account_entries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_en_account_entries_ref'), ['ref'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('en_account_entries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_en_account_entries_ref'))
