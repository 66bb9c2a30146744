"""Visits streamed from DuckDB into the compiled kernel, block by block, on every core.

DuckDB does what it is good at — reading the claims, classifying fee lines, the joins and the
ORDER BY (person, year, settlement time, mdtrt_id) — and hands over Arrow record batches. Batches
are cut only where a person-year ends, so each block starts with empty accumulators; blocks are
settled by :func:`yibao.batch.kernel.settle_block` in a thread pool (the kernel holds no GIL), and
every settled block leaves as an Arrow record batch: into a Parquet file as it comes (memory stays
bounded whatever the year's size) or into one table.

Which basic rule a visit falls under is decided by :meth:`CompiledPack.basic_rule` — the scalar
engine's own look-up — once per distinct (insutype, med_type, dise_codg, level), and joined back.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterator

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit

from yibao.batch import kernel
from yibao.batch.lower import NONE, OFFSITE, KernelError, Program, lower
from yibao.batch.validate import JoinCounts
from yibao.sql import ident, q
from yibao.errors import Problem
from yibao.policy.compiled import CompiledPack
from yibao.settlement.model import SETLINFO_FIELDS

PASS_THROUGH = ("psn_no", "mdtrt_id", "yr", "setl_time", "insutype", "med_type", "level")
# any order of persons will do as long as each person-year is contiguous and in time order; psn_no itself is
# the cheapest key to sort on (measured: a 64-bit hash of it first, then psn_no to break ties, sorted 1M visits
# in 1.42 s against 0.84 s), and it is the order Spark sorts partitions in
ORDER = "psn_no, yr, setl_time, mdtrt_id"
# the same order when the input carries psn_key (the person's rank in psn_no order, yibao.batch.inputs): integer
# keys, setl_time implying yr, and mdtrt_id only where a person's times tie (rare) — with the narrow code columns
# below, the ordering query's CPU time at 1M visits fell from 1.03–1.12 s to 0.63–0.64 s (RUSAGE, loaded machine)
ORDER_KEYED = "psn_key, setl_time"  # ties of one person's setl_time put in mdtrt_id order per block: _in_id_order
# a pack with household caps (家庭年度限额) settles a household's members' visits together, in time order, as the
# service settles them when they arrive; a person without hh_no is a unit of their own
UNIT = "k_unit"
ORDER_HH = f"{UNIT}, yr, setl_time, mdtrt_id"


def unit_key(program: Program) -> str:
    """The column whose year is one settlement unit: the person, or the household where the pack has household caps."""
    return UNIT if program.households else "psn_no"
BATCH_ROWS = 131_072  # rows per Arrow batch from DuckDB: several blocks per core keep both cores busy


def threads() -> int:
    """Kernel threads: ``YIBAO_KERNEL_THREADS``, else every core."""
    return int(os.environ.get("YIBAO_KERNEL_THREADS") or os.cpu_count() or 1)


@dataclass(frozen=True)
class Combos:
    """The (insutype, med_type, dise_codg, level) combinations of a source, numbered.

    The ordering query joins them once and carries only the number (``k_combo``) through its sort; the kernel's
    codes (insutype, med_type and level indices, the basic rule, its once-a-year and 单病种 facts) and the
    pass-through strings are looked up by that number per block. Each lookup array has one more entry, last, for a
    visit that matches no combination (``k_combo`` null, read as -1): no rule, unknown level, refused (KRN010).
    """

    table: pa.Table  # insutype, med_type, dise_codg, level, k_combo: what the ordering query joins
    insutype: pa.Array
    med_type: pa.Array
    level: pa.Array
    codes: dict[str, np.ndarray]  # ins, med, level, bidx, once_match, fixstd


def combos_of(pack: CompiledPack, program: Program, combos) -> Program:
    """``program`` carrying the numbered combinations ``combos`` of its source (:class:`Combos`): the rule of each
    by :meth:`CompiledPack.basic_rule`, the scalar engine's own look-up."""
    index = {id(r): i for i, r in enumerate(pack.basic)}
    ins_ix = {c: i for i, c in enumerate(program.insutypes)}
    med_ix = {c: i for i, c in enumerate(program.med_types)}
    rows, seen = [], set()
    for insutype, med_type, dise, level in combos:
        dise = dise or ""
        if insutype is None or med_type is None or level is None or (insutype, med_type, dise, level) in seen:
            continue  # a null never joins: such a visit has no rule (KRN010); a combination joins once
        seen.add((insutype, med_type, dise, level))
        rule = pack.basic_rule(insutype, med_type, dise, level) if level in pack.levels else None
        rows.append((insutype, med_type, dise, level, ins_ix.get(insutype, len(program.insutypes)),
                     med_ix.get(med_type, len(program.med_types)), program.level_index(level),
                     -1 if rule is None else index[id(rule)],  # refused by validation (BAT004) or KRN010
                     int(rule is not None and bool(rule.once_diseases) and dise.startswith(rule.once_diseases)),
                     -1 if rule is None else _or_none(rule.fixed_standard(dise, level))))
    cols = list(zip(*rows)) if rows else [()] * 10
    strings = [pa.array(list(c) + [None], pa.string()) for c in cols[:4]]
    no_match = (len(program.insutypes), len(program.med_types), NONE, NONE, 0, NONE)
    codes = {name: np.array(list(c) + [last], dtype)
             for name, c, last, dtype in zip(("ins", "med", "level", "bidx", "once_match", "fixstd"), cols[4:], no_match,
                                             (np.int16, np.int16, np.int16, np.int16, np.int8, np.int64))}
    table = pa.table({"insutype": strings[0].slice(0, len(rows)), "med_type": strings[1].slice(0, len(rows)),
                      "dise_codg": strings[2].slice(0, len(rows)), "level": strings[3].slice(0, len(rows)),
                      "k_combo": pa.array(range(len(rows)), pa.int32())})
    return replace(program, combos=Combos(table, strings[0], strings[1], strings[3], codes))


