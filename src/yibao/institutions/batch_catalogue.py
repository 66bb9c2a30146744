"""Batch settlement and batch audit with the catalogue in force on each visit's date, read from the catalogue store.

The online service classifies a visit with :func:`yibao.institutions.in_force.pack_in_force` (the pack overlaid with
every kind's catalogue version in force on the visit's start date). A claims directory spans many dates, so its
visits are cut into **segments** over which the catalogue in force does not change (the versions' effective dates
are the cuts); each segment's fee lines are classified by the batch's own SQL (``yibao.batch.inputs``) with the pack
``pack_in_force`` gives for that segment. One classification definition, two executions: the online service and
the batch read the very same per-code rules, and the test proves the amounts equal to the fen.

A line whose code is in no version in force on its visit's date and that carries no class of its own is refused
per segment (BAT007, naming the dates), exactly as the service refuses it (SET021). Nothing is settled then.

The batch audit does the same: each visit's lines are checked against the coded 限定支付范围 conditions of the
version in force on its date with :func:`yibao.institutions.catalogue.conditions_met` (the function of the service's
``/catalogue/visits/{mdtrt_id}/limits``), and against the service-item price in force for the institution level on
that date with :func:`yibao.institutions.prices.excess_fen` (the function of online price monitoring).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

import pyarrow as pa
from sqlalchemy import distinct, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from yibao.batch.inputs import classification_query
from yibao.batch.run import BatchRun, register_pack
from yibao.batch.validate import SAMPLE, BatchError, applicability_checks
from yibao.errors import Problem
from yibao.institutions.catalogue import (
    CatalogueError,
    conditions_met,
    parse_conditions,
)
from yibao.institutions.in_force import pack_in_force, versions_in_force
from yibao.institutions.models import (
    InsCatalogueEntry,
    InsCatalogueVersion,
    InsPriceEvent,
    InsVbpProduct,
)
from yibao.institutions.prices import excess_fen
from yibao.policy.compiled import CompiledPack
from yibao.sql import q
from yibao.store.database import make_engine


@dataclass(frozen=True)
class Segment:
    """Visits starting in ``[first, until)`` (``None``: unbounded) all see the same catalogue versions."""

    first: date | None
    until: date | None
    versions: tuple[int, ...]

    def where(self, column: str = "begntime") -> str:
        parts = []
        if self.first is not None:
            parts.append(f"CAST({column} AS DATE) >= DATE {q(str(self.first))}")
        if self.until is not None:
            parts.append(f"CAST({column} AS DATE) < DATE {q(str(self.until))}")
        return " AND ".join(parts) or "TRUE"

    def label(self) -> str:
        last = "" if self.until is None else str(self.until - timedelta(days=1))
        return f"{self.first or ''}–{last}"


def segments(session: Session, first: date, last: date) -> list[Segment]:
    """The date ranges covering ``first``..``last`` over which the catalogue in force does not change."""
    v = InsCatalogueVersion
    cuts = sorted(session.scalars(select(distinct(v.effective_from)).where(v.effective_from > first,
                                                                            v.effective_from <= last)))
    bounds: list[date | None] = [None, *cuts, None]
    return [Segment(a, b, versions_in_force(session, a or first)) for a, b in zip(bounds, bounds[1:])]


def open_catalogue(url: str):
    """An engine on the store holding the catalogue versions (``yibao institutions catalogue import``)."""

    try:
        engine = make_engine(url)
        with engine.connect() as conn:
            conn.execute(select(InsCatalogueVersion.id).limit(1))
        return engine
    except (SQLAlchemyError, OSError, ValueError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CatalogueError(Problem("INS330", "--catalogue-db",
                                     f"无法读取目录库(须为已 yibao db upgrade 的医保库 URL): {reason}")) from None


def _visit_dates(con) -> tuple[date, date] | None:
    first, last = con.sql("SELECT min(CAST(begntime AS DATE)), max(CAST(begntime AS DATE)) FROM visits").fetchone()
    return None if first is None else (first, last)


def classify_in_force(run: BatchRun, pack: CompiledPack, session: Session) -> CompiledPack:
    """Classify the run's fee lines, each with the catalogue in force on its visit's start date, into ``classified``.

    Returns the pack to settle with: ``pack``'s rules and a catalogue holding every code of every segment, so the
    batch's later whole-table checks pass the lines each segment already checked (BAT007 per segment here)."""
    con = run.con
    t = time.perf_counter()
    span = _visit_dates(con)
    undated = con.sql("SELECT COUNT(*), list(mdtrt_id ORDER BY mdtrt_id)[1:5] FROM visits WHERE begntime IS NULL").fetchone()
    if undated[0]:
        raise BatchError(Problem("INS331", "visits.begntime", f"就诊开始时间缺失, 无法确定就诊日生效的目录版本: "
                                                             f"{undated[0]:,} 次就诊, 如 {'、'.join(undated[1])}"))
    segs = segments(session, *span) if span else [Segment(None, None, ())]
    # the run's fee_items (a view over the files, or a table) is set aside and each segment's lines put in its
    # place, so the batch's own checks and classification run on them unchanged
    kind = "VIEW" if con.sql("SELECT 1 FROM duckdb_views() WHERE view_name = 'fee_items'").fetchone() else "TABLE"
    con.sql(f"ALTER {kind} fee_items RENAME TO fee_items__all")
    problems: list[Problem] = []
    union = copy.copy(pack)
    union.catalog = dict(pack.catalog)
    try:
        register_pack(run, pack)  # the result's columns, from the batch's own query
        con.sql(f"CREATE OR REPLACE TABLE classified AS {classification_query('fee_items__all')} LIMIT 0")
        for seg in segs:
            seg_pack = pack_in_force(session, pack, seg.first or (span[0] if span else date.min))
            con.sql(f"CREATE OR REPLACE VIEW fee_items AS SELECT i.* FROM fee_items__all i WHERE i.mdtrt_id IN "
                    f"(SELECT mdtrt_id FROM visits WHERE {seg.where()})")
            register_pack(run, seg_pack)
            code, path, message, sql = next(c for c in applicability_checks(seg_pack) if c[0] == "BAT007")
            count, sample = con.sql(f"SELECT COUNT(*), list(id ORDER BY id)[1:{SAMPLE}] FROM ({sql})").fetchone()
            if count:
                problems.append(Problem(code, path, f"{message}(就诊开始日 {seg.label()} 生效的目录版本 "
                                                    f"{list(seg.versions) or '无'}): {count:,} 行, 如 {'、'.join(map(str, sample))}"))
                continue
            con.sql(f"INSERT INTO classified {classification_query('fee_items')}")
            union.catalog.update(seg_pack.catalog)
    finally:
        con.sql("DROP VIEW IF EXISTS fee_items")
        con.sql(f"ALTER {kind} fee_items__all RENAME TO fee_items")
    if problems:
        con.sql("DROP TABLE IF EXISTS classified")
        raise BatchError(problems)
    union.catalogue_versions = tuple(sorted({v for s in segs for v in s.versions}))
    register_pack(run, union)
    run.timings["classify"] = time.perf_counter() - t
    return union


