"""Catalogue versions in the store: all-or-nothing import of a national code table with a per-row report,
the version in force on a date feeding the settlement engine's classification, 限定支付范围 checks of a
visit, 集采 selected products with progress and 结余留用, and 双通道 drugs with their pharmacies.

Import: the file is read as text (CSV through DuckDB, .xlsx through openpyxl), every row is checked at once
in DuckDB SQL (:data:`CHECK_SQL`; the coded conditions in Python), and only a clean file is written: one
version row and its entries in bulk, in the caller's transaction. Any problem rejects the whole file with
a report naming each row (as a spreadsheet numbers it, header = row 1) and field.
"""

from __future__ import annotations

import hashlib
import time
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

import duckdb
import pyarrow as pa
from sqlalchemy import and_, func, insert, select
from sqlalchemy.orm import Session

from yibao.errors import Problem
from yibao.institutions.catalogue import (
    CLASS_ALIASES,
    CODE_RULE,
    CODE_SHAPE,
    HEADER,
    KINDS,
    REQUIRED,
    CatalogueConflict,
    CatalogueError,
    conditions_met,
    item_rule,
    parse_conditions,
)
from yibao.institutions.in_force import _in_force, versions_in_force
from yibao.institutions.models import InsCatalogueEntry, InsCatalogueVersion
from yibao.policy.loader import resolve_pack
from yibao.service import registry
from yibao.service.auth import Principal
from yibao.service.transactions import Context, audit, visit_for
from yibao.store.models import FeeItem, Institution, Person

MAX_PROBLEMS = 1000


def read_table(path: Path, columns: dict[str, str] = HEADER, required: tuple[str, ...] = REQUIRED,
               codes: tuple[str, str] = ("INS300", "INS301")) -> pa.Table:
    """The file's columns as text, headers mapped to fields (unknown columns dropped); ``codes`` (unreadable,
    missing a required column) otherwise. Also reads the price and 集采 files (:mod:`yibao.institutions.tariffs`)."""
    try:
        if path.suffix.lower() in (".xlsx", ".xlsm"):
            from openpyxl import load_workbook

            wb = load_workbook(path, read_only=True, data_only=True)
            rows = wb.active.iter_rows(values_only=True)
            header = [str(h or "").strip() for h in next(rows)]
            cols: list[list] = [[] for _ in header]
            for r in rows:
                for i in range(len(header)):
                    v = r[i] if i < len(r) else None
                    cols[i].append(None if v is None else v.isoformat() if isinstance(v, (date, datetime)) else str(v))
            table = pa.table({h: pa.array(c, pa.string()) for h, c in zip(header, cols)})
        else:
            rel = duckdb.read_csv(str(path), all_varchar=True, header=True)
            table = rel.arrow()
            table = table.read_all() if hasattr(table, "read_all") else table
    except (OSError, duckdb.Error, StopIteration, ValueError) as exc:
        raise CatalogueError(Problem(codes[0], path.name, f"无法读取文件: {exc.__class__.__name__}")) from None
    keep = {}
    for name in table.column_names:
        field = columns.get(name.strip()) or columns.get(name.strip().lower())
        if field and field not in keep:
            keep[field] = table.column(name).cast(pa.string())
    missing = [f for f in required if f not in keep]
    if missing:
        raise CatalogueError(Problem(codes[1], "header", f"缺少必需的列 {missing}; 可用表头见 docs/institutions.md"))
    n = table.num_rows
    return pa.table({f: keep.get(f, pa.nulls(n, pa.string())) for f in dict.fromkeys(columns.values())})


