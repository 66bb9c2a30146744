"""The accumulator ledger: one row per settlement (+delta) or reversal (−delta), and a balance row.

Every settlement or reversal of a person first locks that person's (psn_no, year) balance row —
an upsert (``INSERT … ON CONFLICT DO UPDATE … RETURNING``), which on PostgreSQL takes the row lock
as ``SELECT … FOR UPDATE`` would; on SQLite the transaction already holds the database's write
lock (``BEGIN IMMEDIATE``) — then computes on the balance it read and writes the ledger row
and the new balance in the same transaction. Concurrent settlements of one person therefore run
one after the other, each on top of the previous one's result: no update is ever lost.

Household caps (家庭年度限额, a pack tier's ``household_cap``): a settlement that counts against one also
locks its household's (hh_no, year) row in ``household_balances`` by the same upsert (:func:`lock_household`),
reads the household's accumulators there, and writes the household ledger row and the new household balance
in the same transaction. Lock order, in every transaction that takes more than one of these locks:

    person-year balance → household-year balance → personal-account rows (psn_no order, FOR NO KEY UPDATE)
    → visit row → (the key-share locks its inserts take on the persons, visits and settlements rows they refer to)

Why this cannot deadlock: a settlement or reversal takes its one person-year lock and then at most one
household-year lock, before any account or visit lock. Whoever holds a household lock may then wait only for
account rows, the visit row or key-share locks, and whoever holds one of those in a conflicting mode (another
member's settlement or reversal, a 补差, a 家庭共济 payment at the desk, an upload) is not waiting for a
household lock: settlements and reversals take it before those, and nothing else takes one. The key-share
locks a transaction may already hold on a person row when it reaches the household lock (from creating its
person-year balance row, or a 零星报销's visit row) do not conflict with an account lock, which is why
:mod:`yibao.enrolment.mutual` locks accounts FOR NO KEY UPDATE: with FOR UPDATE, a member paying from the
holder's account (holding the household lock, waiting for the holder's row) and the holder's own settlement
(holding a key-share on that row, waiting for the household lock) deadlocked on PostgreSQL — the 家庭共济 test
in ``tests/test_service_household_concurrency.py`` showed it. (One older exception, not of households: an
approval whose 补差 spans two years locks the second year's balance after paying the first year's back to the
account.) Two members of one household settling at once: each holds its own person-year row, the second waits
at the household row until the first commits, then settles on its result.

The balance row also holds the heads of the person-year's two hash chains (settlements and
ledger rows, :mod:`yibao.store.chain`): read by the same locking upsert, moved by the same update,
so chaining costs a hash per row and no extra round trip.

Written with Core statements built once per dialect (not ORM units of work): the hot path of every
settlement, where the ORM's flush bookkeeping cost more than the round trips themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Mapping

from sqlalchemy import JSON, Integer, bindparam, insert, inspect, select, text, update
from sqlalchemy.orm import Session

from yibao.errors import Problem
from yibao.settlement.model import Accumulators
from yibao.store import chain
from yibao.store.models import (
    AccumulatorBalance,
    AccumulatorLedger,
    AuditLog,
    HouseholdBalance,
    HouseholdLedger,
    Settlement,
)

_BALANCES = AccumulatorBalance.__table__
_LEDGER = AccumulatorLedger.__table__
_HH_BALANCES = HouseholdBalance.__table__
_HH_LEDGER = HouseholdLedger.__table__


@dataclass
class Balance:
    """The locked (psn_no, year) balance as read; :func:`post` keeps it in step with the row."""

    psn_no: str
    year: int
    acc_values: dict
    entries: int
    setl_head: str = chain.GENESIS
    ledger_head: str = chain.GENESIS


# ON CONFLICT DO UPDATE locks the existing row exactly as SELECT ... FOR UPDATE would, in the same round trip
# that creates it if missing and reads it back. Written as text: the same SQL on PostgreSQL and SQLite (3.35+),
# and unlike the dialect ``insert().on_conflict_do_update()`` construct it is cached, not compiled per call.
_LOCK = text("INSERT INTO accumulator_balances (psn_no, year, acc_values, entries, setl_head, ledger_head) "
             "VALUES (:psn_no, :year, '{}', 0, '', '') "
             "ON CONFLICT (psn_no, year) DO UPDATE SET entries = accumulator_balances.entries "
             "RETURNING acc_values, entries, setl_head, ledger_head").columns(acc_values=JSON, entries=Integer)
_MOVE = (update(_BALANCES).where(_BALANCES.c.psn_no == bindparam("b_psn_no"), _BALANCES.c.year == bindparam("b_year"))
         .values(acc_values=bindparam("b_values", type_=JSON), entries=bindparam("b_entries"),
                 setl_head=bindparam("b_setl_head"), ledger_head=bindparam("b_ledger_head")))
_APPEND = insert(_LEDGER)


def lock_balance(session: Session, psn_no: str, year: int) -> Balance:
    """The person's balance row for the year, locked for this transaction (created if missing)."""
    values, entries, setl_head, ledger_head = session.connection().execute(
        _LOCK, {"psn_no": psn_no, "year": year}).one()
    return Balance(psn_no, year, dict(values or {}), entries, setl_head or chain.GENESIS, ledger_head or chain.GENESIS)


