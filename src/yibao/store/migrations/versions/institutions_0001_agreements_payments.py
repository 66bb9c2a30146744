"""institutions: 两定机构 designation applications, agreements and their dated events, the refusal
projection the settlement service reads, annual assessments, monthly settlement applications to
institutions, advances (预付金) and their offsets, and the fund ledger of payments out

Revision ID: institutions_0001
Revises:
Create Date: 2026-12-05
"""

from alembic import op
import sqlalchemy as sa

revision = "institutions_0001"
down_revision = None
branch_labels = ("institutions",)
depends_on = ("svc0001", "supervision_0001")  # projects onto institutions; reads sv_cases

BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table('ins_advances',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('advance_no', sa.String(length=32), nullable=False),
    sa.Column('fixmedins_code', sa.String(length=40), nullable=False),
    sa.Column('fund', sa.String(length=12), nullable=False),
    sa.Column('amount_fen', sa.BigInteger(), nullable=False),
    sa.Column('offset_months', sa.Integer(), nullable=False),
    sa.Column('paid_on', sa.Date(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('created_by', sa.String(length=80), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ins_advances')),
    sa.UniqueConstraint('advance_no', name=op.f('uq_ins_advances_advance_no'))
    )
    op.create_index(op.f('ix_ins_advances_fixmedins_code'), 'ins_advances', ['fixmedins_code'], unique=False)
    op.create_table('ins_agreements',
    sa.Column('agreement_no', sa.String(length=32), nullable=False),
    sa.Column('fixmedins_code', sa.String(length=40), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('signed_on', sa.Date(), nullable=False),
    sa.Column('valid_from', sa.Date(), nullable=False),
    sa.Column('valid_to', sa.Date(), nullable=False),
    sa.Column('scope', sa.JSON(), nullable=False),
    sa.Column('application_no', sa.String(length=32), nullable=True),
    sa.Column('signed_by', sa.String(length=80), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('agreement_no', name=op.f('pk_ins_agreements'))
    )
    op.create_index(op.f('ix_ins_agreements_fixmedins_code'), 'ins_agreements', ['fixmedins_code'], unique=False)
    op.create_table('ins_assessments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('fixmedins_code', sa.String(length=40), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('score', sa.Numeric(precision=7, scale=2), nullable=False),
    sa.Column('grade', sa.String(length=4), nullable=False),
    sa.Column('consequence', sa.String(length=20), nullable=False),
    sa.Column('inputs', sa.JSON(), nullable=False),
    sa.Column('rules_version', sa.String(length=20), nullable=False),
    sa.Column('assessed_by', sa.String(length=80), nullable=False),
    sa.Column('assessed_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ins_assessments'))
    )
    op.create_index(op.f('ix_ins_assessments_fixmedins_code'), 'ins_assessments', ['fixmedins_code'], unique=False)
    op.create_table('ins_designations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('application_no', sa.String(length=32), nullable=False),
    sa.Column('fixmedins_code', sa.String(length=40), nullable=False),
    sa.Column('fixmedins_name', sa.String(length=120), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('admdvs', sa.String(length=6), nullable=False),
    sa.Column('scope', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('applied_on', sa.Date(), nullable=False),
    sa.Column('applied_by', sa.String(length=80), nullable=False),
    sa.Column('evaluation', sa.JSON(), nullable=True),
    sa.Column('evaluated_on', sa.Date(), nullable=True),
    sa.Column('evaluated_by', sa.String(length=80), nullable=True),
    sa.Column('agreement_no', sa.String(length=32), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ins_designations')),
    sa.UniqueConstraint('application_no', name=op.f('uq_ins_designations_application_no'))
    )
    op.create_index(op.f('ix_ins_designations_fixmedins_code'), 'ins_designations', ['fixmedins_code'], unique=False)
    op.create_table('ins_fund_ledger',
    sa.Column('id', BIGID, autoincrement=True, nullable=False),
    sa.Column('posted_on', sa.Date(), nullable=False),
    sa.Column('fund', sa.String(length=12), nullable=False),
    sa.Column('fixmedins_code', sa.String(length=40), nullable=False),
    sa.Column('kind', sa.String(length=12), nullable=False),
    sa.Column('amount_fen', sa.BigInteger(), nullable=False),
    sa.Column('ref', sa.String(length=32), nullable=False),
    sa.Column('actor', sa.String(length=80), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ins_fund_ledger'))
    )
    op.create_index(op.f('ix_ins_fund_ledger_fixmedins_code'), 'ins_fund_ledger', ['fixmedins_code'], unique=False)
    op.create_index('ix_ins_fund_ledger_fund_posted_on', 'ins_fund_ledger', ['fund', 'posted_on'], unique=False)
    op.create_table('ins_settle_apps',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('app_no', sa.String(length=32), nullable=False),
    sa.Column('fixmedins_code', sa.String(length=40), nullable=False),
    sa.Column('month', sa.String(length=7), nullable=False),
    sa.Column('fund', sa.String(length=12), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('setl_cnt', sa.Integer(), nullable=False),
    sa.Column('revs_cnt', sa.Integer(), nullable=False),
    sa.Column('settled_fen', sa.BigInteger(), nullable=False),
    sa.Column('reversed_fen', sa.BigInteger(), nullable=False),
    sa.Column('adjustment_fen', sa.BigInteger(), nullable=False),
    sa.Column('offset_fen', sa.BigInteger(), nullable=False),
    sa.Column('payable_fen', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('received_on', sa.Date(), nullable=False),
    sa.Column('deadline', sa.Date(), nullable=False),
    sa.Column('reviewed_by', sa.String(length=80), nullable=True),
    sa.Column('reviewed_on', sa.Date(), nullable=True),
    sa.Column('approved_by', sa.String(length=80), nullable=True),
    sa.Column('approved_on', sa.Date(), nullable=True),
    sa.Column('order_no', sa.String(length=32), nullable=True),
    sa.Column('ordered_on', sa.Date(), nullable=True),
    sa.Column('paid_on', sa.Date(), nullable=True),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('created_by', sa.String(length=80), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ins_settle_apps')),
    sa.UniqueConstraint('app_no', name=op.f('uq_ins_settle_apps_app_no'))
    )
    op.create_index('ix_ins_settle_apps_fixmedins_code_month', 'ins_settle_apps', ['fixmedins_code', 'month'], unique=False)
    op.create_table('ins_standing',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('fixmedins_code', sa.String(length=40), nullable=False),
    sa.Column('agreement_no', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('start_date', sa.Date(), nullable=False),
    sa.Column('end_date', sa.Date(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('event_id', BIGID, nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ins_standing'))
    )
    op.create_index('ix_ins_standing_fixmedins_code_start_date', 'ins_standing', ['fixmedins_code', 'start_date'], unique=False)
    op.create_table('ins_advance_offsets',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('advance_no', sa.String(length=32), nullable=False),
    sa.Column('app_no', sa.String(length=32), nullable=False),
    sa.Column('amount_fen', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['advance_no'], ['ins_advances.advance_no'], name=op.f('fk_ins_advance_offsets_advance_no_ins_advances')),
    sa.ForeignKeyConstraint(['app_no'], ['ins_settle_apps.app_no'], name=op.f('fk_ins_advance_offsets_app_no_ins_settle_apps')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ins_advance_offsets'))
    )
    op.create_index(op.f('ix_ins_advance_offsets_advance_no'), 'ins_advance_offsets', ['advance_no'], unique=False)
    op.create_index(op.f('ix_ins_advance_offsets_app_no'), 'ins_advance_offsets', ['app_no'], unique=False)
    op.create_table('ins_agreement_events',
    sa.Column('id', BIGID, autoincrement=True, nullable=False),
    sa.Column('agreement_no', sa.String(length=32), nullable=False),
    sa.Column('fixmedins_code', sa.String(length=40), nullable=False),
    sa.Column('kind', sa.String(length=12), nullable=False),
    sa.Column('eff_date', sa.Date(), nullable=False),
    sa.Column('scope', sa.JSON(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=True),
    sa.Column('actor', sa.String(length=80), nullable=False),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.Column('recorded_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['agreement_no'], ['ins_agreements.agreement_no'], name=op.f('fk_ins_agreement_events_agreement_no_ins_agreements')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ins_agreement_events'))
    )
    op.create_index(op.f('ix_ins_agreement_events_agreement_no'), 'ins_agreement_events', ['agreement_no'], unique=False)
    op.create_index(op.f('ix_ins_agreement_events_fixmedins_code'), 'ins_agreement_events', ['fixmedins_code'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_ins_agreement_events_fixmedins_code'), table_name='ins_agreement_events')
    op.drop_index(op.f('ix_ins_agreement_events_agreement_no'), table_name='ins_agreement_events')
    op.drop_table('ins_agreement_events')
    op.drop_index(op.f('ix_ins_advance_offsets_app_no'), table_name='ins_advance_offsets')
    op.drop_index(op.f('ix_ins_advance_offsets_advance_no'), table_name='ins_advance_offsets')
    op.drop_table('ins_advance_offsets')
    op.drop_index('ix_ins_standing_fixmedins_code_start_date', table_name='ins_standing')
    op.drop_table('ins_standing')
    op.drop_index('ix_ins_settle_apps_fixmedins_code_month', table_name='ins_settle_apps')
    op.drop_table('ins_settle_apps')
    op.drop_index('ix_ins_fund_ledger_fund_posted_on', table_name='ins_fund_ledger')
    op.drop_index(op.f('ix_ins_fund_ledger_fixmedins_code'), table_name='ins_fund_ledger')
    op.drop_table('ins_fund_ledger')
    op.drop_index(op.f('ix_ins_designations_fixmedins_code'), table_name='ins_designations')
    op.drop_table('ins_designations')
    op.drop_index(op.f('ix_ins_assessments_fixmedins_code'), table_name='ins_assessments')
    op.drop_table('ins_assessments')
    op.drop_index(op.f('ix_ins_agreements_fixmedins_code'), table_name='ins_agreements')
    op.drop_table('ins_agreements')
    op.drop_index(op.f('ix_ins_advances_fixmedins_code'), table_name='ins_advances')
    op.drop_table('ins_advances')
