"""应保尽保: a population roster (户籍/民政/乡村振兴 extract) against the registry; 参保率 by area, category, month.

Nothing of the roster is stored (it holds 证件号 of people who may not be insured at all): the
report is computed in DuckDB and returned, 证件号 and names masked.
"""

from __future__ import annotations

import zipfile
from datetime import date, timedelta
from pathlib import Path

import duckdb
import fastexcel
import pyarrow as pa
from sqlalchemy import select
from sqlalchemy.orm import Session

from yibao.enrolment.importer import EXCEL, ImportRejected, certno_index, read_excel
from yibao.errors import Problem
from yibao.privacy import mask_certno_sql
from yibao.store.models import Enrollment

ROSTER_COLUMNS = {"证件号码": "certno", "身份证号": "certno", "certno": "certno", "姓名": "psn_name",
                  "psn_name": "psn_name", "区划": "admdvs", "户籍地": "admdvs", "admdvs": "admdvs",
                  "类别": "category", "人员类别": "category", "category": "category"}


def read_roster(path: Path) -> pa.Table:
    """CSV (DuckDB) or .xlsx (fastexcel, as the category lists are read: :func:`importer.read_excel`)."""
    try:
        if path.suffix.lower() in EXCEL:
            t = read_excel(path)
        else:
            t = duckdb.read_csv(str(path), all_varchar=True, header=True).arrow()
            t = t.read_all() if hasattr(t, "read_all") else t
    except (OSError, duckdb.Error, ValueError, KeyError, zipfile.BadZipFile, fastexcel.FastExcelError) as exc:
        raise ImportRejected(Problem("ENR070", path.name, f"无法读取人口名单: {exc.__class__.__name__}")) from None
    t = t.rename_columns([ROSTER_COLUMNS.get(c.strip(), c.strip()) for c in t.column_names])
    if "certno" not in t.column_names or "admdvs" not in t.column_names:
        raise ImportRejected(Problem("ENR071", "header", "人口名单须含 证件号码 与 区划 两列"))
    if "category" not in t.column_names:
        t = t.append_column("category", pa.array([""] * t.num_rows, pa.string()))
    return t


def _enrollments(session: Session) -> pa.Table:
    rows = session.execute(select(Enrollment.psn_no, Enrollment.valid_from, Enrollment.valid_to)).all()
    return pa.table({"psn_no": pa.array([r[0] for r in rows], pa.string()),
                     "valid_from": pa.array([r[1] for r in rows], pa.date32()),
                     "valid_to": pa.array([r[2] for r in rows], pa.date32())})


def report(session: Session, roster: pa.Table, months: list[date]) -> dict:
    """Who on the roster is enrolled nowhere on the last of ``months``, and 参保率 per area/category/month."""
    db = duckdb.connect()
    try:
        db.register("roster", roster.select(["certno", "admdvs", "category"]))
        db.register("persons", certno_index(session, roster.column("certno").to_pylist()))
        db.register("enr", _enrollments(session))
        db.register("months", pa.table({"m": pa.array(months, pa.date32())}))
        base = """
          WITH r AS (SELECT DISTINCT upper(trim(certno)) AS certno, trim(admdvs) AS admdvs,
                                     coalesce(trim(category), '') AS category FROM roster),
          rp AS (SELECT r.*, p.psn_no FROM r LEFT JOIN persons p ON p.certno = r.certno),
          cov AS (SELECT rp.*, months.m,
                         EXISTS (SELECT 1 FROM enr WHERE enr.psn_no = rp.psn_no AND enr.valid_from <= months.m
                                 AND months.m <= enr.valid_to) AS covered
                  FROM rp CROSS JOIN months)"""
        rates = db.execute(base + """
          SELECT admdvs, category, strftime(m, '%Y-%m') AS month, count(*) AS population,
                 count(*) FILTER (WHERE covered) AS enrolled,
                 round(100.0 * count(*) FILTER (WHERE covered) / count(*), 2) AS rate
          FROM cov GROUP BY ALL ORDER BY admdvs, category, month""").fetchall()
        last = max(months)
        missing = db.execute(base + f"""
          SELECT admdvs, category, {mask_certno_sql('certno')} AS certno, psn_no IS NOT NULL AS known
          FROM cov WHERE m = ? AND NOT covered ORDER BY admdvs, category, certno""", [last]).fetchall()
    finally:
        db.close()
    return {"on": last.isoformat(),
            "rates": [{"admdvs": a, "category": c, "month": m, "population": n, "enrolled": e, "rate": float(r)}
                      for a, c, m, n, e, r in rates],
            "not_enrolled": [{"admdvs": a, "category": c, "certno": x,
                              "registry": "有人员记录但未参保" if k else "无人员记录"} for a, c, x, k in missing]}


def month_ends(start: date, end: date) -> list[date]:
    out, d = [], date(start.year, start.month, 1)
    while d <= end:
        nxt = date(d.year + (d.month == 12), d.month % 12 + 1, 1)
        out.append(min(nxt - timedelta(days=1), end))
        d = nxt
    return out
