"""Category lists from 民政 / 乡村振兴 (CSV or Excel): validated whole in DuckDB, written in bulk or not at all.

Every row is checked at once in SQL (18-digit 证件号 with its GB 11643 check digit and birth
date, a category the pack declares, dates that parse and are in order, no two rows of one
person and category with overlapping validity, a person the registry knows). Any problem
rejects the file: the report names each row (1-based, as a spreadsheet shows it, header = row 1)
and field, and nothing is written. An accepted file becomes one :class:`ImportBatch` and one
category fact per row; then the projection ``person_categories`` of every person it touches is
recomputed by :data:`FOLD_SQL`, the set-based twin of :func:`yibao.enrolment.facts.memberships`
(a property test holds them equal).
"""

from __future__ import annotations

import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable
from xml.etree import ElementTree

import duckdb
import fastexcel
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from yibao import privacy
from yibao.enrolment.models import CategoryFact, ImportBatch
from yibao.errors import Problem
from yibao.service.auth import Principal
from yibao.service.errors import ServiceError
from yibao.service.transactions import Context, audit
from yibao.store import keys
from yibao.store.models import Person, PersonCategory

COLUMNS = {  # accepted header → field
    "certno": "certno", "证件号码": "certno", "身份证号": "certno", "身份证号码": "certno",
    "psn_name": "psn_name", "姓名": "psn_name",
    "category": "category", "类别": "category", "人员类别": "category",
    "recognised_on": "recognised_on", "认定日期": "recognised_on",
    "valid_from": "valid_from", "有效期起": "valid_from", "开始日期": "valid_from",
    "valid_to": "valid_to", "有效期止": "valid_to", "结束日期": "valid_to",
    "action": "action", "操作": "action",
}
REQUIRED = ("certno", "category", "valid_from", "valid_to")
OPEN_END = "9999-12-31"
MAX_PROBLEMS = 1000  # a report beyond this many lines says how many more


class ImportRejected(ServiceError):
    title = "导入被拒绝(未写入任何数据)"


@dataclass
class ImportResult:
    batch_id: int
    rows: int
    persons: int
    projection_rows: int
    timings: dict[str, float] = field(default_factory=dict)


def read_table(path: Path) -> pa.Table:
    """The file as a table of strings (CSV via DuckDB, .xlsx via fastexcel: calamine in Rust straight to Arrow,
    no Python object per cell), headers mapped to fields. Excel date cells read as their date (YYYY-MM-DD)."""
    try:
        if path.suffix.lower() in EXCEL:
            table = read_excel(path)
        else:
            table = duckdb.read_csv(str(path), all_varchar=True, header=True).arrow()
            table = table.read_all() if hasattr(table, "read_all") else table
    except (OSError, duckdb.Error, StopIteration, ValueError, KeyError, zipfile.BadZipFile, ElementTree.ParseError,
            fastexcel.FastExcelError) as exc:
        raise ImportRejected(Problem("ENR040", str(path.name), f"无法读取名单文件: {exc.__class__.__name__}")) from None
    names = [COLUMNS.get(n.strip().lower() if n.strip().isascii() else n.strip(), n) for n in table.column_names]
    table = table.rename_columns(names)
    missing = [c for c in REQUIRED if c not in names]
    if missing:
        raise ImportRejected(Problem("ENR041", "header", f"缺少必需的列 {missing}(可用表头: {sorted(COLUMNS)})"))
    if path.suffix.lower() in EXCEL:  # a date cell reads as "YYYY-MM-DD 00:00:00": keep its date, as Excel shows it
        for c in DATE_FIELDS:
            if c in names:
                i = names.index(c)
                table = table.set_column(i, c, pc.replace_substring_regex(
                    table.column(i), pattern=DATETIME_TEXT, replacement=r"\1"))
    return table


EXCEL = (".xlsx", ".xlsm")
DATE_FIELDS = ("valid_from", "valid_to", "recognised_on")
DATETIME_TEXT = r"^(\d{4}-\d{2}-\d{2})[ T]\d{2}:\d{2}:\d{2}(\.\d+)?$"


def read_excel(path: Path) -> pa.Table:
    """The first sheet, every column as text, the first row its header; trailing blank rows dropped."""
    first = _first_row(path)
    if first is None:
        raise ImportRejected(Problem("ENR041", "header", "Excel 名单的第一个工作表是空的(没有表头)"))
    if first != 1:  # calamine starts at the first non-empty row: the report's row numbers would shift
        raise ImportRejected(Problem("ENR044", "header", "Excel 名单的表头须在第 1 行(表头上方不能有空行)"))
    sheet = fastexcel.read_excel(str(path)).load_sheet(0, header_row=0, dtypes="string", eager=True,
                                                       skip_whitespace_tail_rows=True)
    return pa.Table.from_batches([sheet]) if isinstance(sheet, pa.RecordBatch) else sheet


_MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_REL = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"


def _first_row(path: Path) -> int | None:
    """Row number of the first sheet's first stored row (streamed: stops at it), None for an empty sheet."""
    with zipfile.ZipFile(path) as z:
        sheet = ElementTree.fromstring(z.read("xl/workbook.xml")).find(f"{_MAIN}sheets/{_MAIN}sheet")
        if sheet is None:
            return None
        rels = ElementTree.fromstring(z.read("xl/_rels/workbook.xml.rels"))
        target = next(r.get("Target") for r in rels if r.get("Id") == sheet.get(f"{_REL}id"))
        name = target.lstrip("/") if target.startswith("/") else "xl/" + target
        with z.open(name) as f:
            for _, el in ElementTree.iterparse(f):
                if el.tag == f"{_MAIN}row":
                    return int(el.get("r", "1"))
    return None


# Row-wise checks, all rows at once. ``rows`` holds the file (strings) with ``row_no``; ``persons`` the
# registry's certno → psn_no; ``cats`` the pack's codes.
CHECK_SQL = """
WITH r AS (
  SELECT row_no, upper(trim(certno)) AS certno, trim(category) AS category,
         coalesce(nullif(lower(trim(action)), ''), 'grant') AS action,
         try_cast(trim(valid_from) AS DATE) AS vf, try_cast(trim(valid_to) AS DATE) AS vt,
         valid_from AS vf_text, valid_to AS vt_text,
         try_cast(nullif(trim(recognised_on), '') AS DATE) AS rec, recognised_on AS rec_text
  FROM rows
), c AS (
  SELECT r.*,
    regexp_full_match(certno, '[0-9]{17}[0-9X]') AS shape_ok,
    CASE WHEN regexp_full_match(certno, '[0-9]{17}[0-9X]') THEN
      substr('10X98765432', 1 + (
        7*CAST(certno[1] AS INT) + 9*CAST(certno[2] AS INT) + 10*CAST(certno[3] AS INT) + 5*CAST(certno[4] AS INT)
      + 8*CAST(certno[5] AS INT) + 4*CAST(certno[6] AS INT) + 2*CAST(certno[7] AS INT) + 1*CAST(certno[8] AS INT)
      + 6*CAST(certno[9] AS INT) + 3*CAST(certno[10] AS INT) + 7*CAST(certno[11] AS INT) + 9*CAST(certno[12] AS INT)
      + 10*CAST(certno[13] AS INT) + 5*CAST(certno[14] AS INT) + 8*CAST(certno[15] AS INT) + 4*CAST(certno[16] AS INT)
      + 2*CAST(certno[17] AS INT)) % 11, 1) = certno[18] END AS check_ok,
    try_strptime(substr(certno, 7, 8), '%Y%m%d') IS NOT NULL AS birth_ok,
    lag(vt) OVER (PARTITION BY certno, category ORDER BY vf, row_no) AS prev_vt,
    lag(row_no) OVER (PARTITION BY certno, category ORDER BY vf, row_no) AS prev_row
  FROM r
)
SELECT row_no, 'certno' AS field, 'REG001' AS code, '证件号码不是有效的 18 位身份证号(格式或校验位不符)' AS message
  FROM c WHERE NOT coalesce(shape_ok AND check_ok, false)
UNION ALL SELECT row_no, 'certno', 'REG002', '证件号码中的出生日期无效' FROM c WHERE shape_ok AND check_ok AND NOT birth_ok
UNION ALL SELECT row_no, 'category', 'ENR020', '人员类别 ' || coalesce(category, '(空)') || ' 不在政策包声明的类别之内'
  FROM c WHERE category IS NULL OR category NOT IN (SELECT code FROM cats)
UNION ALL SELECT row_no, 'valid_from', 'ENR042', '有效期起不是日期(YYYY-MM-DD): ' || coalesce(vf_text, '(空)')
  FROM c WHERE vf IS NULL
UNION ALL SELECT row_no, 'valid_to', 'ENR042', '有效期止不是日期(YYYY-MM-DD): ' || coalesce(vt_text, '(空)')
  FROM c WHERE vt IS NULL
UNION ALL SELECT row_no, 'recognised_on', 'ENR042', '认定日期不是日期(YYYY-MM-DD): ' || rec_text
  FROM c WHERE rec IS NULL AND nullif(trim(rec_text), '') IS NOT NULL
UNION ALL SELECT row_no, 'valid_to', 'ENR021', '有效期止 ' || CAST(vt AS VARCHAR) || ' 早于有效期起 ' || CAST(vf AS VARCHAR)
  FROM c WHERE vt < vf
UNION ALL SELECT row_no, 'action', 'ENR025', '操作须为 grant(认定) 或 revoke(退出), 实际为 ' || action
  FROM c WHERE action NOT IN ('grant', 'revoke')
UNION ALL SELECT row_no, 'valid_from', 'ENR022', '与第 ' || CAST(prev_row AS VARCHAR) || ' 行同一人同一类别的有效期重叠'
  FROM c WHERE prev_vt IS NOT NULL AND vf <= prev_vt
UNION ALL SELECT row_no, 'certno', 'ENR023', '证件号码对应的参保人不存在(须先参保登记)'
  FROM c WHERE shape_ok AND check_ok AND certno NOT IN (SELECT certno FROM persons)
ORDER BY row_no, field
"""

