"""The audit-rule model: what a rule is, what a hit says, and the errors a user sees.

A rule is data plus one SQL definition. The SQL reads the claims tables (``persons``,
``institutions``, ``visits``, ``fee_items``, optional ``purchases`` / ``exam_results``) and the
derived views of :mod:`yibao.supervision.views` (``lines``, ``vx``), and returns the
columns of :data:`HIT_COLUMNS`, one row per offending fee line (or visit, or provider). The
batch runner executes it over whole tables (DuckDB, or Spark through the batch engine's
portable layer); the online pre-check executes the same text over the tiny tables of one
visit and the person's history. Every hit is charged to the *later* visit of a pattern, so the
two executions agree visit for visit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

from pydantic import BaseModel, ConfigDict

from yibao.errors import Problem, YibaoError
from yibao.money import fen_to_yuan

STAGES = {"pre": "事前提醒", "during": "事中预警", "after": "事后审核"}
SEVERITIES = {"high": "高", "medium": "中", "low": "低"}
HIT_COLUMNS = ("subject", "mdtrt_id", "feedetl_sn", "fixmedins_code", "amount", "detail")
# subject: what the hit is about (mdtrt_id for visit rules; institution or physician code for
# provider rules); amount: 违规金额 in fen; detail: Chinese, names the items and figures.


class SupervisionError(YibaoError):
    title = "基金监管规则有误"


class AuditInputError(YibaoError):
    title = "审核输入有误"


class CaseError(YibaoError):
    title = "疑点案件操作被拒绝"


class Params(BaseModel):
    """Base of every rule's parameters: unknown keys are refused, so typos surface."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class Rule:
    id: str
    name: str  # Chinese
    family: str  # 限性别, 重复收费, ... (the seeds' words)
    description: str  # the rule text, Chinese
    stages: frozenset[str]
    severity: str
    params_model: type[Params]
    build: Callable[[Params], str]  # parameters -> SQL (DuckDB dialect, portable subset)
    scope: str = "visit"  # visit | provider
    needs: tuple[str, ...] = ()  # "table.column" or "table" beyond the required schema
    blocking: bool = False  # when online, refuse the settlement instead of warning
    fp_bound: float = 0.002  # documented bound on the share of clean subjects it flags
    # A catalogue rule: the codes, from the parameters, of the only lines it flags (None: any line
    # or visit). Online, a visit with none of these codes skips the rule: it cannot be hit.
    codes: Callable[[Params], Iterable[str]] | None = None
    # Which of the person's *other* visits' fee lines the rule reads: None, none of them (it reads
    # the current visit's lines, and at most the other visits' rows); else the codes, from the
    # parameters, of the only lines it reads, and only where the current visit has a line with the
    # same code. The online path loads no other history lines (the costliest input of a settlement).
    history_codes: Callable[[Params], Iterable[str]] | None = None

    @property
    def online(self) -> bool:
        return bool(self.stages & {"pre", "during"})


@dataclass(frozen=True)
class ConfiguredRule:
    """A rule with its region's validated parameters."""

    rule: Rule
    params: Params
    severity: str
    blocking: bool

    @property
    def id(self) -> str:
        return self.rule.id

    def sql(self) -> str:
        return self.rule.build(self.params)

    def codes(self) -> frozenset[str] | None:
        """The codes of the only lines this rule flags, or None (see :attr:`Rule.codes`)."""
        return frozenset(self.rule.codes(self.params)) if self.rule.codes else None

    def history_codes(self) -> frozenset[str]:
        """The codes of the other visits' lines this rule reads (see :attr:`Rule.history_codes`)."""
        return frozenset(self.rule.history_codes(self.params)) if self.rule.history_codes else frozenset()

    def param_text(self) -> str:
        """Parameter values, short, for the hit message (lists of items are summarised)."""
        parts = []
        for k, v in self.params.model_dump().items():
            if isinstance(v, list):
                parts.append(f"{k}={len(v)} 项")
            else:
                parts.append(f"{k}={v}")
        return ", ".join(parts)


@dataclass
class Hit:
    rule_id: str
    rule_name: str
    family: str
    severity: str
    blocking: bool
    subject: str
    mdtrt_id: str | None
    fixmedins_code: str | None
    feedetl_sns: list[str]
    amount_fen: int
    detail: str
    rule_text: str
    params: str

    @property
    def message(self) -> str:
        return f"{self.rule_name}: {self.detail}(规则: {self.rule_text}; 参数: {self.params})"

    def to_dict(self) -> dict:

        return {"rule_id": self.rule_id, "rule_name": self.rule_name, "family": self.family,
                "severity": self.severity, "blocking": self.blocking, "subject": self.subject,
                "mdtrt_id": self.mdtrt_id, "fixmedins_code": self.fixmedins_code,
                "message": self.message, "amount": f"{fen_to_yuan(self.amount_fen):.2f}",
                "feedetl_sns": list(self.feedetl_sns), "params": self.params}


@dataclass
class Skipped:
    rule_id: str
    problems: list[Problem] = field(default_factory=list)
