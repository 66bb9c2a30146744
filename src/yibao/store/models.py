"""Tables of the settlement store: registry (persons, enrollments, categories, institutions),
visits and fee items, settlements, the accumulator ledger, idempotency records and the audit log.

Money columns are integer fen (``*_fen`` or a platform amount name on a settlement row); JSON
columns hold engine accumulators (``{"key": fen}``) and the stored platform answers. The
accumulator balance of (psn_no, year) is the one row every settlement of that person locks, so
two settlements of one person are serialised and never lose an update (see
:mod:`yibao.service.ledger`).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from yibao import privacy
from yibao.settlement.model import SETLINFO_FIELDS
from yibao.store.base import Base

ID = String(40)


class _Certno:
    """``Person.certno``: the 证件号, read (decrypted) and set (encrypted + blind index) as a plain attribute.
    It is not a column: querying by it is refused here; find a person with ``registry.person_by_certno``."""

    def __get__(self, obj, owner=None):
        if obj is None:
            raise AttributeError("Person.certno is encrypted at rest and cannot be queried: use "
                                 "yibao.service.registry.person_by_certno (blind index)")
        token = obj.certno_enc
        if token is None:
            return None
        cached = obj.__dict__.get("_certno_plain")
        if cached is not None and cached[0] == token:
            return cached[1]
        plain = privacy.decrypt_certno(token, obj.psn_no)
        obj.__dict__["_certno_plain"] = (token, plain)
        return plain

    def __set__(self, obj, value: str) -> None:
        if not obj.psn_no:
            raise ValueError("psn_no must be set before certno (it binds the ciphertext to the person)")
        obj.certno_enc = privacy.encrypt_certno(value, obj.psn_no)
        obj.certno_bidx = privacy.certno_index(value)
        obj.__dict__["_certno_plain"] = (obj.certno_enc, privacy.normalise(value))


class Person(Base):
    """参保人. certno carries a valid GB 11643 check digit (checked on load, see registry.py); it is stored
    encrypted (``certno_enc``) and found by its blind index (``certno_bidx``), see :mod:`yibao.privacy`."""

    __tablename__ = "persons"
    __table_args__ = (UniqueConstraint("certno_bidx", name="uq_persons_certno_bidx"),)
    psn_no: Mapped[str] = mapped_column(ID, primary_key=True)
    certno_enc: Mapped[str] = mapped_column(String(120))
    certno_bidx: Mapped[str] = mapped_column(String(64))
    certno = _Certno()
    psn_cert_type: Mapped[str] = mapped_column(String(6), default="01")
    psn_name: Mapped[str] = mapped_column(String(60))
    gend: Mapped[str | None] = mapped_column(String(1))
    brdy: Mapped[date] = mapped_column(Date)
    retiree: Mapped[bool] = mapped_column(Boolean, default=False)
    admdvs: Mapped[str] = mapped_column(String(6))
    hh_no: Mapped[str | None] = mapped_column(ID)
    acct_balc_fen: Mapped[int] = mapped_column(BigInteger, default=0)  # 个人账户余额

    def __init__(self, certno: str | None = None, **kwargs):
        super().__init__(**kwargs)
        if certno is not None:
            self.certno = certno  # after psn_no: the ciphertext is bound to it


class Enrollment(Base):
    """参保: a scheme (insutype) in a region (insuplc_admdvs), valid from/to (inclusive)."""

    __tablename__ = "enrollments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    psn_no: Mapped[str] = mapped_column(ForeignKey("persons.psn_no"), index=True)
    insutype: Mapped[str] = mapped_column(String(3))
    insuplc_admdvs: Mapped[str] = mapped_column(String(6))
    valid_from: Mapped[date] = mapped_column(Date)
    valid_to: Mapped[date] = mapped_column(Date)


class PersonCategory(Base):
    """人员类别 (低保, 特困, 返贫致贫...) with its validity and issuing department (民政 / 乡村振兴)."""

    __tablename__ = "person_categories"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    psn_no: Mapped[str] = mapped_column(ForeignKey("persons.psn_no"), index=True)
    category: Mapped[str] = mapped_column(String(40))
    issuing_dept: Mapped[str] = mapped_column(String(20))
    valid_from: Mapped[date] = mapped_column(Date)
    valid_to: Mapped[date] = mapped_column(Date)


class SubsidisedEnrollment(Base):
    """资助参保: the contribution paid for a person by medical assistance in a year, and why."""

    __tablename__ = "subsidised_enrollments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    psn_no: Mapped[str] = mapped_column(ForeignKey("persons.psn_no"), index=True)
    year: Mapped[int] = mapped_column(Integer)
    category: Mapped[str] = mapped_column(String(40))
    subsidy_fen: Mapped[int] = mapped_column(BigInteger)
    issuing_dept: Mapped[str] = mapped_column(String(20))


class Institution(Base):
    """定点医药机构 with its level (drives ratios) and designated period."""

    __tablename__ = "institutions"
    fixmedins_code: Mapped[str] = mapped_column(ID, primary_key=True)
    fixmedins_name: Mapped[str] = mapped_column(String(120))
    level: Mapped[str] = mapped_column(String(10))
    admdvs: Mapped[str] = mapped_column(String(6))
    designated_from: Mapped[date] = mapped_column(Date)
    designated_to: Mapped[date] = mapped_column(Date)
    # 机构类型 1 定点医疗机构, 2 定点零售药店: what the supervision rules about pharmacies read
    fixmedins_type: Mapped[str | None] = mapped_column(String(2), default="1")


class Visit(Base):
    """就诊 (mdtrt). status: registered → settled → (reversed → settled ...)."""

    __tablename__ = "visits"
    mdtrt_id: Mapped[str] = mapped_column(ID, primary_key=True)
    psn_no: Mapped[str] = mapped_column(ForeignKey("persons.psn_no"), index=True)
    fixmedins_code: Mapped[str] = mapped_column(ForeignKey("institutions.fixmedins_code"), index=True)
    insutype: Mapped[str] = mapped_column(String(3))
    insuplc_admdvs: Mapped[str] = mapped_column(String(6))
    med_type: Mapped[str] = mapped_column(String(6))
    begntime: Mapped[datetime] = mapped_column(DateTime)
    endtime: Mapped[datetime | None] = mapped_column(DateTime)
    dise_codg: Mapped[str] = mapped_column(String(40), default="")
    referral_from_level: Mapped[str | None] = mapped_column(String(10))
    ipt_otp_no: Mapped[str] = mapped_column(String(40), default="")
    atddr_no: Mapped[str | None] = mapped_column(String(40))  # 主治医生编码 (2201), read by the physician rules
    status: Mapped[str] = mapped_column(String(12), default="registered")
    created_at: Mapped[datetime] = mapped_column(DateTime)


class FeeItem(Base):
    """费用明细, as uploaded by 2204/2301 (amounts fen)."""

    __tablename__ = "fee_items"
    mdtrt_id: Mapped[str] = mapped_column(ForeignKey("visits.mdtrt_id"), primary_key=True)
    feedetl_sn: Mapped[str] = mapped_column(ID, primary_key=True)
    med_list_codg: Mapped[str] = mapped_column(String(60))
    chrgitm_lv: Mapped[str | None] = mapped_column(String(40))
    pric_fen: Mapped[int | None] = mapped_column(BigInteger)
    cnt: Mapped[Decimal] = mapped_column(Numeric(16, 4))
    det_item_fee_sumamt_fen: Mapped[int] = mapped_column(BigInteger)
    preselfpay_ratio: Mapped[Decimal | None] = mapped_column(Numeric(9, 6))
    fee_ocur_time: Mapped[datetime | None] = mapped_column(DateTime)
    # 医疗收费项目类别 (01 床位 … 09 西药, as the claims contract): the category rules judge lines by it
    med_chrgitm_type: Mapped[str | None] = mapped_column(String(6))


class Settlement(Base):
    """结算 (setlinfo, amounts fen) with the pack version used and the accumulator delta it added."""

    __tablename__ = "settlements"
    setl_id: Mapped[str] = mapped_column(ID, primary_key=True)
    mdtrt_id: Mapped[str] = mapped_column(ForeignKey("visits.mdtrt_id"), index=True)
    psn_no: Mapped[str] = mapped_column(ForeignKey("persons.psn_no"), index=True)
    fixmedins_code: Mapped[str] = mapped_column(ID)
    insutype: Mapped[str] = mapped_column(String(3))
    med_type: Mapped[str] = mapped_column(String(6))
    setl_time: Mapped[datetime] = mapped_column(DateTime)
    year: Mapped[int] = mapped_column(Integer)
    pack_id: Mapped[str] = mapped_column(String(40))
    pack_version: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(10), default="valid")  # valid | reversed
    revs_setl_id: Mapped[str | None] = mapped_column(ID)  # the reversal's own id (2208 output)
    revs_time: Mapped[datetime | None] = mapped_column(DateTime)
    delta: Mapped[dict] = mapped_column(JSON)
    acc_after: Mapped[dict] = mapped_column(JSON)
    explanation: Mapped[list] = mapped_column(JSON)
    opter: Mapped[str] = mapped_column(String(40), default="")
    medfee_sumamt: Mapped[int] = mapped_column(BigInteger)
    fulamt_ownpay_amt: Mapped[int] = mapped_column(BigInteger)
    overlmt_selfpay: Mapped[int] = mapped_column(BigInteger)
    preselfpay_amt: Mapped[int] = mapped_column(BigInteger)
    inscp_scp_amt: Mapped[int] = mapped_column(BigInteger)
    act_pay_dedc: Mapped[int] = mapped_column(BigInteger)
    hifp_pay: Mapped[int] = mapped_column(BigInteger)
    pool_prop_selfpay: Mapped[int] = mapped_column(BigInteger)
    cvlserv_pay: Mapped[int] = mapped_column(BigInteger)
    hifes_pay: Mapped[int] = mapped_column(BigInteger)
    hifmi_pay: Mapped[int] = mapped_column(BigInteger)
    hifob_pay: Mapped[int] = mapped_column(BigInteger)
    maf_pay: Mapped[int] = mapped_column(BigInteger)
    oth_pay: Mapped[int] = mapped_column(BigInteger)
    fund_pay_sumamt: Mapped[int] = mapped_column(BigInteger)
    psn_part_amt: Mapped[int] = mapped_column(BigInteger)
    acct_pay: Mapped[int] = mapped_column(BigInteger)
    psn_cash_pay: Mapped[int] = mapped_column(BigInteger)
    hosp_part_amt: Mapped[int] = mapped_column(BigInteger)
    prev_hash: Mapped[str] = mapped_column(String(64), default="")  # hash chain (yibao.store.chain)
    row_hash: Mapped[str] = mapped_column(String(64), default="")

    __table_args__ = (Index("ix_settlements_fixmedins_code_setl_time", "fixmedins_code", "setl_time"),)


assert all(hasattr(Settlement, f) for f in SETLINFO_FIELDS)  # one column per platform field


class SettlementDetail(Base):
    """setldetail: one fund's payment and the pack rule that produced it."""

    __tablename__ = "settlement_details"
    setl_id: Mapped[str] = mapped_column(ForeignKey("settlements.setl_id"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    fund_pay_type: Mapped[str] = mapped_column(String(10))
    fund_payamt: Mapped[int] = mapped_column(BigInteger)
    setl_field: Mapped[str] = mapped_column(String(20))
    rule_id: Mapped[str] = mapped_column(String(60))
    rule_name: Mapped[str] = mapped_column(String(120))


class AccumulatorBalance(Base):
    """Year-to-date accumulators of one person (the row locked by every settlement of that person)."""

    __tablename__ = "accumulator_balances"
    psn_no: Mapped[str] = mapped_column(ForeignKey("persons.psn_no"), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    acc_values: Mapped[dict] = mapped_column(JSON)
    entries: Mapped[int] = mapped_column(Integer, default=0)  # ledger rows so far (a sequence)
    setl_head: Mapped[str] = mapped_column(String(64), default="")  # last row_hash of the person-year's settlements
    ledger_head: Mapped[str] = mapped_column(String(64), default="")  # ... and of its ledger rows


class AccumulatorLedger(Base):
    """One row per settlement (+delta) or reversal (−delta): the balance is their sum."""

    __tablename__ = "accumulator_ledger"
    psn_no: Mapped[str] = mapped_column(ForeignKey("persons.psn_no"), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    setl_id: Mapped[str] = mapped_column(ForeignKey("settlements.setl_id"), index=True)
    kind: Mapped[str] = mapped_column(String(8))  # settle | reverse
    delta: Mapped[dict] = mapped_column(JSON)
    at: Mapped[datetime] = mapped_column(DateTime)
    prev_hash: Mapped[str] = mapped_column(String(64), default="")  # hash chain (yibao.store.chain)
    row_hash: Mapped[str] = mapped_column(String(64), default="")


class HouseholdBalance(Base):
    """Year-to-date household accumulators (``hhcap:<tier>``, ``hhpaid:<tier>``) of one hh_no: the row every
    settlement or reversal that counts against a tier's household_cap (家庭年度限额) locks, after the member's
    own balance (:func:`yibao.service.ledger.lock_household`). No foreign key: hh_no names no table row."""

    __tablename__ = "household_balances"
    hh_no: Mapped[str] = mapped_column(ID, primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    acc_values: Mapped[dict] = mapped_column(JSON)
    entries: Mapped[int] = mapped_column(Integer, default=0)  # household ledger rows so far (a sequence)
    ledger_head: Mapped[str] = mapped_column(String(64), default="")  # last row_hash of the household ledger


class HouseholdLedger(Base):
    """One row per settlement (+delta) or reversal (−delta) that moved a household's accumulators: the balance is
    their sum. A settlement's row is what its reversal needs (hh_no, the delta, the household's values after it),
    kept here and not on the settlement row, whose columns the settlement hash chain covers."""

    __tablename__ = "household_ledger"
    hh_no: Mapped[str] = mapped_column(ID, primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    setl_id: Mapped[str] = mapped_column(ForeignKey("settlements.setl_id"), index=True)
    psn_no: Mapped[str] = mapped_column(ForeignKey("persons.psn_no"))
    kind: Mapped[str] = mapped_column(String(8))  # settle | reverse
    delta: Mapped[dict] = mapped_column(JSON)
    acc_after: Mapped[dict] = mapped_column(JSON)  # the household's values after this row
    at: Mapped[datetime] = mapped_column(DateTime)
    prev_hash: Mapped[str] = mapped_column(String(64), default="")  # hash chain (yibao.store.chain)
    row_hash: Mapped[str] = mapped_column(String(64), default="")


class IdempotencyRecord(Base):
    """The first answer to a msgid / Idempotency-Key, written in the same transaction as its effects."""

    __tablename__ = "idempotency_records"
    scope_key: Mapped[str] = mapped_column(String(200), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    response: Mapped[str] = mapped_column(Text)  # the answer exactly as first sent
    created_at: Mapped[datetime] = mapped_column(DateTime)


class AuditLog(Base):
    """Append-only record of every write: who, when, what, which request (identities masked)."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime, index=True)
    actor: Mapped[str] = mapped_column(String(80))
    role: Mapped[str] = mapped_column(String(20))
    action: Mapped[str] = mapped_column(String(40))
    request_id: Mapped[str] = mapped_column(String(200), default="")
    entity: Mapped[str] = mapped_column(String(40))
    entity_id: Mapped[str] = mapped_column(String(80))
    detail: Mapped[dict] = mapped_column(JSON)
    chain_stream: Mapped[str] = mapped_column(String(40), default="")  # the writing lane (yibao.store.chain)
    prev_hash: Mapped[str] = mapped_column(String(64), default="")  # hash chain (yibao.store.chain)
    row_hash: Mapped[str] = mapped_column(String(64), default="")


__all__ = [
    "AccumulatorBalance", "AccumulatorLedger", "AuditLog", "Enrollment", "FeeItem", "HouseholdBalance",
    "HouseholdLedger", "IdempotencyRecord",
    "Institution", "Person", "PersonCategory", "Settlement", "SettlementDetail", "SubsidisedEnrollment",
    "Visit",
]
