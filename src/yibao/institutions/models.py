"""The 两定机构 tables: designation applications, agreements and their dated events, the standing the
settlement service reads, annual assessments, and the money side (monthly settlement applications,
advances, the fund ledger).

Facts are never overwritten: an agreement's change, suspension, resumption and termination are rows of
``ins_agreement_events``; ``ins_standing`` is their projection (one row per refusal interval) so the
settlement path answers "is this institution suspended on this date" with one indexed read. Money is
integer fen; ``ins_fund_ledger`` is insert-only (a correction is a negative row).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import JSON, BigInteger, Date, DateTime, ForeignKey, Index, Integer, Numeric, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from yibao.store.base import Base

BIGID = BigInteger().with_variant(Integer, "sqlite")
CODE = String(40)


class InsDesignation(Base):
    """定点申请: 申请 → 专业评估 → 签约 (or 不予定点), one row per application."""

    __tablename__ = "ins_designations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    application_no: Mapped[str] = mapped_column(String(32), unique=True)
    fixmedins_code: Mapped[str] = mapped_column(CODE, index=True)
    fixmedins_name: Mapped[str] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(10))  # hospital | pharmacy
    admdvs: Mapped[str] = mapped_column(String(6))
    scope: Mapped[dict] = mapped_column(JSON)  # requested {levels, services, care_modes}
    status: Mapped[str] = mapped_column(String(12))  # applied | evaluated | refused | signed
    applied_on: Mapped[date] = mapped_column(Date)
    applied_by: Mapped[str] = mapped_column(String(80))
    evaluation: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    evaluated_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    evaluated_by: Mapped[str | None] = mapped_column(String(80), nullable=True)
    agreement_no: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class InsAgreement(Base):
    """定点服务协议 as signed: parties, dates and the scope at signing (later changes are events)."""

    __tablename__ = "ins_agreements"

    agreement_no: Mapped[str] = mapped_column(String(32), primary_key=True)
    fixmedins_code: Mapped[str] = mapped_column(CODE, index=True)
    kind: Mapped[str] = mapped_column(String(10))
    signed_on: Mapped[date] = mapped_column(Date)
    valid_from: Mapped[date] = mapped_column(Date)
    valid_to: Mapped[date] = mapped_column(Date)
    scope: Mapped[dict] = mapped_column(JSON)
    application_no: Mapped[str | None] = mapped_column(String(32), nullable=True)
    signed_by: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(DateTime)


class InsAgreementEvent(Base):
    """A dated fact on an agreement: sign, change, suspend, resume, terminate. Insert-only."""

    __tablename__ = "ins_agreement_events"

    id: Mapped[int] = mapped_column(BIGID, primary_key=True, autoincrement=True)
    agreement_no: Mapped[str] = mapped_column(ForeignKey("ins_agreements.agreement_no"), index=True)
    fixmedins_code: Mapped[str] = mapped_column(CODE, index=True)
    kind: Mapped[str] = mapped_column(String(12))
    eff_date: Mapped[date] = mapped_column(Date)
    scope: Mapped[dict | None] = mapped_column(JSON, nullable=True)  # change: the scope from eff_date
    reason: Mapped[str] = mapped_column(Text, default="")
    case_id: Mapped[int | None] = mapped_column(Integer, nullable=True)  # the supervision case behind a suspension
    actor: Mapped[str] = mapped_column(String(80))
    role: Mapped[str] = mapped_column(String(20))
    recorded_at: Mapped[datetime] = mapped_column(DateTime)


class InsStanding(Base):
    """Projection of the events: an interval in which settlement at the institution is refused."""

    __tablename__ = "ins_standing"
    __table_args__ = (Index("ix_ins_standing_fixmedins_code_start_date", "fixmedins_code", "start_date"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fixmedins_code: Mapped[str] = mapped_column(CODE)
    agreement_no: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(12))  # suspended | terminated
    start_date: Mapped[date] = mapped_column(Date)
    end_date: Mapped[date | None] = mapped_column(Date, nullable=True)  # last refused day (inclusive); NULL: open
    reason: Mapped[str] = mapped_column(Text)
    event_id: Mapped[int] = mapped_column(BIGID)


class InsAssessment(Base):
    """年度考核: the score, grade and every input and rule that produced it."""

    __tablename__ = "ins_assessments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fixmedins_code: Mapped[str] = mapped_column(CODE, index=True)
    year: Mapped[int] = mapped_column(Integer)
    score: Mapped[Decimal] = mapped_column(Numeric(7, 2))
    grade: Mapped[str] = mapped_column(String(4))
    consequence: Mapped[str] = mapped_column(String(20))
    inputs: Mapped[dict] = mapped_column(JSON)
    rules_version: Mapped[str] = mapped_column(String(20))
    assessed_by: Mapped[str] = mapped_column(String(80))
    assessed_at: Mapped[datetime] = mapped_column(DateTime)


class InsSettleApp(Base):
    """月度结算申请: one institution, one month, one fund; 申请 → 初审 → 审批 → 支付指令 → 已拨付."""

    __tablename__ = "ins_settle_apps"
    __table_args__ = (Index("ix_ins_settle_apps_fixmedins_code_month", "fixmedins_code", "month"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    app_no: Mapped[str] = mapped_column(String(32), unique=True)
    fixmedins_code: Mapped[str] = mapped_column(CODE)
    month: Mapped[str] = mapped_column(String(7))  # YYYY-MM; clearing: YYYY-CL
    fund: Mapped[str] = mapped_column(String(12))  # basic | critical | assistance
    kind: Mapped[str] = mapped_column(String(10))  # monthly | clearing
    setl_cnt: Mapped[int] = mapped_column(Integer)
    revs_cnt: Mapped[int] = mapped_column(Integer)
    settled_fen: Mapped[int] = mapped_column(BigInteger)  # the fund's share of the month's settlements
    reversed_fen: Mapped[int] = mapped_column(BigInteger)  # ... less that of the month's reversals
    adjustment_fen: Mapped[int] = mapped_column(BigInteger)  # clearing adjustment (DIP/DRG, year end)
    offset_fen: Mapped[int] = mapped_column(BigInteger)  # 预付金 冲抵
    payable_fen: Mapped[int] = mapped_column(BigInteger)  # settled − reversed + adjustment − offset
    status: Mapped[str] = mapped_column(String(10))
    received_on: Mapped[date] = mapped_column(Date)
    deadline: Mapped[date] = mapped_column(Date)  # 30 个工作日
    reviewed_by: Mapped[str | None] = mapped_column(String(80), nullable=True)
    reviewed_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    approved_by: Mapped[str | None] = mapped_column(String(80), nullable=True)
    approved_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    order_no: Mapped[str | None] = mapped_column(String(32), nullable=True)
    ordered_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    paid_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    note: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(DateTime)


class InsAdvance(Base):
    """预付金: paid ahead, recovered by offsets from the institution's later applications of that fund."""

    __tablename__ = "ins_advances"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    advance_no: Mapped[str] = mapped_column(String(32), unique=True)
    fixmedins_code: Mapped[str] = mapped_column(CODE, index=True)
    fund: Mapped[str] = mapped_column(String(12))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    offset_months: Mapped[int] = mapped_column(Integer)  # recovered in this many equal monthly parts
    paid_on: Mapped[date] = mapped_column(Date)
    reason: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(DateTime)


