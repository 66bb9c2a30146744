"""The tables rules read, beyond the claims contract: optional columns and two derived views.

Optional inputs (absent columns read as NULL; a rule that needs one refuses to run without it):
- ``visits.atddr_no`` 主治医师代码, ``fee_items.fee_ocur_time`` 费用发生时间,
  ``institutions.fixmedins_type`` 机构类型 (1 定点医疗机构, 2 定点零售药店);
- ``purchases`` 药品采购(进货): fixmedins_code, med_list_codg, cnt, purc_time;
- ``exam_results`` 检查检验结果: mdtrt_id, med_list_codg, rslt_val.

``lines`` (one row per fee line with its visit, person and institution) and ``vx`` (one row
per visit with person and institution) are defined once here; the batch runner materialises
them, Spark caches them, the online path (SQLite) fills them per call. Amounts become integer
fen and quantities integer ten-thousandths (``cnt4``) through ``ROUND`` before the cast: exact on
DuckDB's and Spark's DECIMAL, and exact on SQLite's floats for amounts far below 2**53.
"""

from __future__ import annotations

import pyarrow as pa

from yibao.claims.schema import SUPERVISION_FIELDS

# the claims contract's optional columns supervision reads (one definition: yibao.claims.schema.SUPERVISION_FIELDS)
OPTIONAL_COLUMNS: dict[str, dict[str, pa.DataType]] = {
    name: {f.name: f.type for f in fields} for name, fields in SUPERVISION_FIELDS.items()}
OPTIONAL_TABLES: dict[str, pa.Schema] = {
    "purchases": pa.schema([("fixmedins_code", pa.string()), ("med_list_codg", pa.string()),
                            ("cnt", pa.decimal128(16, 4)), ("purc_time", pa.timestamp("ms"))]),
    "exam_results": pa.schema([("mdtrt_id", pa.string()), ("med_list_codg", pa.string()),
                               ("rslt_val", pa.string())]),
}
OPTIONAL_ZH = {"visits.atddr_no": "主治医师代码", "fee_items.fee_ocur_time": "费用发生时间",
               "fee_items.med_chrgitm_type": "医疗收费项目类别",
               "institutions.fixmedins_type": "机构类型", "purchases": "药品采购表",
               "exam_results": "检查检验结果表"}

def seconds(t: str) -> str:
    """Whole seconds since 2000-01-01 of timestamp ``t``, written so that DuckDB, Spark and SQLite
    (ISO text) give the same integer: whole days by DATE_DIFF on dates, then hour, minute, second."""
    return (f"(DATE_DIFF('day', DATE '2000-01-01', CAST({t} AS DATE)) * 86400 "
            f"+ CAST(STRFTIME({t}, '%H') AS BIGINT) * 3600 + CAST(STRFTIME({t}, '%M') AS BIGINT) * 60 "
            f"+ CAST(STRFTIME({t}, '%S') AS BIGINT))")


def duckdb_seconds(t: str) -> str:
    """:func:`seconds` on DuckDB alone, from the microseconds since 1970 in integer arithmetic (a floor
    division, so a fraction of a second before 2000 or 1970 counts as :func:`seconds` counts it): the same
    integer, without formatting three strings per timestamp (0.4 s of CPU on 2 million fee lines)."""
    x = f"(EPOCH_US({t}) - 946684800000000)"
    return f"(({x} - (EPOCH_US({t}) % 1000000 + 1000000) % 1000000) // 1000000)"


VX_SQL = """
SELECT v.mdtrt_id, v.psn_no, v.med_type, v.fixmedins_code, v.level, v.begntime, v.endtime, v.setl_time,
       v.dise_codg, v.oprn_oprt_code, v.referral_from_level, v.atddr_no, CAST(ROUND(v.medfee_sumamt * 100) AS BIGINT) AS medfee,
       CAST(v.begntime AS DATE) AS begn_day, CAST(v.endtime AS DATE) AS end_day,
       GREATEST(DATE_DIFF('day', CAST(v.begntime AS DATE), CAST(v.endtime AS DATE)), 1) AS los,
       {begn_sec} AS begn_sec, {end_sec} AS end_sec,
       p.gend, p.age, i.admdvs AS inst_admdvs, i.fixmedins_type
FROM visits v JOIN persons p ON p.psn_no = v.psn_no
LEFT JOIN institutions i ON i.fixmedins_code = v.fixmedins_code
"""

LINES_SQL = """
SELECT f.feedetl_sn, f.mdtrt_id, f.med_list_codg, CAST(ROUND(f.det_item_fee_sumamt * 100) AS BIGINT) AS fee,
       CAST(ROUND(f.pric * 100) AS BIGINT) AS pric_fen, f.cnt, CAST(ROUND(f.cnt * 10000) AS BIGINT) AS cnt4, f.fee_ocur_time,
       COALESCE(CAST(f.fee_ocur_time AS DATE), x.begn_day) AS fee_day, {fee_sec} AS fee_sec, f.med_chrgitm_type AS cat,
       x.psn_no, x.med_type, x.fixmedins_code, x.level, x.begntime, x.endtime, x.begn_day, x.end_day, x.los,
       x.dise_codg, x.oprn_oprt_code, x.gend, x.age, x.fixmedins_type
FROM fee_items f JOIN vx x ON x.mdtrt_id = f.mdtrt_id
"""



