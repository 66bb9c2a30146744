"""Settle a whole claims directory on DuckDB: validate, classify, settle, write.

The claims directory holds ``persons``, ``visits`` and ``fee_items`` (Parquet, or CSV/Excel
through :mod:`yibao.claims.schema`), in the schema of ``docs/claims-schema.md``. DuckDB classifies
and orders; the compiled kernel settles (:mod:`yibao.batch.stream`) and the settled year streams
into a Parquet file of the run, seen in the run's connection as ``settled_<tag>`` (amounts in fen)
so simulation and monitoring query it without a round trip through Python; it can be written out
with amounts in yuan.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import weakref
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from numba import njit

from yibao.batch import classify as classify_pass
from yibao.batch import kernel
from yibao.batch.classify import classify_into
from yibao.batch.inputs import COMBOS_SUPERSET, PERSONS_IN_KEY_ORDER, pack_tables, visits_in_query
from yibao.batch.lower import KernelError, Program, lower
from yibao.batch.stream import settle_stream, settled_schema
from yibao.batch.validate import BatchError, JoinCounts, check_applicability
from yibao.claims.schema import read_claims  # CSV / Excel extracts
from yibao.errors import Problem
from yibao.handling.effects import FACTS_SCHEMA
from yibao.policy.compiled import CompiledPack
from yibao.service.packs import PackSet
from yibao.settlement.model import SETLINFO_FIELDS
from yibao.sql import ident, q

TABLES = ("persons", "institutions", "visits", "fee_items", "handling_facts")  # the last optional (经办 facts)
# the settled spill file is read back only by this run's queries: dictionaries only where codes repeat, and no
# column statistics but the year's (they cost a third of the writing and nothing filters on amounts)
SETTLED_PARQUET = {"compression": "zstd", "compression_level": 1, "use_dictionary": ["yr", "insutype", "med_type", "level"],
                   "write_statistics": ["yr"]}


@dataclass
class BatchRun:
    con: duckdb.DuckDBPyConnection
    timings: dict[str, float] = field(default_factory=dict)
    visits: int = 0
    items: int = 0
    outputs: dict[str, dict[str, Path]] = field(default_factory=dict)  # yuan tables written while settling
    totals: dict[str, dict[str, int]] = field(default_factory=dict)  # their visits and setlinfo sums in fen
    _spill: tempfile.TemporaryDirectory | None = None

    def spill_dir(self) -> Path:
        """Where settled years are written as they stream out of the kernel (removed with the run)."""
        if self._spill is None:
            self._spill = tempfile.TemporaryDirectory(prefix="settled-", dir=spill_root())
        return Path(self._spill.name)


def default_memory_mib(cores: int | None = None, ram: int | None = None) -> int:
    """DuckDB's memory limit unless ``YIBAO_DUCKDB_MEMORY`` says otherwise: 1 GiB per core, at least 2 GiB,
    at most half the machine's memory.

    Bounded by the cores, not the RAM, so a run's peak does not grow with the machine it lands on: beyond
    the limit DuckDB spills its sorts and hash tables to ``YIBAO_DUCKDB_TEMP``. Measured on ten million visits
    (2 cores, 23 GiB): half the RAM peaked at 4.4 GiB, 2 GB at 2.6-2.7 GiB, with no sign of a slower run.
    """
    cores = cores or os.cpu_count() or 1
    ram = ram or os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return min(ram // 2 // 2**20, max(2048, 1024 * cores))


def load_compiled(pack: CompiledPack) -> Future:
    """Numba's compiled passes (classification's, then the settlement kernel for ``pack``) loaded from its disk cache
    on a thread of their own, while the caller opens the claims and DuckDB reads the first fee lines. In a fresh
    process this costs about 0.8 s (Numba's start-up ~0.3 s, then each pass's machine code); LLVM loads without
    the GIL. The first classification waits only for its own pass. ``.result()`` raises what loading raised."""
    def load() -> None:
        classify_pass.warm()
        kernel.warm(lower(pack))

    loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="yibao-load")
    try:
        return loader.submit(load)
    finally:
        loader.shutdown(wait=False)  # the thread ends with its one task


def connect() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB that leaves room for the rest of the machine and spills when it must.

    DuckDB would take 80% of memory; yibao bounds it (:func:`default_memory_mib`; ``YIBAO_DUCKDB_MEMORY``
    overrides, e.g. ``8GB``) and spills large sorts to a directory of its own under ``YIBAO_DUCKDB_TEMP`` (default:
    the system temp dir), removed with the connection: two DuckDB instances of one process, or two runs on one
    machine, that share a temp directory can read or delete each other's spill files (duckdb/duckdb#15173).
    """
    con = duckdb.connect()
    con.sql("SET enable_progress_bar = false")  # yibao shows its own progress
    con.sql("SET preserve_insertion_order = false")  # result tables are ordered explicitly
    limit = os.environ.get("YIBAO_DUCKDB_MEMORY") or f"{default_memory_mib()}MB"
    con.sql(f"SET memory_limit = {q(limit)}")
    spill = tempfile.mkdtemp(prefix="duckdb-", dir=spill_root())
    con.sql(f"SET temp_directory = {q(spill)}")
    weakref.finalize(con, shutil.rmtree, spill, True)  # when the connection is gone (or the program ends)
    return con