def code_tables(program: Program) -> dict[str, pa.Table]:
    """The small table the ordering query joins (``program`` from :func:`combos_of`)."""
    return {"k_combos": program.combos.table}


def _or_none(value: int | None) -> int:
    return -1 if value is None else value


COMBOS = "SELECT DISTINCT insutype, med_type, COALESCE(dise_codg, '') AS dise_codg, level FROM {source}"


def register_program(con: duckdb.DuckDBPyConnection, pack: CompiledPack, program: Program, source: str,
                     combos: str | None = None) -> Program:
    """``program`` with the combinations of ``source`` (or of the query ``combos``, when the caller has a cheaper one
    giving at least those: ``yibao.batch.inputs.CLAIMS_COMBOS``), their table registered for the ordering query;
    settle the ordering query's blocks with the program returned."""
    program = combos_of(pack, program, con.sql(combos or COMBOS.format(source=source)).fetchall())
    for name, table in code_tables(program).items():
        con.register(name, table)
    return program


# visits_in columns the stream reads when a source has them (k_check: by JoinCounts, not the kernel)
OPTIONAL_INPUTS = ("offsite_status", "age", "inscp_full", "hh_no", "psn_key", "k_check", "k_cats")


def optional_inputs(columns) -> frozenset[str]:
    return frozenset(c for c in OPTIONAL_INPUTS if c in columns)


