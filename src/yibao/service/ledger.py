"""The accumulator ledger: one row per settlement (+delta) or reversal (−delta), and a balance row.

Every settlement or reversal of a person first locks that person's (psn_no, year) balance row —
an upsert (``INSERT … ON CONFLICT DO UPDATE … RETURNING``), which on PostgreSQL takes the row lock
as ``SELECT … FOR UPDATE`` would; on SQLite the transaction already holds the database's write
lock (``BEGIN IMMEDIATE``) — then computes on the balance it read and writes the ledger row
and the new balance in the same transaction. Concurrent settlements of one person therefore run
one after the other, each on top of the previous one's result: no update is ever lost.
"""

from __future__ import annotations

from datetime import datetime
from typing import Mapping

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from yibao.settlement.model import Accumulators
from yibao.store.models import AccumulatorBalance, AccumulatorLedger


def lock_balance(session: Session, psn_no: str, year: int) -> AccumulatorBalance:
    """The person's balance row for the year, locked for this transaction (created if missing)."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    # one round trip: create the row if missing, and take its row lock (ON CONFLICT DO UPDATE locks
    # the existing row exactly as SELECT ... FOR UPDATE would) while reading it back
    stmt = (insert(AccumulatorBalance).values(psn_no=psn_no, year=year, acc_values={}, entries=0)
            .on_conflict_do_update(index_elements=["psn_no", "year"], set_={"entries": AccumulatorBalance.entries})
            .returning(AccumulatorBalance))
    return session.scalars(stmt, execution_options={"populate_existing": True}).one()


def accumulators(balance: AccumulatorBalance) -> Accumulators:
    return Accumulators(balance.year, {k: int(v) for k, v in balance.acc_values.items()})


def post(session: Session, balance: AccumulatorBalance, setl_id: str, kind: str,
         delta: Mapping[str, int], after: Accumulators, at: datetime) -> None:
    """Append the ledger row and move the balance to ``after`` (the engine's result)."""
    balance.entries += 1
    session.add(AccumulatorLedger(psn_no=balance.psn_no, year=balance.year, seq=balance.entries,
                                  setl_id=setl_id, kind=kind, delta=dict(delta), at=at))
    balance.acc_values = dict(after.values)


def ledger_sum(session: Session, psn_no: str, year: int) -> dict[str, int]:
    """Sum of the person's ledger deltas for the year (what the balance must equal)."""
    total: dict[str, int] = {}
    for (delta,) in session.execute(select(AccumulatorLedger.delta).where(
            AccumulatorLedger.psn_no == psn_no, AccumulatorLedger.year == year)):
        for k, v in delta.items():
            total[k] = total.get(k, 0) + int(v)
    return {k: v for k, v in total.items() if v}


def ledger_count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(AccumulatorLedger)) or 0
