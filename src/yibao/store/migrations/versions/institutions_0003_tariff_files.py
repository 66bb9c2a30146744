"""institutions: imported price tables and 集采 selected-product lists as dated versions (ins_tariff_files), and the
file each price event / selected product came from

Revision ID: institutions_0003
Revises: institutions_0002
Create Date: 2026-12-05
"""

from alembic import op
import sqlalchemy as sa

revision = "institutions_0003"
down_revision = "institutions_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('ins_tariff_files',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('version', sa.String(length=80), nullable=False),
    sa.Column('effective_from', sa.Date(), nullable=False),
    sa.Column('source', sa.String(length=200), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('rows', sa.Integer(), nullable=False),
    sa.Column('imported_by', sa.String(length=80), nullable=False),
    sa.Column('imported_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ins_tariff_files')),
    sa.UniqueConstraint('kind', 'version', name=op.f('uq_ins_tariff_files_kind_version'))
    )
    op.add_column('ins_price_events', sa.Column('file_id', sa.Integer(), nullable=True))
    op.create_index('ix_ins_price_events_file_id', 'ins_price_events', ['file_id'], unique=False)
    op.add_column('ins_vbp_products', sa.Column('file_id', sa.Integer(), nullable=True))
    op.create_index('ix_ins_vbp_products_file_id', 'ins_vbp_products', ['file_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_ins_vbp_products_file_id', table_name='ins_vbp_products')
    with op.batch_alter_table('ins_vbp_products') as batch:
        batch.drop_column('file_id')
    op.drop_index('ix_ins_price_events_file_id', table_name='ins_price_events')
    with op.batch_alter_table('ins_price_events') as batch:
        batch.drop_column('file_id')
    op.drop_table('ins_tariff_files')
