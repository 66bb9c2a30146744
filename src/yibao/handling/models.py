"""The 经办 tables: cases (with a version for optimistic locking), their events, and the dated
entitlement facts a completed case records. Kept apart from :mod:`yibao.handling.store` so the
settlement service can read facts without importing the workflow's writers."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, BigInteger, Date, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from yibao.store.base import Base


class HdCase(Base):
    __tablename__ = "hd_cases"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_no: Mapped[str] = mapped_column(String(32), unique=True)
    item_code: Mapped[str] = mapped_column(String(10), index=True)
    psn_no: Mapped[str] = mapped_column(String(40), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    version: Mapped[int] = mapped_column(Integer)
    channel: Mapped[str] = mapped_column(String(10))
    service_point: Mapped[str] = mapped_column(String(60))
    applied_by: Mapped[str] = mapped_column(String(80))
    agent_kind: Mapped[str | None] = mapped_column(String(10), nullable=True)
    agent_name: Mapped[str | None] = mapped_column(String(60), nullable=True)
    agent_relation: Mapped[str | None] = mapped_column(String(30), nullable=True)
    authorization_no: Mapped[str | None] = mapped_column(String(60), nullable=True)
    form: Mapped[dict] = mapped_column(JSON)
    materials: Mapped[list] = mapped_column(JSON)
    fee_items: Mapped[list] = mapped_column(JSON)  # 零星报销: the receipts' fee lines as entered
    notice: Mapped[list] = mapped_column(JSON)
    step_actors: Mapped[list] = mapped_column(JSON)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    applied_on: Mapped[date] = mapped_column(Date)
    accepted_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    deadline: Mapped[date | None] = mapped_column(Date, nullable=True)
    completed_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    rating: Mapped[int | None] = mapped_column(Integer, nullable=True)
    rating_comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class HdEvent(Base):
    """Append-only: every action on a case, by whom, in which role."""

    __tablename__ = "hd_events"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("hd_cases.id"), index=True)
    at: Mapped[datetime] = mapped_column(DateTime)
    actor: Mapped[str] = mapped_column(String(80))
    role: Mapped[str] = mapped_column(String(20))
    action: Mapped[str] = mapped_column(String(16))
    from_status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    to_status: Mapped[str] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(Text)
    detail: Mapped[dict] = mapped_column(JSON)


class HdFact(Base):
    """A dated entitlement recorded by a completed case (认定, 登记, 备案, 救助): never overwritten."""

    __tablename__ = "hd_facts"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    psn_no: Mapped[str] = mapped_column(String(40), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    code: Mapped[str] = mapped_column(String(40))
    valid_from: Mapped[date] = mapped_column(Date)
    valid_to: Mapped[date] = mapped_column(Date)
    detail: Mapped[dict] = mapped_column(JSON)
    case_no: Mapped[str] = mapped_column(String(32))
    recorded_by: Mapped[str] = mapped_column(String(80))
    recorded_at: Mapped[datetime] = mapped_column(DateTime)


class HdTopup(Base):
    """补差: a year's valid settlements re-run with a late approval in place; the per-visit differences
    and their total, as a statement of its own. Insert-only; the settlements themselves are never edited."""

    __tablename__ = "hd_topups"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    topup_no: Mapped[str] = mapped_column(String(32), unique=True)
    case_no: Mapped[str] = mapped_column(String(32), index=True)
    psn_no: Mapped[str] = mapped_column(String(40), index=True)
    year: Mapped[int] = mapped_column(Integer)
    lines: Mapped[list] = mapped_column(JSON)
    totals: Mapped[dict] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    reverses: Mapped[str] = mapped_column(String(32), default="", server_default="")  # 撤销补差: the one it undoes


class HdPayment(Base):
    """A payment order (支付单) a completed case owes the person: 零星报销's fund share. Insert-only."""

    __tablename__ = "hd_payments"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    payment_no: Mapped[str] = mapped_column(String(32), unique=True)
    case_no: Mapped[str] = mapped_column(String(32), index=True)
    psn_no: Mapped[str] = mapped_column(String(40))
    setl_id: Mapped[str] = mapped_column(String(40))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    created_by: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(DateTime)


class HdPaymentEvent(Base):
    """What happened to a payment order: 已支付 (paid, with the date the money left) or 退回 (returned, with why).
    Insert-only; the order's status is its latest event (none: 待支付)."""

    __tablename__ = "hd_payment_events"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    payment_no: Mapped[str] = mapped_column(String(32), index=True)
    status: Mapped[str] = mapped_column(String(10))  # paid | returned
    on: Mapped[date] = mapped_column(Date)
    note: Mapped[str] = mapped_column(String(200), default="")
    actor: Mapped[str] = mapped_column(String(80))
    at: Mapped[datetime] = mapped_column(DateTime)


class HdClearing(Base):
    """An issued 异地就医 clearing statement: the month's statement as it was sent, frozen. A correction is a
    new version with its reason; no version is ever edited."""

    __tablename__ = "hd_clearings"
    __table_args__ = (UniqueConstraint("month", "version", name="uq_hd_clearings_month_version"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    month: Mapped[str] = mapped_column(String(7), index=True)
    version: Mapped[int] = mapped_column(Integer)
    statement: Mapped[dict] = mapped_column(JSON)
    note: Mapped[str] = mapped_column(String(200), default="")
    issued_by: Mapped[str] = mapped_column(String(80))
    issued_at: Mapped[datetime] = mapped_column(DateTime)


TABLES = [HdCase.__table__, HdEvent.__table__, HdFact.__table__, HdTopup.__table__, HdPayment.__table__,
          HdPaymentEvent.__table__, HdClearing.__table__]


def facts_on(session: Session, psn_no: str, kind: str, on: date) -> list["HdFact"]:
    """The person's facts of ``kind`` valid on ``on`` (what settlement asks)."""
    return list(session.scalars(select(HdFact).where(HdFact.psn_no == psn_no, HdFact.kind == kind,
                                                     HdFact.valid_from <= on, HdFact.valid_to >= on)
                                .order_by(HdFact.id)))


def payment_status(session: Session, payment_no: str) -> tuple[str, "HdPaymentEvent | None"]:
    """A payment order's status (its latest event; 待支付 with none) and that event."""
    last = session.scalars(select(HdPaymentEvent).where(HdPaymentEvent.payment_no == payment_no)
                           .order_by(HdPaymentEvent.id.desc()).limit(1)).first()
    return (last.status, last) if last is not None else ("pending", None)
