"""The cases table (病例表): one row per inpatient settlement, the input of DIP and DRG.

Built from a claims directory plus the batch settlement output (``yibao batch settle``), or read
directly from a Parquet/CSV file in the documented schema (``docs/payment.md``). Every row that
cannot be grouped or paid gets a reason code and stays in the table: :data:`EXCLUSIONS` lists
them, and reports name each excluded case. Nothing is dropped silently.

Normalising (trimming codes, splitting the operation combination, choosing the operation type)
runs on DuckDB once; everything after it (grouping, scores, deviation, points) is portable SQL
that also runs on Spark (:mod:`yibao.payment.sql`).

>>> operation_type_sql("x")[:40]
'CASE WHEN x IS NULL THEN 0 WHEN TRY_CAST'
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from yibao.sql import q
from yibao.errors import Problem, YibaoError


class PaymentError(YibaoError):
    title = "支付方式结算失败"


# Columns of a cases file (amounts in yuan, decimal(16,2); codes text). Optional columns may be absent.
CASE_COLUMNS = {
    "mdtrt_id": ("string", True, "就诊 ID(唯一)"),
    "psn_no": ("string", True, "人员编号"),
    "insutype": ("string", True, "险种 310/390"),
    "fixmedins_code": ("string", True, "定点医疗机构编号"),
    "level": ("string", True, "机构等级(政策包 levels 中的代码)"),
    "dise_codg": ("string", True, "主要诊断编码(ICD-10 医保版)"),
    "oprn_oprt_code": ("string", False, "手术操作组合: 一个或多个 ICD-9-CM-3 编码, 以 + 连接; 空 = 保守治疗"),
    "sec_dise_codg": ("string", False, "其他诊断编码, 以 + 或 ; 连接(DRG 判断并发症/合并症)"),
    "medfee_sumamt": ("decimal(16,2)", True, "医疗费总额(元)"),
    "hifp_pay": ("decimal(16,2)", True, "基本医保统筹基金支付(元)"),
    "fund_pay_sumamt": ("decimal(16,2)", True, "基金支付总额(元)"),
    "psn_part_amt": ("decimal(16,2)", True, "个人负担总额(元)"),
    "hosp_part_amt": ("decimal(16,2)", False, "医院负担金额(元; 单病种定额超标准部分), 空 = 0"),
    "setl_time": ("timestamp", True, "结算时间"),
}
AMOUNTS = ("medfee_sumamt", "hifp_pay", "fund_pay_sumamt", "psn_part_amt")

# reason code → Chinese reason; the first that applies is reported
EXCLUSIONS = {
    "PAY010": "缺少主要诊断 dise_codg",
    "PAY011": "主要诊断编码格式不符(应为 ICD-10, 如 K80.100)",
    "PAY012": "手术操作编码格式不符(应为 ICD-9-CM-3, 如 51.2301, 多个以 + 连接)",
    "PAY013": "医疗费总额 medfee_sumamt 缺失、为负或为 0",
    "PAY014": "基金或个人支付金额缺失或为负",
    "PAY015": "金额不平衡: medfee_sumamt ≠ fund_pay_sumamt + psn_part_amt + hosp_part_amt, 或 hifp_pay > fund_pay_sumamt",
    "PAY016": "机构等级缺失或未在政策包 levels 中声明",
    "PAY017": "医疗费总额超过 10,000,000 元(超出精确整数运算范围)",
    "PAY018": "mdtrt_id 重复(保留第一条)",
    "PAY019": "没有结算结果(该就诊不在 setlinfo 中)",
    "PAY020": "缺少结算时间 setl_time 或机构编号 fixmedins_code",
    "PAY030": "目录中没有对应的病种/病组(核心或综合), 或分组表无法入组",
    "PAY031": "机构等级不在目录的等级系数中",
}

DIAGNOSIS_PATTERN = r"^[A-Z][0-9]{2}(\.[0-9A-Za-z]{1,8})?$"
PROCEDURE_PATTERN = r"^[0-9]{2}(\.[0-9A-Za-z]{1,8})?$"
MAX_COST_FEN = 1_000_000_000

# Operation type (手术操作类型) of one ICD-9-CM-3 code by its two-digit category; a combination
# takes the highest. 0 保守治疗 (no operation) < 1 诊断性操作 < 2 治疗性操作 < 3 相关手术.
OPERATION_TYPES = {0: "保守治疗", 1: "诊断性操作", 2: "治疗性操作", 3: "相关手术"}
OPERATION_RANGES = ((0, 86, 3), (87, 91, 1), (92, 99, 2))  # (first, last two-digit category, type)


def operation_type_sql(code: str) -> str:
    """SQL: the operation type of one procedure code (NULL code → 0)."""
    head = f"TRY_CAST(SUBSTR({code}, 1, 2) AS INTEGER)"  # a malformed code is PAY012, not a crash
    whens = " ".join(f"WHEN {head} BETWEEN {a} AND {b} THEN {t}" for a, b, t in OPERATION_RANGES)
    return f"CASE WHEN {code} IS NULL THEN 0 {whens} ELSE 0 END"


def combo_sql(column: str) -> str:
    """DuckDB: a '+'-joined code text (also ; , | 、) → its codes trimmed, upper-cased, distinct and sorted,
    joined by '+' ('' when none). A single code, the usual case, skips the per-row list functions."""
    split = f"string_split(regexp_replace({column}, '[;,|、，]', '+', 'g'), '+')"
    codes = f"list_sort(list_distinct(list_filter(list_transform({split}, x -> upper(trim(x))), x -> x <> '')))"
    return (f"CASE WHEN {column} IS NULL THEN '' WHEN regexp_matches({column}, '[+;,|、，]') "
            f"THEN array_to_string({codes}, '+') ELSE upper(trim({column})) END")


def _combo_type(combo: str) -> str:
    """DuckDB: the operation type of a normalised combination (the highest of its codes)."""
    many = f"COALESCE(list_max(list_transform(string_split({combo}, '+'), x -> {operation_type_sql('x')})), 0)"
    return f"CASE WHEN {combo} = '' THEN 0 WHEN NOT contains({combo}, '+') THEN {operation_type_sql(combo)} ELSE {many} END"


def _read_source(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """A cases file as view ``raw_cases`` with the documented columns."""
    if not path.exists():
        raise PaymentError(Problem("PAY001", str(path), "病例文件或目录不存在"))
    if path.suffix.lower() == ".csv":
        con.sql(f"CREATE OR REPLACE VIEW raw_src AS SELECT * FROM read_csv({q(path.as_posix())}, all_varchar=true, header=true)")
    elif path.suffix.lower() == ".parquet":
        schema = pq.read_schema(path)
        for name in AMOUNTS:
            if name in schema.names:
                t = schema.field(name).type
                if not (pa.types.is_decimal(t) or pa.types.is_integer(t)):
                    raise PaymentError(Problem("PAY002", f"{path.name}.{name}",
                                               f"金额列须为 decimal(16,2)(或整数元), 实际为 {t}; 浮点数不能精确表示每一分"))
        con.sql(f"CREATE OR REPLACE VIEW raw_src AS SELECT * FROM read_parquet({q(path.as_posix())})")
    else:
        raise PaymentError(Problem("PAY001", str(path), "病例文件须为 .parquet 或 .csv"))
    names = {r[0] for r in con.sql("DESCRIBE raw_src").fetchall()}
    missing = [c for c, (_t, required, _d) in CASE_COLUMNS.items() if required and c not in names]
    if missing:
        raise PaymentError([Problem("PAY003", f"{path.name}.{c}", f"缺少列 {c}({CASE_COLUMNS[c][2]})") for c in missing])
    cols = []
    for c, (kind, _req, _d) in CASE_COLUMNS.items():
        value = c if c in names else "NULL"
        if kind.startswith("decimal"):
            cols.append(f"TRY_CAST({value} AS DECIMAL(18,4)) AS {c}")
        elif kind == "timestamp":
            cols.append(f"TRY_CAST({value} AS TIMESTAMP) AS {c}")
        else:
            cols.append(f"CAST({value} AS VARCHAR) AS {c}")
    con.sql(f"CREATE OR REPLACE VIEW raw_cases AS SELECT {', '.join(cols)}, TRUE AS settled FROM raw_src")


def _read_claims(con: duckdb.DuckDBPyConnection, claims: Path, settled: Path, med_types: list[str]) -> None:
    """Inpatient visits of a claims directory joined with their setlinfo, as view ``raw_cases``."""
    visits, setlinfo = claims / "visits.parquet", settled / "setlinfo.parquet"
    for p, what in ((visits, "理赔数据目录的 visits.parquet"), (setlinfo, "批量结算输出的 setlinfo.parquet")):
        if not p.exists():
            raise PaymentError(Problem("PAY001", str(p), f"找不到{what}"))
    types = ", ".join(q(m) for m in med_types)
    settled_columns = con.sql(f"SELECT * FROM read_parquet({q(setlinfo.as_posix())}) LIMIT 0").columns
    hosp = "s.hosp_part_amt" if "hosp_part_amt" in settled_columns else "NULL"  # older outputs lack it
    con.sql(f"""CREATE OR REPLACE VIEW raw_cases AS
        SELECT v.mdtrt_id, v.psn_no, v.insutype, v.fixmedins_code, v.level, v.dise_codg, v.oprn_oprt_code,
               CAST(NULL AS VARCHAR) AS sec_dise_codg,
               CAST(v.medfee_sumamt AS DECIMAL(18,4)) AS medfee_sumamt,
               CAST(s.hifp_pay AS DECIMAL(18,4)) AS hifp_pay,
               CAST(s.fund_pay_sumamt AS DECIMAL(18,4)) AS fund_pay_sumamt,
               CAST(s.psn_part_amt AS DECIMAL(18,4)) AS psn_part_amt,
               CAST({hosp} AS DECIMAL(18,4)) AS hosp_part_amt,
               CAST(v.setl_time AS TIMESTAMP) AS setl_time, s.mdtrt_id IS NOT NULL AS settled
        FROM read_parquet({q(visits.as_posix())}) v
        LEFT JOIN read_parquet({q(setlinfo.as_posix())}) s ON s.mdtrt_id = v.mdtrt_id
        WHERE v.med_type IN ({types})""")


def load_cases(con: duckdb.DuckDBPyConnection, levels: list[str], *, cases: Path | None = None,
               claims: Path | None = None, settled: Path | None = None,
               med_types: list[str] | None = None) -> dict[str, int]:
    """Create tables ``cases_all`` (every row, ``reason`` NULL when usable), ``case_procs`` and
    ``case_secondary`` (one row per code); returns counts."""
    if cases is not None:
        _read_source(con, Path(cases))
    elif claims is not None and settled is not None:
        _read_claims(con, Path(claims), Path(settled), med_types or ["21"])
    else:
        raise PaymentError(Problem("PAY004", "--cases", "请给出 --cases 病例文件, 或 --claims 与 --settled 两个目录"))
    level_list = ", ".join(q(lv) for lv in levels) or "NULL"

    def fen(c: str) -> str:
        return f"CAST({c} * 100 AS BIGINT)"

    code = PROCEDURE_PATTERN[1:-1]
    bad_amount = " OR ".join(f"{a} IS NULL OR {a} < 0" for a in AMOUNTS[1:])
    unbalanced = " OR ".join(f"{a} * 100 <> CAST({a} * 100 AS BIGINT)" for a in AMOUNTS)
    # One pass over the source: normalise and validate into one table that build and settle share.
    con.sql(f"""CREATE OR REPLACE TABLE cases_all AS
        SELECT mdtrt_id, psn_no, insutype, fixmedins_code, lvl AS level, dise AS dise_codg,
               SUBSTR(dise, 1, 3) AS dise_cat, oprn_combo, {_combo_type('oprn_combo')} AS op_type,
               {fen('medfee_sumamt')} AS cost, {fen('hifp_pay')} AS hifp,
               {fen('medfee_sumamt')} - {fen('hifp_pay')} AS others,
               setl_time, CAST(EXTRACT(year FROM setl_time) AS INTEGER) AS year,
               strftime(setl_time, '%Y-%m') AS month,
               CASE
                 WHEN NOT settled THEN 'PAY019'
                 WHEN setl_time IS NULL OR fixmedins_code IS NULL OR trim(fixmedins_code) = '' THEN 'PAY020'
                 WHEN dise IS NULL OR dise = '' THEN 'PAY010'
                 WHEN NOT regexp_full_match(dise, '{DIAGNOSIS_PATTERN[1:-1]}') THEN 'PAY011'
                 WHEN oprn_combo <> '' AND NOT regexp_full_match(oprn_combo, '{code}(\\+{code})*') THEN 'PAY012'
                 WHEN medfee_sumamt IS NULL OR medfee_sumamt <= 0 THEN 'PAY013'
                 WHEN {bad_amount} THEN 'PAY014'
                 WHEN {unbalanced} OR medfee_sumamt <> fund_pay_sumamt + psn_part_amt + COALESCE(hosp_part_amt, 0)
                      OR hifp_pay > fund_pay_sumamt
                   THEN 'PAY015'
                 WHEN lvl IS NULL OR lvl NOT IN ({level_list}) THEN 'PAY016'
                 WHEN medfee_sumamt * 100 > {MAX_COST_FEN} THEN 'PAY017'
               END AS reason,
               sec_combo
        FROM (SELECT *, upper(trim(dise_codg)) AS dise, trim(level) AS lvl, {combo_sql('oprn_oprt_code')} AS oprn_combo,
                     {combo_sql('sec_dise_codg')} AS sec_combo FROM raw_cases)""")
    _mark_duplicates(con)
    for table, combo in (("case_procs", "oprn_combo"), ("case_secondary", "sec_combo")):
        con.sql(f"""CREATE OR REPLACE TABLE {table} AS
            SELECT mdtrt_id, UNNEST(string_split({combo}, '+')) AS code FROM cases_all
            WHERE {combo} <> '' AND reason IS DISTINCT FROM 'PAY018'""")
    total, excluded = con.sql("SELECT COUNT(*), COUNT(reason) FROM cases_all").fetchone()
    return {"cases": total, "excluded": excluded}


def _mark_duplicates(con: duckdb.DuckDBPyConnection) -> None:
    """PAY018 on every copy of an mdtrt_id but the first (by settlement time, then person).

    Found by a hash aggregate over the id alone; only ids that occur more than once are sorted, so
    the usual file without duplicates costs one GROUP BY and no window over the whole table.
    """
    dups = "SELECT mdtrt_id FROM cases_all GROUP BY mdtrt_id HAVING COUNT(*) > 1"
    con.sql(f"CREATE OR REPLACE TEMP TABLE dup_ids AS {dups}")
    if con.sql("SELECT COUNT(*) FROM dup_ids").fetchone()[0]:
        con.sql("""UPDATE cases_all SET reason = 'PAY018' WHERE rowid IN (
            SELECT rid FROM (
              SELECT c.rowid AS rid, ROW_NUMBER() OVER (PARTITION BY c.mdtrt_id ORDER BY c.setl_time, c.psn_no) AS copy_no
              FROM cases_all c SEMI JOIN dup_ids d ON c.mdtrt_id IS NOT DISTINCT FROM d.mdtrt_id)
            WHERE copy_no > 1)""")
    con.sql("DROP TABLE dup_ids")


def exclusions(con: duckdb.DuckDBPyConnection, where: str = "TRUE") -> list[dict]:
    """Every excluded case with its reason, ordered by mdtrt_id."""
    rows = con.sql(f"""SELECT mdtrt_id, psn_no, fixmedins_code, dise_codg, oprn_combo, cost, reason
                       FROM cases_all WHERE reason IS NOT NULL AND ({where}) ORDER BY mdtrt_id, reason""").fetchall()
    return [{"mdtrt_id": r[0], "psn_no": r[1], "fixmedins_code": r[2], "dise_codg": r[3], "oprn_oprt_code": r[4],
             "medfee_fen": r[5], "code": r[6], "reason": EXCLUSIONS[r[6]]} for r in rows]