def derived(sec=seconds) -> tuple[tuple[str, str], ...]:
    """``vx`` and ``lines`` with ``sec`` writing the whole-seconds columns."""
    return (("vx", VX_SQL.replace("{begn_sec}", sec("v.begntime")).replace("{end_sec}", sec("v.endtime"))),
            ("lines", LINES_SQL.replace("{fee_sec}", sec("f.fee_ocur_time"))))


DERIVED = derived()  # portable: Spark and SQLite (online) read these
DUCKDB_DERIVED = derived(duckdb_seconds)  # the batch runner's: the same columns, integer epoch arithmetic

# Learned baselines (基线表): what the statistical rules compare a line or a visit with. Batch learns
# it from the claims it audits (:data:`BASELINE_SQL`, on DuckDB); online reads the same table, learned
# by a batch run and saved as ``baselines.parquet``. Keyed by level and med_type; kind: 'price' (key = code, value = 单价 in fen),
# 'qty' (key = code, value = 数量 in ten-thousandths), 'tests' (key = first letters of the diagnosis,
# '*' for the level's whole med_type, value = distinct test codes per visit). Medians and MADs are
# QUANTILE_DISC: values the data holds, integers, the same on every engine that reads the table.
BASELINE_SCHEMA = pa.schema([("kind", pa.string()), ("code", pa.string()), ("level", pa.string()),
                             ("med_type", pa.string()), ("n", pa.int64()), ("med", pa.int64()), ("mad", pa.int64())])


def baseline_sql(test_categories: tuple[str, ...], dx_len: int) -> str:
    """The baseline table from ``lines`` / ``vx`` (DuckDB): per (code, level, med_type) the median and MAD of
    price and quantity; per (diagnosis prefix, level, med_type) and per (level, med_type) those of
    the number of distinct tests in a visit."""
    cats = "(" + ", ".join("'" + c.replace("'", "''") + "'" for c in test_categories) + ")"
    # one row per visit (as grouped by mdtrt_id, level, med_type, dise_codg) with its distinct test codes: counted
    # from the test lines alone (lines carry the visit's columns), visits without one count 0; read twice below
    per_visit = (f"(SELECT d.mdtrt_id, d.level, d.med_type, SUBSTRING(d.dise_codg, 1, {dx_len}) AS dx, COALESCE(t.v, 0) AS v "
                 f"FROM (SELECT DISTINCT mdtrt_id, level, med_type, dise_codg FROM vx) d LEFT JOIN "
                 f"(SELECT mdtrt_id, COUNT(DISTINCT med_list_codg) AS v FROM lines WHERE cat IN {cats} GROUP BY mdtrt_id) t "
                 f"ON t.mdtrt_id = d.mdtrt_id)")

    def robust(kind: str, src: str, keys: str, code: str, med_type: str) -> str:
        return (f"SELECT '{kind}' AS kind, {code} AS code, level, {med_type} AS med_type, m.n, m.med, "
                f"CAST(QUANTILE_DISC(ABS(s.v - m.med), 0.5) AS BIGINT) AS mad FROM {src} s JOIN "
                f"(SELECT {keys}, COUNT(*) AS n, CAST(QUANTILE_DISC(v, 0.5) AS BIGINT) AS med FROM {src} GROUP BY {keys}) m "
                f"USING ({keys}) GROUP BY {keys}, m.n, m.med")

    # price and quantity: one grouping of the lines, each group's values as a list (median, then MAD, from it)
    by_code = ("(SELECT med_list_codg, level, med_type, COUNT(*) AS n, list(pric_fen) AS prices, list(cnt4) AS qtys "
               "FROM lines WHERE med_list_codg IS NOT NULL AND level IS NOT NULL AND med_type IS NOT NULL GROUP BY ALL)")

    def from_lists(kind: str, vs: str) -> str:
        med = f"CAST(list_aggregate({vs}, 'quantile_disc', 0.5) AS BIGINT)"
        return (f"SELECT '{kind}' AS kind, med_list_codg AS code, level, med_type, n, med, "
                f"CAST(list_aggregate(list_transform({vs}, x -> ABS(x - med)), 'quantile_disc', 0.5) AS BIGINT) AS mad "
                f"FROM (SELECT *, {med} AS med FROM by_code)")
    return f"WITH per_visit AS MATERIALIZED {per_visit}, by_code AS MATERIALIZED {by_code} " + " UNION ALL ".join([
        from_lists("price", "prices"),
        from_lists("qty", "qtys"),
        robust("tests", "per_visit", "dx, level, med_type", "dx", "med_type"),
        robust("tests", "(SELECT level, med_type, v FROM per_visit)", "level, med_type", "'*'", "med_type"),
    ])
