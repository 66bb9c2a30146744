"""家庭共济: one definition of who may pay from whose personal account, how much, and how it is booked.

Used by the 经办 desk payment (:func:`yibao.enrolment.ledger.family_pay`) and by settlement at the
institution's desk (2206/2207, :func:`yibao.service.transactions.settle`; reversed by 2208). Kept apart
from the registry's writers (which import the service's transactions) so the service can import it.

The rule (national 个人账户改革 guidance, the pack's ``financing.employee.account.family_mutual``):

- the pack must open 家庭共济 (``ENR061``);
- the member must be linked to the holder on the visit's (payment's) date by a ``grant`` household
  link; none at all is ``ENR059``, one that ended before or starts after that date is ``ENR062``;
- what the holder's account may pay of a settled visit is the member's personal share within the
  policy scope (政策范围内个人负担 after every fund), never more than the cash still owed after the
  member's own account (:func:`payable`); at most the holder's balance (partial, the rest in cash:
  the same rule as the person's own account);
- the debit never takes the balance below zero: a conditional UPDATE under the holder's row lock
  (:func:`debit`); a payment the balance cannot cover is refused (``ENR060`` at the 经办 desk,
  ``ENR063`` when a concurrent settlement spent it first), nothing written.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from yibao.enrolment.models import AccountEntry, HouseholdLink
from yibao.errors import Problem
from yibao.money import fen_to_yuan
from yibao.policy.model import Financing
from yibao.service.errors import ServiceError
from yibao.store.models import Person

PAY, REVERSE = "mulaid_pay", "mulaid_rev"  # AccountEntry kinds of settlement 共济 (ref = the settlement's setl_id)

_PERSONS = Person.__table__
_ENTRIES = AccountEntry.__table__
# FOR NO KEY UPDATE (the lock an UPDATE of the balance takes anyway), not FOR UPDATE: the latter also blocks the
# key-share lock a foreign key check takes on the person row, so a settlement inserting rows that refer to the
# holder (its balance row, its settlement) would wait for the account lock — with household caps a deadlock
_LOCK = (select(_PERSONS.c.psn_no, _PERSONS.c.acct_balc_fen).where(_PERSONS.c.psn_no == bindparam("psn_no"))
         .with_for_update(key_share=True))
_DEBIT = (update(_PERSONS).where(_PERSONS.c.psn_no == bindparam("holder"), _PERSONS.c.acct_balc_fen >= bindparam("pay"))
          .values(acct_balc_fen=_PERSONS.c.acct_balc_fen - bindparam("pay")))
_CREDIT = (update(_PERSONS).where(_PERSONS.c.psn_no == bindparam("holder"))
           .values(acct_balc_fen=_PERSONS.c.acct_balc_fen + bindparam("amount")))
_ENTRY = insert(_ENTRIES)


def _err(code: str, path: str, message: str) -> ServiceError:
    return ServiceError(Problem(code, path, message))


def link_state(session: Session, holder_psn_no: str, member_psn_no: str, on: date) -> str:
    """``valid`` (a grant covers ``on``, the latest recorded covering link decides), ``revoked`` (the latest
    covering link revokes it), ``expired`` (grants exist, none covers ``on``) or ``none``."""
    rows = session.execute(select(HouseholdLink.action, HouseholdLink.valid_from, HouseholdLink.valid_to).where(
        HouseholdLink.holder_psn_no == holder_psn_no, HouseholdLink.member_psn_no == member_psn_no)
        .order_by(HouseholdLink.id.desc())).all()
    covering = [a for a, f, t in rows if f <= on <= t]
    if covering:
        return "valid" if covering[0] == "grant" else "revoked"
    return "expired" if any(a == "grant" for a, _, _ in rows) else "none"


def holders_on(session: Session, member_psn_no: str, on: date) -> list[dict]:
    """The accounts that may pay for the member on ``on`` (what 1101 tells the desk to put in acct_mulaid_psn_no)."""
    rows = session.execute(select(HouseholdLink.holder_psn_no, HouseholdLink.relation, HouseholdLink.action,
                                  HouseholdLink.valid_from, HouseholdLink.valid_to)
                           .where(HouseholdLink.member_psn_no == member_psn_no, HouseholdLink.valid_from <= on,
                                  HouseholdLink.valid_to >= on).order_by(HouseholdLink.id.desc())).all()
    latest: dict[str, tuple] = {}
    for holder, relation, action, vf, vt in rows:
        latest.setdefault(holder, (relation, action, vf, vt))  # the latest recorded covering link decides
    return [{"holder_psn_no": h, "relation": r, "begndate": vf.isoformat(), "enddate": vt.isoformat()}
            for h, (r, a, vf, vt) in sorted(latest.items()) if a == "grant"]


def check(session: Session, fin: Financing | None, holder_psn_no: str, member_psn_no: str, on: date,
          path: str = "member_psn_no") -> None:
    """The pack opens 家庭共济 and the member is the holder's linked family member on ``on``; else a coded error."""
    if fin is None or fin.employee is None or not fin.employee.account.family_mutual:
        raise _err("ENR061", "financing.employee.account.family_mutual", "政策包未开通个人账户家庭共济")
    if holder_psn_no == member_psn_no:
        raise _err("ENR030", path, "共济成员不能是账户本人")
    state = link_state(session, holder_psn_no, member_psn_no, on)
    if state == "expired":
        raise _err("ENR062", path, f"人员 {member_psn_no} 与账户 {holder_psn_no} 的家庭共济关系在 {on} 不在有效期内")
    if state != "valid":
        raise _err("ENR059", path, f"人员 {member_psn_no} 在 {on} 不是账户 {holder_psn_no} 登记的共济家庭成员")