def classify_from_store(run: BatchRun, pack: CompiledPack, url: str) -> CompiledPack:
    """:func:`classify_in_force` reading the catalogue store at ``url`` (the ``--catalogue-db`` option)."""
    engine = open_catalogue(url)
    try:
        with Session(engine) as session:
            return classify_in_force(run, pack, session)
    finally:
        engine.dispose()


# --- 限定支付范围 in batch audit ------------------------------------------------------------------------

LIMIT_RULE = ("SV-CAT-LIMIT", "超限定支付范围(目录)")


def limit_hits(con, session: Session) -> pa.Table:
    """Every fee line of the claims (DuckDB views ``visits``, ``persons``, ``institutions``, ``fee_items``) whose code
    carries coded conditions, in the catalogue version in force on its visit's start date, that the visit does not
    meet. Columns: mdtrt_id, feedetl_sn, fixmedins_code, med_list_codg, amount (fen), failed, limit_text."""
    span = _visit_dates(con)
    rows: list[dict] = []
    e = InsCatalogueEntry.__table__
    for seg in segments(session, *span) if span else []:
        limited = session.execute(select(e.c.med_list_codg, e.c.limit_codes, e.c.limit_text).where(
            e.c.version_id.in_(seg.versions or (-1,)), e.c.limit_codes.is_not(None))).all()
        if not limited:
            continue
        con.register("cat_limited", pa.table({"med_list_codg": [r[0] for r in limited]}))
        conds = {code: (parse_conditions(codes), text) for code, codes, text in limited}
        lines = con.sql(f"""
SELECT i.mdtrt_id, i.feedetl_sn, v.fixmedins_code, i.med_list_codg,
       CAST(i.det_item_fee_sumamt * 100 AS BIGINT) AS amount, p.gend, p.age,
       year(CAST(v.begntime AS DATE)) AS yr, COALESCE(v.level, '') AS level, v.med_type, COALESCE(v.dise_codg, '') AS dise
FROM fee_items i JOIN cat_limited c ON c.med_list_codg = i.med_list_codg
JOIN visits v ON v.mdtrt_id = i.mdtrt_id LEFT JOIN persons p ON p.psn_no = v.psn_no
WHERE {seg.where('v.begntime')} ORDER BY i.mdtrt_id, i.feedetl_sn""").fetchall()
        con.unregister("cat_limited")
        for mdtrt_id, sn, inst, code, amount, gend, age, _yr, level, med_type, dise in lines:
            parsed, text = conds[code]
            ok, clause = conditions_met(parsed, gend=gend, age=int(age or 0), level=level, med_type=med_type,
                                        dise_codg=dise)
            if not ok:
                rows.append({"mdtrt_id": mdtrt_id, "feedetl_sn": sn, "fixmedins_code": inst, "med_list_codg": code,
                             "amount": int(amount), "failed": clause, "limit_text": text or ""})
    return pa.Table.from_pylist(rows, schema=_HIT_SCHEMA)