# The category fold, set-based: cut each (person, category) timeline at every fact's edges; on each
# piece the latest recorded covering fact decides; consecutive pieces decided by one grant merge.
FOLD_SQL = """
WITH cuts AS (
  SELECT psn_no, category, valid_from AS d FROM f
  UNION SELECT psn_no, category, valid_to + 1 FROM f WHERE valid_to < DATE '9999-12-31'
), seg AS (
  SELECT psn_no, category, d AS s,
         coalesce(lead(d) OVER (PARTITION BY psn_no, category ORDER BY d) - 1, DATE '9999-12-31') AS e
  FROM cuts
), decided AS (
  SELECT seg.psn_no, seg.category, seg.s, seg.e, max(f.id) AS fid, arg_max(f.action, f.id) AS action,
         arg_max(f.dept, f.id) AS dept
  FROM seg JOIN f ON f.psn_no = seg.psn_no AND f.category = seg.category AND f.valid_from <= seg.s
                 AND seg.s <= f.valid_to
  GROUP BY ALL
), g AS (
  SELECT *, CASE WHEN lag(e) OVER w + 1 = s AND lag(fid) OVER w = fid THEN 0 ELSE 1 END AS starts
  FROM decided WHERE action = 'grant' WINDOW w AS (PARTITION BY psn_no, category ORDER BY s)
), islands AS (
  SELECT *, sum(starts) OVER (PARTITION BY psn_no, category ORDER BY s) AS island FROM g
)
SELECT psn_no, category, any_value(dept) AS issuing_dept, min(s) AS valid_from, max(e) AS valid_to
FROM islands GROUP BY psn_no, category, island ORDER BY psn_no, category, valid_from
"""


def certno_index(session: Session, certnos) -> pa.Table:
    """certno → psn_no for the given ID numbers (an import's or a roster's), found by blind index: the registry
    keeps certno encrypted at rest (:mod:`yibao.privacy`), so it is looked up by its keyed hash, never read out."""

    ring = keys.load()
    secrets = [ring.certno[ring.certno_active]] + [v for k, v in ring.certno.items() if k != ring.certno_active]
    by_index: dict[str, str] = {}
    for value in {str(c).strip().upper() for c in certnos if c is not None}:
        for secret in secrets:
            by_index[privacy.certno_index(value, secret)] = value
    found_c, found_p = [], []
    wanted = list(by_index)
    for i in range(0, len(wanted), 5_000):
        for psn_no, bidx in session.execute(select(Person.psn_no, Person.certno_bidx)
                                            .where(Person.certno_bidx.in_(wanted[i:i + 5_000]))):
            found_c.append(by_index[bidx])
            found_p.append(psn_no)
    return pa.table({"certno": pa.array(found_c, pa.string()), "psn_no": pa.array(found_p, pa.string())})


