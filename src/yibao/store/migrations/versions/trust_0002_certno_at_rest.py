"""trust: 证件号 encrypted at rest with a blind index (persons.certno → certno_enc + certno_bidx)

Every existing row is encrypted under the active store key (yibao.store.keys; the file is created
if there is none) and indexed, then the plaintext column is dropped, all in the migration's one
transaction. Downgrade decrypts back into a plaintext column.

Revision ID: trust_0002
Revises: trust_0001
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "trust_0002"
down_revision = "trust_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    from yibao import privacy
    from yibao.store import keys

    keys.ensure()
    op.add_column("persons", sa.Column("certno_enc", sa.String(120), nullable=True))
    op.add_column("persons", sa.Column("certno_bidx", sa.String(64), nullable=True))
    conn = op.get_bind()
    persons = sa.table("persons", sa.column("psn_no"), sa.column("certno"), sa.column("certno_enc"),
                       sa.column("certno_bidx"))
    rows = conn.execute(sa.select(persons.c.psn_no, persons.c.certno)).all()
    for psn_no, certno in rows:
        conn.execute(persons.update().where(persons.c.psn_no == psn_no).values(
            certno_enc=privacy.encrypt_certno(certno, psn_no), certno_bidx=privacy.certno_index(certno)))
    with op.batch_alter_table("persons") as batch:
        batch.drop_constraint("uq_persons_certno", type_="unique")
        batch.drop_column("certno")
        batch.alter_column("certno_enc", existing_type=sa.String(120), nullable=False)
        batch.alter_column("certno_bidx", existing_type=sa.String(64), nullable=False)
        batch.create_unique_constraint("uq_persons_certno_bidx", ["certno_bidx"])


def downgrade() -> None:
    from yibao import privacy

    op.add_column("persons", sa.Column("certno", sa.String(18), nullable=True))
    conn = op.get_bind()
    persons = sa.table("persons", sa.column("psn_no"), sa.column("certno"), sa.column("certno_enc"))
    for psn_no, token in conn.execute(sa.select(persons.c.psn_no, persons.c.certno_enc)).all():
        conn.execute(persons.update().where(persons.c.psn_no == psn_no).values(
            certno=privacy.decrypt_certno(token, psn_no)))
    with op.batch_alter_table("persons") as batch:
        batch.drop_constraint("uq_persons_certno_bidx", type_="unique")
        batch.drop_column("certno_bidx")
        batch.drop_column("certno_enc")
        batch.alter_column("certno", existing_type=sa.String(18), nullable=False)
        batch.create_unique_constraint("uq_persons_certno", ["certno"])
