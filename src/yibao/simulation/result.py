"""What a policy simulation found: every figure for the baseline and the reform side by side.

Amounts are integer fen (as the engine computes them); the conversion to yuan happens only
when a figure is shown or exported (:meth:`SimulationResult.to_dict`, the workbook, the HTML
report). A :class:`Pair` holds one figure under both packs and knows its change.

>>> p = Pair(800000, 850000)
>>> p.change, p.pct
(50000, Decimal('6.25'))
>>> Pair(0, 5).pct is None
True
>>> share_pct(1, 3), share_pct(0, 0)
(Decimal('33.33'), None)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from yibao.money import fen_to_yuan, pct

CENT = Decimal("0.01")
DECILES = tuple(range(10, 100, 10))  # P10 … P90

# dimension code → (中文, English); the order in which reports list them
DIMENSIONS = {
    "overall": ("全体", "overall"),
    "insutype": ("险种", "scheme"),
    "level": ("机构等级", "institution level"),
    "category": ("人员类别", "person category"),
    "med_type": ("医疗类别", "medical type"),
    "visit_kind": ("险种×等级×医疗类别", "scheme × level × medical type"),
}
# person dimensions: the population is every insured person (person-year) of the group, with
# or without visits; visit dimensions: the persons with at least one visit of that kind
PERSON_DIMENSIONS = ("overall", "insutype", "category")
NO_CATEGORY = "(none)"  # key of 普通参保人 (a person without any category); cannot clash with a pack code


# setlinfo fields summed per group; the fund fields are the tiers' "per setl field" payout
AMOUNT_FIELDS = ("medfee_sumamt", "fulamt_ownpay_amt", "overlmt_selfpay", "preselfpay_amt", "inscp_scp_amt",
                 "fund_pay_sumamt", "hifp_pay", "hifmi_pay", "hifob_pay", "maf_pay", "cvlserv_pay", "hifes_pay",
                 "oth_pay", "psn_part_amt", "inscp_psn_part", "acct_pay", "psn_cash_pay")
FUND_FIELDS = ("hifp_pay", "hifmi_pay", "hifob_pay", "maf_pay", "cvlserv_pay", "hifes_pay", "oth_pay")
FIELD_NAMES = {
    "medfee_sumamt": "医疗费总额",
    "fulamt_ownpay_amt": "全自费金额",
    "overlmt_selfpay": "超限价自费",
    "preselfpay_amt": "先行自付金额",
    "inscp_scp_amt": "政策范围内费用",
    "fund_pay_sumamt": "基金支付总额",
    "hifp_pay": "基本医保统筹基金",
    "hifmi_pay": "居民大病保险",
    "hifob_pay": "职工大额医疗费用补助",
    "maf_pay": "医疗救助",
    "cvlserv_pay": "公务员医疗补助",
    "hifes_pay": "企业补充医疗保险",
    "oth_pay": "其他(补充)",
    "psn_part_amt": "个人负担总额",
    "inscp_psn_part": "政策范围内个人负担",
    "acct_pay": "个人账户支出",
    "psn_cash_pay": "个人现金支出",
}
FIELD_ENGLISH = {
    "medfee_sumamt": "total cost", "fulamt_ownpay_amt": "out-of-scope (full self-pay)",
    "overlmt_selfpay": "above price cap", "preselfpay_amt": "pre-self-pay", "inscp_scp_amt": "in-scope cost",
    "fund_pay_sumamt": "all funds", "hifp_pay": "basic pool", "hifmi_pay": "critical illness",
    "hifob_pay": "major medical", "maf_pay": "medical assistance", "cvlserv_pay": "civil servant",
    "hifes_pay": "enterprise suppl.", "oth_pay": "other / suppl.", "psn_part_amt": "out-of-pocket",
    "inscp_psn_part": "in-scope own share", "acct_pay": "personal account", "psn_cash_pay": "cash",
}


def percent(share) -> str:
    """0.4 → '40', 0.125 → '12.5'.

    >>> percent(Decimal("0.40"))
    '40'
    """
    return f"{float(share) * 100:g}"


def share_pct(part: int, whole: int) -> Decimal | None:
    """part / whole in percent (2 decimals), None for an empty group."""
    return pct(part, whole)


def mean_yuan(total_fen: int, count: int) -> Decimal | None:
    """Average of fen amounts, in yuan rounded half-up to the fen; None for an empty group."""
    if count == 0:
        return None
    return (Decimal(total_fen) / count / 100).quantize(CENT, rounding=ROUND_HALF_UP)


def yuan(fen: int | None) -> str | None:
    """Exact yuan as a string with two decimals (JSON keeps every fen)."""
    return None if fen is None else str(fen_to_yuan(fen))


def dec(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True)
class Pair:
    """One figure under the baseline and under the reform (fen, or a count)."""

    baseline: int
    reform: int

    @property
    def change(self) -> int:
        return self.reform - self.baseline

    @property
    def pct(self) -> Decimal | None:
        return pct(self.change, self.baseline)

    def money(self) -> dict:
        return {"baseline": yuan(self.baseline), "reform": yuan(self.reform), "change": yuan(self.change),
                "change_pct": dec(self.pct)}

    def count(self) -> dict:
        return {"baseline": self.baseline, "reform": self.reform, "change": self.change, "change_pct": dec(self.pct)}


@dataclass(frozen=True)
class Burden:
    """Annual out-of-pocket burden (psn_part_amt summed per person-year) over a population."""

    persons: int  # person-years in the population
    total: Pair  # fen
    deciles: tuple[Pair, ...]  # P10 … P90, fen, nearest rank

    def mean(self) -> tuple[Decimal | None, Decimal | None]:
        return mean_yuan(self.total.baseline, self.persons), mean_yuan(self.total.reform, self.persons)

    def mean_change(self) -> tuple[Decimal | None, Decimal | None]:
        """(change in yuan, change in %) of the average burden."""
        b, r = self.mean()
        if b is None or r is None:
            return None, None
        return r - b, pct(self.total.change, self.total.baseline)

    def to_dict(self) -> dict:
        b, r = self.mean()
        change, change_pct = self.mean_change()
        return {
            "persons": self.persons,
            "total": self.total.money(),
            "mean": {"baseline": dec(b), "reform": dec(r), "change": dec(change), "change_pct": dec(change_pct)},
            "deciles": [{"p": p, **d.money()} for p, d in zip(DECILES, self.deciles)],
        }


@dataclass(frozen=True)
class Share:
    """How many of ``known`` units (households or persons) had catastrophic expenditure."""

    total: int  # units in the group
    known: int  # units whose household income is known (the denominator)
    catastrophic: Pair

    def shares(self) -> tuple[Decimal | None, Decimal | None]:
        return share_pct(self.catastrophic.baseline, self.known), share_pct(self.catastrophic.reform, self.known)

    def change_points(self) -> Decimal | None:
        b, r = self.shares()
        return None if b is None or r is None else r - b

    def to_dict(self) -> dict:
        b, r = self.shares()
        return {"total": self.total, "known_income": self.known, "baseline": self.catastrophic.baseline,
                "reform": self.catastrophic.reform, "baseline_pct": dec(b), "reform_pct": dec(r),
                "change_points": dec(self.change_points())}


@dataclass(frozen=True)
class GroupResult:
    dimension: str  # a key of DIMENSIONS
    key: str | None  # None for overall
    name: str  # Chinese label
    label: str  # short English label
    visits: int
    visits_affected: int
    persons_with_visits: int
    persons_affected: int
    amounts: dict[str, Pair]  # AMOUNT_FIELDS → fen
    rules: dict[str, Pair]  # rule id → fen paid by that rule
    burden: Burden
    households: Share
    persons: Share

    @property
    def fund(self) -> Pair:
        return self.amounts["fund_pay_sumamt"]

    def to_dict(self, rule_ids: list[str]) -> dict:
        return {
            "dimension": self.dimension, "dimension_name": DIMENSIONS[self.dimension][0], "key": self.key,
            "name": self.name,
            "visits": self.visits, "visits_affected": self.visits_affected,
            "persons": self.burden.persons, "persons_with_visits": self.persons_with_visits,
            "persons_affected": self.persons_affected,
            "amounts": {f: self.amounts[f].money() for f in AMOUNT_FIELDS},
            "fund_by_rule": {rid: self.rules[rid].money() for rid in rule_ids},
            "burden": self.burden.to_dict(),
            "catastrophic": {"households": self.households.to_dict(), "persons": self.persons.to_dict()},
        }


@dataclass(frozen=True)
class RuleInfo:
    id: str
    name: str
    kind: str  # basic | tier | guarantee
    setl_field: str  # hifp_pay for basic rules
    in_baseline: bool
    in_reform: bool


@dataclass
class SimulationResult:
    baseline: dict  # id, name, version
    reform: dict
    catastrophic_share: Decimal
    years: list[int]
    rules: list[RuleInfo]
    groups: list[GroupResult]
    tables: dict[str, str] = field(default_factory=dict)  # DuckDB tables left in the run
    timings: dict[str, float] = field(default_factory=dict)
    outputs: dict[str, Path] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def overall(self) -> GroupResult:
        return self.group("overall")

    def group(self, dimension: str, key: str | None = None) -> GroupResult:
        for g in self.groups:
            if g.dimension == dimension and g.key == key:
                return g
        raise KeyError((dimension, key))

    def dimension(self, dimension: str) -> list[GroupResult]:
        return [g for g in self.groups if g.dimension == dimension]

    def to_dict(self) -> dict:
        ids = [r.id for r in self.rules]
        return {
            "kind": "yibao.simulation",
            "baseline": self.baseline,
            "reform": self.reform,
            "catastrophic_share": str(self.catastrophic_share),
            "years": self.years,
            "units": {
                "amounts": "元, 精确到分的十进制字符串 (yuan, exact decimal strings)",
                "change_pct": "变化百分比 (reform − baseline) / baseline × 100, 两位小数; 基线为 0 时为 null",
                "persons": "人年: 每人每个数据年度计一次 (person-years; persons when the data cover one year)",
                "deciles": "年度个人负担的十分位数, 最近秩法: 第 k 个十分位数是排序后第 ⌈k·n/10⌉ 个值 "
                           "(nearest rank)",
                "catastrophic": "家庭年度个人负担总额 > catastrophic_share × 家庭年可支配收入 "
                                "(household OOP above the share of household income)",
            },
            "dimensions": {k: {"name": v[0], "english": v[1]} for k, v in DIMENSIONS.items()},
            "rules": [{"id": r.id, "name": r.name, "kind": r.kind, "setl_field": r.setl_field,
                       "in_baseline": r.in_baseline, "in_reform": r.in_reform} for r in self.rules],
            "groups": [g.to_dict(ids) for g in self.groups],
            "warnings": self.warnings,
        }
