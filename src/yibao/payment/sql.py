"""Portable SQL of point-value payment: group statistics, scores, deviation and points.

DIP and DRG differ only in how a case finds its group; from a table of grouped cases on, both
use these queries. They are written in DuckDB's dialect with integers only (fen, scores × 10⁴)
and the half-up rounding ``round(N / D) = (2N + D) // (2D)`` (N, D ≥ 0), so SQLGlot can
transpile them for Spark and both engines give identical results (``tests/test_payment_spark.py``).

Scores, coefficients and points are kept as integers × 10⁴ (four decimals, half-up):

- group average cost ``avg = round(Σ w·cost / Σ w)`` fen (w: the year's integer weight);
- score ``S = round(avg_group × scale / avg_all)`` to 4 decimals;
- level coefficient ``K_L = round(Σ_L w·cost / Σ_L w·avg_group(case))`` to 4 decimals
  (how dear level L is for the same case mix);
- case points: normal ``S × K_L``; high (cost > m × ref) ``[(cost/ref − m) + 1] × S``; low
  (cost < f × ref) ``cost/ref × S``, where ref is the group's average at the case's level (the
  group's own average when the level had no cases) and m, f the pack's multiples.

>>> print(group_stats_sql("grouped", ["group_code"], Decimal(1000)).split()[0])
WITH
"""

from __future__ import annotations

from decimal import Decimal

from yibao.money import rate_parts


def half_up(numerator: str, denominator: str) -> str:
    return f"((2 * ({numerator}) + ({denominator})) // (2 * ({denominator})))"


def group_stats_sql(grouped: str, keys: list[str], scale: Decimal) -> str:
    """One row per group: cases, weighted cost, average cost (fen) and score × 10⁴."""
    sp, sq = rate_parts(scale)
    cols = ", ".join(keys)
    return f"""WITH g AS (
  SELECT {cols}, COUNT(*) AS cases, CAST(SUM(w) AS BIGINT) AS wsum, CAST(SUM(w * cost) AS BIGINT) AS wcost
  FROM {grouped} GROUP BY {cols}
), a AS (
  SELECT CAST({half_up('SUM(w * cost)', 'SUM(w)')} AS BIGINT) AS avg_all FROM {grouped}
), v AS (
  SELECT g.*, CAST({half_up('g.wcost', 'g.wsum')} AS BIGINT) AS avg_cost, a.avg_all FROM g CROSS JOIN a
)
SELECT {cols}, cases, wsum, wcost, avg_cost, avg_all,
       CAST({half_up(f'avg_cost * {sp * 10000}', f'avg_all * {sq}')} AS BIGINT) AS score_e4
FROM v"""


def group_level_sql(grouped: str) -> str:
    """Each group's average cost at each institution level (the deviation reference)."""
    return f"""SELECT group_code, level, COUNT(*) AS cases, CAST({half_up('SUM(w * cost)', 'SUM(w)')} AS BIGINT) AS avg_cost
FROM {grouped} GROUP BY group_code, level"""


def level_coefficient_sql(grouped: str, groups: str, enabled: bool = True) -> str:
    """等级系数 per level: the level's cost over what the same cases cost at group averages."""
    coeff = half_up("SUM(c.w * c.cost) * 10000", "SUM(c.w * g.avg_cost)") if enabled else "10000"
    return f"""SELECT c.level, COUNT(*) AS cases, CAST({coeff} AS BIGINT) AS coeff_e4
FROM {grouped} c JOIN {groups} g ON g.group_code = c.group_code GROUP BY c.level"""


def points_sql(assigned: str, groups: str, group_levels: str, levels: str,
               high_multiple: Decimal, low_fraction: Decimal) -> str:
    """Each usable assigned case with its reference cost, deviation kind and points × 10⁴."""
    hp, hq = rate_parts(high_multiple)
    lp, lq = rate_parts(low_fraction)
    high = f"c.cost * {hq} > {hp} * COALESCE(gl.avg_cost, g.avg_cost)"
    low = f"c.cost * {lq} < {lp} * COALESCE(gl.avg_cost, g.avg_cost)"
    return f"""WITH j AS (
  SELECT c.*, g.score_e4, g.avg_cost AS group_avg, COALESCE(gl.avg_cost, g.avg_cost) AS ref_cost, l.coeff_e4,
         CASE WHEN {high} THEN 'high' WHEN {low} THEN 'low' ELSE 'normal' END AS deviation
  FROM {assigned} c
  JOIN {groups} g ON g.group_code = c.group_code
  LEFT JOIN {group_levels} gl ON gl.group_code = c.group_code AND gl.level = c.level
  JOIN {levels} l ON l.level = c.level
)
SELECT j.*,
  CAST(CASE deviation
    WHEN 'high' THEN {half_up(f'({hq} * cost - {hp - hq} * ref_cost) * score_e4', f'{hq} * ref_cost')}
    WHEN 'low' THEN {half_up('cost * score_e4', 'ref_cost')}
    ELSE {half_up('score_e4 * coeff_e4', '10000')}
  END AS BIGINT) AS points_e4
FROM j"""


def institution_sql(points: str) -> str:
    """Per institution: cases, points × 10⁴, cost, basic-pool and others' payments, deviations."""
    return f"""SELECT fixmedins_code, MIN(level) AS level, COUNT(*) AS cases, CAST(SUM(points_e4) AS BIGINT) AS points_e4,
       CAST(SUM(cost) AS BIGINT) AS cost, CAST(SUM(hifp) AS BIGINT) AS hifp, CAST(SUM(others) AS BIGINT) AS others,
       SUM(CASE WHEN deviation = 'high' THEN 1 ELSE 0 END) AS high_cases,
       SUM(CASE WHEN deviation = 'low' THEN 1 ELSE 0 END) AS low_cases,
       SUM(CASE WHEN group_kind = 'comprehensive' THEN 1 ELSE 0 END) AS comprehensive_cases
FROM {points} GROUP BY fixmedins_code"""


def group_report_sql(points: str) -> str:
    return f"""SELECT group_code, MIN(group_kind) AS group_kind, COUNT(*) AS cases, CAST(SUM(points_e4) AS BIGINT) AS points_e4,
       CAST(SUM(cost) AS BIGINT) AS cost, MIN(score_e4) AS score_e4, MIN(group_avg) AS catalog_avg_cost,
       SUM(CASE WHEN deviation = 'high' THEN 1 ELSE 0 END) AS high_cases,
       SUM(CASE WHEN deviation = 'low' THEN 1 ELSE 0 END) AS low_cases
FROM {points} GROUP BY group_code"""
