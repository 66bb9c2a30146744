"""supervision: suspect cases and their events (基金监管疑点案件)

Revision ID: supervision_0001
Revises:
Create Date: 2026-11-22
"""

from alembic import op
import sqlalchemy as sa

revision = "supervision_0001"
down_revision = None
branch_labels = ("supervision",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sv_cases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rule_id", sa.String(32), nullable=False),
        sa.Column("rule_name", sa.String(100), nullable=False),
        sa.Column("severity", sa.String(10), nullable=False),
        sa.Column("subject", sa.String(64), nullable=False),
        sa.Column("mdtrt_id", sa.String(64), nullable=True),
        sa.Column("psn_no", sa.String(64), nullable=True),
        sa.Column("fixmedins_code", sa.String(64), nullable=True),
        sa.Column("atddr_no", sa.String(64), nullable=True),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("recovered_fen", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("assignee", sa.String(64), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_sv_cases"),
        sa.UniqueConstraint("rule_id", "subject", name="uq_sv_cases_rule_id_subject"),
    )
    op.create_index("ix_sv_cases_fixmedins_code", "sv_cases", ["fixmedins_code"])
    op.create_index("ix_sv_cases_atddr_no", "sv_cases", ["atddr_no"])
    op.create_index("ix_sv_cases_status", "sv_cases", ["status"])
    op.create_table(
        "sv_case_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("from_status", sa.String(16), nullable=True),
        sa.Column("to_status", sa.String(16), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["case_id"], ["sv_cases.id"], name="fk_sv_case_events_case_id_sv_cases"),
        sa.PrimaryKeyConstraint("id", name="pk_sv_case_events"),
    )
    op.create_index("ix_sv_case_events_case_id", "sv_case_events", ["case_id"])


def downgrade() -> None:
    op.drop_table("sv_case_events")
    op.drop_table("sv_cases")
