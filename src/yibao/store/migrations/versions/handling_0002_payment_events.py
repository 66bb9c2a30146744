"""handling: what happened to a payment order (已支付 / 退回), insert-only

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


def downgrade() -> None:
    op.drop_index("ix_hd_payment_events_payment_no", table_name="hd_payment_events")
    op.drop_table("hd_payment_events")
