"""``yibao db rotate-key``: re-encrypt every 证件号 under a new key. Kept apart from :mod:`yibao.store.keys`
(which only reads and writes the key file) because it needs :mod:`yibao.privacy`, which itself reads the keys."""

from __future__ import annotations

import os
import secrets

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from yibao import privacy
from yibao.errors import Problem
from yibao.store import keys
from yibao.store.models import Person


def rotate_certno_key(engine, forget_old: bool = False) -> dict:
    """``yibao db rotate-key``: a new 证件号 key; every person re-encrypted and re-indexed under it in one
    transaction; then the key file names it active. Older keys stay (backups made before need them)
    unless ``forget_old``. The chain key is not rotated (the chains' past rows are sealed with it)."""
    if os.environ.get(keys.ENV_JSON):
        raise keys.StoreKeyError(Problem("KEY005", keys.ENV_JSON, f"密钥来自环境变量 {keys.ENV_JSON}, 无法自动轮换: "
                                    f"请改用密钥文件 {keys.ENV_FILE}"))
    old = keys.load()
    n = 1 + max(int(k[1:]) for k in old.certno if k[1:].isdigit()) if any(k[1:].isdigit() for k in old.certno) else 1
    kid = f"k{n}"
    staged = keys.StoreKeys(old.chain, {**old.certno, kid: secrets.token_bytes(32)}, old.certno_active, old.source)
    keys.write(staged)  # known (not yet active) first: readers can decrypt rows the transaction below re-encrypts
    table = Person.__table__
    move = (update(table).where(table.c.psn_no == bindparam("p"))
            .values(certno_enc=bindparam("e"), certno_bidx=bindparam("b")))
    with Session(engine) as session, session.begin():
        rows = session.execute(select(table.c.psn_no, table.c.certno_enc).with_for_update()).all()
        secret = staged.certno[kid]
        params = []
        for psn_no, token in rows:
            plain = privacy.decrypt_certno(token, psn_no)
            params.append({"p": psn_no, "e": privacy.encrypt_certno(plain, psn_no, kid),
                           "b": privacy.certno_index(plain, secret)})
        for i in range(0, len(params), 5000):
            session.connection().execute(move, params[i:i + 5000])
    kept = {kid: staged.certno[kid]} if forget_old else staged.certno
    keys.write(keys.StoreKeys(old.chain, kept, kid, old.source))
    return {"key_id": kid, "persons": len(rows), "retired": sorted(k for k in old.certno if k in kept and k != kid)}