def payable(inscp_psn_part: int, psn_cash_pay: int, balance: int) -> int:
    """What the holder's account pays of a settled visit (fen): the in-scope personal share, never more than
    the cash still owed after the member's own account, at most the holder's balance.

    >>> payable(inscp_psn_part=30000, psn_cash_pay=45000, balance=100000)  # out-of-scope 150.00 stays cash
    30000
    >>> payable(30000, 45000, 12000), payable(30000, 10000, 100000), payable(30000, 45000, 0)
    (12000, 10000, 0)
    """
    return max(0, min(inscp_psn_part, psn_cash_pay, balance))


def lock_balances(session: Session, psn_nos: set[str]) -> dict[str, int]:
    """Row-lock the accounts (PostgreSQL; SQLite's write transaction already excludes others) in psn_no order,
    so two settlements drawing on each other's accounts can never deadlock; their balances as locked."""
    conn = session.connection()
    out = {}
    for psn_no in sorted(psn_nos):
        row = conn.execute(_LOCK, {"psn_no": psn_no}).first()
        if row is not None:
            out[psn_no] = int(row[1])
    return out


def balance(session: Session, psn_no: str) -> int | None:
    row = session.execute(select(Person.acct_balc_fen).where(Person.psn_no == psn_no)).first()
    return None if row is None else int(row[0])


def debit(session: Session, holder_psn_no: str, amount_fen: int, *, on: date, kind: str, ref: str,
          at, by: str) -> bool:
    """Take ``amount_fen`` from the holder's account and journal it; False (nothing written) when the
    balance does not cover it."""
    conn = session.connection()
    if conn.execute(_DEBIT, {"holder": holder_psn_no, "pay": amount_fen}).rowcount != 1:
        return False
    conn.execute(_ENTRY, {"psn_no": holder_psn_no, "on": on, "kind": kind, "amount_fen": -amount_fen, "ref": ref,
                          "recorded_at": at, "recorded_by": by})
    return True


def credit(session: Session, psn_no: str, amount_fen: int, *, on: date, kind: str, ref: str, at, by: str) -> None:
    """Give ``amount_fen`` back to the person's account and journal it (e.g. a 补差 that lowered acct_pay)."""
    conn = session.connection()
    conn.execute(_CREDIT, {"holder": psn_no, "amount": amount_fen})
    conn.execute(_ENTRY, {"psn_no": psn_no, "on": on, "kind": kind, "amount_fen": amount_fen, "ref": ref,
                          "recorded_at": at, "recorded_by": by})


def insufficient(balance_fen: int, amount_fen: int, path: str = "amount") -> ServiceError:
    return _err("ENR060", path, f"账户余额 {fen_to_yuan(balance_fen)} 元不足支付 {fen_to_yuan(amount_fen)} 元")


def paid_by_settlement():
    """A subquery (``ref`` = setl_id, ``amount`` fen) of what 共济 accounts paid per settlement, for totals and
    clearing: the money the institution is owed beyond the funds and the person's own account."""
    return (select(AccountEntry.ref.label("ref"), func.sum(-AccountEntry.amount_fen).label("amount"))
            .where(AccountEntry.kind == PAY).group_by(AccountEntry.ref).subquery())


def paid_for(session: Session, setl_id: str) -> tuple[str, int] | None:
    """(holder psn_no, fen) the 共济 account paid for settlement ``setl_id``, or None."""
    row = session.execute(select(AccountEntry.psn_no, AccountEntry.amount_fen).where(
        AccountEntry.ref == setl_id, AccountEntry.kind == PAY)).first()
    return None if row is None else (row[0], -int(row[1]))


def refund(session: Session, setl_id: str, *, on: date, at, by: str) -> tuple[str, int] | None:
    """2208: give back what the 共济 account paid for ``setl_id`` (a journal line, the balance raised)."""
    paid = paid_for(session, setl_id)
    if paid is None:
        return None
    holder, amount = paid
    conn = session.connection()
    conn.execute(_CREDIT, {"holder": holder, "amount": amount})
    conn.execute(_ENTRY, {"psn_no": holder, "on": on, "kind": REVERSE, "amount_fen": amount, "ref": setl_id,
                          "recorded_at": at, "recorded_by": by})
    return paid
