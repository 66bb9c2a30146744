"""handling: 经办 cases, their events, the entitlement facts they record, and 补差 statements

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

BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "hd_cases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_no", sa.String(32), nullable=False),
        sa.Column("item_code", sa.String(10), nullable=False),
        sa.Column("psn_no", sa.String(40), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(10), nullable=False),
        sa.Column("service_point", sa.String(60), nullable=False),
        sa.Column("applied_by", sa.String(80), nullable=False),
        sa.Column("agent_kind", sa.String(10), nullable=True),
        sa.Column("agent_name", sa.String(60), nullable=True),
        sa.Column("agent_relation", sa.String(30), nullable=True),
        sa.Column("authorization_no", sa.String(60), nullable=True),
        sa.Column("form", sa.JSON(), nullable=False),
        sa.Column("materials", sa.JSON(), nullable=False),
        sa.Column("fee_items", sa.JSON(), nullable=False),
        sa.Column("notice", sa.JSON(), nullable=False),
        sa.Column("step_actors", sa.JSON(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("applied_on", sa.Date(), nullable=False),
        sa.Column("accepted_on", sa.Date(), nullable=True),
        sa.Column("deadline", sa.Date(), nullable=True),
        sa.Column("completed_on", sa.Date(), nullable=True),
        sa.Column("rating", sa.Integer(), nullable=True),
        sa.Column("rating_comment", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_hd_cases"),
        sa.UniqueConstraint("case_no", name="uq_hd_cases_case_no"),
    )
    op.create_index("ix_hd_cases_item_code", "hd_cases", ["item_code"])
    op.create_index("ix_hd_cases_psn_no", "hd_cases", ["psn_no"])
    op.create_index("ix_hd_cases_status", "hd_cases", ["status"])
    op.create_table(
        "hd_events",
        sa.Column("id", BIGID, autoincrement=True, nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("actor", sa.String(80), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("from_status", sa.String(16), nullable=True),
        sa.Column("to_status", sa.String(16), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["hd_cases.id"], name="fk_hd_events_case_id_hd_cases"),
        sa.PrimaryKeyConstraint("id", name="pk_hd_events"),
    )
    op.create_index("ix_hd_events_case_id", "hd_events", ["case_id"])
    op.create_table(
        "hd_facts",
        sa.Column("id", BIGID, autoincrement=True, nullable=False),
        sa.Column("psn_no", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("code", sa.String(40), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_to", sa.Date(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("case_no", sa.String(32), nullable=False),
        sa.Column("recorded_by", sa.String(80), nullable=False),
        sa.Column("recorded_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_hd_facts"),
    )
    op.create_index("ix_hd_facts_psn_no", "hd_facts", ["psn_no"])
    op.create_table(
        "hd_topups",
        sa.Column("id", BIGID, autoincrement=True, nullable=False),
        sa.Column("topup_no", sa.String(32), nullable=False),
        sa.Column("case_no", sa.String(32), nullable=False),
        sa.Column("psn_no", sa.String(40), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("lines", sa.JSON(), nullable=False),
        sa.Column("totals", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(80), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_hd_topups"),
        sa.UniqueConstraint("topup_no", name="uq_hd_topups_topup_no"),
    )
    op.create_index("ix_hd_topups_case_no", "hd_topups", ["case_no"])
    op.create_index("ix_hd_topups_psn_no", "hd_topups", ["psn_no"])
    op.create_table(
        "hd_payments",
        sa.Column("id", BIGID, autoincrement=True, nullable=False),
        sa.Column("payment_no", sa.String(32), nullable=False),
        sa.Column("case_no", sa.String(32), nullable=False),
        sa.Column("psn_no", sa.String(40), nullable=False),
        sa.Column("setl_id", sa.String(40), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sa.String(80), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_hd_payments"),
        sa.UniqueConstraint("payment_no", name="uq_hd_payments_payment_no"),
    )
    op.create_index("ix_hd_payments_case_no", "hd_payments", ["case_no"])


def downgrade() -> None:
    op.drop_table("hd_payments")
    op.drop_table("hd_topups")
    op.drop_table("hd_facts")
    op.drop_table("hd_events")
    op.drop_table("hd_cases")
