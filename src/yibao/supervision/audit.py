"""Batch audit: run the rule library over a claims directory on DuckDB (or Spark), summarise.

Hits are charged to the later visit of a pattern; ``--since/--until`` select the period by
settlement time: visits after ``until`` are not read, and history before ``since`` is read so
windowed rules (分解住院, 重复开药 ...) see it, but only hits on visits settled from ``since``
(and provider-level hits) are reported.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import xlsxwriter

from yibao.batch.run import connect
from yibao.batch.spark import to_spark
from yibao.claims.schema import (
    read_claims,  # CSV / Excel: checked and typed by the contract
)
from yibao.errors import Problem
from yibao.sql import sql_path
from yibao.supervision.library import OverTesting
from yibao.supervision.model import AuditInputError, Skipped, SupervisionError
from yibao.supervision.peers import peer_scores
from yibao.supervision.ruleset import RuleSet
from yibao.supervision.views import (
    BASELINE_SCHEMA,
    DERIVED,
    DUCKDB_DERIVED,
    OPTIONAL_COLUMNS,
    OPTIONAL_TABLES,
    OPTIONAL_ZH,
    baseline_sql,
)

REQUIRED = ("persons", "institutions", "visits", "fee_items")


@dataclass
class AuditRun:
    con: duckdb.DuckDBPyConnection
    available: set[str]
    since: date | None = None
    timings: dict[str, float] = field(default_factory=dict)
    skipped: list[Skipped] = field(default_factory=list)
    visits: int = 0
    items: int = 0
    baselines: pa.Table | None = None  # the learned baseline table (or one given to the run)


def _source(claims_dir: Path, name: str) -> str | None:
    for ext, reader in (("parquet", "read_parquet"), ("csv", "read_csv")):
        path = claims_dir / f"{name}.{ext}"
        if path.is_file():
            opts = ", all_varchar = true" if ext == "csv" else ""
            return f"{reader}({sql_path(path)}{opts})"
    return None


def open_claims(claims_dir: str | Path, since: date | None = None, until: date | None = None,
                con: duckdb.DuckDBPyConnection | None = None) -> AuditRun:
    """Claims tables as DuckDB views (Parquet in place; CSV/Excel through the claims schema),
    optional columns filled with NULL when absent, then ``vx`` and ``lines`` materialised."""

    claims_dir = Path(claims_dir)
    if not claims_dir.is_dir():
        raise AuditInputError(Problem("AUD001", "--claims", f"理赔数据目录不存在: {claims_dir}"))
    con = con or connect()
    t = time.perf_counter()
    parquet = all((claims_dir / f"{n}.parquet").is_file() for n in REQUIRED)
    if parquet:
        for name in REQUIRED:
            con.sql(f"CREATE OR REPLACE VIEW {name}_src AS SELECT * FROM read_parquet({sql_path(claims_dir / f'{name}.parquet')})")
    else:

        for name, table in read_claims(claims_dir).items():
            con.register(f"{name}_arrow", table)
            con.sql(f"CREATE OR REPLACE VIEW {name}_src AS SELECT * FROM {name}_arrow")
    available: set[str] = set(REQUIRED)
    for name in REQUIRED:
        have = {r[0] for r in con.sql(f"DESCRIBE {name}_src").fetchall()}
        extra = []
        for col, typ in OPTIONAL_COLUMNS.get(name, {}).items():
            if col in have:
                available.add(f"{name}.{col}")
            else:
                extra.append(f"CAST(NULL AS {_duck_type(typ)}) AS {col}")
        where = ""
        if name == "visits" and until is not None:
            where = f" WHERE setl_time < TIMESTAMP '{until + timedelta(days=1)}'"
        con.sql(f"CREATE OR REPLACE VIEW {name} AS SELECT *{''.join(', ' + e for e in extra)} FROM {name}_src{where}")
    for name, schema in OPTIONAL_TABLES.items():
        src = _source(claims_dir, name)
        if src is not None:
            cols = ", ".join(f"CAST({f.name} AS {_duck_type(f.type)}) AS {f.name}" for f in schema)
            con.sql(f"CREATE OR REPLACE VIEW {name} AS SELECT {cols} FROM {src}")
            available.add(name)
        else:
            con.register(f"{name}_empty", schema.empty_table())
            con.sql(f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM {name}_empty")
    for name, sql in DUCKDB_DERIVED:
        con.sql(f"CREATE OR REPLACE TABLE {name} AS {sql}")
    run = AuditRun(con, available, since)
    run.visits = con.sql("SELECT COUNT(*) FROM vx").fetchone()[0]
    run.items = con.sql("SELECT COUNT(*) FROM lines").fetchone()[0]
    run.timings["读取与准备 prepare"] = time.perf_counter() - t
    return run


def _duck_type(typ: pa.DataType) -> str:
    if pa.types.is_timestamp(typ):
        return "TIMESTAMP"
    if pa.types.is_decimal(typ):
        return f"DECIMAL({typ.precision},{typ.scale})"
    return "VARCHAR"


def missing_inputs(ruleset: RuleSet, available: set[str]) -> list[Skipped]:
    """Rules whose optional inputs are absent, each with a problem naming rule and field."""
    out = []
    for r in ruleset.rules:
        gone = [n for n in r.rule.needs if n not in available]
        if gone:
            out.append(Skipped(r.id, [Problem("SUP020", n, f"规则 {r.id}({r.rule.name}) 需要 {n}"
                                              f"({OPTIONAL_ZH.get(n, n)}), 数据中没有") for n in gone]))
    return out


RAW_HITS = ("CREATE OR REPLACE TABLE raw_hits (rule_id VARCHAR, subject VARCHAR, mdtrt_id VARCHAR, "
            "feedetl_sn VARCHAR, fixmedins_code VARCHAR, amount BIGINT, detail VARCHAR)")


def run_rules(run: AuditRun, ruleset: RuleSet, skip_invalid: bool = False, progress=None) -> list[str]:
    """Every runnable rule into ``raw_hits`` then ``hits`` (one row per rule and subject)."""
    missing = missing_inputs(ruleset, run.available)
    if missing and not skip_invalid:
        raise SupervisionError([p for s in missing for p in s.problems] +
                               [Problem("SUP021", "--skip-invalid", "加 --skip-invalid 跳过这些规则, 其余规则照常运行")])
    run.skipped = list(ruleset.skipped) + missing
    skip = {s.rule_id for s in missing}
    con = run.con
    if any(reads_baselines(r) for r in ruleset.rules if r.id not in skip):
        t = time.perf_counter()
        if run.baselines is None:
            run.baselines = learn_baselines(con, ruleset)
        con.register("baselines_arrow", run.baselines)
        con.sql("CREATE OR REPLACE TABLE baselines AS SELECT * FROM baselines_arrow")
        run.timings["学习基线 baselines"] = time.perf_counter() - t
    con.sql(RAW_HITS)
    ran = []
    rules = [r for r in ruleset.rules if r.id not in skip]
    present = codes_present(con, rules)
    for k, r in enumerate(rules):
        if progress:
            progress(r.id, k / max(len(rules), 1))
        t = time.perf_counter()
        codes = r.codes()
        if codes is None or not codes.isdisjoint(present):  # else no line it could flag exists: no hit, nothing to scan
            con.sql(f"INSERT INTO raw_hits SELECT '{r.id}', subject, mdtrt_id, feedetl_sn, fixmedins_code, amount, detail "
                    f"FROM ({r.sql()})")
        run.timings[r.id] = time.perf_counter() - t
        ran.append(r.id)
    t = time.perf_counter()
    con.register("rule_meta", rule_meta(ruleset))
    since = f"AND x.setl_time >= TIMESTAMP '{run.since}'" if run.since else ""
    con.sql(f"""CREATE OR REPLACE TABLE hits AS