def validate(table: pa.Table, known: Iterable[str], persons: pa.Table) -> tuple[list[Problem], int, pa.Table]:
    """(problems, count of problems, the rows ready to write: psn_no, category, action, dates)."""
    db = duckdb.connect()
    try:
        cols = {c: table.column(c) if c in table.column_names else pa.nulls(table.num_rows, pa.string())
                for c in ("certno", "category", "action", "valid_from", "valid_to", "recognised_on")}
        rows = pa.table({"row_no": pa.array(range(2, table.num_rows + 2), pa.int64()),
                         **{k: v.cast(pa.string()) for k, v in cols.items()}})
        cats = pa.table({"code": pa.array(sorted(set(known)), pa.string())})
        db.register("rows", rows)
        db.register("cats", cats)
        db.register("persons", persons)
        count = db.execute(f"SELECT count(*) FROM ({CHECK_SQL})").fetchone()[0]
        found = db.execute(f"{CHECK_SQL} LIMIT {MAX_PROBLEMS}").fetchall()
        problems = [Problem(code, f"第{row}行.{fld}", msg) for row, fld, code, msg in found]
        if count:
            return problems, count, pa.table({})
        good = db.execute("""
            SELECT p.psn_no, trim(r.category) AS category, coalesce(nullif(lower(trim(r.action)), ''), 'grant') AS action,
                   CAST(trim(r.valid_from) AS DATE) AS valid_from, CAST(trim(r.valid_to) AS DATE) AS valid_to,
                   try_cast(nullif(trim(r.recognised_on), '') AS DATE) AS recognised_on
            FROM rows r JOIN persons p ON p.certno = upper(trim(r.certno)) ORDER BY r.row_no""").arrow()
        good = good.read_all() if hasattr(good, "read_all") else good
        return [], 0, good
    finally:
        db.close()


def fold_table(facts: pa.Table) -> pa.Table:
    """:data:`FOLD_SQL` over a table of category facts (id, psn_no, category, action, valid_from, valid_to, dept)."""
    db = duckdb.connect()
    try:
        db.register("f", facts)
        out = db.execute(FOLD_SQL).arrow()
        return out.read_all() if hasattr(out, "read_all") else out
    finally:
        db.close()