PRICE_RULE = ("SV-CAT-PRICE", "超医疗服务价格收费(价格表)")


def price_hits(con, session: Session) -> pa.Table:
    """Every fee line charged above the service-item price in force (``ins_price_events``: set by hand or imported
    from a price table) for the visit's institution level on its start date; the excess is
    :func:`yibao.institutions.prices.excess_fen`, as online price monitoring computes it. Same columns as
    :func:`limit_hits` (``failed`` holds the price in force in fen)."""

    e = InsPriceEvent.__table__
    events = session.execute(select(e.c.med_list_codg, e.c.level, e.c.eff_date, e.c.price_fen, e.c.id)).all()
    rows: list[dict] = []
    if events:
        con.register("cat_prices", pa.table({
            "med_list_codg": [r[0] for r in events], "level": [r[1] for r in events],
            "eff_date": pa.array([r[2] for r in events], pa.date32()), "price_fen": pa.array([r[3] for r in events], pa.int64()),
            "id": pa.array([r[4] for r in events], pa.int64())}))
        lines = con.sql("""
WITH p AS (SELECT * FROM cat_prices QUALIFY row_number() OVER (PARTITION BY med_list_codg, level, eff_date ORDER BY id DESC) = 1),
l AS (SELECT i.mdtrt_id, i.feedetl_sn, v.fixmedins_code, i.med_list_codg, CAST(i.pric * 100 AS BIGINT) AS pric_fen,
             CAST(i.cnt AS VARCHAR) AS cnt, v.level, CAST(v.begntime AS DATE) AS day
      FROM fee_items i JOIN visits v ON v.mdtrt_id = i.mdtrt_id WHERE i.pric IS NOT NULL)
SELECT l.mdtrt_id, l.feedetl_sn, l.fixmedins_code, l.med_list_codg, l.pric_fen, l.cnt, p.price_fen
FROM l ASOF JOIN p ON p.med_list_codg = l.med_list_codg AND p.level = l.level AND l.day >= p.eff_date
WHERE l.pric_fen > p.price_fen ORDER BY l.mdtrt_id, l.feedetl_sn""").fetchall()
        con.unregister("cat_prices")
        for mdtrt_id, sn, inst, code, pric_fen, cnt, price_fen in lines:
            rows.append({"mdtrt_id": mdtrt_id, "feedetl_sn": sn, "fixmedins_code": inst, "med_list_codg": code,
                         "amount": excess_fen(int(pric_fen), int(price_fen), Decimal(cnt)),
                         "failed": str(price_fen), "limit_text": ""})
    return pa.Table.from_pylist(rows, schema=_HIT_SCHEMA)