def ordering_query(program: Program, source: str, order: bool = True, present: frozenset[str] = frozenset(),
                   named_by_key: bool = False) -> str:
    """The kernel's input in person order: the visit's combination number (:class:`Combos`, joined from
    ``k_combos``), referral level, category mask, amounts (fen) — narrow integer columns, the fewer and narrower
    the cheaper DuckDB sorts them.

    ``present``: the optional inputs ``source`` has (:data:`OPTIONAL_INPUTS`). Without ``offsite_status``
    every visit is local; a value other than local / filed / unfiled becomes -1 and is refused (KRN012).
    Without ``age`` (completed years) the age is unknown (-1): refused only where a rule has age points.
    ``k_cats`` (the persons' categories as bits, :func:`yibao.batch.inputs.category_mask`) is read where given,
    else the ``cat_<code>`` columns.
    A pack with household caps orders by household (``k_unit``; ``k_hh``: 0 without hh_no, refused only where a
    household-capped tier applies, KRN014). ``named_by_key``: where the rows are ordered by psn_key, psn_no is left
    out of the sort and named by its key afterwards (:func:`named_persons`).
    """
    hh = "hh_no" in present and program.households
    keyed = "psn_key" in present and not program.households
    unit = ""
    if program.households:
        unit = (f", CASE WHEN v.hh_no IS NULL THEN 'p:' || v.psn_no ELSE 'h:' || v.hh_no END AS {UNIT}, "
                f"CAST(v.hh_no IS NOT NULL AS BIGINT) AS k_hh" if hh else f", 'p:' || v.psn_no AS {UNIT}, 0 AS k_hh")
    k_offsite = ("CASE COALESCE(v.offsite_status, 'local') "
                 + " ".join(f"WHEN {q(status)} THEN {code}" for status, code in OFFSITE.items())
                 + " ELSE -1 END") if "offsite_status" in present else "0"
    k_age = "COALESCE(v.age, -1)" if "age" in present else "-1"
    k_full = "COALESCE(v.inscp_full, 0)" if "inscp_full" in present else "0"  # inscp of coshare: false classes
    k_ref = ("CASE v.referral_from_level " + " ".join(f"WHEN {q(c)} THEN {i}" for i, c in enumerate(program.levels))
             + " ELSE -1 END") if program.levels else "-1"  # a level the pack does not know, or none: -1
    cats = ("COALESCE(v.k_cats, 0)" if "k_cats" in present  # the same bits, made per person (inputs.category_mask)
            else " + ".join(f"(CASE WHEN v.cat_{ident(c)} THEN {1 << i} ELSE 0 END)"
                            for i, c in enumerate(program.categories)) or "0")
    psn_no = "" if keyed and named_by_key else "v.psn_no, "
    return f"""
SELECT {psn_no}v.mdtrt_id, v.yr, v.setl_time, c.k_combo, CAST({k_ref} AS SMALLINT) AS k_ref,
       CAST({cats} AS BIGINT) AS k_cats, CAST(COALESCE(v.retiree, FALSE) AS TINYINT) AS k_retiree,
       CAST(v.acct_balance AS BIGINT) AS k_acct, CAST(v.fulamt AS BIGINT) AS k_ful, CAST(v.overlmt AS BIGINT) AS k_ovl,
       CAST(v.pre AS BIGINT) AS k_pre, CAST(v.inscp AS BIGINT) AS k_inscp, CAST({k_offsite} AS TINYINT) AS k_offsite,
       CAST({k_age} AS SMALLINT) AS k_age, CAST({k_full} AS BIGINT) AS k_full{unit}{", v.psn_key" if keyed else ""}{
           ", v.k_check" if "k_check" in present else ""}
FROM {source} v
LEFT JOIN k_combos c ON c.insutype = v.insutype AND c.med_type = v.med_type
     AND c.dise_codg = COALESCE(v.dise_codg, '') AND c.level = v.level
{("ORDER BY " + (ORDER_HH if program.households else ORDER_KEYED if keyed else ORDER)) if order else ""}
"""


def _counted(reader: Iterator[pa.RecordBatch], program: Program, checks: JoinCounts) -> Iterator[pa.RecordBatch]:
    for batch in reader:
        batch = checks.count(batch, program)
        if batch.num_rows:
            yield batch


