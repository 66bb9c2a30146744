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

OPTIONAL_COLUMNS: dict[str, dict[str, pa.DataType]] = {
    "visits": {"atddr_no": pa.string()},
    "fee_items": {"fee_ocur_time": pa.timestamp("ms")},
    "institutions": {"fixmedins_type": pa.string()},
}
OPTIONAL_TABLES: dict[str, pa.Schema] = {
    "purchases": pa.schema([("fixmedins_code", pa.string()), ("med_list_codg", pa.string()),
                            ("cnt", pa.decimal128(16, 4)), ("purc_time", pa.timestamp("ms"))]),
    "exam_results": pa.schema([("mdtrt_id", pa.string()), ("med_list_codg", pa.string()),
                               ("rslt_val", pa.string())]),
}
OPTIONAL_ZH = {"visits.atddr_no": "主治医师代码", "fee_items.fee_ocur_time": "费用发生时间",
               "institutions.fixmedins_type": "机构类型", "purchases": "药品采购表",
               "exam_results": "检查检验结果表"}

VX_SQL = """
SELECT v.mdtrt_id, v.psn_no, v.med_type, v.fixmedins_code, v.level, v.begntime, v.endtime, v.setl_time,
       v.dise_codg, v.oprn_oprt_code, v.atddr_no, CAST(ROUND(v.medfee_sumamt * 100) AS BIGINT) AS medfee,
       CAST(v.begntime AS DATE) AS begn_day, CAST(v.endtime AS DATE) AS end_day,
       GREATEST(DATE_DIFF('day', CAST(v.begntime AS DATE), CAST(v.endtime AS DATE)), 1) AS los,
       p.gend, p.age, i.admdvs AS inst_admdvs, i.fixmedins_type
FROM visits v JOIN persons p ON p.psn_no = v.psn_no
LEFT JOIN institutions i ON i.fixmedins_code = v.fixmedins_code
"""

LINES_SQL = """
SELECT f.feedetl_sn, f.mdtrt_id, f.med_list_codg, CAST(ROUND(f.det_item_fee_sumamt * 100) AS BIGINT) AS fee,
       CAST(ROUND(f.pric * 100) AS BIGINT) AS pric_fen, f.cnt, CAST(ROUND(f.cnt * 10000) AS BIGINT) AS cnt4, f.fee_ocur_time,
       COALESCE(CAST(f.fee_ocur_time AS DATE), x.begn_day) AS fee_day,
       x.psn_no, x.med_type, x.fixmedins_code, x.level, x.begntime, x.endtime, x.begn_day, x.end_day, x.los,
       x.dise_codg, x.oprn_oprt_code, x.gend, x.age, x.fixmedins_type
FROM fee_items f JOIN vx x ON x.mdtrt_id = f.mdtrt_id
"""

DERIVED = (("vx", VX_SQL), ("lines", LINES_SQL))
