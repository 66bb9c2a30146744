"""service: what the online supervision rules read — 主治医生 on visits, 收费项目类别 on fee lines,
机构类型 on institutions

Without these the service's pre-check could not run the rules that judge a line by its category
(同日短时重复收费, 过度检查, 超量开药 on drugs), a visit by its physician, or a pharmacy's sales; batch
reads them from the claims files. Nullable, so stored visits keep settling; existing
institutions become 定点医疗机构 (1), as every institution loaded before was.

Revision ID: svc0002
Revises: svc0001
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "svc0002"
down_revision = "svc0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("visits", sa.Column("atddr_no", sa.String(40), nullable=True))
    op.add_column("fee_items", sa.Column("med_chrgitm_type", sa.String(6), nullable=True))
    op.add_column("institutions", sa.Column("fixmedins_type", sa.String(2), nullable=True))
    op.execute("UPDATE institutions SET fixmedins_type = '1'")


def downgrade() -> None:
    with op.batch_alter_table("institutions") as batch:
        batch.drop_column("fixmedins_type")
    with op.batch_alter_table("fee_items") as batch:
        batch.drop_column("med_chrgitm_type")
    with op.batch_alter_table("visits") as batch:
        batch.drop_column("atddr_no")