def seal_settlement(balance: Balance, row: dict, details: list[dict]) -> None:
    """Chain the settlement row about to be inserted (its fund details hashed with it) after the
    person-year's last settlement; :func:`post` then stores the new head with the balance."""
    assert (row["psn_no"], row["year"]) == (balance.psn_no, balance.year)
    balance.setl_head = chain.seal(chain.SETTLEMENTS, balance.setl_head, row, details)


def accumulators(balance: Balance | AccumulatorBalance) -> Accumulators:
    return Accumulators(balance.year, {k: int(v) for k, v in balance.acc_values.items()})


def post(session: Session, balance: Balance, setl_id: str, kind: str,
         delta: Mapping[str, int], after: Accumulators, at: datetime) -> None:
    """Append the ledger row and move the balance to ``after`` (the engine's result)."""
    balance.entries += 1
    balance.acc_values = dict(after.values)
    conn = session.connection()
    row = {"psn_no": balance.psn_no, "year": balance.year, "seq": balance.entries, "setl_id": setl_id, "kind": kind,
           "delta": dict(delta), "at": at}
    balance.ledger_head = chain.seal(chain.LEDGER, balance.ledger_head, row)
    conn.execute(_APPEND, row)
    conn.execute(_MOVE, {"b_psn_no": balance.psn_no, "b_year": balance.year, "b_values": balance.acc_values,
                         "b_entries": balance.entries, "b_setl_head": balance.setl_head,
                         "b_ledger_head": balance.ledger_head})


def last_entry(session: Session, balance: Balance) -> tuple[str, str, dict] | None:
    """(kind, setl_id, delta) of the person-year's latest ledger row (read under the balance's lock), or None."""
    if not balance.entries:
        return None
    row = session.execute(select(_LEDGER.c.kind, _LEDGER.c.setl_id, _LEDGER.c.delta).where(
        _LEDGER.c.psn_no == balance.psn_no, _LEDGER.c.year == balance.year, _LEDGER.c.seq == balance.entries)).first()
    return None if row is None else (row[0], row[1], {k: int(v) for k, v in row[2].items()})


def ledger_sum(session: Session, psn_no: str, year: int) -> dict[str, int]:
    """Sum of the person's ledger deltas for the year (what the balance must equal)."""
    total: dict[str, int] = {}
    for (delta,) in session.execute(select(AccumulatorLedger.delta).where(
            AccumulatorLedger.psn_no == psn_no, AccumulatorLedger.year == year)):
        for k, v in delta.items():
            total[k] = total.get(k, 0) + int(v)
    return {k: v for k, v in total.items() if v}


# --- household balances (家庭年度限额) ---------------------------------------------------------------------------


@dataclass
class HouseholdState:
    """The locked (hh_no, year) household balance as read; :func:`post_household` keeps it in step with the row."""

    hh_no: str
    year: int
    acc_values: dict
    entries: int
    ledger_head: str = chain.GENESIS


_HH_LOCK = text("INSERT INTO household_balances (hh_no, year, acc_values, entries, ledger_head) "
                "VALUES (:hh_no, :year, '{}', 0, '') "
                "ON CONFLICT (hh_no, year) DO UPDATE SET entries = household_balances.entries "
                "RETURNING acc_values, entries, ledger_head").columns(acc_values=JSON, entries=Integer)