SELECT h.rule_id, m.rule_name, m.family, m.severity, m.blocking, h.subject, h.mdtrt_id, x.psn_no, h.fixmedins_code,
       x.atddr_no, x.setl_time, h.amount, h.feedetl_sns, h.detail,
       m.rule_name || ': ' || h.detail || '(规则: ' || m.rule_text || '; 参数: ' || m.params || ')' AS message
FROM (SELECT rule_id, subject, any_value(mdtrt_id) AS mdtrt_id, any_value(fixmedins_code) AS fixmedins_code,
             SUM(amount) AS amount, list(feedetl_sn ORDER BY feedetl_sn) FILTER (WHERE feedetl_sn IS NOT NULL) AS feedetl_sns,
             array_to_string(list_slice(list(DISTINCT detail), 1, 5), '; ') AS detail
      FROM raw_hits GROUP BY rule_id, subject) h
JOIN rule_meta m ON m.rule_id = h.rule_id
LEFT JOIN vx x ON x.mdtrt_id = h.mdtrt_id
WHERE h.mdtrt_id IS NULL OR (TRUE {since})""")
    run.timings["汇总 collect"] = time.perf_counter() - t
    return ran


def codes_present(con: duckdb.DuckDBPyConnection, rules) -> set[str]:
    """Which of the catalogue rules' codes (:attr:`model.Rule.codes`: the only lines such a rule flags) the
    run's lines hold: a rule none of whose codes occurs cannot hit, as online skips it for a visit without them."""
    listed = sorted(set().union(*(c for c in (r.codes() for r in rules) if c is not None)))
    if not listed:
        return set()
    con.register("listed_codes", pa.table({"code": pa.array(listed, pa.string())}))
    try:
        return {c for (c,) in con.sql("SELECT DISTINCT l.med_list_codg FROM lines l JOIN listed_codes c "
                                      "ON c.code = l.med_list_codg").fetchall()}
    finally:
        con.unregister("listed_codes")