def named_persons(reader: Iterator[pa.RecordBatch], psn_by_key: pa.Array) -> Iterator[pa.RecordBatch]:
    """The ordering query's batches without psn_no (``named_by_key``) with psn_no put back first, as the person
    whose key it is: ``psn_by_key[k - 1]`` (:data:`yibao.batch.inputs.PERSONS_IN_KEY_ORDER`). Carrying the string
    through DuckDB's sort cost more than this take of ascending keys (the ordering query at 1M visits: 0.63-0.71 s
    → 0.51-0.58 s with it left out, 9 alternating runs)."""
    for batch in reader:
        names = psn_by_key.take(pc.subtract(batch.column("psn_key"), 1))
        yield pa.RecordBatch.from_arrays([names, *batch.columns], names=["psn_no", *batch.schema.names])


def person_blocks(reader: Iterator[pa.RecordBatch], key: str = "psn_no") -> Iterator[pa.RecordBatch]:
    """Re-cut record batches so none splits a person-year (``key``, yr) — or a household-year where ``key`` is
    :data:`UNIT` — copying only the rows at a cut."""
    carry: pa.RecordBatch | None = None
    for batch in reader:
        if batch.num_rows == 0:
            continue
        if carry is not None:  # the carried person-year may go on at the head of this batch
            key_psn, key_yr = carry.column(key)[-1], carry.column("yr")[-1]
            same = pc.and_(pc.equal(batch.column(key), key_psn), pc.equal(batch.column("yr"), key_yr))
            head = _leading_true(same)
            if head == batch.num_rows:
                carry = pa.concat_batches([carry, batch])
                continue
            yield pa.concat_batches([carry, batch.slice(0, head)])
            batch = batch.slice(head)
        psn, yr = batch.column(key), batch.column("yr")
        same = pc.and_(pc.equal(psn, psn[-1]), pc.equal(yr, yr[-1]))
        cut = batch.num_rows - int(pc.sum(same).as_py())  # the last person-year's rows are contiguous
        if cut:
            yield batch.slice(0, cut)
        carry = batch.slice(cut)
    if carry is not None and carry.num_rows:
        yield carry


def _leading_true(mask: pa.Array) -> int:
    values = mask.to_numpy(zero_copy_only=False)
    off = np.flatnonzero(~values)
    return int(off[0]) if len(off) else len(values)


def _filled(batch: pa.RecordBatch, name: str) -> pa.Array:
    """An integer column with nulls as -1 (as the kernel reads it)."""
    column = batch.column(name)
    return pc.fill_null(column, -1) if column.null_count else column


def _ints(batch: pa.RecordBatch, name: str) -> np.ndarray:
    """An integer (or timestamp) column as NumPy, over Arrow's memory where it has no nulls (nulls as -1)."""
    column = batch.column(name)
    if pa.types.is_timestamp(column.type):
        column = column.cast(pa.int64())
    return (pc.fill_null(column, -1) if column.null_count else column).to_numpy(zero_copy_only=False)


def _starts(batch: pa.RecordBatch, key: str = "psn_no") -> np.ndarray:
    # by psn_no itself, not the integer psn_key the block is sorted on: a person is their psn_no whatever the keys
    # say (measured: 7.6 ms against 1.5 ms at 1M visits, too little to trust the keys for)
    psn, yr = batch.column(key), batch.column("yr")
    start = np.ones(batch.num_rows, np.int8)
    if batch.num_rows > 1:
        same = pc.and_(pc.equal(psn.slice(1), psn.slice(0, batch.num_rows - 1)),
                       pc.equal(yr.slice(1), yr.slice(0, batch.num_rows - 1)))
        start[1:] = ~same.to_numpy(zero_copy_only=False)
    return start


