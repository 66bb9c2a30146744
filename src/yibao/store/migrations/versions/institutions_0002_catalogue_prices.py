"""institutions: versioned national catalogue tables (drugs, consumables, service items) and their entries,
集采 selected products per institution, 双通道 drugs and pharmacies, and dated service-item price events

Revision ID: institutions_0002
Revises: institutions_0001
Create Date: 2026-12-05
"""

from alembic import op
import sqlalchemy as sa

revision = "institutions_0002"
down_revision = "institutions_0001"
branch_labels = None
depends_on = None

BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table('ins_catalogue_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=12), nullable=False),
    sa.Column('version', sa.String(length=40), nullable=False),
    sa.Column('effective_from', sa.Date(), nullable=False),
    sa.Column('default_preselfpay', sa.Numeric(precision=9, scale=6), nullable=False),
    sa.Column('source', sa.String(length=200), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('rows', sa.Integer(), nullable=False),
    sa.Column('imported_by', sa.String(length=80), nullable=False),
    sa.Column('imported_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ins_catalogue_versions'))
    )
    op.create_index('ix_ins_catalogue_versions_kind_effective_from', 'ins_catalogue_versions', ['kind', 'effective_from'], unique=False)
    op.create_table('ins_dual_channel',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('med_list_codg', sa.String(length=60), nullable=False),
    sa.Column('fixmedins_code', sa.String(length=40), nullable=False),
    sa.Column('valid_from', sa.Date(), nullable=False),
    sa.Column('valid_to', sa.Date(), nullable=False),
    sa.Column('recorded_by', sa.String(length=80), nullable=False),
    sa.Column('recorded_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ins_dual_channel'))
    )
    op.create_index('ix_ins_dual_channel_med_list_codg', 'ins_dual_channel', ['med_list_codg'], unique=False)
    op.create_table('ins_price_events',
    sa.Column('id', BIGID, autoincrement=True, nullable=False),
    sa.Column('med_list_codg', sa.String(length=60), nullable=False),
    sa.Column('level', sa.String(length=2), nullable=False),
    sa.Column('price_fen', sa.BigInteger(), nullable=False),
    sa.Column('eff_date', sa.Date(), nullable=False),
    sa.Column('doc_no', sa.String(length=80), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('recorded_by', sa.String(length=80), nullable=False),
    sa.Column('recorded_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ins_price_events'))
    )
    op.create_index('ix_ins_price_events_item_level_eff', 'ins_price_events', ['med_list_codg', 'level', 'eff_date'], unique=False)
    op.create_table('ins_vbp_products',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('batch', sa.String(length=40), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('fixmedins_code', sa.String(length=40), nullable=False),
    sa.Column('med_list_codg', sa.String(length=60), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('contract_volume', sa.Numeric(precision=16, scale=4), nullable=False),
    sa.Column('selected_price_fen', sa.BigInteger(), nullable=False),
    sa.Column('reference_price_fen', sa.BigInteger(), nullable=False),
    sa.Column('period_from', sa.Date(), nullable=False),
    sa.Column('period_to', sa.Date(), nullable=False),
    sa.Column('recorded_by', sa.String(length=80), nullable=False),
    sa.Column('recorded_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ins_vbp_products'))
    )
    op.create_index('ix_ins_vbp_products_fixmedins_code_year', 'ins_vbp_products', ['fixmedins_code', 'year'], unique=False)
    op.create_table('ins_catalogue_entries',
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('med_list_codg', sa.String(length=60), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('chrgitm_lv', sa.String(length=2), nullable=False),
    sa.Column('preselfpay_ratio', sa.Numeric(precision=9, scale=6), nullable=True),
    sa.Column('pay_std_fen', sa.BigInteger(), nullable=True),
    sa.Column('limit_text', sa.Text(), nullable=True),
    sa.Column('limit_codes', sa.String(length=200), nullable=True),
    sa.Column('spec', sa.String(length=200), nullable=True),
    sa.Column('dosform', sa.String(length=60), nullable=True),
    sa.Column('unit', sa.String(length=30), nullable=True),
    sa.Column('producer', sa.String(length=200), nullable=True),
    sa.ForeignKeyConstraint(['version_id'], ['ins_catalogue_versions.id'], name=op.f('fk_ins_catalogue_entries_version_id_ins_catalogue_versions')),
    sa.PrimaryKeyConstraint('version_id', 'med_list_codg', name=op.f('pk_ins_catalogue_entries'))
    )


def downgrade() -> None:
    op.drop_table('ins_catalogue_entries')
    op.drop_index('ix_ins_vbp_products_fixmedins_code_year', table_name='ins_vbp_products')
    op.drop_table('ins_vbp_products')
    op.drop_index('ix_ins_price_events_item_level_eff', table_name='ins_price_events')
    op.drop_table('ins_price_events')
    op.drop_index('ix_ins_dual_channel_med_list_codg', table_name='ins_dual_channel')
    op.drop_table('ins_dual_channel')
    op.drop_index('ix_ins_catalogue_versions_kind_effective_from', table_name='ins_catalogue_versions')
    op.drop_table('ins_catalogue_versions')
