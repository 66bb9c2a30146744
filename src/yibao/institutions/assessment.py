"""年度考核 (annual assessment): a score from the year's supervision findings and the credit score,
by rules kept as data (``assessment.yaml``). Pure: the store gathers the inputs and records the answer.

>>> r = rules()
>>> a = assess([Finding(1, "high", 2_500_000, 1_000_000), Finding(2, "low", 30_000, 30_000)], 85, r)
>>> a.behaviour, a.deduction, str(a.score), a.grade, a.consequence
(86, 14, '85.70', 'B', 'none')
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from importlib import resources

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from yibao.errors import pydantic_problems
from yibao.institutions.agreements import AgreementError

SEVERITIES = ("high", "medium", "low")
CONSEQUENCES = {"none": "无", "rectify": "限期整改", "terminate": "提出解除协议"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Behaviour(_Strict):
    per_case: dict[str, int]
    per_10k_yuan_at_stake: int = Field(ge=0)
    per_10k_yuan_unrecovered: int = Field(ge=0)
    max_deduction: int = Field(ge=0)

    @model_validator(mode="after")
    def _severities(self):
        if set(self.per_case) != set(SEVERITIES) or any(v < 0 for v in self.per_case.values()):
            raise ValueError(f"per_case 须给出 {SEVERITIES} 各自的非负扣分")
        return self


class Grade(_Strict):
    floor: int = Field(ge=0, le=100)
    grade: str = Field(min_length=1, max_length=4)
    name: str
    consequence: str

    @model_validator(mode="after")
    def _known(self):
        if self.consequence not in CONSEQUENCES:
            raise ValueError(f"consequence 须为 {list(CONSEQUENCES)} 之一")
        return self


class Rules(_Strict):
    version: str = Field(min_length=1, max_length=20)
    base: int = Field(ge=0, le=100)
    behaviour: Behaviour
    credit_weight: Decimal = Field(ge=0, le=1)
    grades: list[Grade] = Field(min_length=1)
    serious_severities: list[str]

    @model_validator(mode="after")
    def _ordered(self):
        floors = [g.floor for g in self.grades]
        if floors != sorted(floors, reverse=True) or floors[-1] != 0:
            raise ValueError("grades 须按 floor 从高到低排列, 最后一档 floor 为 0")
        if not set(self.serious_severities) <= set(SEVERITIES):
            raise ValueError(f"serious_severities 须取自 {SEVERITIES}")
        return self


def parse_rules(data: dict, source: str = "assessment.yaml") -> Rules:
    try:
        return Rules.model_validate(data)
    except ValidationError as exc:
        raise AgreementError(pydantic_problems(exc, "INS042"), source) from None


@lru_cache(maxsize=1)
def rules() -> Rules:
    text = resources.files("yibao.institutions").joinpath("assessment.yaml").read_text(encoding="utf-8")
    return parse_rules(yaml.safe_load(text))


@dataclass(frozen=True)
class Finding:
    """A supervision case found 认定违规/追回: its severity, the money at stake and recovered (fen)."""

    case_id: int
    severity: str
    amount_fen: int
    recovered_fen: int


@dataclass(frozen=True)
class Assessment:
    behaviour: int
    deduction: int
    credit: int
    score: Decimal
    grade: str
    grade_name: str
    consequence: str
    breakdown: dict

    def as_dict(self) -> dict:
        out = asdict(self)
        out["score"] = str(self.score)
        return out


def assess(findings: list[Finding], credit: int | None, r: Rules) -> Assessment:
    b = r.behaviour
    per_case = sum(b.per_case.get(f.severity, b.per_case["low"]) for f in findings)
    at_stake = sum(f.amount_fen for f in findings)
    unrecovered = sum(max(0, f.amount_fen - f.recovered_fen) for f in findings)
    by_amount = at_stake // 1_000_000 * b.per_10k_yuan_at_stake  # 1 万元 = 1,000,000 分
    by_unrecovered = unrecovered // 1_000_000 * b.per_10k_yuan_unrecovered
    deduction = min(b.max_deduction, per_case + by_amount + by_unrecovered)
    behaviour = max(0, r.base - deduction)
    credit_score = 100 if credit is None else credit
    score = ((1 - r.credit_weight) * behaviour + r.credit_weight * credit_score).quantize(Decimal("0.01"), ROUND_HALF_UP)
    g = next(g for g in r.grades if score >= g.floor)
    return Assessment(behaviour, deduction, credit_score, score, g.grade, g.name, g.consequence,
                      {"cases": len(findings), "per_case": per_case, "at_stake_fen": at_stake,
                       "by_amount": by_amount, "unrecovered_fen": unrecovered, "by_unrecovered": by_unrecovered,
                       "case_ids": [f.case_id for f in findings]})


def serious(severity: str, r: Rules) -> bool:
    return severity in r.serious_severities