@njit(cache=True, nogil=True)
def _members(start, person):
    """Each visit's person as 0, 1, … within its unit-year (``person``: any code unique within the block)."""
    member = np.zeros(start.shape[0], np.int64)
    seen = np.zeros(start.shape[0], np.int64)
    n = 0
    for i in range(start.shape[0]):
        if start[i] == 1:
            n = 0
        k = 0
        while k < n and seen[k] != person[i]:
            k += 1
        if k == n:
            seen[n] = person[i]
            n += 1
        member[i] = k
    return member


def block_inputs(program: Program, batch: pa.RecordBatch, key: str = "psn_no") -> dict[str, np.ndarray]:
    """A person-complete (or, by :data:`UNIT`, household-complete) block of the ordering query as the kernel's
    inputs: the columns as DuckDB (or Spark) typed them, read in place (nulls as -1), and the codes of each visit's
    combination looked up (``program`` from :func:`register_program`)."""
    combos: Combos = program.combos
    combo = _ints(batch, "k_combo")
    visits = {"start": _starts(batch, key), "ref": _ints(batch, "k_ref"), "cats": _ints(batch, "k_cats"),
              "retiree": _ints(batch, "k_retiree"), "acct_bal": _ints(batch, "k_acct"), "ful": _ints(batch, "k_ful"),
              "ovl": _ints(batch, "k_ovl"), "pre": _ints(batch, "k_pre"), "inscp": _ints(batch, "k_inscp"),
              "offsite": _ints(batch, "k_offsite"), "age": _ints(batch, "k_age"), "full": _ints(batch, "k_full")}
    for name, table in combos.codes.items():  # -1, no combination: the table's last entry (no rule, KRN010)
        visits[name] = table[combo]
    if key == UNIT:
        psn = pc.dictionary_encode(batch.column("psn_no")).indices
        visits["member"] = _members(visits["start"], psn.to_numpy(zero_copy_only=False).astype(np.int64))
        visits["hh_known"] = _ints(batch, "k_hh").astype(np.int8)
    bad = np.flatnonzero((visits["bidx"] < 0) | (visits["level"] < 0))
    if len(bad):
        ids = batch.column("mdtrt_id").take(pa.array(bad[:5])).to_pylist()
        raise KernelError(Problem("KRN010", "visits.med_type",
                                  f"{len(bad):,} 次就诊没有适用的基本医保规则或机构等级不在政策包中, 如 {'、'.join(ids)}"))
    bad = np.flatnonzero(visits["offsite"] < 0)
    if len(bad):
        ids = batch.column("mdtrt_id").take(pa.array(bad[:5])).to_pylist()
        raise KernelError(Problem("KRN012", "visits.offsite_status",
                                  f"{len(bad):,} 次就诊的异地就医状态不是 local/filed/unfiled 之一, 如 {'、'.join(ids)}"))
    _check_order(batch, visits["start"], key)
    return visits


def _check_order(batch: pa.RecordBatch, start: np.ndarray, key: str = "psn_no") -> None:
    """A person-year in two places of a block, or visits of one person-year out of time order: KRN011.

    Only the first row of each person-year is compared: when those keys ascend (the order DuckDB and
    Spark sort in) no key repeats; otherwise they are counted distinct.
    """
    heads = pa.array(np.flatnonzero(start))
    psn, yr = batch.column(key).take(heads), batch.column("yr").take(heads)
    if len(heads) > 1:
        a, b = slice(0, len(heads) - 1), slice(1, len(heads))
        ascending = pc.or_(pc.greater(psn[b], psn[a]),
                           pc.and_(pc.equal(psn[b], psn[a]), pc.greater(yr[b], yr[a])))
        if not pc.all(ascending).as_py():
            keys = pc.binary_join_element_wise(psn, pc.cast(yr, pa.string()), "\x1f")
            if pc.count_distinct(keys).as_py() != len(heads):
                raise KernelError(Problem("KRN011", "visits.psn_no", "就诊未按参保人与年度排序: 同一参保人同一年度的就诊不连续"))
    if batch.num_rows > 1:
        times = _ints(batch, "setl_time")
        if np.any((times[1:] < times[:-1]) & (start[1:] == 0)):
            raise KernelError(Problem("KRN011", "visits.setl_time", "同一参保人同一年度的就诊未按结算时间排序"))