CHECK_SQL = """
WITH r AS (
  SELECT row_no, upper(trim(med_list_codg)) AS code, trim(name) AS name, trim(chrgitm_lv) AS lv_text,
         nullif(trim(preselfpay_ratio), '') AS pre, nullif(trim(pay_std), '') AS std,
         limit_text, spec, dosform, unit, producer
  FROM rows
), c AS (
  SELECT r.*, cls.lv_code AS lv,
         count(*) OVER (PARTITION BY r.code) AS dup, row_number() OVER (PARTITION BY r.code ORDER BY row_no) AS nth,
         min(row_no) OVER (PARTITION BY r.code) AS first_row
  FROM r LEFT JOIN classes cls ON cls.alias = r.lv_text
)
SELECT row_no, 'med_list_codg' AS field, 'INS302' AS code, '编码须为 ' || $rule || ', 实际为 ' || coalesce(code, '(空)') AS message
  FROM c WHERE code IS NULL OR NOT regexp_full_match(code, $shape)
UNION ALL SELECT row_no, 'med_list_codg', 'INS303', '编码 ' || code || ' 与第 ' || CAST(first_row AS VARCHAR) || ' 行重复'
  FROM c WHERE code IS NOT NULL AND dup > 1 AND nth > 1
UNION ALL SELECT row_no, 'name', 'INS304', '名称须填写, 不超过 200 个字符' FROM c WHERE name IS NULL OR name = '' OR length(name) > 200
UNION ALL SELECT row_no, 'chrgitm_lv', 'INS305', '甲乙类须为 甲类/乙类/丙类(或 01/02/03), 实际为 ' || coalesce(lv_text, '(空)')
  FROM c WHERE lv IS NULL
UNION ALL SELECT row_no, 'preselfpay_ratio', 'INS306', '先行自付比例须为 0 到 1 之间的小数(至多 6 位)或百分数, 实际为 ' || pre
  FROM c WHERE pre IS NOT NULL AND NOT (
    (regexp_full_match(pre, '0(\\.[0-9]{1,6})?') ) OR
    (regexp_full_match(pre, '[0-9]{1,2}(\\.[0-9]{1,4})?%')))
UNION ALL SELECT row_no, 'preselfpay_ratio', 'INS306', '只有乙类可以有先行自付比例' FROM c WHERE pre IS NOT NULL AND lv IN ('01', '03')
UNION ALL SELECT row_no, 'pay_std', 'INS307', '支付标准须为非负金额(元, 至多两位小数), 实际为 ' || std
  FROM c WHERE std IS NOT NULL AND NOT regexp_full_match(std, '[0-9]{1,12}(\\.[0-9]{1,2})?')
UNION ALL SELECT row_no, 'limit_text', 'INS308', '限定支付范围不超过 1000 个字符' FROM c WHERE length(limit_text) > 1000
UNION ALL SELECT row_no, 'spec', 'INS308', '规格不超过 200 个字符' FROM c WHERE length(spec) > 200
UNION ALL SELECT row_no, 'dosform', 'INS308', '剂型不超过 60 个字符' FROM c WHERE length(dosform) > 60
UNION ALL SELECT row_no, 'unit', 'INS308', '单位不超过 30 个字符' FROM c WHERE length(unit) > 30
UNION ALL SELECT row_no, 'producer', 'INS308', '生产企业不超过 200 个字符' FROM c WHERE length(producer) > 200
ORDER BY row_no, field
"""

GOOD_SQL = """
SELECT upper(trim(r.med_list_codg)) AS med_list_codg, trim(r.name) AS name, cls.lv_code AS chrgitm_lv,
       CASE WHEN nullif(trim(r.preselfpay_ratio), '') IS NULL THEN NULL
            WHEN ends_with(trim(r.preselfpay_ratio), '%')
              THEN CAST(CAST(rtrim(trim(r.preselfpay_ratio), '%') AS DECIMAL(10, 4)) / 100 AS DECIMAL(9, 6))
            ELSE CAST(trim(r.preselfpay_ratio) AS DECIMAL(9, 6)) END AS preselfpay_ratio,
       CAST(CAST(nullif(trim(r.pay_std), '') AS DECIMAL(16, 2)) * 100 AS BIGINT) AS pay_std_fen,
       nullif(trim(r.limit_text), '') AS limit_text, nullif(trim(r.limit_codes), '') AS limit_codes,
       nullif(trim(r.spec), '') AS spec, nullif(trim(r.dosform), '') AS dosform, nullif(trim(r.unit), '') AS unit,
       nullif(trim(r.producer), '') AS producer
FROM rows r JOIN classes cls ON cls.alias = trim(r.chrgitm_lv) ORDER BY r.row_no
"""


