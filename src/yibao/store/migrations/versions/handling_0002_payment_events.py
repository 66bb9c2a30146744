"""handling: what happened to a payment order (已支付 / 退回), and issued clearing statements, both insert-only

Revision ID: handling_0002
Revises: handling_0001
Create Date: 2026-12-05
"""

from alembic import op
import sqlalchemy as sa

revision = "handling_0002"
down_revision = "handling_0001"
branch_labels = None
depends_on = None

BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "hd_payment_events",
        sa.Column("id", BIGID, nullable=False),
        sa.Column("payment_no", sa.String(32), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("on", sa.Date(), nullable=False),
        sa.Column("note", sa.String(200), nullable=False),
        sa.Column("actor", sa.String(80), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_hd_payment_events"),
    )
    op.create_index("ix_hd_payment_events_payment_no", "hd_payment_events", ["payment_no"])
    op.create_table(
        "hd_clearings",
        sa.Column("id", BIGID, nullable=False),
        sa.Column("month", sa.String(7), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("statement", sa.JSON(), nullable=False),
        sa.Column("note", sa.String(200), nullable=False),
        sa.Column("issued_by", sa.String(80), nullable=False),
        sa.Column("issued_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_hd_clearings"),
        sa.UniqueConstraint("month", "version", name="uq_hd_clearings_month_version"),
    )
    op.create_index("ix_hd_clearings_month", "hd_clearings", ["month"])


def downgrade() -> None:
    op.drop_index("ix_hd_clearings_month", table_name="hd_clearings")
    op.drop_table("hd_clearings")
    op.drop_index("ix_hd_payment_events_payment_no", table_name="hd_payment_events")
    op.drop_table("hd_payment_events")
