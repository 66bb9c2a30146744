"""handling: 经办 cases of service items and their actions

Revision ID: handling_0001
Revises:
Create Date: 2026-12-05
"""

from alembic import op
import sqlalchemy as sa

revision = "handling_0001"
down_revision = None
branch_labels = ("handling",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "hd_cases",
        sa.Column("case_id", sa.String(40), nullable=False),
        sa.Column("item_code", sa.String(40), nullable=False),
        sa.Column("psn_no", sa.String(40), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("form", sa.JSON(), nullable=False),
        sa.Column("missing", sa.JSON(), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("service_point", sa.String(80), nullable=False),
        sa.Column("accepted_on", sa.Date(), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("closed_on", sa.Date(), nullable=True),
        sa.Column("rating", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("case_id", name="pk_hd_cases"),
    )
    op.create_index("ix_hd_cases_item_code", "hd_cases", ["item_code"])
    op.create_index("ix_hd_cases_psn_no", "hd_cases", ["psn_no"])
    op.create_index("ix_hd_cases_status", "hd_cases", ["status"])
    op.create_table(
        "hd_case_events",
        sa.Column("id", sa.Integer(), nullable=False, autoincrement=True),
        sa.Column("case_id", sa.String(40), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("actor", sa.String(80), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("step", sa.String(16), nullable=True),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("from_status", sa.String(16), nullable=True),
        sa.Column("to_status", sa.String(16), nullable=False),
        sa.Column("note", sa.String(400), nullable=False),
        sa.Column("on_behalf", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(["case_id"], ["hd_cases.case_id"], name="fk_hd_case_events_case_id_hd_cases"),
        sa.PrimaryKeyConstraint("id", name="pk_hd_case_events"),
    )
    op.create_index("ix_hd_case_events_case_id", "hd_case_events", ["case_id"])


def downgrade() -> None:
    op.drop_table("hd_case_events")
    op.drop_table("hd_cases")