_HH_MOVE = (update(_HH_BALANCES).where(_HH_BALANCES.c.hh_no == bindparam("b_hh_no"),
                                       _HH_BALANCES.c.year == bindparam("b_year"))
            .values(acc_values=bindparam("b_values", type_=JSON), entries=bindparam("b_entries"),
                    ledger_head=bindparam("b_ledger_head")))
_HH_APPEND = insert(_HH_LEDGER)
_HH_OF_SETTLEMENT = (select(_HH_LEDGER.c.hh_no, _HH_LEDGER.c.year, _HH_LEDGER.c.delta, _HH_LEDGER.c.acc_after)
                     .where(_HH_LEDGER.c.setl_id == bindparam("setl_id"), _HH_LEDGER.c.kind == "settle"))


def lock_household(session: Session, hh_no: str, year: int) -> HouseholdState:
    """The household's balance row for the year, locked for this transaction (created if missing). Taken right
    after the member's own person-year balance, before any account or visit lock (the order in the module
    docstring)."""
    values, entries, ledger_head = session.connection().execute(_HH_LOCK, {"hh_no": hh_no, "year": year}).one()
    return HouseholdState(hh_no, year, dict(values or {}), entries, ledger_head or chain.GENESIS)


def household_accumulators(session: Session, hh_no: str, year: int) -> Accumulators:
    """The household's accumulators read without a lock (预结算, the self-service page)."""
    row = session.get(HouseholdBalance, (hh_no, year))
    return Accumulators(year, {k: int(v) for k, v in (row.acc_values if row is not None else {}).items()})


def post_household(session: Session, state: HouseholdState, setl_id: str, psn_no: str, kind: str,
                   delta: Mapping[str, int], after: Accumulators, at: datetime) -> None:
    """Append the household ledger row (chained per hh_no and year) and move the household balance to ``after``."""
    state.entries += 1
    state.acc_values = {k: v for k, v in after.values.items() if v}
    conn = session.connection()
    row = {"hh_no": state.hh_no, "year": state.year, "seq": state.entries, "setl_id": setl_id, "psn_no": psn_no,
           "kind": kind, "delta": dict(delta), "acc_after": state.acc_values, "at": at}
    state.ledger_head = chain.seal(chain.HOUSEHOLD_LEDGER, state.ledger_head, row)
    conn.execute(_HH_APPEND, row)
    conn.execute(_HH_MOVE, {"b_hh_no": state.hh_no, "b_year": state.year, "b_values": state.acc_values,
                            "b_entries": state.entries, "b_ledger_head": state.ledger_head})


def household_of_settlement(session: Session, setl_id: str) -> tuple[str, int, dict[str, int], Accumulators] | None:
    """(hh_no, year, delta, household accumulators after it) of a settlement that counted against a household
    cap, or None (no household-capped tier paid or let anything through): what its reversal needs."""
    row = session.execute(_HH_OF_SETTLEMENT, {"setl_id": setl_id}).first()
    if row is None:
        return None
    hh_no, year, delta, after = row
    return (hh_no, year, {k: int(v) for k, v in delta.items()},
            Accumulators(year, {k: int(v) for k, v in after.items()}))


