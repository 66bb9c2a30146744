"""Inputs and outputs of a settlement, in fen, named as the national platform names them.

These are plain frozen dataclasses, not pydantic models: the engine builds thousands of them a
second and they are already validated at the edge (:mod:`yibao.settlement.request`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Mapping

# setlinfo fields filled by tiers after 基本医保, in the order the platform lists them.
TIER_FIELDS = ("cvlserv_pay", "hifes_pay", "hifmi_pay", "hifob_pay", "maf_pay", "oth_pay")

# Amount buckets that flow from tier to tier; each tier draws on some of them.
BUCKETS = ("inscp_coshare", "inscp_overcap", "inscp_dedc", "preselfpay", "overlmt_selfpay", "fulamt_ownpay")
BUCKET_ALIASES = {
    "inscp_own": ("inscp_coshare", "inscp_overcap", "inscp_dedc"),
    "out_of_scope": ("preselfpay", "overlmt_selfpay", "fulamt_ownpay"),
}


def expand_buckets(names) -> tuple[str, ...]:
    """Expand aliases, keep first occurrence order: the order in which a tier draws money."""
    out: list[str] = []
    for name in names:
        for b in BUCKET_ALIASES.get(name, (name,)):
            if b not in out:
                out.append(b)
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Person:
    psn_no: str
    insutype: str  # 310 职工 / 390 居民 ...
    categories: frozenset[str] = frozenset()
    retiree: bool = False
    age: int | None = None
    gend: str | None = None
    hh_no: str | None = None  # 家庭编号: whose members share a tier's household_cap (家庭年度限额)


@dataclass(frozen=True, slots=True)
class FeeItem:
    feedetl_sn: str
    med_list_codg: str
    det_item_fee_sumamt: int  # fen
    cnt: Decimal = Decimal(1)
    pric: int | None = None  # fen per unit
    chrgitm_lv: str | None = None  # from the catalog when not given
    preselfpay_ratio: Decimal | None = None  # per-item override of the class / catalog share


@dataclass(frozen=True, slots=True)
class ClassifiedAmounts:
    """The four amounts item classification yields (all fen); medfee is their sum."""

    fulamt_ownpay_amt: int
    overlmt_selfpay: int
    preselfpay_amt: int
    inscp_scp_amt: int
    inscp_full: int = 0  # the part of inscp_scp_amt in classes without co-share (coshare: false), paid in full

    @property
    def medfee_sumamt(self) -> int:
        return self.fulamt_ownpay_amt + self.overlmt_selfpay + self.preselfpay_amt + self.inscp_scp_amt


@dataclass(frozen=True, slots=True)
class Visit:
    mdtrt_id: str
    med_type: str
    level: str  # institution level code as the pack declares it
    setl_date: date
    fixmedins_code: str = ""
    dise_codg: str = ""
    referral_from_level: str | None = None  # 医共体 referral: the level referred from
    offsite_status: str = "local"  # 异地就医: local | filed (valid 备案 on the visit date) | unfiled
    items: tuple[FeeItem, ...] | None = None
    amounts: ClassifiedAmounts | None = None
    acct_balance: int = 0  # personal-account balance the person agrees to use (fen)


@dataclass(frozen=True, slots=True)
class Accumulators:
    """Year-to-date counters of one person (累计): bases, admissions, cap usage, payments.

    Keys: ``adm:<group>`` admissions, ``cap:<group>`` per-admission 统筹 amounts before the annual
    cap, ``base:<rule>`` / ``base:<tier>:<part>`` cumulative bases, ``once:<rule>`` once-a-year
    deductibles paid, ``paid:<rule>`` payments, ``setl:count`` settlements of the year. A settlement
    returns the delta it adds.
    """

    year: int
    values: Mapping[str, int] = field(default_factory=dict)

    def get(self, key: str) -> int:
        return self.values.get(key, 0)

    def plus(self, delta: Mapping[str, int]) -> "Accumulators":
        merged = dict(self.values)
        for k, v in delta.items():
            merged[k] = merged.get(k, 0) + v
        return Accumulators(self.year, {k: v for k, v in merged.items() if v})

    def minus(self, delta: Mapping[str, int]) -> "Accumulators":
        return self.plus({k: -v for k, v in delta.items()})


@dataclass(frozen=True, slots=True)
class Setlinfo:
    """The platform's settlement summary (结算信息), amounts in fen."""

    medfee_sumamt: int
    fulamt_ownpay_amt: int
    overlmt_selfpay: int
    preselfpay_amt: int
    inscp_scp_amt: int
    act_pay_dedc: int
    hifp_pay: int
    pool_prop_selfpay: int
    cvlserv_pay: int
    hifes_pay: int
    hifmi_pay: int
    hifob_pay: int
    maf_pay: int
    oth_pay: int
    fund_pay_sumamt: int
    psn_part_amt: int
    acct_pay: int
    psn_cash_pay: int
    hosp_part_amt: int

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}  # type: ignore[attr-defined]


SETLINFO_FIELDS = Setlinfo.__slots__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class SetlDetail:
    """One fund's payment (结算明细): which fund, how much, which pack rule produced it."""

    fund_pay_type: str
    fund_payamt: int
    setl_field: str
    rule_id: str
    rule_name: str


@dataclass(frozen=True, slots=True)
class Step:
    """One line of the explanation: the rule applied and the numbers it used (fen / rates)."""

    kind: str  # classify | basic | tier | guarantee | account | cash
    rule_id: str
    rule_name: str
    facts: Mapping[str, object]


@dataclass(frozen=True, slots=True)
class Settlement:
    psn_no: str
    mdtrt_id: str
    pack_id: str
    pack_version: str
    setlinfo: Setlinfo
    setldetail: tuple[SetlDetail, ...]
    steps: tuple[Step, ...]
    accumulators_before: Accumulators
    accumulators_after: Accumulators
    delta: Mapping[str, int]
    inscp_psn_part: int = 0  # 政策范围内个人负担 left after every fund (for 因病返贫 monitoring)
    # the household's accumulators (``hhcap:<tier>``, ``hhpaid:<tier>``) when the pack has household caps: what
    # the household had before this settlement and what it added (stored and locked apart from the person's)
    household_before: Accumulators | None = None
    household_delta: Mapping[str, int] = field(default_factory=dict)

    @property
    def household_after(self) -> Accumulators | None:
        return None if self.household_before is None else self.household_before.plus(self.household_delta)
