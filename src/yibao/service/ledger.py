"""The accumulator ledger: one row per settlement (+delta) or reversal (−delta), and a balance row.

Every settlement or reversal of a person first locks that person's (psn_no, year) balance row —
an upsert (``INSERT … ON CONFLICT DO UPDATE … RETURNING``), which on PostgreSQL takes the row lock
as ``SELECT … FOR UPDATE`` would; on SQLite the transaction already holds the database's write
lock (``BEGIN IMMEDIATE``) — then computes on the balance it read and writes the ledger row
and the new balance in the same transaction. Concurrent settlements of one person therefore run
one after the other, each on top of the previous one's result: no update is ever lost.

Written with Core statements built once per dialect (not ORM units of work): the hot path of every
settlement, where the ORM's flush bookkeeping cost more than the round trips themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Mapping

from sqlalchemy import JSON, Integer, bindparam, func, insert, select, text, update
from sqlalchemy.orm import Session

from yibao.settlement.model import Accumulators
from yibao.store.models import AccumulatorBalance, AccumulatorLedger

_BALANCES = AccumulatorBalance.__table__
_LEDGER = AccumulatorLedger.__table__


@dataclass
class Balance:
    """The locked (psn_no, year) balance as read; :func:`post` keeps it in step with the row."""

    psn_no: str
    year: int
    acc_values: dict
    entries: int


# ON CONFLICT DO UPDATE locks the existing row exactly as SELECT ... FOR UPDATE would, in the same round trip
# that creates it if missing and reads it back. Written as text: the same SQL on PostgreSQL and SQLite (3.35+),
# and unlike the dialect ``insert().on_conflict_do_update()`` construct it is cached, not compiled per call.
_LOCK = text("INSERT INTO accumulator_balances (psn_no, year, acc_values, entries) VALUES (:psn_no, :year, '{}', 0) "
             "ON CONFLICT (psn_no, year) DO UPDATE SET entries = accumulator_balances.entries "
             "RETURNING acc_values, entries").columns(acc_values=JSON, entries=Integer)
_MOVE = (update(_BALANCES).where(_BALANCES.c.psn_no == bindparam("b_psn_no"), _BALANCES.c.year == bindparam("b_year"))
         .values(acc_values=bindparam("b_values", type_=JSON), entries=bindparam("b_entries")))
_APPEND = insert(_LEDGER)


def lock_balance(session: Session, psn_no: str, year: int) -> Balance:
    """The person's balance row for the year, locked for this transaction (created if missing)."""
    values, entries = session.connection().execute(_LOCK, {"psn_no": psn_no, "year": year}).one()
    return Balance(psn_no, year, dict(values or {}), entries)


def accumulators(balance: Balance | AccumulatorBalance) -> Accumulators:
    return Accumulators(balance.year, {k: int(v) for k, v in balance.acc_values.items()})


def post(session: Session, balance: Balance, setl_id: str, kind: str,
         delta: Mapping[str, int], after: Accumulators, at: datetime) -> None:
    """Append the ledger row and move the balance to ``after`` (the engine's result)."""
    balance.entries += 1
    balance.acc_values = dict(after.values)
    conn = session.connection()
    conn.execute(_APPEND, {"psn_no": balance.psn_no, "year": balance.year, "seq": balance.entries,
                           "setl_id": setl_id, "kind": kind, "delta": dict(delta), "at": at})
    conn.execute(_MOVE, {"b_psn_no": balance.psn_no, "b_year": balance.year, "b_values": balance.acc_values,
                         "b_entries": balance.entries})


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