def reads_baselines(r) -> bool:
    """A statistical rule: it compares with the learned baseline table."""
    return "baselines" in r.sql()


def baseline_settings(ruleset: RuleSet) -> tuple[tuple[str, ...], int]:
    """Which categories count as tests, and how many diagnosis letters make a peer group: from the
    over-testing rule's parameters, so the table and the rule that reads it agree."""

    p = ruleset.by_id()["SV-TEST-01"].params if "SV-TEST-01" in ruleset.by_id() else OverTesting()
    return tuple(p.categories), p.dx_len


def learn_baselines(con: duckdb.DuckDBPyConnection, ruleset: RuleSet) -> pa.Table:
    """The baseline table (see :data:`views.BASELINE_SCHEMA`) from the run's ``lines`` and ``vx``."""
    cats, dx_len = baseline_settings(ruleset)
    table = con.sql(f"SELECT * FROM ({baseline_sql(cats, dx_len)}) ORDER BY kind, code, level, med_type").to_arrow_table()
    return table.cast(BASELINE_SCHEMA)


def rule_meta(ruleset: RuleSet) -> pa.Table:
    rules = ruleset.rules
    return pa.table({
        "rule_id": [r.id for r in rules], "rule_name": [r.rule.name for r in rules],
        "family": [r.rule.family for r in rules], "severity": [r.severity for r in rules],
        "blocking": [r.blocking for r in rules], "rule_text": [r.rule.description for r in rules],
        "params": [r.param_text() for r in rules], "scope": [r.rule.scope for r in rules],
    })