def verify_households(conn) -> list:
    """Each household balance equals the fold of its ledger rows (CHN013), and a settlement with a household
    row is reversed exactly when the household ledger has its reversal row (CHN014). Nothing to check in a store
    not yet upgraded to the ``household`` branch."""
    if "household_ledger" not in inspect(conn).get_table_names():
        return []
    sums: dict[tuple, dict[str, int]] = {}
    settled: set[str] = set()
    undone: set[str] = set()
    for hh_no, year, kind, setl_id, delta in conn.execution_options(yield_per=5000).execute(
            select(_HH_LEDGER.c.hh_no, _HH_LEDGER.c.year, _HH_LEDGER.c.kind, _HH_LEDGER.c.setl_id,
                   _HH_LEDGER.c.delta)):
        total = sums.setdefault((hh_no, year), {})
        for k, v in delta.items():
            total[k] = total.get(k, 0) + int(v)
        (undone if kind == "reverse" else settled).add(setl_id)
    problems = _unfolded(conn.execute(select(_HH_BALANCES.c.hh_no, _HH_BALANCES.c.year, _HH_BALANCES.c.acc_values)),
                         sums, "CHN013", "household_balances(hh_no={}, year={})", "家庭累计")
    s = Settlement.__table__
    ids = sorted(settled)
    for i in range(0, len(ids), 500):
        for setl_id, status in conn.execute(select(s.c.setl_id, s.c.status).where(s.c.setl_id.in_(ids[i:i + 500]))):
            if (status == "reversed") != (setl_id in undone):
                problems.append(Problem("CHN014", f"settlements(setl_id={setl_id})",
                                        f"结算状态 {status} 与家庭累计台账不符(台账{'有' if setl_id in undone else '无'}撤销行)"))
    return problems


def _unfolded(balances, sums: dict[tuple, dict[str, int]], code: str, where: str, what: str) -> list:
    """Balance rows (key, year, values) that are not the fold of their ledger rows (``sums``, consumed), and ledger
    rows left with no balance row: a balance is a cache the service updates, the chained ledger is the record."""
    problems = []
    for key, year, values in balances:
        folded = {k: v for k, v in sums.pop((key, year), {}).items() if v}
        if {k: int(v) for k, v in (values or {}).items() if int(v)} != folded:
            problems.append(Problem(code, where.format(key, year), f"{what}余额与{what}台账各行之和不符(余额被改动)"))
    for (key, year), left in sums.items():
        if any(left.values()):
            problems.append(Problem(code, where.format(key, year), f"{what}台账有行, 但没有对应的{what}余额行(余额被删除)"))
    return problems


def verify(conn) -> list:
    """The checks the chains cannot make on their own (``yibao db verify``): each balance row (a cache the
    service updates) equals the fold of its ledger rows, and a settlement is marked reversed exactly when
    its chained ledger has the reversal row (the marks are the settlement's only mutable columns)."""

    sums: dict[tuple, dict[str, int]] = {}
    reversed_ids: set[str] = set()
    for psn_no, year, kind, setl_id, delta in conn.execution_options(yield_per=5000).execute(
            select(_LEDGER.c.psn_no, _LEDGER.c.year, _LEDGER.c.kind, _LEDGER.c.setl_id, _LEDGER.c.delta)):
        total = sums.setdefault((psn_no, year), {})
        for k, v in delta.items():
            total[k] = total.get(k, 0) + int(v)
        if kind == "reverse":
            reversed_ids.add(setl_id)
    problems = _unfolded(conn.execute(select(_BALANCES.c.psn_no, _BALANCES.c.year, _BALANCES.c.acc_values)),
                         sums, "CHN010", "accumulator_balances(psn_no={}, year={})", "累计")
    s = Settlement.__table__
    for setl_id, status in conn.execution_options(yield_per=5000).execute(select(s.c.setl_id, s.c.status)):
        if (status == "reversed") != (setl_id in reversed_ids):
            problems.append(Problem("CHN011", f"settlements(setl_id={setl_id})",
                                    f"结算状态 {status} 与累计台账不符(台账{'有' if setl_id in reversed_ids else '无'}撤销行)"))
    return problems + verify_households(conn) + verify_audit_trail(conn)


def verify_audit_trail(conn) -> list:
    """Every settlement the audit log records must still exist: deleting a settlement together with its
    ledger rows and balance (a whole person-year) leaves the chains of that person consistent, but not the
    audit log's record of it (whose own chain shows a deleted audit row)."""

    a = AuditLog.__table__
    s = Settlement.__table__
    have = set(conn.execute(select(s.c.setl_id)).scalars())
    problems = []
    for (setl_id,) in conn.execution_options(yield_per=5000).execute(
            select(a.c.entity_id).where(a.c.entity == "settlement", a.c.action == "settle")):
        if setl_id not in have:
            problems.append(Problem("CHN012", f"settlements(setl_id={setl_id})",
                                    "审计日志记录了这笔结算, 但结算表中没有它(结算被删除)"))
            if len(problems) >= 20:
                break
    return problems