VBP_RULE = ("SV-CAT-VBP", "集采中选产品超中选价收费")


def vbp_price_hits(con, session: Session) -> pa.Table:
    """Every fee line of a 集采 selected product (``ins_vbp_products``) at its institution, on a visit begun within the
    product's period, charged above the 中选价; the excess is :func:`yibao.institutions.prices.excess_fen`, as
    online price monitoring's ``over_vbp_price``. Same columns as :func:`limit_hits` (``failed``: the 中选价 in fen)."""

    p = InsVbpProduct.__table__
    products = session.execute(select(p.c.id, p.c.fixmedins_code, p.c.med_list_codg, p.c.period_from, p.c.period_to,
                                      p.c.selected_price_fen)).all()
    rows: list[dict] = []
    if products:
        cols = list(zip(*products))
        con.register("cat_vbp", pa.table({
            "id": pa.array(cols[0], pa.int64()), "fixmedins_code": pa.array(cols[1], pa.string()),
            "med_list_codg": pa.array(cols[2], pa.string()), "period_from": pa.array(cols[3], pa.date32()),
            "period_to": pa.array(cols[4], pa.date32()), "price_fen": pa.array(cols[5], pa.int64())}))
        lines = con.sql("""
SELECT i.mdtrt_id, i.feedetl_sn, v.fixmedins_code, i.med_list_codg, CAST(i.pric * 100 AS BIGINT) AS pric_fen,
       CAST(i.cnt AS VARCHAR) AS cnt, p.price_fen
FROM fee_items i JOIN visits v ON v.mdtrt_id = i.mdtrt_id
JOIN cat_vbp p ON p.fixmedins_code = v.fixmedins_code AND p.med_list_codg = i.med_list_codg
 AND CAST(v.begntime AS DATE) BETWEEN p.period_from AND p.period_to
WHERE CAST(i.pric * 100 AS BIGINT) > p.price_fen
QUALIFY row_number() OVER (PARTITION BY i.mdtrt_id, i.feedetl_sn ORDER BY p.id) = 1
ORDER BY i.mdtrt_id, i.feedetl_sn""").fetchall()
        con.unregister("cat_vbp")
        for mdtrt_id, sn, inst, code, pric_fen, cnt, price_fen in lines:
            rows.append({"mdtrt_id": mdtrt_id, "feedetl_sn": sn, "fixmedins_code": inst, "med_list_codg": code,
                         "amount": excess_fen(int(pric_fen), int(price_fen), Decimal(cnt)),
                         "failed": str(price_fen), "limit_text": ""})
    return pa.Table.from_pylist(rows, schema=_HIT_SCHEMA)


_HIT_SCHEMA = pa.schema([("mdtrt_id", pa.string()), ("feedetl_sn", pa.string()), ("fixmedins_code", pa.string()),
                         ("med_list_codg", pa.string()), ("amount", pa.int64()), ("failed", pa.string()),
                         ("limit_text", pa.string())])
