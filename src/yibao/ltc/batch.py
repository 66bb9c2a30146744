"""A region's care records settled person-month by person-month, with the same functions as one month online.

DuckDB reads and checks the files (Parquet or CSV: ``ltc_persons``, ``ltc_assessments``,
``ltc_records``, and ``visits`` for inpatient stays when present) and hands each person's records
over in order; :func:`yibao.ltc.settle.settle_month` and :func:`yibao.ltc.audit.audit_month` do
the rest. Every row is checked first and a bad file is refused whole, naming the row and column.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from yibao.claims.schema import decimal_array
from yibao.errors import Problem
from yibao.ltc.assess import LtcError
from yibao.ltc.audit import LtcHit, audit_month
from yibao.ltc.settle import CarePerson, CareRecord, LevelSpan, LtcSettlement, settle_month
from yibao.policy.model import LongTermCare
from yibao.reports import publish
from yibao.sql import q

# column → (check as SQL on the text value v, what it must be)
TEXT = ("v IS NOT NULL AND length(v) BETWEEN 1 AND 40", "非空文本(不超过 40 字)")
DATE = ("TRY_CAST(v AS DATE) IS NOT NULL", "日期 YYYY-MM-DD")
OPT_DATE = ("v IS NULL OR TRY_CAST(v AS DATE) IS NOT NULL", "日期 YYYY-MM-DD 或空")
COLUMNS = {
    "ltc_persons": {"psn_no": TEXT, "insutype": TEXT, "enrolled_since": OPT_DATE, "death_date": OPT_DATE},
    "ltc_assessments": {"assessment_id": TEXT, "psn_no": TEXT, "level": TEXT, "begin": DATE, "end": DATE},
    "ltc_records": {
        "srv_id": TEXT, "psn_no": TEXT, "fixmedins_code": TEXT, "srv_date": DATE,
        "days": ("TRY_CAST(v AS INTEGER) BETWEEN 1 AND 31", "1–31 的整数"),
        "mode": ("v IN ('institution', 'home', 'visit')", "institution/home/visit"),
        "item_class": ("v IN ('care', 'medical_care', 'bed', 'meals', 'other')", "care/medical_care/bed/meals/other"),
        "amount": (r"regexp_full_match(v, '[0-9]{1,13}(\.[0-9]{1,2})?')", "不小于 0 的金额(元), 最多两位小数"),
        "srv_level": ("v IS NULL OR length(v) BETWEEN 1 AND 40", "失能等级代码或空"),
    },
}


@dataclass
class Region:
    persons: dict[str, CarePerson]
    records: dict[tuple[str, str], list[CareRecord]]  # (psn_no, YYYY-MM) → records, date order
    srv_levels: dict[str, str]
    stays: dict[str, list[tuple[date, date]]]  # inpatient stays of the persons in ``persons``


def _source(path: Path) -> str:
    reader = "read_csv" if path.suffix.lower() == ".csv" else "read_parquet"
    extra = ", all_varchar = true, header = true" if reader == "read_csv" else ""
    return f"{reader}({q(path.as_posix())}{extra})"


def find(data_dir: Path, name: str) -> Path | None:
    for suffix in (".parquet", ".csv"):
        if (data_dir / f"{name}{suffix}").exists():
            return data_dir / f"{name}{suffix}"
    return None


def open_inputs(con: duckdb.DuckDBPyConnection, data_dir: Path) -> None:
    """Views ``ltc_persons``, ``ltc_assessments``, ``ltc_records`` of text columns, every row checked (LTC020–LTC022)."""
    problems = []
    for name, columns in COLUMNS.items():
        path = find(data_dir, name)
        if path is None:
            problems.append(Problem("LTC020", str(data_dir / f"{name}.parquet"), "文件不存在(Parquet 或 CSV)"))
            continue
        try:
            have = {r[0] for r in con.sql(f"DESCRIBE SELECT * FROM {_source(path)}").fetchall()}
        except duckdb.Error as exc:
            problems.append(Problem("LTC020", str(path), f"无法读取: {str(exc).splitlines()[0]}"))
            continue
        missing = [c for c in columns if c not in have]
        if missing:
            problems += [Problem("LTC021", f"{path.name}.{c}", f"缺少列 {c}") for c in missing]
            continue
        cols = ", ".join(f"CAST({q_ident(c)} AS VARCHAR) AS {q_ident(c)}" for c in columns)
        con.sql(f"CREATE OR REPLACE VIEW {name} AS SELECT row_number() OVER () AS row_no, {cols} FROM {_source(path)}")
        # one pass says which columns break their rule; only those are read again for the rows to name
        for k, (check, _) in enumerate(columns.values()):  # each rule on its value v, as a macro
            con.sql(f"CREATE OR REPLACE TEMP MACRO {name}_ok_{k}(v) AS coalesce({check}, false)")
        fails = con.sql("SELECT " + ", ".join(f"bool_or(NOT {name}_ok_{k}({q_ident(c)}))" for k, c in enumerate(columns))
                        + f" FROM {name}").fetchone()
        for (column, (check, want)), failed in zip(columns.items(), fails):
            if not failed:
                continue
            bad = con.sql(f"SELECT row_no, v FROM (SELECT row_no, {q_ident(column)} AS v FROM {name}) "
                          f"WHERE NOT coalesce({check}, false) ORDER BY row_no LIMIT 3").fetchall()
            for row_no, value in bad:
                problems.append(Problem("LTC022", f"{path.name}[第 {row_no} 行].{column}", f"应为{want}, 实际为 {value!r}"))
    if problems:
        raise LtcError(problems)


def q_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def load(con: duckdb.DuckDBPyConnection, data_dir: Path) -> Region:
    open_inputs(con, data_dir)
    spans: dict[str, list[LevelSpan]] = defaultdict(list)
    for psn, level, begin, end, aid in con.sql("""SELECT psn_no, level, CAST(begin AS DATE), CAST("end" AS DATE),
            assessment_id FROM ltc_assessments ORDER BY psn_no, CAST(begin AS DATE)""").fetchall():
        spans[psn].append(LevelSpan(level, begin, end, aid))
    persons = {psn: CarePerson(psn, insutype, tuple(spans.get(psn, ())), since, death)
               for psn, insutype, since, death in con.sql("""SELECT psn_no, insutype, CAST(enrolled_since AS DATE),
                   CAST(death_date AS DATE) FROM ltc_persons""").fetchall()}
    records: dict[tuple[str, str], list[CareRecord]] = defaultdict(list)
    levels = {}
    unknown = []
    for row_no, sid, psn, code, day, month, days, mode, item, fen, lv in con.sql("""SELECT row_no, srv_id, psn_no,
            fixmedins_code, CAST(srv_date AS DATE), strftime(CAST(srv_date AS DATE), '%Y-%m'), CAST(days AS INTEGER),
            mode, item_class, CAST(CAST(amount AS DECIMAL(18, 2)) * 100 AS BIGINT), srv_level
            FROM ltc_records ORDER BY psn_no, CAST(srv_date AS DATE), srv_id""").fetchall():
        if psn not in persons:
            unknown.append(Problem("LTC023", f"ltc_records[第 {row_no} 行].psn_no", f"人员 {psn} 不在 ltc_persons 中"))
            continue
        records[(psn, month)].append(CareRecord(sid, day, mode, item, fen, days, code))
        if lv is not None:
            levels[sid] = lv
    homes = find(data_dir, "ltc_institutions")
    if homes is not None:  # only designated care institutions, for the modes they are designated for
        modes = {code: set(m) for code, m in con.sql(f"SELECT fixmedins_code, modes FROM {_source(homes)}").fetchall()}
        pairs = con.sql("SELECT DISTINCT fixmedins_code, mode FROM ltc_records").fetchall()
        if any(mode not in modes.get(code, ()) for code, mode in pairs):  # rows are named only when one is wrong
            for row_no, sid, code, mode in con.sql("SELECT row_no, srv_id, fixmedins_code, mode FROM ltc_records").fetchall():
                if mode not in modes.get(code, ()):
                    unknown.append(Problem("LTC045", f"ltc_records[第 {row_no} 行].fixmedins_code",
                                           f"机构 {code} 不是{mode}护理的定点护理机构(见 ltc_institutions)"))
    if unknown:
        raise LtcError(unknown[:20])
    stays: dict[str, list[tuple[date, date]]] = defaultdict(list)
    visits = find(data_dir, "visits")
    if visits is not None:
        for psn, begin, end in con.sql(f"""SELECT psn_no, CAST(begntime AS DATE), CAST(endtime AS DATE)
                FROM {_source(visits)} WHERE med_type = '21' AND CAST(psn_no AS VARCHAR) IN (SELECT psn_no FROM ltc_persons)""").fetchall():
            stays[psn].append((begin, end))
    return Region(persons, dict(records), levels, dict(stays))


def settle_region(ltc: LongTermCare, region: Region) -> tuple[list[LtcSettlement], list[LtcHit]]:
    """Every person-month, settled and audited; problems of all months reported together."""
    settled, hits, problems = [], [], []
    for (psn, month), recs in sorted(region.records.items()):
        person = region.persons[psn]
        try:
            settled.append(settle_month(ltc, person, month, recs))
        except LtcError as exc:
            problems += [Problem(p.code, f"{psn} {month} {p.path}", p.message) for p in exc.problems]
            continue
        hits += audit_month(ltc, person, month, recs, region.srv_levels, region.stays.get(psn, ()))
    if problems:
        raise LtcError(problems[:50])
    return settled, hits


MONEY = pa.decimal128(16, 2)


def tables(settled: list[LtcSettlement], hits: list[LtcHit]) -> dict[str, pa.Table]:
    """Output tables in yuan (decimal(16,2)): one row per person-month, per benefit line, per exclusion, per hit.

    Built column by column from the integer fen (the yuan are the same fen with two decimals)."""
    def money(fen: list[int]) -> pa.Array:
        return decimal_array(np.array(fen, dtype=np.int64), MONEY)

    def text(values: list[str]) -> pa.Array:
        return pa.array(values, pa.string())

    amounts = ("ltc_sumamt", "excluded_amt", "over_limit_amt", "allowed_amt", "fund_pay", "psn_pay")
    months = pa.Table.from_arrays(
        [text([s.psn_no for s in settled]), text([s.month for s in settled])]
        + [money([getattr(s, c) for s in settled]) for c in amounts],
        schema=pa.schema([("psn_no", pa.string()), ("month", pa.string())] + [(c, MONEY) for c in amounts]))
    pairs = [(s, ln) for s in settled for ln in s.lines]
    line_amounts = ("covered", "allowed", "over_limit", "pay")
    lines = pa.Table.from_arrays(
        [text([s.psn_no for s, _ in pairs]), text([s.month for s, _ in pairs]),
         text([ln.benefit_id for _, ln in pairs]), text([ln.mode for _, ln in pairs]),
         text([ln.ratio for _, ln in pairs]), pa.array([ln.units for _, ln in pairs], pa.int32())]
        + [money([getattr(ln, c) for _, ln in pairs]) for c in line_amounts],
        schema=pa.schema([("psn_no", pa.string()), ("month", pa.string()), ("benefit_id", pa.string()),
                          ("mode", pa.string()), ("ratio", pa.string()), ("units", pa.int32())]
                         + [(c, MONEY) for c in line_amounts]))
    out = [(s, sid, reason, fen) for s in settled for sid, reason, fen in s.excluded]
    excluded = pa.Table.from_arrays(
        [text([s.psn_no for s, *_ in out]), text([s.month for s, *_ in out]), text([x[1] for x in out]),
         text([x[2] for x in out]), money([x[3] for x in out])],
        schema=pa.schema([("psn_no", pa.string()), ("month", pa.string()), ("srv_id", pa.string()),
                          ("reason", pa.string()), ("amount", MONEY)]))
    hit_rows = pa.Table.from_arrays(
        [text([h.rule_id for h in hits]), text([h.rule_name for h in hits]), text([h.psn_no for h in hits]),
         text([h.month for h in hits]), pa.array([list(h.srv_ids) for h in hits], pa.list_(pa.string())),
         money([h.amount for h in hits]), text([h.reason for h in hits])],
        schema=pa.schema([("rule_id", pa.string()), ("rule_name", pa.string()), ("psn_no", pa.string()),
                          ("month", pa.string()), ("srv_ids", pa.list_(pa.string())), ("amount", MONEY),
                          ("reason", pa.string())]))
    return {"ltc_settlements": months, "ltc_lines": lines, "ltc_excluded": excluded, "ltc_hits": hit_rows}


def write_outputs(out_dir: Path, settled: list[LtcSettlement], hits: list[LtcHit]) -> dict[str, Path]:
    """Write every table whole or none (:func:`yibao.reports.publish`)."""
    def build(tmp: Path) -> dict[str, Path]:
        out = {}
        for name, table in tables(settled, hits).items():
            pq.write_table(table, tmp / f"{name}.parquet")
            out[name] = tmp / f"{name}.parquet"
        return out

    return publish(out_dir, build, lambda m: LtcError(Problem("LTC030", "--out", m)))