def validate(table: pa.Table, kind: str) -> tuple[list[Problem], int, pa.Table]:
    """(problems, how many, the clean rows) — every row checked at once."""
    db = duckdb.connect()
    try:
        rows = pa.table({"row_no": pa.array(range(2, table.num_rows + 2), pa.int64()),
                         **{c: table.column(c) for c in table.column_names}})
        db.register("rows", rows)
        db.register("classes", pa.table({"alias": list(CLASS_ALIASES), "lv_code": list(CLASS_ALIASES.values())}))
        params = {"shape": CODE_SHAPE[kind], "rule": CODE_RULE[kind]}
        found = db.execute(f"{CHECK_SQL}", params).fetchall()
        problems = [Problem(code, f"第{row}行.{fld}", msg) for row, fld, code, msg in found]
        for i, text in enumerate(table.column("limit_codes").to_pylist()):
            if text and text.strip():
                try:
                    parse_conditions(text)
                    if len(text.strip()) > 200:
                        raise ValueError("限定条件代码不超过 200 个字符")
                except ValueError as exc:
                    problems.append(Problem("INS309", f"第{i + 2}行.limit_codes", str(exc)))
        if problems:
            problems.sort(key=lambda p: int(p.path[1:p.path.index("行")]))
            return problems[:MAX_PROBLEMS], len(problems), pa.table({})
        good = db.execute(GOOD_SQL).arrow()
        return [], 0, good.read_all() if hasattr(good, "read_all") else good
    finally:
        db.close()


_ENTRY_COLUMNS = ["med_list_codg", "name", "chrgitm_lv", "preselfpay_ratio", "pay_std_fen", "limit_text", "limit_codes",
                  "spec", "dosform", "unit", "producer"]


def _bulk_insert(conn, version_id: int, good: pa.Table, chunk: int = 50_000) -> None:
    names = ["version_id"] + _ENTRY_COLUMNS
    cols = [good.column(c).to_pylist() for c in _ENTRY_COLUMNS]
    n = good.num_rows
    if conn.dialect.name == "sqlite":
        pre = cols[3]
        cols[3] = [None if v is None else str(v) for v in pre]  # Numeric on SQLite: the exact text
        sql = f"INSERT INTO ins_catalogue_entries ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
        for i in range(0, n, chunk):
            conn.exec_driver_sql(sql, [(version_id, *(c[j] for c in cols)) for j in range(i, min(n, i + chunk))])
    else:
        table = InsCatalogueEntry.__table__
        for i in range(0, n, chunk):
            conn.execute(insert(table), [dict(zip(names, (version_id, *(c[j] for c in cols))))
                                         for j in range(i, min(n, i + chunk))])