def _int64_column(column: np.ndarray) -> pa.Array:
    """A contiguous int64 column as an Arrow array over the same memory (the kernel writes column-major)."""
    column = np.ascontiguousarray(column, np.int64)
    return pa.Array.from_buffers(pa.int64(), len(column), [None, pa.py_buffer(column)])


def block_output(program: Program, batch: pa.RecordBatch, out: np.ndarray, pays: np.ndarray) -> pa.RecordBatch:
    """The settled block in :func:`settled_schema`'s columns: the visit's strings looked up by its combination,
    ful, ovl, pre and inscp its own input columns (``kernel.run(copies=False)``), the rest the kernel's."""
    combos: Combos = program.combos
    combo = batch.column("k_combo")
    arrays = [batch.column("psn_no"), batch.column("mdtrt_id"), batch.column("yr"), batch.column("setl_time"),
              combos.insutype.take(combo), combos.med_type.take(combo), combos.level.take(combo)]
    computed = iter(range(out.shape[1]))
    for j, name in enumerate((*SETLINFO_FIELDS, "inscp_psn_part")):
        if j in kernel.OWN:
            arrays.append(_filled(batch, ("k_ful", "k_ovl", "k_pre", "k_inscp")[j - kernel.OWN[0]]))
        else:
            arrays.append(_int64_column(out[:, next(computed)]))
    for j in range(len(program.rule_ids)):
        arrays.append(_int64_column(pays[:, j]))
    return pa.RecordBatch.from_arrays(arrays, schema=settled_schema(program))


def _in_id_order(batch: pa.RecordBatch) -> pa.RecordBatch:
    """A block sorted on (psn_key, setl_time) with a person's equal times put in mdtrt_id order (:data:`ORDER_KEYED`):
    the block is re-sorted only when such a tie exists in it."""
    if batch.num_rows < 2 or "psn_key" not in batch.schema.names:
        return batch
    key = batch.column("psn_key").to_numpy(zero_copy_only=False)
    time = batch.column("setl_time").cast(pa.int64()).to_numpy(zero_copy_only=False)
    if not np.any((key[1:] == key[:-1]) & (time[1:] == time[:-1])):
        return batch
    return batch.take(pc.sort_indices(batch, [("psn_key", "ascending"), ("setl_time", "ascending"),
                                              ("mdtrt_id", "ascending")]))


def settle_batch(program: Program, batch: pa.RecordBatch, pool: kernel.OutputPool | None = None) -> pa.RecordBatch:
    """One person-complete block of the ordering query through the kernel (``program`` from
    :func:`register_program`); the output row per visit, in the block's order (its outputs in ``pool``'s memory
    when given)."""
    batch = _in_id_order(batch)
    visits = block_inputs(program, batch, unit_key(program))
    out, pays = kernel.run(program, visits, lambda i: batch.column("mdtrt_id")[i].as_py(), copies=False, pool=pool)
    return block_output(program, batch, out, pays)


def ordered_batches(pack: CompiledPack, con: duckdb.DuckDBPyConnection, source: str, program: Program | None = None,
                    combos: str | None = None, psn_by_key: pa.Array | None = None,
                    checks: JoinCounts | None = None) -> tuple[Program, Iterator[pa.RecordBatch]]:
    """The reading side of :func:`settle_stream` (arguments as there): the program with ``source``'s combinations
    registered, and the ordering query's record batches as the kernel takes them — counted by ``checks`` and
    psn_no named by key where asked. ``yibao bench settle`` drains it alone to time DuckDB's part of the step."""
    program = register_program(con, pack, program or lower(pack), source, combos)
    present = optional_inputs(con.sql(f"SELECT * FROM {source} LIMIT 0").columns)
    named_by_key = psn_by_key is not None and "psn_key" in present and not program.households
    reader = con.execute(ordering_query(program, source, present=present, named_by_key=named_by_key)
                         ).to_arrow_reader(BATCH_ROWS)
    if checks is not None:
        reader = _counted(reader, program, checks)
    if named_by_key:
        reader = named_persons(reader, psn_by_key)
    return program, reader


