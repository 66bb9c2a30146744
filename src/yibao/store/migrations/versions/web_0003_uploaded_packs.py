"""web: policy packs uploaded on the 政策包 page, kept as their YAML text (insert-only)

Revision ID: web_0003
Revises: web_0002
Create Date: 2026-12-05
"""

from alembic import op
import sqlalchemy as sa

revision = "web_0003"
down_revision = "web_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "web_packs",
        sa.Column("name", sa.String(40), nullable=False),
        sa.Column("yaml_text", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("uploaded_by", sa.String(40), nullable=False),
        sa.Column("uploaded_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_web_packs"),
    )


def downgrade() -> None:
    op.drop_table("web_packs")