def import_version(session: Session, who: Principal, ctx: Context, path: Path, *, kind: str, version: str,
                   effective_from: date, default_preselfpay: Decimal | str = Decimal("0.10")) -> dict:
    """Import one national code table as a new version (all rows or none)."""
    who.require("catalogue.write")
    problems = []
    if kind not in KINDS:
        problems.append(Problem("INS310", "kind", f"目录类别须为 {'/'.join(KINDS)}({'/'.join(KINDS.values())})"))
    if not version or len(version) > 40:
        problems.append(Problem("INS310", "version", "版本号须填写, 不超过 40 个字符"))
    try:
        share = Decimal(str(default_preselfpay))
        if not (0 <= share < 1) or -share.normalize().as_tuple().exponent > 6:
            raise InvalidOperation
    except (InvalidOperation, ValueError):
        problems.append(Problem("INS306", "default_preselfpay", "乙类默认先行自付比例须为 0 到 1 之间的小数(至多 6 位)"))
        share = Decimal(0)
    if problems:
        raise CatalogueError(problems)
    clash = session.execute(select(InsCatalogueVersion.version, InsCatalogueVersion.effective_from).where(
        InsCatalogueVersion.kind == kind, (InsCatalogueVersion.version == version)
        | (InsCatalogueVersion.effective_from == effective_from))).first()
    if clash:
        raise CatalogueConflict(Problem("INS311", "version", f"{KINDS[kind]}目录已有版本 {clash.version}"
                                        f"(生效 {clash.effective_from}); 版本号与生效日期都不能重复"))
    timings = {}
    t0 = time.perf_counter()
    data = path.read_bytes() if path.exists() else b""
    table = read_table(path)
    timings["read_s"] = round(time.perf_counter() - t0, 3)
    t0 = time.perf_counter()
    problems, count, good = validate(table, kind)
    timings["validate_s"] = round(time.perf_counter() - t0, 3)
    if count:
        more = [] if count <= len(problems) else [Problem("INS312", "", f"另有 {count - len(problems)} 处问题未列出")]
        raise CatalogueError(problems + more, source=f"{path.name}: {table.num_rows} 行, {count} 处问题")
    if good.num_rows == 0:
        raise CatalogueError(Problem("INS312", path.name, "文件没有数据行"))
    t0 = time.perf_counter()
    conn = session.connection()
    version_id = conn.execute(insert(InsCatalogueVersion.__table__).returning(InsCatalogueVersion.__table__.c.id), {
        "kind": kind, "version": version, "effective_from": effective_from, "default_preselfpay": share,
        "source": path.name[:200], "sha256": hashlib.sha256(data).hexdigest(), "rows": good.num_rows,
        "imported_by": who.name, "imported_at": ctx.at}).scalar_one()
    _bulk_insert(conn, version_id, good)
    timings["insert_s"] = round(time.perf_counter() - t0, 3)
    audit(session, who, ctx, "catalogue.import", "catalogue_version", str(version_id),
          {"kind": kind, "version": version, "effective_from": str(effective_from), "rows": good.num_rows,
           "source": path.name})
    return {"version_id": version_id, "kind": kind, "version": version, "effective_from": str(effective_from),
            "rows": good.num_rows, "default_preselfpay": str(share), "timings": timings}


def versions(session: Session, who: Principal) -> list[dict]:
    who.require("institution.read")
    return [{"version_id": v.id, "kind": v.kind, "kind_name": KINDS[v.kind], "version": v.version,
             "effective_from": str(v.effective_from), "rows": v.rows, "default_preselfpay": str(v.default_preselfpay),
             "source": v.source, "sha256": v.sha256, "imported_by": v.imported_by}
            for v in session.scalars(select(InsCatalogueVersion).order_by(InsCatalogueVersion.kind,
                                                                           InsCatalogueVersion.effective_from))]


def entry_on(session: Session, who: Principal, med_list_codg: str, on: date) -> dict:
    """A code as the catalogue in force on ``on`` has it (which version, class, share, 支付标准, limits)."""
    who.require("institution.read")
    ids = versions_in_force(session, on)
    row = session.execute(select(InsCatalogueEntry, InsCatalogueVersion).join(
        InsCatalogueVersion, InsCatalogueVersion.id == InsCatalogueEntry.version_id).where(
        InsCatalogueEntry.med_list_codg == med_list_codg, InsCatalogueEntry.version_id.in_(ids or (-1,)))).first()
    if row is None:
        raise CatalogueError(Problem("INS313", "med_list_codg", f"{on} 生效的目录中没有编码 {med_list_codg}"))
    e, v = row
    rule = item_rule(e.chrgitm_lv, e.preselfpay_ratio, Decimal(v.default_preselfpay), e.pay_std_fen)
    return {"med_list_codg": e.med_list_codg, "name": e.name, "kind": v.kind, "version": v.version,
            "effective_from": str(v.effective_from), "chrgitm_lv": e.chrgitm_lv,
            "preselfpay_ratio": str(Decimal(rule.pre_num) / rule.pre_den) if rule.in_scope else None,
            "pay_std": None if e.pay_std_fen is None else str(Decimal(e.pay_std_fen) / 100),
            "limit_text": e.limit_text, "limit_codes": e.limit_codes}


