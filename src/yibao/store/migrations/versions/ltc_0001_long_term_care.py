"""ltc: 长期护理保险 assessments, care institutions, care records, person-month settlements

Revision ID: ltc_0001
Revises:
Create Date: 2026-12-05
"""

from alembic import op
import sqlalchemy as sa

revision = "ltc_0001"
down_revision = None
branch_labels = ("ltc",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ltc_assessments",
        sa.Column("assessment_id", sa.String(40), nullable=False),
        sa.Column("psn_no", sa.String(40), nullable=False),
        sa.Column("level", sa.String(40), nullable=False),
        sa.Column("begin", sa.Date(), nullable=False),
        sa.Column("end", sa.Date(), nullable=False),
        sa.Column("assessor", sa.String(40), nullable=False),
        sa.Column("scores", sa.JSON(), nullable=False),
        sa.Column("reason", sa.String(400), nullable=False),
        sa.Column("recorded_by", sa.String(80), nullable=False),
        sa.Column("recorded_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("assessment_id", name="pk_ltc_assessments"),
    )
    op.create_index("ix_ltc_assessments_psn_no", "ltc_assessments", ["psn_no"])
    op.create_table(
        "ltc_institutions",
        sa.Column("fixmedins_code", sa.String(40), nullable=False),
        sa.Column("fixmedins_name", sa.String(200), nullable=False),
        sa.Column("admdvs", sa.String(6), nullable=False),
        sa.Column("modes", sa.JSON(), nullable=False),
        sa.Column("beds", sa.Integer(), nullable=False),
        sa.Column("designated_from", sa.Date(), nullable=False),
        sa.Column("designated_to", sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint("fixmedins_code", name="pk_ltc_institutions"),
    )
    op.create_table(
        "ltc_records",
        sa.Column("srv_id", sa.String(40), nullable=False),
        sa.Column("psn_no", sa.String(40), nullable=False),
        sa.Column("fixmedins_code", sa.String(40), nullable=False),
        sa.Column("month", sa.String(7), nullable=False),
        sa.Column("srv_date", sa.Date(), nullable=False),
        sa.Column("days", sa.Integer(), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("item_class", sa.String(16), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("srv_level", sa.String(40), nullable=True),
        sa.Column("uploaded_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("srv_id", name="pk_ltc_records"),
    )
    op.create_index("ix_ltc_records_psn_no", "ltc_records", ["psn_no"])
    op.create_index("ix_ltc_records_month", "ltc_records", ["month"])
    op.create_table(
        "ltc_settlements",
        sa.Column("setl_id", sa.String(40), nullable=False),
        sa.Column("psn_no", sa.String(40), nullable=False),
        sa.Column("month", sa.String(7), nullable=False),
        sa.Column("valid_key", sa.String(40), nullable=False),
        sa.Column("pack_id", sa.String(40), nullable=False),
        sa.Column("pack_version", sa.String(40), nullable=False),
        sa.Column("ltc_sumamt", sa.BigInteger(), nullable=False),
        sa.Column("excluded_amt", sa.BigInteger(), nullable=False),
        sa.Column("over_limit_amt", sa.BigInteger(), nullable=False),
        sa.Column("allowed_amt", sa.BigInteger(), nullable=False),
        sa.Column("fund_pay", sa.BigInteger(), nullable=False),
        sa.Column("psn_pay", sa.BigInteger(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("settled_at", sa.DateTime(), nullable=False),
        sa.Column("reversed_at", sa.DateTime(), nullable=True),
        sa.Column("reverse_reason", sa.String(400), nullable=True),
        sa.PrimaryKeyConstraint("setl_id", name="pk_ltc_settlements"),
        sa.UniqueConstraint("psn_no", "month", "valid_key", name="uq_ltc_settlements_psn_no_month_valid_key"),
    )
    op.create_index("ix_ltc_settlements_psn_no", "ltc_settlements", ["psn_no"])


def downgrade() -> None:
    op.drop_table("ltc_settlements")
    op.drop_table("ltc_records")
    op.drop_table("ltc_institutions")
    op.drop_table("ltc_assessments")