_RULES = {
    LIMIT_RULE[0]: {"family": "限定支付范围", "rule_text": "目录(就诊开始日生效的版本)限定支付范围的限定条件代码, "
                    "就诊不满足时该明细不得由基金支付", "params": "限定条件代码取自目录库",
                    "detail": "h.med_list_codg || ' 不满足 ' || h.failed",
                    "message": "': 明细 ' || h.feedetl_sn || ' 的 ' || h.med_list_codg || ' 不满足限定条件 ' || h.failed "
                               "|| '(限定支付范围: ' || h.limit_text || ')'"},
    PRICE_RULE[0]: {"family": "超标准收费", "rule_text": "明细单价高于就诊开始日、机构等级生效的医疗服务价格, "
                    "超收 = (单价 − 价格) × 数量", "params": "价格取自目录库的价格事件(价格表导入或定价/调价)",
                    "detail": "h.med_list_codg || ' 单价高于价格 ' || h.failed || ' 分'",
                    "message": "': 明细 ' || h.feedetl_sn || ' 的 ' || h.med_list_codg || ' 单价高于生效价格 ' "
                               "|| h.failed || ' 分'"},
    VBP_RULE[0]: {"family": "超标准收费", "rule_text": "集采中选产品在本机构执行期内按高于中选价的单价收费, "
                  "超收 = (单价 − 中选价) × 数量", "params": "中选价取自目录库的集采中选产品(清单导入或逐个登记)",
                  "detail": "h.med_list_codg || ' 单价高于中选价 ' || h.failed || ' 分'",
                  "message": "': 明细 ' || h.feedetl_sn || ' 的 ' || h.med_list_codg || ' 单价高于中选价 ' "
                             "|| h.failed || ' 分'"},
}


def _add_hits(run, rule: tuple[str, str], found: pa.Table) -> int:
    con = run.con
    rule_id, name = rule
    spec = _RULES[rule_id]
    meta = con.sql("SELECT * FROM rule_meta").to_arrow_table()
    if rule_id not in meta.column("rule_id").to_pylist():
        row = {"rule_id": rule_id, "rule_name": name, "family": spec["family"], "severity": "medium", "blocking": False,
               "rule_text": spec["rule_text"], "params": spec["params"], "scope": "line"}
        meta = pa.concat_tables([meta, pa.Table.from_pylist([{c: row.get(c) for c in meta.column_names}],
                                                            schema=meta.schema)])
        con.register("rule_meta", meta)
    con.register("cat_hits", found)
    since = f"AND x.setl_time >= TIMESTAMP '{run.since}'" if getattr(run, "since", None) else ""
    con.sql(f"""INSERT INTO hits BY NAME
SELECT {q(rule_id)} AS rule_id, {q(name)} AS rule_name, {q(spec['family'])} AS family, 'medium' AS severity,
       FALSE AS blocking, h.feedetl_sn AS subject, h.mdtrt_id, x.psn_no, h.fixmedins_code, x.atddr_no, x.setl_time,
       h.amount, [h.feedetl_sn] AS feedetl_sns, {spec['detail']} AS detail, {q(name)} || {spec['message']} AS message
FROM cat_hits h LEFT JOIN vx x ON x.mdtrt_id = h.mdtrt_id WHERE h.amount > 0 {since}""")
    con.unregister("cat_hits")
    return con.sql(f"SELECT COUNT(*) FROM hits WHERE rule_id = {q(rule_id)}").fetchone()[0]


def add_catalogue_hits(run, session: Session) -> dict[str, int]:
    """Add to a batch audit run (``yibao audit --catalogue-db``) the hits of :func:`limit_hits` (rule
    ``SV-CAT-LIMIT``), :func:`price_hits` (``SV-CAT-PRICE``) and :func:`vbp_price_hits` (``SV-CAT-VBP``), one per line, in the run's ``hits`` table and
    rule list, so the summaries, the Parquet/Excel outputs and ``yibao case import`` carry them like any rule's.
    Returns how many of each were added."""
    return {LIMIT_RULE[0]: _add_hits(run, LIMIT_RULE, limit_hits(run.con, session)),
            PRICE_RULE[0]: _add_hits(run, PRICE_RULE, price_hits(run.con, session)),
            VBP_RULE[0]: _add_hits(run, VBP_RULE, vbp_price_hits(run.con, session))}


def add_catalogue_hits_from_store(run, url: str) -> dict[str, int]:
    """:func:`add_catalogue_hits` reading the catalogue store at ``url`` (the ``--catalogue-db`` option)."""
    engine = open_catalogue(url)
    try:
        with Session(engine) as session:
            return add_catalogue_hits(run, session)
    finally:
        engine.dispose()
