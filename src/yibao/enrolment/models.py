"""Tables of the enrolment domain (Alembic branch ``enrolment``): append-only facts and ledgers.

Facts are never updated or deleted; ``enrollments`` and ``person_categories`` (the service's
tables) hold their projection, rewritten for one person whenever a fact of that person is
recorded (:mod:`yibao.enrolment.registry`). Money is integer fen.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Date, DateTime, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from yibao.store.base import Base

ID = String(40)
_PK = BigInteger().with_variant(Integer, "sqlite")  # SQLite autoincrements only INTEGER PRIMARY KEY


class EnrolmentFact(Base):
    """参保事实: from ``eff_date`` on, the person's ``insutype`` enrolment is ``status`` at ``admdvs``."""

    __tablename__ = "en_enrolment_facts"
    id: Mapped[int] = mapped_column(_PK, primary_key=True, autoincrement=True)
    psn_no: Mapped[str] = mapped_column(ForeignKey("persons.psn_no"))
    insutype: Mapped[str] = mapped_column(String(3))
    eff_date: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(1))
    admdvs: Mapped[str] = mapped_column(String(6))
    kind: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(String(200), default="")
    psn_type: Mapped[str] = mapped_column(String(6), default="")
    carried_months: Mapped[int] = mapped_column(Integer, default=0)
    recorded_at: Mapped[datetime] = mapped_column(DateTime)
    recorded_by: Mapped[str] = mapped_column(String(80))
    request_id: Mapped[str] = mapped_column(String(200), default="")

    __table_args__ = (Index("ix_en_enrolment_facts_psn_no_insutype", "psn_no", "insutype"),)


class CategoryFact(Base):
    """人员类别事实: over [valid_from, valid_to] the person is (grant) or is not (revoke) in the category."""

    __tablename__ = "en_category_facts"
    id: Mapped[int] = mapped_column(_PK, primary_key=True, autoincrement=True)
    psn_no: Mapped[str] = mapped_column(ForeignKey("persons.psn_no"), index=True)
    category: Mapped[str] = mapped_column(String(40))
    action: Mapped[str] = mapped_column(String(6))  # grant | revoke
    valid_from: Mapped[date] = mapped_column(Date)
    valid_to: Mapped[date] = mapped_column(Date)
    dept: Mapped[str] = mapped_column(String(20), default="")
    recognised_on: Mapped[date | None] = mapped_column(Date)
    reason: Mapped[str] = mapped_column(String(200), default="")
    batch_id: Mapped[int | None] = mapped_column(BigInteger)
    recorded_at: Mapped[datetime] = mapped_column(DateTime)
    recorded_by: Mapped[str] = mapped_column(String(80))


class HouseholdLink(Base):
    """家庭成员关系 (for 家庭共济): ``member`` may be paid from ``holder``'s account over the period."""

    __tablename__ = "en_household_links"
    id: Mapped[int] = mapped_column(_PK, primary_key=True, autoincrement=True)
    holder_psn_no: Mapped[str] = mapped_column(ForeignKey("persons.psn_no"), index=True)
    member_psn_no: Mapped[str] = mapped_column(ForeignKey("persons.psn_no"), index=True)
    relation: Mapped[str] = mapped_column(String(20))
    action: Mapped[str] = mapped_column(String(6))  # grant | revoke
    valid_from: Mapped[date] = mapped_column(Date)
    valid_to: Mapped[date] = mapped_column(Date)
    recorded_at: Mapped[datetime] = mapped_column(DateTime)
    recorded_by: Mapped[str] = mapped_column(String(80))
    reason: Mapped[str] = mapped_column(String(200), default="")


class ImportBatch(Base):
    """One accepted category list (民政 / 乡村振兴): its source and size; its rows point here."""

    __tablename__ = "en_import_batches"
    id: Mapped[int] = mapped_column(_PK, primary_key=True, autoincrement=True)
    dept: Mapped[str] = mapped_column(String(20))
    source: Mapped[str] = mapped_column(String(200))
    rows: Mapped[int] = mapped_column(Integer)
    recorded_at: Mapped[datetime] = mapped_column(DateTime)
    recorded_by: Mapped[str] = mapped_column(String(80))


class Contribution(Base):
    """缴费台账: one person's contribution for one period (a month for 职工/灵活就业, a year for 居民).

    ``total_fen`` = employer + employee (职工) or personal + fiscal + assistance (居民/灵活就业);
    ``account_fen`` is what went to the personal account; ``relief_fen`` what 阶段性减征 waived.
    """

    __tablename__ = "en_contributions"
    id: Mapped[int] = mapped_column(_PK, primary_key=True, autoincrement=True)
    psn_no: Mapped[str] = mapped_column(ForeignKey("persons.psn_no"), index=True)
    insutype: Mapped[str] = mapped_column(String(3))
    scheme: Mapped[str] = mapped_column(String(10))  # employee | flexible | resident
    period: Mapped[str] = mapped_column(String(7))  # YYYY-MM or YYYY
    admdvs: Mapped[str] = mapped_column(String(6))
    emp_no: Mapped[str] = mapped_column(String(40), default="")  # 单位编号 (职工)
    sector: Mapped[str] = mapped_column(String(20), default="")
    declared_base_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    base_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    employer_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    employee_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    personal_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    fiscal_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    assistance_fen: Mapped[int] = mapped_column(BigInteger, default=0)  # 医疗救助资助参保
    relief_fen: Mapped[int] = mapped_column(BigInteger, default=0)  # 阶段性减征
    total_fen: Mapped[int] = mapped_column(BigInteger)
    account_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(10))  # paid | due | deferred
    due_date: Mapped[date] = mapped_column(Date)
    paid_date: Mapped[date | None] = mapped_column(Date)
    category: Mapped[str] = mapped_column(String(40), default="")  # 资助类别
    recorded_at: Mapped[datetime] = mapped_column(DateTime)
    recorded_by: Mapped[str] = mapped_column(String(80))

    __table_args__ = (Index("ix_en_contributions_period_scheme", "period", "scheme"),)


class AccountEntry(Base):
    """个人账户流水: credits (划入), 家庭共济 payments at the 经办 desk (family_pay) and in settlement
    (mulaid_pay, reversed by mulaid_rev); the running balance lives on persons."""

    __tablename__ = "en_account_entries"
    id: Mapped[int] = mapped_column(_PK, primary_key=True, autoincrement=True)
    psn_no: Mapped[str] = mapped_column(ForeignKey("persons.psn_no"), index=True)
    on: Mapped[date] = mapped_column(Date)
    kind: Mapped[str] = mapped_column(String(12))  # credit | family_pay | mulaid_pay | mulaid_rev
    amount_fen: Mapped[int] = mapped_column(BigInteger)  # + in, − out
    ref: Mapped[str] = mapped_column(String(80), default="", index=True)  # mulaid_*: the settlement's setl_id
    recorded_at: Mapped[datetime] = mapped_column(DateTime)
    recorded_by: Mapped[str] = mapped_column(String(80))


__all__ = ["AccountEntry", "CategoryFact", "Contribution", "EnrolmentFact", "HouseholdLink", "ImportBatch"]