def settle_stream(pack: CompiledPack, con: duckdb.DuckDBPyConnection, source: str,
                  sink: Callable[[pa.RecordBatch], None], program: Program | None = None,
                  combos: str | None = None, psn_by_key: pa.Array | None = None,
                  checks: JoinCounts | None = None) -> int:
    """Settle every row of relation ``source`` (the ``visits_in`` columns); each settled block goes to ``sink``.
    ``psn_by_key``: where ``source`` has psn_key, every psn_no in key order (:func:`named_persons`). ``checks``:
    where ``source`` is the checked join (its ``k_check`` column), the rows are counted there and only the complete
    ones settled; the caller decides from the counts, once the stream has ended, whether to keep what was written.

    Returns the number of visits. Blocks are settled by ``threads()`` workers, at most twice as many
    in flight as workers, and handed to ``sink`` in order, on one thread apart from the caller's.
    """
    program, reader = ordered_batches(pack, con, source, program, combos, psn_by_key, checks)
    count = 0
    outputs = kernel.OutputPool.for_threads(threads())  # blocks written and dropped leave their memory to later ones
    # the sink (a Parquet writer) has a thread of its own, so writing overlaps reading and settling; one
    # thread keeps the blocks in order
    with ThreadPoolExecutor(max_workers=threads()) as pool, ThreadPoolExecutor(max_workers=1) as writer:
        pending, written = [], []
        for block in person_blocks(reader, unit_key(program)):
            pending.append(pool.submit(settle_batch, program, block, outputs))
            while len(pending) > 2 * threads():
                done = pending.pop(0).result()
                count += done.num_rows
                written.append(writer.submit(sink, done))
                while len(written) > 2:
                    written.pop(0).result()
        for future in pending:
            done = future.result()
            count += done.num_rows
            written.append(writer.submit(sink, done))
        for future in written:
            future.result()
    return count


def settle_table(pack: CompiledPack, visits_in: pa.Table | str, con: duckdb.DuckDBPyConnection | None = None,
                 combos: str | None = None, psn_by_key: pa.Array | None = None) -> pa.Table:
    """Settle ``visits_in`` (an Arrow table, or a relation in ``con``) into one Arrow table (each person's
    visits together, in time order; persons in the kernel's order). ``combos``, ``psn_by_key``: as for
    :func:`settle_stream`."""
    con = con or duckdb.connect()
    source = "visits_in"
    if isinstance(visits_in, pa.Table):
        con.register("visits_in", visits_in)
    else:
        source = visits_in
    batches: list[pa.RecordBatch] = []
    settle_stream(pack, con, source, batches.append, combos=combos, psn_by_key=psn_by_key)
    if not batches:
        program = lower(pack)
        return settled_schema(program).empty_table()
    return pa.Table.from_batches(batches)


def settled_schema(program: Program) -> pa.Schema:
    fields = [pa.field("psn_no", pa.string()), pa.field("mdtrt_id", pa.string()), pa.field("yr", pa.int64()),
              pa.field("setl_time", pa.timestamp("us")), pa.field("insutype", pa.string()),
              pa.field("med_type", pa.string()), pa.field("level", pa.string())]
    fields += [pa.field(f, pa.int64()) for f in (*SETLINFO_FIELDS, "inscp_psn_part")]
    fields += [pa.field(f"pay__{ident(r)}", pa.int64()) for r in program.rule_ids]
    return pa.schema(fields)


__all__ = ["settle_stream", "settle_table", "person_blocks", "ordering_query", "q"]
