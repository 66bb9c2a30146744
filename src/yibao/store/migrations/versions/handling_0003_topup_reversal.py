"""handling: a 补差 statement may reverse an earlier one (撤销补差), insert-only like every statement

Revision ID: handling_0003
Revises: handling_0002
Create Date: 2026-12-05
"""

from alembic import op
import sqlalchemy as sa

revision = "handling_0003"
down_revision = "handling_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("hd_topups") as batch:
        batch.add_column(sa.Column("reverses", sa.String(32), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("hd_topups") as batch:
        batch.drop_column("reverses")