def spill_root() -> Path:
    """Where yibao's DuckDB connections and settled years spill: ``YIBAO_DUCKDB_TEMP``, else the system temp dir."""
    root = Path(os.environ.get("YIBAO_DUCKDB_TEMP") or Path(tempfile.gettempdir()) / "yibao-duckdb")
    root.mkdir(parents=True, exist_ok=True)
    return root


def open_claims(claims_dir: str | Path, con: duckdb.DuckDBPyConnection | None = None) -> BatchRun:
    """Views over the claims files (Parquet read in place; CSV/Excel loaded through the schema)."""
    con = con or connect()
    claims_dir = Path(claims_dir)
    if not claims_dir.is_dir():
        raise BatchError(Problem("BAT010", str(claims_dir), "理赔数据目录不存在"))
    missing = [t for t in ("persons", "visits", "fee_items") if not (claims_dir / f"{t}.parquet").exists()]
    if missing:

        tables = read_claims(claims_dir)
        for name, table in tables.items():
            con.register(f"{name}_arrow", table)
            con.sql(f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM {name}_arrow")
    for name in TABLES if not missing else ("handling_facts",):  # 经办 facts: the store's export, Parquet
        path = claims_dir / f"{name}.parquet"
        if path.exists():
            con.sql(f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM read_parquet({q(path.as_posix())})")
    if has_relation(con, "handling_facts"):
        _check_facts(con)
    run = BatchRun(con)
    run.visits = con.sql("SELECT COUNT(*) FROM visits").fetchone()[0]
    run.items = con.sql("SELECT COUNT(*) FROM fee_items").fetchone()[0]
    return run


def _check_facts(con: duckdb.DuckDBPyConnection) -> None:

    present = set(con.sql("SELECT * FROM handling_facts LIMIT 0").columns)
    missing = [f.name for f in FACTS_SCHEMA if f.name not in present]
    if missing:
        raise BatchError([Problem("BAT016", f"handling_facts.{c}",
                                  "经办事实文件缺少此列; 请用 yibao handling facts-export 导出") for c in missing])


def has_relation(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    return con.sql(f"SELECT COUNT(*) FROM duckdb_views() WHERE view_name = {q(name)}").fetchone()[0] + con.sql(
        f"SELECT COUNT(*) FROM duckdb_tables() WHERE table_name = {q(name)}").fetchone()[0] > 0


def register_pack(run: BatchRun, pack: CompiledPack) -> None:
    for name, table in pack_tables(pack).items():
        run.con.register(name, table)


def classify(run: BatchRun, pack: CompiledPack) -> None:
    """Fee lines → four amounts per visit (timed apart from settlement, as the issue asks)."""
    register_pack(run, pack)
    t = time.perf_counter()
    classify_into(run.con, pack, "fee_items")  # classification_query's rows, summed by a compiled pass
    run.timings["classify"] = time.perf_counter() - t


def classify_by_area(run: BatchRun, pack: CompiledPack, mdtrt_packs: list[CompiledPack]) -> None:
    """异地就医 in batch as online: the fee lines of a visit outside the insured's city are classified by the
    catalogue of the pack for the institution's area in force on the settlement day (the service's
    :meth:`PackSet.catalogue_for`, decided once per (insured area, institution area, day)); every other line by
    ``pack``, which settles them all (参保地政策)."""
    con = run.con
    packs = PackSet([pack, *mdtrt_packs])
    combos = con.sql("SELECT DISTINCT p.admdvs, i.admdvs, CAST(v.setl_time AS DATE) FROM visits v "
                     "JOIN persons p ON p.psn_no = v.psn_no JOIN institutions i ON i.fixmedins_code = v.fixmedins_code "
                     "WHERE left(p.admdvs, 4) <> left(i.admdvs, 4)").fetchall()
    chosen = {}
    for insu, mdtrt, day in combos:
        catalogue = packs.catalogue_for(pack, mdtrt, day, "offsite")
        if catalogue is not pack:
            chosen[(insu, mdtrt, day)] = mdtrt_packs.index(catalogue)
    con.register("visit_catalogues", pa.table({
        "insu": pa.array([k[0] for k in chosen], pa.string()), "mdtrt": pa.array([k[1] for k in chosen], pa.string()),
        "d": pa.array([k[2] for k in chosen], pa.date32()), "k": pa.array(list(chosen.values()), pa.int64())}))
    con.sql("CREATE OR REPLACE TABLE visit_catalogue AS SELECT v.mdtrt_id, c.k FROM visits v "
            "JOIN persons p ON p.psn_no = v.psn_no JOIN institutions i ON i.fixmedins_code = v.fixmedins_code "
            "JOIN visit_catalogues c ON c.insu = p.admdvs AND c.mdtrt = i.admdvs AND c.d = CAST(v.setl_time AS DATE)")
    t = time.perf_counter()
    register_pack(run, pack)
    con.sql("CREATE OR REPLACE VIEW fee_items_home AS SELECT i.* FROM fee_items i "
            "ANTI JOIN visit_catalogue c ON c.mdtrt_id = i.mdtrt_id")
    classify_into(con, pack, "fee_items_home", view=False)  # a table: the other areas' visits are inserted
    for k, other in enumerate(mdtrt_packs):
        con.sql(f"CREATE OR REPLACE VIEW fee_items_away AS SELECT i.* FROM fee_items i "
                f"SEMI JOIN (SELECT mdtrt_id FROM visit_catalogue WHERE k = {k}) c ON c.mdtrt_id = i.mdtrt_id")
        classify_into(con, other, "fee_items_away", insert=True)
    register_pack(run, pack)
    run.timings["classify"] = time.perf_counter() - t


def settle(run: BatchRun, pack: CompiledPack, tag: str = "main", validate: bool = True,
           out_dir: str | Path | None = None, keep_fen: bool = True) -> str:
    """Settle every visit under ``pack`` into table ``settled_<tag>``; returns the table name.

    With ``out_dir`` the yuan tables (setlinfo.parquet, setldetail.parquet) are written there from the same
    stream when it comes in their order (:func:`in_output_order`), their paths kept in ``run.outputs[table]``;
    otherwise the caller writes them with :func:`write_results`. ``keep_fen=False``: when the yuan tables were
    streamed, no fen table is kept (``settled_<tag>`` does not exist; writing it costs as much as the yuan tables).
    """
    con = run.con
    register_pack(run, pack)
    if "classified" not in {r[0] for r in con.sql("SHOW TABLES").fetchall()}:
        classify(run, pack)  # first: the checks read the per-visit amounts instead of grouping the lines again
    checks = None
    if validate:  # all but the checks of the joins, which the stream counts as it reads them (JoinCounts)
        t = time.perf_counter()
        problems = check_applicability(con, pack, joins=False)
        run.timings["validate"] = time.perf_counter() - t
        if problems:
            raise BatchError(problems)
        checks = JoinCounts(run.visits, con.sql("SELECT COUNT(*) FROM classified").fetchone()[0])
    t = time.perf_counter()
    offsite = "offsite_status" in con.sql("SELECT * FROM visits LIMIT 0").columns
    facts = has_relation(con, "handling_facts")
    con.sql(f"CREATE OR REPLACE VIEW visits_in_{tag} AS "
            f"{visits_in_query(pack, offsite=offsite, facts=facts, checked=checks is not None)}")
    table = f"settled_{tag}"
    path = run.spill_dir() / f"{table}.parquet"
    program = lower(pack)
    yuan = YuanTables(pack, program, out_dir) if out_dir is not None and in_output_order(pack) else None
    writer = pq.ParquetWriter(path, settled_schema(program), **SETTLED_PARQUET) if keep_fen or yuan is None else None

    def sink(block: pa.RecordBatch) -> None:
        if writer is not None:
            writer.write_batch(block)
        if yuan is not None:
            yuan.write(block)

    try:
        # without 经办 facts med_type is the claims' own: every insutype with every visit's combination will do
        combos = None if facts else COMBOS_SUPERSET
        named = None if program.households else persons_in_key_order(con)  # psn_no left out of the sort
        try:
            settle_stream(pack, con, f"visits_in_{tag}", sink, program, combos=combos, psn_by_key=named, checks=checks)
        except KernelError:
            # bad keys can stop the kernel before the counts are complete (a person twice: visits out of order):
            # report what validation reports of them, as when it ran before settling
            if checks is not None and (problems := check_applicability(con, pack)):
                raise BatchError(problems) from None
            raise
        if checks is not None and not checks.clean():  # nothing written is kept: the files are removed below
            counts = checks.counts()
            # (each check's own query names the rows; should none do so, the counts alone still refuse the run)
            raise BatchError(check_applicability(con, pack, counted=counts) or [
                Problem(code, "visits", f"结算中计数到 {n:,} 行有此问题(代码含义见 docs/batch.md)")
                for code, n in counts.items() if n])
    except BaseException:
        if yuan is not None:
            yuan.abort()
        raise
    finally:
        if writer is not None:
            writer.close()
    if yuan is not None:
        run.outputs[table] = yuan.close()
        run.totals[table] = {"visits": yuan.visits, **yuan.totals}
        run.timings[f"yuan_cpu_{tag}"] = yuan.cpu_s
    if writer is not None:
        con.sql(f"CREATE OR REPLACE VIEW {table} AS SELECT * FROM read_parquet({q(path.as_posix())})")
    run.timings[f"settle_{tag}"] = time.perf_counter() - t
    return table


def persons_in_key_order(con: duckdb.DuckDBPyConnection) -> pa.Array:
    """Every psn_no of ``persons`` at its psn_key (:data:`yibao.batch.inputs.PERSONS_IN_KEY_ORDER`): the stream
    sorts visits on the key alone and names their persons from this (2.3 million persons in 0.14-0.3 s)."""
    return con.sql(PERSONS_IN_KEY_ORDER.format(persons="persons")).to_arrow_table().column(0).combine_chunks()


def yuan_sql(fen_column: str) -> str:
    """Integer fen as exact decimal(16,2) yuan (DuckDB's decimal division would give DOUBLE)."""
    return f"CAST(CAST({fen_column} AS DECIMAL(18,0)) * CAST(0.01 AS DECIMAL(3,2)) AS DECIMAL(16,2))"


def fund_rules(pack: CompiledPack) -> list[tuple[str, str, str]]:
    """(rule_id, fund_pay_type, setl_field) of each ``pay__<rule>`` column, in the kernel's column order."""
    return ([(r.id, r.fund_pay_type, "hifp_pay") for r in pack.basic]
            + [(t.id, t.fund_pay_type, t.pays_into) for t in pack.tiers]
            + [(g.id, g.fund_pay_type, g.pays_into) for g in pack.guarantees])


def write_results(run: BatchRun, pack: CompiledPack, table: str, out_dir: str | Path) -> dict[str, Path]:
    """setlinfo.parquet (one row per visit) and setldetail.parquet (one row per fund paid), in yuan, from the
    settled table ``table`` (a second pass in DuckDB: used where the settled rows are not in output order, e.g.
    Spark's, or settled before the output was known; :class:`YuanTables` writes the same files from the stream)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    con = run.con
    yuan = ", ".join(f"{yuan_sql(f)} AS {f}" for f in SETLINFO_FIELDS)
    setlinfo = out_dir / "setlinfo.parquet"
    con.sql(f"COPY (SELECT psn_no, mdtrt_id, setl_time, {yuan} FROM {table} ORDER BY psn_no, setl_time, mdtrt_id) "
            f"TO {q(setlinfo.as_posix())} (FORMAT parquet, COMPRESSION zstd)")
    selects = " UNION ALL ".join(
        f"SELECT psn_no, mdtrt_id, '{ftype}' AS fund_pay_type, {yuan_sql(f'pay__{ident(rid)}')} AS fund_payamt, "
        f"'{field}' AS setl_field, '{rid}' AS rule_id FROM {table} WHERE pay__{ident(rid)} > 0"
        for rid, ftype, field in fund_rules(pack))
    setldetail = out_dir / "setldetail.parquet"
    con.sql(f"COPY ({selects} ORDER BY psn_no, mdtrt_id, rule_id) TO {q(setldetail.as_posix())} (FORMAT parquet, COMPRESSION zstd)")
    return {"setlinfo": setlinfo, "setldetail": setldetail}


YUAN = pa.decimal128(16, 2)  # the yuan tables as readers see them (pyarrow; DuckDB: DECIMAL(16,2))
SETLINFO_SCHEMA = pa.schema([pa.field("psn_no", pa.string()), pa.field("mdtrt_id", pa.string()),
                             pa.field("setl_time", pa.timestamp("us"))] + [pa.field(f, YUAN) for f in SETLINFO_FIELDS])
SETLDETAIL_SCHEMA = pa.schema([pa.field("psn_no", pa.string()), pa.field("mdtrt_id", pa.string()),
                               pa.field("fund_pay_type", pa.string()), pa.field("fund_payamt", YUAN),
                               pa.field("setl_field", pa.string()), pa.field("rule_id", pa.string())])
# ... and as they are handed to the Parquet writer: amounts as decimal64 over the fen buffers themselves (stored as
# INT64 DECIMAL(16,2), as DuckDB stores them), the codes of setldetail as dictionaries over the pack's few values
YUAN_STORED = pa.decimal64(16, 2)
CODE = pa.dictionary(pa.int32(), pa.string())
_SETLINFO_STORED = pa.schema([f.with_type(YUAN_STORED) if f.type == YUAN else f for f in SETLINFO_SCHEMA])
_CODES = ("fund_pay_type", "setl_field", "rule_id")
_SETLDETAIL_STORED = pa.schema([f.with_type(YUAN_STORED) if f.type == YUAN else f.with_type(CODE) if f.name in _CODES
                                else f for f in SETLDETAIL_SCHEMA])
# the yuan tables are the run's product, read by other programs. No Arrow schema stored: readers take the Parquet
# types (decimal(16,2), string), exactly as in DuckDB's files, not the writer's decimal64 / dictionary view.
# Amounts DELTA_BINARY_PACKED (a standard Parquet encoding every current reader decodes: pyarrow, DuckDB, Spark,
# Polars): mostly zeros or small, they shrink before any codec sees them. zstd (level 1) only on the keys and on
# the amounts mostly zero (chosen from the first block, YuanTables._open): a packed dense amount does not shrink.
# setlinfo's encoding per million visits: 0.49 s CPU plain + zstd (28 MB), 0.37 s delta + zstd (34 MB), 0.32 s
# delta + zstd where it gains (34 MB). Statistics only on the keys a reader filters by; dictionaries only on
# setldetail's codes, which the writer takes as given.
YUAN_PARQUET = {"store_decimal_as_integer": True, "store_schema": False,
                "use_dictionary": list(_CODES),
                "column_encoding": {f: "DELTA_BINARY_PACKED" for f in (*SETLINFO_FIELDS, "fund_payamt")},
                "write_statistics": ["psn_no", "mdtrt_id", "setl_time"]}


def _compression(schema: pa.Schema, dense: set[str]) -> dict:
    """Per-column codecs: zstd (level 1), none for the ``dense`` amounts."""
    return {"compression": {f.name: "none" if f.name in dense else "zstd" for f in schema},
            "compression_level": {f.name: 1 for f in schema if f.name not in dense}}


def fen_to_yuan_array(fen: pa.Array | np.ndarray) -> pa.Array:
    """int64 fen as decimal64(16,2) yuan over the same memory, without arithmetic or copy: a decimal's unscaled
    value is the fen. Written to Parquet it is INT64 DECIMAL(16,2), read back as decimal128(16,2) — the same
    amount to the fen (settled amounts are far inside decimal(16,2)'s range: a visit is at most 10,000,000 yuan,
    BAT008)."""
    if not isinstance(fen, pa.Array):
        fen = pa.array(np.ascontiguousarray(fen, np.int64))
    if fen.type != pa.int64():
        raise TypeError(f"fen must be int64, not {fen.type}")
    return pa.Array.from_buffers(YUAN_STORED, len(fen), fen.buffers()[:2], null_count=fen.null_count,
                                 offset=fen.offset)


def _paid(order: np.ndarray, pays: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """setldetail's rows of a block: (row, pay column, fen) of every amount > 0, the rows taken in ``order`` and a
    row's columns in their order. Column by column (a column's branches are predictable: most are all zeros or
    mostly paid), each row's entries placed from its start; no copy of the pay columns. Compiled once for any
    number of pay columns."""
    start = np.zeros(len(order) + 1, np.int64)
    for column in pays:
        _count_paid(order, column, start)
    np.cumsum(start, out=start)
    n = int(start[-1])
    rows, rule, fen = np.empty(n, np.int64), np.empty(n, np.int32), np.empty(n, np.int64)
    for j, column in enumerate(pays):
        _place_paid(order, column, j, start, rows, rule, fen)
    return rows, rule, fen


@njit(cache=True, nogil=True)
def _count_paid(order, column, start):
    for i in range(order.shape[0]):
        start[i + 1] += column[order[i]] > 0


@njit(cache=True, nogil=True)
def _place_paid(order, column, j, start, rows, rule, fen):
    for i in range(order.shape[0]):
        v = column[order[i]]
        if v > 0:
            k = start[i]
            rows[k], rule[k], fen[k] = order[i], j, v
            start[i] = k + 1


def _codes(per_column: list[str]) -> tuple[pa.Array, np.ndarray]:
    """The distinct values of a code per pay column, and each column's index among them (a dictionary's
    values must be distinct)."""
    values = sorted(set(per_column))
    return pa.array(values, pa.string()), np.array([values.index(v) for v in per_column], np.int32)


def in_output_order(pack: CompiledPack) -> bool:
    """Whether the kernel's stream comes in the yuan tables' order (person, time): it does unless the pack has
    household caps, whose members settle in household order (then the tables are sorted by DuckDB afterwards)."""
    return not pack.uses_households


class YuanTables:
    """setlinfo.parquet and setldetail.parquet written block by block from the settled stream — the same rows
    in the same order as :func:`write_results`, without a second pass over the settled year.

    Blocks arrive whole persons at a time in (psn_no, setl_time, mdtrt_id) order (:data:`yibao.batch.stream.ORDER`,
    or :data:`~yibao.batch.stream.ORDER_KEYED` — the same order;
    ``yr`` is the year of setl_time), which is setlinfo's order; setldetail's (psn_no, mdtrt_id, rule_id) is
    made inside each block. setldetail is built and encoded on a thread of its own (Parquet encoding releases
    the GIL), so the two files are written side by side. Files are written under temporary names and appear
    only on :meth:`close`; :meth:`abort` removes them (nothing written when settlement fails).
    """

    def __init__(self, pack: CompiledPack, program: Program, out_dir: str | Path):
        self.out_dir = Path(out_dir)
        self._made = not self.out_dir.exists()  # removed again if settlement fails
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.paths = {"setlinfo": self.out_dir / "setlinfo.parquet", "setldetail": self.out_dir / "setldetail.parquet"}
        self._part = {k: p.with_name(f".{p.name}.part") for k, p in self.paths.items()}
        rules = dict((rid, (ftype, field)) for rid, ftype, field in fund_rules(pack))
        # pay columns taken in rule_id order, so a visit's detail rows come out sorted by rule_id
        self._columns = sorted(range(len(program.rule_ids)), key=lambda j: program.rule_ids[j].encode())
        ids = [program.rule_ids[j] for j in self._columns]
        self._rule_id = pa.array(ids, pa.string())
        self._ftype, self._ftype_of = _codes([rules[r][0] for r in ids])
        self._field, self._field_of = _codes([rules[r][1] for r in ids])
        self._pay_names = [f"pay__{ident(r)}" for r in ids]
        self._info: pq.ParquetWriter | None = None  # opened on the first block, which chooses the codecs
        self._detail: pq.ParquetWriter | None = None
        self._detail_thread = ThreadPoolExecutor(max_workers=1)  # one thread: blocks stay in order
        self._pending: list[Future] = []
        self.visits = 0
        self.totals = dict.fromkeys(SETLINFO_FIELDS, 0)  # fen, summed over the blocks written (exact int64 sums)
        self._cpu = [0.0, 0.0]  # CPU seconds of the writing thread and of setldetail's (each adds to its own)

    @property
    def cpu_s(self) -> float:
        """CPU seconds spent building and encoding both tables (benchmarks print it beside the wall time)."""
        return sum(self._cpu)

    def write(self, block: pa.RecordBatch) -> None:
        """Called from one thread, block after block in the stream's order."""
        started = time.thread_time()
        self.visits += block.num_rows
        if self._info is None:
            self._open(block)
        if self._pay_names:
            self._pending.append(self._detail_thread.submit(self._write_detail, block))
        self._info.write_batch(pa.RecordBatch.from_arrays(
            [block.column("psn_no"), block.column("mdtrt_id"), block.column("setl_time")]
            + [fen_to_yuan_array(block.column(f)) for f in SETLINFO_FIELDS], schema=_SETLINFO_STORED))
        for f in SETLINFO_FIELDS:  # a block's column sums far inside int64 (a visit ≤ 10,000,000 yuan, BAT008)
            self.totals[f] += int(block.column(f).to_numpy().sum())
        self._cpu[0] += time.thread_time() - started
        while len(self._pending) > 2 or (self._pending and self._pending[0].done()):
            self._pending.pop(0).result()  # bounded memory; a failure surfaces here

    def _open(self, first: pa.RecordBatch | None) -> None:
        """The writers, their codecs chosen from the first block: an amount with less than half zeros is left as
        delta-packed (zstd would spend time to gain nothing), fund_payamt (never zero) always."""
        dense = {f for f in SETLINFO_FIELDS if first is not None and first.num_rows
                 and 2 * pc.sum(pc.equal(first.column(f), 0)).as_py() < first.num_rows}
        self._info = pq.ParquetWriter(self._part["setlinfo"], _SETLINFO_STORED,
                                      **YUAN_PARQUET, **_compression(_SETLINFO_STORED, dense))
        self._detail = pq.ParquetWriter(self._part["setldetail"], _SETLDETAIL_STORED,
                                        **YUAN_PARQUET, **_compression(_SETLDETAIL_STORED, {"fund_payamt"}))

    def _write_detail(self, block: pa.RecordBatch) -> None:
        started = time.thread_time()
        self._detail.write_batch(self._detail_batch(block))
        self._cpu[1] += time.thread_time() - started

    def _detail_batch(self, block: pa.RecordBatch) -> pa.RecordBatch:
        psn, mdtrt = block.column("psn_no"), block.column("mdtrt_id")
        order = None  # visits by (psn_no, mdtrt_id): psn_no already ascends; mdtrt_id usually follows setl_time
        if block.num_rows > 1:
            a, b = slice(0, block.num_rows - 1), slice(1, block.num_rows)
            fine = pc.or_(pc.not_equal(psn[a], psn[b]), pc.less(mdtrt[a], mdtrt[b]))
            if not pc.all(fine).as_py():
                order = pc.sort_indices(pa.table({"p": psn, "m": mdtrt}), [("p", "ascending"), ("m", "ascending")])
        pays = [block.column(n).to_numpy() for n in self._pay_names]
        rows, rule, fen = _paid(np.arange(block.num_rows) if order is None else order.to_numpy().astype(np.int64),
                                pays)
        take, which = pa.array(rows), pa.array(rule)
        code = lambda values, of: pa.DictionaryArray.from_arrays(  # noqa: E731 - indices into the few values
            which if of is None else pa.array(of[rule]), values)
        return pa.RecordBatch.from_arrays(
            [psn.take(take), mdtrt.take(take), code(self._ftype, self._ftype_of), fen_to_yuan_array(fen),
             code(self._field, self._field_of), code(self._rule_id, None)], schema=_SETLDETAIL_STORED)

    def close(self) -> dict[str, Path]:
        while self._pending:
            self._pending.pop(0).result()
        self._detail_thread.shutdown()
        if self._info is None:
            self._open(None)  # no visits: empty files
        self._info.close()
        self._detail.close()
        for key, path in self.paths.items():
            os.replace(self._part[key], path)
        return self.paths

    def abort(self) -> None:
        self._detail_thread.shutdown(cancel_futures=True)  # waits for the block being written
        self._pending.clear()
        for writer in (self._info, self._detail):
            if writer is None:
                continue
            try:
                writer.close()
            except Exception:  # noqa: BLE001 - already failing; the files are removed below
                pass
        for part in self._part.values():
            part.unlink(missing_ok=True)
        if self._made and not any(self.out_dir.iterdir()):
            self.out_dir.rmdir()
