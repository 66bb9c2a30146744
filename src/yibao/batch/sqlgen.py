"""The basic-rule condition batch validation checks visits against, and the batch visit limit.

The settlement arithmetic itself is not SQL: it is the compiled kernel (:mod:`yibao.batch.kernel`), fed
by DuckDB in person order (:mod:`yibao.batch.stream`). Quoting lives in :mod:`yibao.sql`.
"""

from __future__ import annotations

from yibao.policy.compiled import CompiledBasic
from yibao.sql import in_list, q

MAX_VISIT_FEN = 1_000_000_000  # 10,000,000 yuan: larger visits are refused by batch validation (BAT008)


def rule_condition(rule: CompiledBasic, insutype: str = "insutype", med_type: str = "med_type",
                   level: str = "level", dise_codg: str = "dise_codg") -> str:
    """SQL: the row matches this basic rule and the rule covers its level (as CompiledPack.basic_rule)."""
    r = rule.rule
    cond = [f"{insutype} = {q(r.insutype)}", in_list(med_type, r.med_types), in_list(level, list(rule.by_level))]
    if r.diseases:
        cond.append("(" + " OR ".join(f"starts_with({dise_codg}, {q(d)})" for d in r.diseases) + ")")
    return " AND ".join(cond)
