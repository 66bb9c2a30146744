"""Settlement store: registry, visits, fee items, settlements, accumulator ledger, idempotency, audit log.

Revision ID: svc0001
Revises: 
Create Date: 2026-11-23 03:26:12.900470
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = 'svc0001'
down_revision = None
branch_labels = ('service',)
depends_on = None


def upgrade() -> None:
    op.create_table('audit_log',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('actor', sa.String(length=80), nullable=False),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.Column('action', sa.String(length=40), nullable=False),
    sa.Column('request_id', sa.String(length=200), nullable=False),
    sa.Column('entity', sa.String(length=40), nullable=False),
    sa.Column('entity_id', sa.String(length=80), nullable=False),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log'))
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_log_at'), ['at'], unique=False)

    op.create_table('idempotency_records',
    sa.Column('scope_key', sa.String(length=200), nullable=False),
    sa.Column('request_hash', sa.String(length=64), nullable=False),
    sa.Column('response', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('scope_key', name=op.f('pk_idempotency_records'))
    )
    op.create_table('institutions',
    sa.Column('fixmedins_code', sa.String(length=40), nullable=False),
    sa.Column('fixmedins_name', sa.String(length=120), nullable=False),
    sa.Column('level', sa.String(length=10), nullable=False),
    sa.Column('admdvs', sa.String(length=6), nullable=False),
    sa.Column('designated_from', sa.Date(), nullable=False),
    sa.Column('designated_to', sa.Date(), nullable=False),
    sa.PrimaryKeyConstraint('fixmedins_code', name=op.f('pk_institutions'))
    )
    op.create_table('persons',
    sa.Column('psn_no', sa.String(length=40), nullable=False),
    sa.Column('certno', sa.String(length=18), nullable=False),
    sa.Column('psn_cert_type', sa.String(length=6), nullable=False),
    sa.Column('psn_name', sa.String(length=60), nullable=False),
    sa.Column('gend', sa.String(length=1), nullable=True),
    sa.Column('brdy', sa.Date(), nullable=False),
    sa.Column('retiree', sa.Boolean(), nullable=False),
    sa.Column('admdvs', sa.String(length=6), nullable=False),
    sa.Column('hh_no', sa.String(length=40), nullable=True),
    sa.Column('acct_balc_fen', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('psn_no', name=op.f('pk_persons')),
    sa.UniqueConstraint('certno', name=op.f('uq_persons_certno'))
    )
    op.create_table('accumulator_balances',
    sa.Column('psn_no', sa.String(length=40), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('acc_values', sa.JSON(), nullable=False),
    sa.Column('entries', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['psn_no'], ['persons.psn_no'], name=op.f('fk_accumulator_balances_psn_no_persons')),
    sa.PrimaryKeyConstraint('psn_no', 'year', name=op.f('pk_accumulator_balances'))
    )
    op.create_table('enrollments',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('psn_no', sa.String(length=40), nullable=False),
    sa.Column('insutype', sa.String(length=3), nullable=False),
    sa.Column('insuplc_admdvs', sa.String(length=6), nullable=False),
    sa.Column('valid_from', sa.Date(), nullable=False),
    sa.Column('valid_to', sa.Date(), nullable=False),
    sa.ForeignKeyConstraint(['psn_no'], ['persons.psn_no'], name=op.f('fk_enrollments_psn_no_persons')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_enrollments'))
    )
    with op.batch_alter_table('enrollments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_enrollments_psn_no'), ['psn_no'], unique=False)

    op.create_table('person_categories',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('psn_no', sa.String(length=40), nullable=False),
    sa.Column('category', sa.String(length=40), nullable=False),
    sa.Column('issuing_dept', sa.String(length=20), nullable=False),
    sa.Column('valid_from', sa.Date(), nullable=False),
    sa.Column('valid_to', sa.Date(), nullable=False),
    sa.ForeignKeyConstraint(['psn_no'], ['persons.psn_no'], name=op.f('fk_person_categories_psn_no_persons')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_person_categories'))
    )
    with op.batch_alter_table('person_categories', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_person_categories_psn_no'), ['psn_no'], unique=False)

    op.create_table('subsidised_enrollments',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('psn_no', sa.String(length=40), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('category', sa.String(length=40), nullable=False),
    sa.Column('subsidy_fen', sa.BigInteger(), nullable=False),
    sa.Column('issuing_dept', sa.String(length=20), nullable=False),
    sa.ForeignKeyConstraint(['psn_no'], ['persons.psn_no'], name=op.f('fk_subsidised_enrollments_psn_no_persons')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_subsidised_enrollments'))
    )
    with op.batch_alter_table('subsidised_enrollments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_subsidised_enrollments_psn_no'), ['psn_no'], unique=False)

    op.create_table('visits',
    sa.Column('mdtrt_id', sa.String(length=40), nullable=False),
    sa.Column('psn_no', sa.String(length=40), nullable=False),
    sa.Column('fixmedins_code', sa.String(length=40), nullable=False),
    sa.Column('insutype', sa.String(length=3), nullable=False),
    sa.Column('insuplc_admdvs', sa.String(length=6), nullable=False),
    sa.Column('med_type', sa.String(length=6), nullable=False),
    sa.Column('begntime', sa.DateTime(), nullable=False),
    sa.Column('endtime', sa.DateTime(), nullable=True),
    sa.Column('dise_codg', sa.String(length=40), nullable=False),
    sa.Column('referral_from_level', sa.String(length=10), nullable=True),
    sa.Column('ipt_otp_no', sa.String(length=40), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['fixmedins_code'], ['institutions.fixmedins_code'], name=op.f('fk_visits_fixmedins_code_institutions')),
    sa.ForeignKeyConstraint(['psn_no'], ['persons.psn_no'], name=op.f('fk_visits_psn_no_persons')),
    sa.PrimaryKeyConstraint('mdtrt_id', name=op.f('pk_visits'))
    )
    with op.batch_alter_table('visits', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_visits_fixmedins_code'), ['fixmedins_code'], unique=False)
        batch_op.create_index(batch_op.f('ix_visits_psn_no'), ['psn_no'], unique=False)

    op.create_table('fee_items',
    sa.Column('mdtrt_id', sa.String(length=40), nullable=False),
    sa.Column('feedetl_sn', sa.String(length=40), nullable=False),
    sa.Column('med_list_codg', sa.String(length=60), nullable=False),
    sa.Column('chrgitm_lv', sa.String(length=40), nullable=True),
    sa.Column('pric_fen', sa.BigInteger(), nullable=True),
    sa.Column('cnt', sa.Numeric(precision=16, scale=4), nullable=False),
    sa.Column('det_item_fee_sumamt_fen', sa.BigInteger(), nullable=False),
    sa.Column('preselfpay_ratio', sa.Numeric(precision=9, scale=6), nullable=True),
    sa.Column('fee_ocur_time', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['mdtrt_id'], ['visits.mdtrt_id'], name=op.f('fk_fee_items_mdtrt_id_visits')),
    sa.PrimaryKeyConstraint('mdtrt_id', 'feedetl_sn', name=op.f('pk_fee_items'))
    )
    op.create_table('settlements',
    sa.Column('setl_id', sa.String(length=40), nullable=False),
    sa.Column('mdtrt_id', sa.String(length=40), nullable=False),
    sa.Column('psn_no', sa.String(length=40), nullable=False),
    sa.Column('fixmedins_code', sa.String(length=40), nullable=False),
    sa.Column('insutype', sa.String(length=3), nullable=False),
    sa.Column('med_type', sa.String(length=6), nullable=False),
    sa.Column('setl_time', sa.DateTime(), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('pack_id', sa.String(length=40), nullable=False),
    sa.Column('pack_version', sa.String(length=40), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('revs_setl_id', sa.String(length=40), nullable=True),
    sa.Column('revs_time', sa.DateTime(), nullable=True),
    sa.Column('delta', sa.JSON(), nullable=False),
    sa.Column('acc_after', sa.JSON(), nullable=False),
    sa.Column('explanation', sa.JSON(), nullable=False),
    sa.Column('opter', sa.String(length=40), nullable=False),
    sa.Column('medfee_sumamt', sa.BigInteger(), nullable=False),
    sa.Column('fulamt_ownpay_amt', sa.BigInteger(), nullable=False),
    sa.Column('overlmt_selfpay', sa.BigInteger(), nullable=False),
    sa.Column('preselfpay_amt', sa.BigInteger(), nullable=False),
    sa.Column('inscp_scp_amt', sa.BigInteger(), nullable=False),
    sa.Column('act_pay_dedc', sa.BigInteger(), nullable=False),
    sa.Column('hifp_pay', sa.BigInteger(), nullable=False),
    sa.Column('pool_prop_selfpay', sa.BigInteger(), nullable=False),
    sa.Column('cvlserv_pay', sa.BigInteger(), nullable=False),
    sa.Column('hifes_pay', sa.BigInteger(), nullable=False),
    sa.Column('hifmi_pay', sa.BigInteger(), nullable=False),
    sa.Column('hifob_pay', sa.BigInteger(), nullable=False),
    sa.Column('maf_pay', sa.BigInteger(), nullable=False),
    sa.Column('oth_pay', sa.BigInteger(), nullable=False),
    sa.Column('fund_pay_sumamt', sa.BigInteger(), nullable=False),
    sa.Column('psn_part_amt', sa.BigInteger(), nullable=False),
    sa.Column('acct_pay', sa.BigInteger(), nullable=False),
    sa.Column('psn_cash_pay', sa.BigInteger(), nullable=False),
    sa.Column('hosp_part_amt', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['mdtrt_id'], ['visits.mdtrt_id'], name=op.f('fk_settlements_mdtrt_id_visits')),
    sa.ForeignKeyConstraint(['psn_no'], ['persons.psn_no'], name=op.f('fk_settlements_psn_no_persons')),
    sa.PrimaryKeyConstraint('setl_id', name=op.f('pk_settlements'))
    )
    with op.batch_alter_table('settlements', schema=None) as batch_op:
        batch_op.create_index('ix_settlements_fixmedins_code_setl_time', ['fixmedins_code', 'setl_time'], unique=False)
        batch_op.create_index(batch_op.f('ix_settlements_mdtrt_id'), ['mdtrt_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_settlements_psn_no'), ['psn_no'], unique=False)

    op.create_table('accumulator_ledger',
    sa.Column('psn_no', sa.String(length=40), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('setl_id', sa.String(length=40), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('delta', sa.JSON(), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['psn_no'], ['persons.psn_no'], name=op.f('fk_accumulator_ledger_psn_no_persons')),
    sa.ForeignKeyConstraint(['setl_id'], ['settlements.setl_id'], name=op.f('fk_accumulator_ledger_setl_id_settlements')),
    sa.PrimaryKeyConstraint('psn_no', 'year', 'seq', name=op.f('pk_accumulator_ledger'))
    )
    with op.batch_alter_table('accumulator_ledger', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_accumulator_ledger_setl_id'), ['setl_id'], unique=False)

    op.create_table('settlement_details',
    sa.Column('setl_id', sa.String(length=40), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('fund_pay_type', sa.String(length=10), nullable=False),
    sa.Column('fund_payamt', sa.BigInteger(), nullable=False),
    sa.Column('setl_field', sa.String(length=20), nullable=False),
    sa.Column('rule_id', sa.String(length=60), nullable=False),
    sa.Column('rule_name', sa.String(length=120), nullable=False),
    sa.ForeignKeyConstraint(['setl_id'], ['settlements.setl_id'], name=op.f('fk_settlement_details_setl_id_settlements')),
    sa.PrimaryKeyConstraint('setl_id', 'seq', name=op.f('pk_settlement_details'))
    )

    _append_only_audit_log()


def downgrade() -> None:
    _drop_append_only_audit_log()
    op.drop_table('settlement_details')
    with op.batch_alter_table('accumulator_ledger', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_accumulator_ledger_setl_id'))

    op.drop_table('accumulator_ledger')
    with op.batch_alter_table('settlements', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_settlements_psn_no'))
        batch_op.drop_index(batch_op.f('ix_settlements_mdtrt_id'))
        batch_op.drop_index('ix_settlements_fixmedins_code_setl_time')

    op.drop_table('settlements')
    op.drop_table('fee_items')
    with op.batch_alter_table('visits', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_visits_psn_no'))
        batch_op.drop_index(batch_op.f('ix_visits_fixmedins_code'))

    op.drop_table('visits')
    with op.batch_alter_table('subsidised_enrollments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_subsidised_enrollments_psn_no'))

    op.drop_table('subsidised_enrollments')
    with op.batch_alter_table('person_categories', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_person_categories_psn_no'))

    op.drop_table('person_categories')
    with op.batch_alter_table('enrollments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_enrollments_psn_no'))

    op.drop_table('enrollments')
    op.drop_table('accumulator_balances')
    op.drop_table('persons')
    op.drop_table('institutions')
    op.drop_table('idempotency_records')
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_log_at'))

    op.drop_table('audit_log')


def _append_only_audit_log() -> None:
    """The audit log refuses UPDATE and DELETE in the database itself, whatever the caller."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS "
                   "$$ BEGIN RAISE EXCEPTION 'audit_log is append-only'; END $$")
        op.execute("CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
                   "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()")
    else:
        for event in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER audit_log_no_{event.lower()} BEFORE {event} ON audit_log "
                       "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END")


def _drop_append_only_audit_log() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log")
        op.execute("DROP FUNCTION IF EXISTS audit_log_append_only()")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_delete")
