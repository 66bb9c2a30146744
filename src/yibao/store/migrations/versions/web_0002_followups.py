"""web: follow-up of return-to-poverty alerts (核实 / 帮扶 / 销号), append-only

Revision ID: web_0002
Revises: web_0001
Create Date: 2026-12-05
"""

from alembic import op
import sqlalchemy as sa

revision = "web_0002"
down_revision = "web_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "web_followups",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("psn_no", sa.String(40), nullable=False),
        sa.Column("yr", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(40), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_web_followups"),
    )
    op.create_index("ix_web_followups_psn_no", "web_followups", ["psn_no"])


def downgrade() -> None:
    op.drop_index("ix_web_followups_psn_no", table_name="web_followups")
    op.drop_table("web_followups")