def import_categories(session: Session, who: Principal, ctx: Context, path: Path, *, dept: str,
                      known: Iterable[str], persons: pa.Table | None = None) -> ImportResult:
    """Validate the file and, only if every row passes, write it (the caller's one transaction)."""
    who.require("enrol.write")
    t: dict[str, float] = {}
    t0 = time.perf_counter()
    table = read_table(path)
    t["read"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    persons = certno_index(session, table.column("certno").to_pylist() if "certno" in table.column_names else []) \
        if persons is None else persons
    t["person_index"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    problems, count, good = validate(table, known, persons)
    t["validate"] = time.perf_counter() - t0
    if count:
        more = [] if count <= len(problems) else [Problem("ENR043", "", f"另有 {count - len(problems)} 处问题未列出")]
        raise ImportRejected(problems + more, source=f"{path.name}: {table.num_rows} 行, {count} 处问题")
    t0 = time.perf_counter()
    conn = session.connection()
    batch_id = conn.execute(insert(ImportBatch.__table__).returning(ImportBatch.__table__.c.id),
                            {"dept": dept, "source": path.name, "rows": good.num_rows, "recorded_at": ctx.at,
                             "recorded_by": ctx.opter}).scalar_one()
    touched = pa.table({"psn_no": good.column("psn_no").unique()})
    if conn.dialect.name != "sqlite":  # the single-person writers' lock (registry._lock), taken for every touched person
        psns = touched.column("psn_no").to_pylist()
        for i in range(0, len(psns), 5_000):
            conn.execute(select(Person.psn_no).where(Person.psn_no.in_(psns[i:i + 5_000])).with_for_update())
    existing = _touched_rows(session, CategoryFact, touched, _FACT_COLUMNS)
    legacy = _adopt_legacy(session, touched, existing, ctx)
    _bulk_insert(conn, CategoryFact.__table__, {
        "psn_no": good.column("psn_no"), "category": good.column("category"), "action": good.column("action"),
        "valid_from": good.column("valid_from"), "valid_to": good.column("valid_to"),
        "recognised_on": good.column("recognised_on")},
        {"dept": dept, "reason": f"名单导入 {path.name}", "batch_id": batch_id, "recorded_at": ctx.at,
         "recorded_by": ctx.opter})
    t["insert_facts"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    # the fold's input without reading back: stored facts keep their ids; adopted and new ones follow them in
    # recording order (only the order within one person matters)
    n = good.num_rows
    new = {"id": pa.array(range(2**42, 2**42 + n), pa.int64()), "psn_no": good.column("psn_no"),
           "category": good.column("category"), "action": good.column("action"),
           "valid_from": good.column("valid_from"), "valid_to": good.column("valid_to"),
           "dept": pa.array([dept] * n, pa.string())}
    n_proj = reproject(session, touched, [_facts_table(existing), _facts_table(legacy), pa.table(new)])
    t["projection"] = time.perf_counter() - t0
    audit(session, who, ctx, "category.import", "import_batch", str(batch_id),
          {"dept": dept, "source": path.name, "rows": good.num_rows, "persons": touched.num_rows})
    return ImportResult(batch_id, good.num_rows, touched.num_rows, n_proj, t)


def _bulk_insert(conn, table, columns: dict[str, pa.ChunkedArray | pa.Array], constants: dict, chunk: int = 50_000):
    """Insert many rows: driver-level executemany of tuples (SQLite) or multi-row VALUES (PostgreSQL)."""
    names = list(columns) + list(constants)
    pylists = [c.to_pylist() for c in columns.values()]
    consts = tuple(constants.values())
    n = len(pylists[0]) if pylists else 0
    if conn.dialect.name == "sqlite":
        sql = f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
        for i in range(0, n, chunk):
            conn.exec_driver_sql(sql, [tuple(col[j] for col in pylists) + consts for j in range(i, min(n, i + chunk))])
    else:
        for i in range(0, n, chunk):
            conn.execute(insert(table), [dict(zip(names, tuple(col[j] for col in pylists) + consts))
                                         for j in range(i, min(n, i + chunk))])


def _touched_rows(session: Session, model, touched: pa.Table, columns) -> pa.Table:
    """Rows of ``model`` for the touched persons, as Arrow (chunks of psn_no in IN lists)."""
    psns = touched.column("psn_no").to_pylist()
    out: dict[str, list] = {c.key: [] for c in columns}
    for i in range(0, len(psns), 5_000):
        for row in session.execute(select(*columns).where(model.psn_no.in_(psns[i:i + 5_000]))):
            for c, v in zip(columns, row):
                out[c.key].append(v)
    return out


_FACT_COLUMNS = [CategoryFact.id, CategoryFact.psn_no, CategoryFact.category, CategoryFact.action,
                 CategoryFact.valid_from, CategoryFact.valid_to, CategoryFact.dept]


def _facts_table(cols: dict[str, list]) -> pa.Table:
    return pa.table({"id": pa.array(cols["id"], pa.int64()), "psn_no": pa.array(cols["psn_no"], pa.string()),
                     "category": pa.array(cols["category"], pa.string()),
                     "action": pa.array(cols["action"], pa.string()),
                     "valid_from": pa.array(cols["valid_from"], pa.date32()),
                     "valid_to": pa.array(cols["valid_to"], pa.date32()),
                     "dept": pa.array(cols["dept"], pa.string())})


def _adopt_legacy(session: Session, touched: pa.Table, existing: dict[str, list], ctx: Context) -> dict[str, list]:
    """Persons with projection rows but no category facts get those rows as facts first (see registry);
    returns them as fold input (ids after every stored fact)."""
    has_facts = set(existing["psn_no"])
    legacy = _touched_rows(session, PersonCategory, touched,
                           [PersonCategory.psn_no, PersonCategory.category, PersonCategory.issuing_dept,
                            PersonCategory.valid_from, PersonCategory.valid_to, PersonCategory.id])
    keep = sorted((i for i, p in enumerate(legacy["psn_no"]) if p not in has_facts), key=lambda i: legacy["id"][i])
    rows = [{"psn_no": legacy["psn_no"][i], "category": legacy["category"][i], "action": "grant",
             "valid_from": legacy["valid_from"][i], "valid_to": legacy["valid_to"][i],
             "dept": legacy["issuing_dept"][i], "reason": "既有类别记录", "recorded_at": ctx.at,
             "recorded_by": ctx.opter} for i in keep]
    if rows:
        session.connection().execute(insert(CategoryFact.__table__), rows)
    return {"id": [2**41 + k for k in range(len(rows))], **{c: [r[c] for r in rows] for c in
            ("psn_no", "category", "action", "valid_from", "valid_to", "dept")}}


def reproject(session: Session, touched: pa.Table, facts: list[pa.Table]) -> int:
    """Replace ``person_categories`` of the touched persons with the set-based fold of all their facts."""
    proj = fold_table(pa.concat_tables(facts))
    conn = session.connection()
    psns = touched.column("psn_no").to_pylist()
    cats = PersonCategory.__table__
    for i in range(0, len(psns), 5_000):
        conn.execute(delete(cats).where(cats.c.psn_no.in_(psns[i:i + 5_000])))
    _bulk_insert(conn, cats, {c: proj.column(c) for c in ("psn_no", "category", "issuing_dept", "valid_from",
                                                           "valid_to")}, {})
    return proj.num_rows


def count_facts(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(CategoryFact)) or 0