class InsAdvanceOffset(Base):
    """One offset of an advance against one application. Insert-only."""

    __tablename__ = "ins_advance_offsets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    advance_no: Mapped[str] = mapped_column(ForeignKey("ins_advances.advance_no"), index=True)
    app_no: Mapped[str] = mapped_column(ForeignKey("ins_settle_apps.app_no"), index=True)
    amount_fen: Mapped[int] = mapped_column(BigInteger)


class InsFundLedger(Base):
    """基金支出台账: every payment out of a fund to an institution (advance, application payment,
    集采结余留用), insert-only; ``yibao fund outflows`` reads it."""

    __tablename__ = "ins_fund_ledger"
    __table_args__ = (Index("ix_ins_fund_ledger_fund_posted_on", "fund", "posted_on"),)

    id: Mapped[int] = mapped_column(BIGID, primary_key=True, autoincrement=True)
    posted_on: Mapped[date] = mapped_column(Date)
    fund: Mapped[str] = mapped_column(String(12))
    fixmedins_code: Mapped[str] = mapped_column(CODE, index=True)
    kind: Mapped[str] = mapped_column(String(12))  # payment | advance | retention
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    ref: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(80))
    at: Mapped[datetime] = mapped_column(DateTime)


TABLES = [InsDesignation.__table__, InsAgreement.__table__, InsAgreementEvent.__table__, InsStanding.__table__,
          InsAssessment.__table__, InsSettleApp.__table__, InsAdvance.__table__, InsAdvanceOffset.__table__,
          InsFundLedger.__table__]


# --- catalogue versions, 集采, 双通道, prices (migration institutions_0002) ----------------------------------