def limit_hits(session: Session, who: Principal, mdtrt_id: str) -> dict:
    """事后审核 of a visit against the 限定支付范围 of the catalogue in force on its date: each fee line whose
    code carries coded conditions the visit does not meet (sex, age, institution level, med_type, diagnosis)."""

    v = visit_for(session, who, mdtrt_id, "settlement.read")
    on = v.begntime.date()
    ids = versions_in_force(session, on)
    p = session.get(Person, v.psn_no)
    inst = session.get(Institution, v.fixmedins_code)
    lines = session.execute(select(FeeItem.feedetl_sn, FeeItem.med_list_codg, FeeItem.det_item_fee_sumamt_fen,
                                   InsCatalogueEntry.limit_codes, InsCatalogueEntry.limit_text).join(
        InsCatalogueEntry, and_(InsCatalogueEntry.med_list_codg == FeeItem.med_list_codg,
                                InsCatalogueEntry.version_id.in_(ids or (-1,)))).where(
        FeeItem.mdtrt_id == mdtrt_id, InsCatalogueEntry.limit_codes.is_not(None)).order_by(FeeItem.feedetl_sn)).all()
    hits = []
    for sn, code, amount, codes, text in lines:
        ok, clause = conditions_met(parse_conditions(codes), gend=p.gend, age=registry.age_on(p.brdy, on),
                                    level=inst.level if inst else "", med_type=v.med_type, dise_codg=v.dise_codg)
        if not ok:
            hits.append({"feedetl_sn": sn, "med_list_codg": code, "amount_fen": int(amount), "failed": clause,
                         "limit_text": text})
    return {"mdtrt_id": mdtrt_id, "on": str(on), "versions": list(ids), "hits": hits,
            "amount_fen": sum(h["amount_fen"] for h in hits)}


def count_entries(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(InsCatalogueEntry)))


def export_pack(session: Session, who: Principal, *, policy: str, on: date, path: Path) -> dict:
    """A policy pack extending ``policy`` whose catalogue is the one in force on ``on`` (the pack's own entries
    overlaid with every kind's version, 乙类 shares made explicit): batch settlement, simulation and audit read
    the same classification the online service uses that day (one definition, two executions)."""
    import yaml

    who.require("institution.read")
    base = resolve_pack(policy)
    found = _in_force(session, on)
    if not found:
        raise CatalogueError(Problem("INS313", "on", f"{on} 没有生效的目录版本"))
    entries: dict[str, dict] = {e.med_list_codg: e.model_dump(mode="json", exclude_none=True)
                                for e in base.classification.catalog}
    e = InsCatalogueEntry.__table__
    for vid, (_sha, share) in found:
        for code, name, lv, pre, std in session.execute(select(e.c.med_list_codg, e.c.name, e.c.chrgitm_lv,
                                                               e.c.preselfpay_ratio, e.c.pay_std_fen)
                                                        .where(e.c.version_id == vid).order_by(e.c.med_list_codg)):
            item = {"med_list_codg": code, "name": name, "chrgitm_lv": lv}
            if lv == "02":
                item["preselfpay_ratio"] = str(Decimal(pre if pre is not None else share).normalize())
            if std is not None:
                item["price_cap"] = str(Decimal(std) / 100)
            entries[code] = item
    for code, item in entries.items():
        if item["chrgitm_lv"] not in base.classification.classes:
            raise CatalogueError(Problem("INS314", f"catalog.{code}", f"政策包 {policy} 没有收费项目等级 {item['chrgitm_lv']}"))
    ids = "-".join(str(vid) for vid, _ in found)
    data = {"extends": policy,
            "pack": {"id": f"{base.pack.id}-cat", "name": f"{base.pack.name}(目录 {on} 生效版本)",
                     "version": f"{base.pack.version}+catalogue{ids}"},
            "classification": {"catalog": list(entries.values())}}
    path.write_text("# 由 yibao institutions catalogue export 生成: 目录为 "
                    f"{on} 生效的版本 {ids}\n" + yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return {"path": str(path), "pack_id": data["pack"]["id"], "version": data["pack"]["version"], "entries": len(entries),
            "versions": [vid for vid, _ in found]}