def summaries(run: AuditRun, credit: dict[str, pa.Table] | None = None) -> dict[str, pa.Table]:
    """By rule, by institution (with a risk rank), by physician; amounts in yuan; and the peer-group
    outlier scores of institutions and physicians (:mod:`yibao.supervision.peers`)."""
    con = run.con
    y = "CAST(CAST({} AS DECIMAL(18,0)) / 100 AS DECIMAL(16,2))"
    by_rule = con.sql(f"""
SELECT m.rule_id, m.rule_name, m.family, m.severity, COUNT(h.subject) AS hits,
       {y.format('COALESCE(SUM(h.amount), 0)')} AS amount_yuan
FROM rule_meta m LEFT JOIN hits h ON h.rule_id = m.rule_id GROUP BY ALL ORDER BY m.rule_id""").to_arrow_table()
    by_inst = con.sql(f"""
WITH base AS (SELECT fixmedins_code, COUNT(*) AS visits, SUM(medfee) AS medfee FROM vx GROUP BY fixmedins_code),
     h AS (SELECT fixmedins_code, COUNT(*) AS hits, SUM(amount) AS amount, COUNT(DISTINCT mdtrt_id) AS flagged,
                  COUNT(*) FILTER (WHERE mdtrt_id IS NULL) AS provider_hits FROM hits GROUP BY fixmedins_code)
SELECT b.fixmedins_code, i.fixmedins_name, i.level, h.hits, h.provider_hits, {y.format('h.amount')} AS amount_yuan,
       b.visits, h.flagged AS flagged_visits, ROUND(h.flagged / b.visits, 4) AS flagged_share,
       ROUND(h.amount / b.medfee, 4) AS amount_share,
       ROUND(0.5 * LEAST(h.flagged / b.visits, 1) + 0.4 * LEAST(h.amount / b.medfee, 1) + 0.1 * LEAST(h.provider_hits, 3) / 3, 4) AS risk_score
FROM h JOIN base b ON b.fixmedins_code = h.fixmedins_code LEFT JOIN institutions i ON i.fixmedins_code = b.fixmedins_code
ORDER BY risk_score DESC, amount_yuan DESC, fixmedins_code""").to_arrow_table()
    by_inst = by_inst.append_column("risk_rank", pa.array(range(1, by_inst.num_rows + 1), pa.int32()))
    by_doc = con.sql(f"""
SELECT x.fixmedins_code, x.atddr_no, COUNT(*) AS hits, {y.format('SUM(h.amount)')} AS amount_yuan,
       COUNT(DISTINCT h.mdtrt_id) AS flagged_visits
FROM hits h JOIN vx x ON x.mdtrt_id = h.mdtrt_id WHERE x.atddr_no IS NOT NULL GROUP BY ALL
ORDER BY amount_yuan DESC, x.atddr_no""").to_arrow_table()
    out = {"by_rule": by_rule, "by_institution": by_inst, "by_physician": by_doc, "peer_scores": peer_scores(con)}
    if credit:
        out.update(credit)
    return out


def hits_table(run: AuditRun) -> pa.Table:
    """Hits with amounts in yuan (exact decimal), ordered for reading."""
    return run.con.sql("""
SELECT rule_id, rule_name, family, severity, blocking, subject, mdtrt_id, psn_no, fixmedins_code, atddr_no, setl_time,
       CAST(CAST(amount AS DECIMAL(18,0)) / 100 AS DECIMAL(16,2)) AS amount_yuan, feedetl_sns, detail, message
FROM hits ORDER BY rule_id, subject""").to_arrow_table()


def write_outputs(run: AuditRun, out_dir: str | Path, summary: dict[str, pa.Table], excel: bool = True) -> dict[str, Path]:
    """hits.parquet, one Parquet per summary and audit.xlsx, written aside and moved in whole."""
    import pyarrow.parquet as pq

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".audit-", dir=out))
    try:
        paths = {}
        hits_path = tmp / "hits.parquet"
        run.con.sql(f"COPY (SELECT rule_id, rule_name, family, severity, blocking, subject, mdtrt_id, psn_no, fixmedins_code, "
                    f"atddr_no, setl_time, CAST(CAST(amount AS DECIMAL(18,0)) / 100 AS DECIMAL(16,2)) AS amount_yuan, "
                    f"feedetl_sns, detail, message FROM hits ORDER BY rule_id, subject) "
                    f"TO {sql_path(hits_path)} (FORMAT parquet, COMPRESSION zstd)")
        paths["hits"] = hits_path
        for name, table in summary.items():
            pq.write_table(table, tmp / f"{name}.parquet")
            paths[name] = tmp / f"{name}.parquet"
        if run.baselines is not None:  # what online pre-checks read (yibao audit check --baselines)
            pq.write_table(run.baselines, tmp / "baselines.parquet")
            paths["baselines"] = tmp / "baselines.parquet"
        if excel:
            paths["excel"] = tmp / "audit.xlsx"
            write_excel(paths["excel"], run, summary)
        final = {}
        for name, path in paths.items():
            target = out / path.name
            os.replace(path, target)
            final[name] = target
        return final
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