class InsCatalogueVersion(Base):
    """One imported national code table (drug / consumable / service), in force from ``effective_from``
    until a later version of the same kind; ``default_preselfpay`` is 乙类's 先行自付 share in this version."""

    __tablename__ = "ins_catalogue_versions"
    __table_args__ = (Index("ix_ins_catalogue_versions_kind_effective_from", "kind", "effective_from"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(12))
    version: Mapped[str] = mapped_column(String(40))
    effective_from: Mapped[date] = mapped_column(Date)
    default_preselfpay: Mapped[Decimal] = mapped_column(Numeric(9, 6))
    source: Mapped[str] = mapped_column(String(200))
    sha256: Mapped[str] = mapped_column(String(64))
    rows: Mapped[int] = mapped_column(Integer)
    imported_by: Mapped[str] = mapped_column(String(80))
    imported_at: Mapped[datetime] = mapped_column(DateTime)


class InsCatalogueEntry(Base):
    """A code of a version: 甲/乙/丙, its own 先行自付 share (if any), 支付标准, 限定支付范围 text and coded conditions."""

    __tablename__ = "ins_catalogue_entries"

    version_id: Mapped[int] = mapped_column(ForeignKey("ins_catalogue_versions.id"), primary_key=True)
    med_list_codg: Mapped[str] = mapped_column(String(60), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    chrgitm_lv: Mapped[str] = mapped_column(String(2))
    preselfpay_ratio: Mapped[Decimal | None] = mapped_column(Numeric(9, 6), nullable=True)
    pay_std_fen: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    limit_text: Mapped[str | None] = mapped_column(Text, nullable=True)
    limit_codes: Mapped[str | None] = mapped_column(String(200), nullable=True)
    spec: Mapped[str | None] = mapped_column(String(200), nullable=True)
    dosform: Mapped[str | None] = mapped_column(String(60), nullable=True)
    unit: Mapped[str | None] = mapped_column(String(30), nullable=True)
    producer: Mapped[str | None] = mapped_column(String(200), nullable=True)


class InsVbpProduct(Base):
    """集采中选产品 at one institution: the agreed (约定) volume for the period, the selected price and the
    reference price before 集采 (the budget basis); progress and 结余留用 are computed from the settlements."""

    __tablename__ = "ins_vbp_products"
    __table_args__ = (Index("ix_ins_vbp_products_fixmedins_code_year", "fixmedins_code", "year"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    batch: Mapped[str] = mapped_column(String(40))  # 采购批次, e.g. 国家第九批
    year: Mapped[int] = mapped_column(Integer)
    fixmedins_code: Mapped[str] = mapped_column(CODE)
    med_list_codg: Mapped[str] = mapped_column(String(60))
    name: Mapped[str] = mapped_column(String(200))
    contract_volume: Mapped[Decimal] = mapped_column(Numeric(16, 4))
    selected_price_fen: Mapped[int] = mapped_column(BigInteger)
    reference_price_fen: Mapped[int] = mapped_column(BigInteger)
    period_from: Mapped[date] = mapped_column(Date)
    period_to: Mapped[date] = mapped_column(Date)
    recorded_by: Mapped[str] = mapped_column(String(80))
    recorded_at: Mapped[datetime] = mapped_column(DateTime)
    file_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)  # the 集采 list it came from


class InsDualChannel(Base):
    """双通道: a 谈判药品 dispensed at a designated pharmacy (and settled there), from/to a date."""

    __tablename__ = "ins_dual_channel"
    __table_args__ = (Index("ix_ins_dual_channel_med_list_codg", "med_list_codg"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    med_list_codg: Mapped[str] = mapped_column(String(60))
    fixmedins_code: Mapped[str] = mapped_column(CODE)
    valid_from: Mapped[date] = mapped_column(Date)
    valid_to: Mapped[date] = mapped_column(Date)
    recorded_by: Mapped[str] = mapped_column(String(80))
    recorded_at: Mapped[datetime] = mapped_column(DateTime)


class InsPriceEvent(Base):
    """A service-item price set or changed for an institution level from a date (调价), with its document. Insert-only:
    the price in force on a date is the latest event dated on or before it."""

    __tablename__ = "ins_price_events"
    __table_args__ = (Index("ix_ins_price_events_item_level_eff", "med_list_codg", "level", "eff_date"),)

    id: Mapped[int] = mapped_column(BIGID, primary_key=True, autoincrement=True)
    med_list_codg: Mapped[str] = mapped_column(String(60))
    level: Mapped[str] = mapped_column(String(2))
    price_fen: Mapped[int] = mapped_column(BigInteger)
    eff_date: Mapped[date] = mapped_column(Date)
    doc_no: Mapped[str] = mapped_column(String(80))  # 调价文件号
    reason: Mapped[str] = mapped_column(Text)
    recorded_by: Mapped[str] = mapped_column(String(80))
    recorded_at: Mapped[datetime] = mapped_column(DateTime)
    file_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)  # the price table it came from


class InsTariffFile(Base):
    """An imported 医疗服务价格表 (kind ``price``) or 集采中选产品清单 (kind ``vbp``): a dated version (文件号 or 采购批次,
    effective date), its file's hash and who imported it. Its rows are price events / selected products carrying
    ``file_id``; a file is written whole or not at all."""

    __tablename__ = "ins_tariff_files"
    __table_args__ = (UniqueConstraint("kind", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))  # price | vbp
    version: Mapped[str] = mapped_column(String(80))
    effective_from: Mapped[date] = mapped_column(Date)
    source: Mapped[str] = mapped_column(String(200))
    sha256: Mapped[str] = mapped_column(String(64))
    rows: Mapped[int] = mapped_column(Integer)
    imported_by: Mapped[str] = mapped_column(String(80))
    imported_at: Mapped[datetime] = mapped_column(DateTime)


CATALOGUE_TABLES = [InsCatalogueVersion.__table__, InsCatalogueEntry.__table__, InsVbpProduct.__table__,
                    InsDualChannel.__table__, InsPriceEvent.__table__, InsTariffFile.__table__]
