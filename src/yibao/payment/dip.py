"""DIP (按病种分值付费) grouping: (main diagnosis, operation combination) from history.

A combination with at least ``min_cases`` historical cases is a core group (核心病种), coded
``<dise_codg>|<operations or ->``; every other case falls into the comprehensive group (综合病种)
of its diagnosis category (ICD-10 类目, first three characters) and operation type, coded
``ZH|<category>|<type>`` (0 保守治疗, 1 诊断性操作, 2 治疗性操作, 3 相关手术). At settlement a case
looks only at its own codes: its core group if the catalog has one, else its comprehensive group,
else it is excluded (PAY030).
"""

from __future__ import annotations

KEYS = ["group_code", "group_kind", "key_dise", "key_oprn", "key_cat", "key_optype"]


def build_grouping_sql(source: str, min_cases: int) -> str:
    core = f"k.n >= {min_cases}"
    return f"""WITH k AS (SELECT dise_codg, oprn_combo, COUNT(*) AS n FROM {source} GROUP BY dise_codg, oprn_combo)
SELECT h.*,
  CASE WHEN {core} THEN 'core' ELSE 'comprehensive' END AS group_kind,
  CASE WHEN {core} THEN h.dise_codg || '|' || (CASE WHEN h.oprn_combo = '' THEN '-' ELSE h.oprn_combo END)
       ELSE 'ZH|' || h.dise_cat || '|' || CAST(h.op_type AS VARCHAR) END AS group_code,
  CASE WHEN {core} THEN h.dise_codg END AS key_dise,
  CASE WHEN {core} THEN h.oprn_combo END AS key_oprn,
  CASE WHEN {core} THEN NULL ELSE h.dise_cat END AS key_cat,
  CASE WHEN {core} THEN NULL ELSE h.op_type END AS key_optype
FROM {source} h JOIN k ON k.dise_codg = h.dise_codg AND k.oprn_combo = h.oprn_combo"""


def settle_grouping_sql(source: str, groups: str = "cat_groups") -> str:
    return f"""SELECT c.*, COALESCE(core.group_code, comp.group_code) AS group_code,
  CASE WHEN core.group_code IS NOT NULL THEN 'core' WHEN comp.group_code IS NOT NULL THEN 'comprehensive' END
    AS group_kind
FROM {source} c
LEFT JOIN {groups} core ON core.group_kind = 'core' AND core.key_dise = c.dise_codg AND core.key_oprn = c.oprn_combo
LEFT JOIN {groups} comp ON comp.group_kind = 'comprehensive' AND comp.key_cat = c.dise_cat
  AND comp.key_optype = c.op_type"""
