"""Peer-group outlier scores (同级离群分) for institutions and physicians: how far each one's cost per
visit, tests per visit and share of flagged visits lie from its peers', in robust units.

Peers: institutions of the same level and type (定点医疗机构 / 定点零售药店) and medical type, or
physicians (``atddr_no``) of the same level and medical type, each with at least ``min_visits`` visits;
a group needs ``min_peers`` members. The score is the robust z-score
``(value − peer median) / (1.4826 × MAD)`` — 1.4826 × MAD estimates the standard deviation when the
values are normal, so a score of 3.5 means as far out as 3.5 standard deviations, without the outliers
themselves widening the yardstick as a mean and standard deviation would. A MAD of 0 (most peers alike)
is taken as 1% of the median (at least 0.01), so one odd member still gets a finite score. Each row
shows the value, the peer median, the MAD and the score: the arithmetic can be redone by hand.
"""

from __future__ import annotations

import pyarrow as pa

SCALE = 1.4826  # MAD → standard deviation under normality
METRICS = {"cost_per_visit": "次均费用(元)", "tests_per_visit": "次均检查化验项目数", "flagged_share": "疑点就诊占比"}


def peer_scores(con, min_visits: int = 30, min_peers: int = 3, test_categories=("03", "04"),
                top_score: float = 3.5) -> pa.Table:
    """One row per (institution or physician, medical type, metric) with its peer group's median and MAD
    and its robust score; ``outlier`` when the score is at least ``top_score``. Reads ``vx``, ``lines`` and
    ``hits`` of an audit run (DuckDB)."""
    cats = "(" + ", ".join("'" + c.replace("'", "''") + "'" for c in test_categories) + ")"
    per_visit = f"""
SELECT x.mdtrt_id, x.fixmedins_code, x.atddr_no, x.level, COALESCE(x.fixmedins_type, '1') AS inst_type, x.med_type,
       x.medfee, COALESCE(t.tests, 0) AS tests, CASE WHEN f.mdtrt_id IS NULL THEN 0 ELSE 1 END AS flagged
FROM vx x
LEFT JOIN (SELECT mdtrt_id, COUNT(DISTINCT med_list_codg) AS tests FROM lines WHERE cat IN {cats} GROUP BY mdtrt_id) t
  ON t.mdtrt_id = x.mdtrt_id
LEFT JOIN (SELECT DISTINCT mdtrt_id FROM hits WHERE mdtrt_id IS NOT NULL) f ON f.mdtrt_id = x.mdtrt_id"""

    def subjects(kind: str, key: str, group: str) -> str:
        return f"""
SELECT '{kind}' AS subject_kind, {key} AS subject, ANY_VALUE(fixmedins_code) AS fixmedins_code, level, {group} AS peer_type,
       med_type, COUNT(*) AS visits,
       ROUND(AVG(medfee) / 100, 2) AS cost_per_visit, ROUND(AVG(tests), 2) AS tests_per_visit,
       ROUND(AVG(flagged), 4) AS flagged_share
FROM pv WHERE {key} IS NOT NULL GROUP BY {key}, level, {group}, med_type HAVING COUNT(*) >= {int(min_visits)}"""

    metric_rows = " UNION ALL ".join(
        f"SELECT subject_kind, subject, fixmedins_code, level, peer_type, med_type, visits, '{m}' AS metric, "
        f"CAST({m} AS DOUBLE) AS value FROM s" for m in METRICS)
    sql = f"""
WITH pv AS ({per_visit}),
s AS ({subjects('institution', 'fixmedins_code', 'inst_type')} UNION ALL {subjects('physician', 'atddr_no', "'*'")}),
m AS ({metric_rows}),
g AS (SELECT subject_kind, level, peer_type, med_type, metric, COUNT(*) AS peers, MEDIAN(value) AS peer_median
      FROM m GROUP BY ALL),
d AS (SELECT m.*, g.peers, g.peer_median, ABS(m.value - g.peer_median) AS dev FROM m JOIN g USING (subject_kind, level,
      peer_type, med_type, metric)),
a AS (SELECT subject_kind, level, peer_type, med_type, metric, MEDIAN(dev) AS peer_mad FROM d GROUP BY ALL)
SELECT d.subject_kind, d.subject, d.fixmedins_code, d.level, d.peer_type, d.med_type, d.visits, d.metric,
       ROUND(d.value, 4) AS value, d.peers, ROUND(d.peer_median, 4) AS peer_median, ROUND(a.peer_mad, 4) AS peer_mad,
       ROUND((d.value - d.peer_median) / ({SCALE} * GREATEST(a.peer_mad, ABS(d.peer_median) * 0.01, 0.01)), 2) AS score
FROM d JOIN a USING (subject_kind, level, peer_type, med_type, metric)
WHERE d.peers >= {int(min_peers)}
ORDER BY score DESC, subject_kind, subject, med_type, metric"""
    table = con.sql(sql).to_arrow_table()
    names = pa.array([METRICS[m] for m in table.column("metric").to_pylist()], pa.string())
    outlier = pa.array([s is not None and s >= top_score for s in table.column("score").to_pylist()], pa.bool_())
    return table.append_column("metric_zh", names).append_column("outlier", outlier)