EXCEL_MAX_HITS = 200_000
SHEETS = {"by_rule": "按规则", "by_institution": "机构风险排名", "by_physician": "按医师", "peer_scores": "同级离群分",
          "credit_institutions": "机构信用", "credit_physicians": "医师积分"}


def write_excel(path: Path, run: AuditRun, summary: dict[str, pa.Table]) -> None:
    """audit.xlsx: the summaries, then the hits by amount (at most :data:`EXCEL_MAX_HITS`), written by
    XlsxWriter row by row in constant memory (openpyxl took 1 s of CPU for the demo's 7,000 peer-score rows)."""
    wb = excel_workbook(path)
    try:
        for name, table in summary.items():
            _sheet(wb, SHEETS.get(name, name), table)
        hits = run.con.sql(f"SELECT rule_id, rule_name, severity, subject, mdtrt_id, psn_no, fixmedins_code, atddr_no, setl_time, "
                           f"CAST(CAST(amount AS DECIMAL(18,0)) / 100 AS DECIMAL(16,2)) AS amount_yuan, "
                           f"array_to_string(feedetl_sns, ',') AS feedetl_sns, message FROM hits ORDER BY amount DESC, rule_id, subject "
                           f"LIMIT {EXCEL_MAX_HITS}").to_arrow_table()
        _sheet(wb, "疑点明细", hits)
    finally:
        wb.close()


def excel_workbook(path: Path):
    """An XlsxWriter workbook that streams rows; text stays text (a detail starting with '=' or holding
    an address is no formula and no link), date-times show as 2024-12-31 23:59:59."""
    return xlsxwriter.Workbook(str(path), {"constant_memory": True, "strings_to_formulas": False, "strings_to_urls": False,
                                           "default_date_format": "yyyy-mm-dd hh:mm:ss"})


def _sheet(wb, title: str, table: pa.Table) -> None:
    ws = wb.add_worksheet(title)
    ws.write_row(0, 0, table.column_names)
    for r, row in enumerate(zip(*(c.to_pylist() for c in table.columns)), start=1):
        ws.write_row(r, 0, [", ".join(map(str, v)) if isinstance(v, list) else v for v in row])


# --- Spark: the same rule SQL through the batch engine's portable layer ------------------------


def run_on_spark(spark, claims_dir: str | Path, ruleset: RuleSet) -> dict[str, list[tuple]]:
    """Every rule's raw hits on Spark in one action: {rule_id: sorted [(subject, feedetl_sn, amount)]}.

    The derived views are cached and the rules' hits unioned into one query, so the library is
    one Spark job instead of one per rule."""

    claims_dir = Path(claims_dir)
    for name in REQUIRED + tuple(OPTIONAL_TABLES):
        path = claims_dir / f"{name}.parquet"
        if path.is_file():
            spark.read.parquet(str(path)).createOrReplaceTempView(name)
    for name, sql in DERIVED:
        spark.sql(to_spark(sql)).cache().createOrReplaceTempView(name)
    if any(reads_baselines(r) for r in ruleset.rules):  # learned on DuckDB: the same table online reads
        learned = learn_baselines(open_claims(claims_dir).con, ruleset)
        spark.createDataFrame(learned.to_pandas(), schema="kind string, code string, level string, med_type string, "
                              "n bigint, med bigint, mad bigint").createOrReplaceTempView("baselines")
    union = " UNION ALL ".join(f"SELECT '{r.id}' AS rule_id, subject, feedetl_sn, amount FROM ({r.sql()})"
                               for r in ruleset.rules)
    out: dict[str, list[tuple]] = {r.id: [] for r in ruleset.rules}
    for x in spark.sql(to_spark(union)).collect() if union else []:
        out[x[0]].append((x[1], x[2], int(x[3])))
    for name, _ in DERIVED:
        spark.catalog.uncacheTable(name)
    return {k: sorted(v) for k, v in out.items()}


def raw_hit_rows(run: AuditRun) -> dict[str, list[tuple]]:
    out: dict[str, list[tuple]] = {}
    for rid, subject, sn, amount in run.con.sql("SELECT rule_id, subject, feedetl_sn, amount FROM raw_hits").fetchall():
        out.setdefault(rid, []).append((subject, sn, int(amount)))
    return {k: sorted(v) for k, v in out.items()}
