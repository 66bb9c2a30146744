"""Fee lines → per-visit amounts on the local engine: DuckDB reads and joins, one compiled pass sums.

:func:`yibao.batch.inputs.classification_query` is the definition (portable SQL, also run by Spark). Its
cost on DuckDB is the wide grouped aggregation — seven sums over a string key with a million groups, a hash
table that DuckDB rebuilds although fee lines usually come grouped by visit (HIS exports write a visit's
lines together). Here DuckDB does what it is good at — reading the lines, naming each line's level and, for
a small catalogue, its entry — and streams Arrow batches (string views: no string copies) to
:func:`_classify_lines`, which looks a large catalogue up itself (DuckDB's hash of the code, then its bytes),
applies the same per-line arithmetic in the same integers (DuckDB's ``//`` truncates toward zero: so does
the pass) and sums each *run* of equal ``mdtrt_id``. When the runs' keys strictly increase (sorted lines: checked on
every line, for free) or are all distinct (one hash of the run keys), every run is a visit; otherwise the
runs are summed per visit by DuckDB (exact whatever the order). Where the first batch's lines are scattered
(more than half its runs one line long, unsorted) the SQL runs instead: its hash aggregate is then faster.

Where the arithmetic could leave the range this pass checks (a product or sum near 2**62), a column has a
type other than the claims schema's decimals, or a column the SQL would sum as NULL, the SQL runs instead:
the same result, or the same error, as before.
"""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from types import SimpleNamespace

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit

from yibao.batch.inputs import RATE_DEN, classification_query, pack_tables
from yibao.policy.compiled import CompiledPack
from yibao.sql import q

OUT = ("fulamt", "overlmt", "pre", "inscp", "unclassified", "item_count", "inscp_full")
SAFE = 2**62  # every per-line value and running sum stays below this; beyond it the SQL decides (BIGINT or error)
BATCH = 1 << 17  # lines per Arrow batch and kernel call
SCATTERED = 0.5  # more runs per line than this in an unsorted first batch: the SQL instead
SMALL_CATALOGUE = 16  # up to this many codes DuckDB names a line's entry (CASE); beyond, hash + bytes in the pass
RESULT = pa.schema([("mdtrt_id", pa.string()), *((name, pa.int64()) for name in OUT)])
SCALES = {"det_item_fee_sumamt": 2, "cnt": 4, "preselfpay_ratio": 4}  # fen and RATE_DEN units of the SQL casts


@njit(cache=True, nogil=True)
def _classify_lines(k8, k64, k32, kdata, kstarts, cids, lookup, c8, c32, cdata, cstarts, cvalid, chash,
                    t_hash, t_id, t_bytes, t_off, fee, fee_mul, cnt, cnt_mul, ratio, ratio_mul, rvalid, lid,
                    lv_class, cat_lid, r_in, r_full, r_num, r_den, cap, has_cap, out_starts, sums):
    """One pass over a batch of lines: the SQL's per-line amounts, summed per run of equal mdtrt_id.

    The catalogue entry of a line: ``cids[i]`` (-1: none) unless ``lookup``; then its code's DuckDB hash probes
    ``t_hash`` (open addressing, ``t_id`` -1 = empty), and a slot counts only when the code's bytes equal the
    entry's. ``lid``: the line's level as an
    index into the levels (-1: none given, -2: a level neither classes nor catalogue name); ``lv_class``: the
    class of a level (-1: none); ``cat_lid``: the level of a catalogue entry (-3: none). Rules: the classes,
    then the catalogue entries. Writes each run's first line into ``out_starts`` and its seven sums into
    the columns of ``sums``; returns (runs, sorted, safe): ``sorted`` when every run's key comes after the one
    before, ``safe`` when nothing left the checked range (else the SQL decides).
    """
    n = fee.shape[0]
    nk = r_in.shape[0] - cap.shape[0]
    mask = t_hash.shape[0] - 1
    half = SAFE // 2
    runs = 0
    ordered = True
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = 0
    for i in range(n):
        # a new run where the key differs from the line before (byte order: a smaller key means unsorted);
        # written out inline: the comparisons run on every line
        same = i > 0 and k64[2 * i] == k64[2 * i - 2] and k64[2 * i + 1] == k64[2 * i - 1]
        if i > 0 and not same:
            ni, nj = np.int64(k32[4 * i]), np.int64(k32[4 * i - 4])
            if ni <= 12:
                src_i, at_i = k8, 16 * i + 4
            else:
                src_i, at_i = kdata, kstarts[k32[4 * i + 2]] + np.int64(k32[4 * i + 3])
            if nj <= 12:
                src_j, at_j = k8, 16 * i - 12
            else:
                src_j, at_j = kdata, kstarts[k32[4 * i - 2]] + np.int64(k32[4 * i - 1])
            order = 0
            for p in range(ni if ni < nj else nj):
                x, y = src_i[at_i + p], src_j[at_j + p]
                if x != y:
                    order = 1 if x > y else -1
                    break
            if order == 0 and ni != nj:
                order = 1 if ni > nj else -1
            same = order == 0
            if order < 0:
                ordered = False
        if not same:
            if i > 0:
                sums[0, runs], sums[1, runs], sums[2, runs], sums[3, runs] = s0, s1, s2, s3
                sums[4, runs], sums[5, runs], sums[6, runs] = s4, s5, s6
                runs += 1
            out_starts[runs] = i
            s0 = s1 = s2 = s3 = s4 = s5 = s6 = 0
        # the catalogue entry for the code, if any: hash probe, then the bytes
        cid = -1
        if not lookup:
            cid = cids[i]
        elif cvalid[i]:
            h = chash[i]
            slot = h & mask
            nc = np.int64(c32[4 * i])
            if nc <= 12:
                src, at = c8, 16 * i + 4
            else:
                src, at = cdata, cstarts[c32[4 * i + 2]] + np.int64(c32[4 * i + 3])
            while t_id[slot] >= 0:
                e = t_id[slot]
                if t_hash[slot] == h and t_off[e + 1] - t_off[e] == nc:
                    equal = True
                    start = t_off[e]
                    for p in range(nc):
                        if src[at + p] != t_bytes[start + p]:
                            equal = False
                            break
                    if equal:
                        cid = e
                        break
                slot = (slot + 1) & mask
        # the line's own class wins over the catalogue's (the catalogue's price cap stays)
        lv = lid[i]
        if lv != -1 and (cid < 0 or cat_lid[cid] != lv):
            r = lv_class[lv] if lv >= 0 else -1
        else:
            r = nk + cid if cid >= 0 else -1
        f = fee[i] * fee_mul
        s5 += 1
        if r < 0:  # no class applies: the whole line self-paid, and counted for the report
            s0 += f
            s4 += 1
        elif not r_in[r]:
            s0 += f
        else:
            ovl = 0
            if cid >= 0 and has_cap[cid]:
                q = cnt[i] * cnt_mul
                aq = q if q >= 0 else -q
                ac = cap[cid] if cap[cid] >= 0 else -cap[cid]
                if (aq >= 1 << 31 or ac >= 1 << 29) and aq != 0 and ac > (half - RATE_DEN) // aq:
                    return runs, ordered, False
                lim = 2 * cap[cid] * q + RATE_DEN  # then / (2 * RATE_DEN), truncated toward zero
                lim = lim // (2 * RATE_DEN) if lim >= 0 else -((-lim) // (2 * RATE_DEN))
                if f > lim:
                    ovl = f - lim
            x = f - ovl
            if rvalid[i]:
                num, den = ratio[i] * ratio_mul, RATE_DEN
            else:
                num, den = r_num[r], r_den[r]
            share = 0
            if num > 0:
                ax = x if x >= 0 else -x
                if (ax >= 1 << 40 or num >= 1 << 20) and ax != 0 and ax > (half - den) // num:
                    return runs, ordered, False
                share = 2 * x * num + den  # then / (2 * den), truncated toward zero
                share = share // (2 * den) if share >= 0 else -((-share) // (2 * den))
            rest = x - share
            s1 += ovl
            s2 += share
            s3 += rest
            if r_full[r]:
                s6 += rest
        if (s0 >= SAFE or s0 <= -SAFE or s1 >= SAFE or s1 <= -SAFE or s2 >= SAFE or s2 <= -SAFE
                or s3 >= SAFE or s3 <= -SAFE or s6 >= SAFE or s6 <= -SAFE):
            return runs, ordered, False
    if n:
        sums[0, runs], sums[1, runs], sums[2, runs], sums[3, runs] = s0, s1, s2, s3
        sums[4, runs], sums[5, runs], sums[6, runs] = s4, s5, s6
        runs += 1
    return runs, ordered, True


@njit(cache=True, nogil=True)
def _gather(v8, v32, data, starts, rows):
    """The strings at ``rows`` of a string_view array as an Arrow string array's (offsets, bytes)."""
    offsets = np.zeros(rows.shape[0] + 1, np.int64)
    for j in range(rows.shape[0]):
        offsets[j + 1] = offsets[j] + v32[4 * rows[j]]
    out = np.empty(offsets[-1], np.uint8)
    for j in range(rows.shape[0]):
        i = rows[j]
        n = np.int64(v32[4 * i])
        if n <= 12:
            src, at = v8, 16 * i + 4
        else:
            src, at = data, starts[v32[4 * i + 2]] + np.int64(v32[4 * i + 3])
        for p in range(n):
            out[offsets[j] + p] = src[at + p]
    return offsets.astype(np.int32), out


def _scale_mul(type_: str, target: int) -> int | None:
    """10**(target - scale) for a DECIMAL(p, s) whose unscaled value times it stays below 10**18; else None."""
    if not type_.startswith("DECIMAL("):
        return None
    p, s = (int(x) for x in type_[8:-1].split(","))
    return 10 ** (target - s) if s <= target and p - s + target <= 18 else None


def _unscaled(array: pa.Array) -> np.ndarray:
    """The unscaled integers of a decimal array of at most 18 digits, as int64."""
    width = array.type.bit_width
    words = np.frombuffer(array.buffers()[1], dtype=np.int64 if width == 128 else np.dtype(f"int{width}"))
    words.setflags(write=False)  # read-only whoever made the buffer: one type, one specialisation of the pass
    if width == 128:  # little-endian low words; the high ones only extend the sign
        return words[2 * array.offset: 2 * (array.offset + len(array)): 2]
    return words[array.offset: array.offset + len(array)].astype(np.int64, copy=False)


def _views(array: pa.Array):
    """(views as bytes, as int64 pairs, as int32 quads; variadic data; start of each data buffer) of a string_view
    array."""
    if not pa.types.is_string_view(array.type):
        array = array.cast(pa.string_view())
    bufs = array.buffers()
    v8 = np.frombuffer(bufs[1], dtype=np.uint8)[16 * array.offset: 16 * (array.offset + len(array))]
    v8.setflags(write=False)  # as DuckDB's buffers are (see _unscaled)
    v32, v64 = v8.view(np.int32), v8.view(np.int64)
    data = [np.frombuffer(b, dtype=np.uint8) if b is not None else np.zeros(0, np.uint8) for b in bufs[2:]]
    starts = np.cumsum([0] + [len(d) for d in data], dtype=np.int64)
    data = np.concatenate(data) if data else np.zeros(0, np.uint8)
    data.setflags(write=False)  # one array type for the kernel, whichever buffer a string lives in
    return v8, v64, v32, data, starts


def _valid(array: pa.Array) -> np.ndarray:
    if array.null_count == 0:
        return np.ones(len(array), np.bool_)
    return array.is_valid().to_numpy(zero_copy_only=False)


class _Pack:
    """The pack's classes and catalogue as the arrays :func:`_classify_lines` reads (from the SQL's pack tables)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, pack: CompiledPack):
        t = pack_tables(pack)
        k, c = t["pack_classes"], t["pack_catalog"]
        classes, cat_lv = k["chrgitm_lv"].to_pylist(), c["cat_lv"].to_pylist()
        self.levels = classes + sorted({lv for lv in cat_lv if lv is not None} - set(classes))
        index = {lv: j for j, lv in enumerate(self.levels)}
        self.lv_class = np.array([j if j < len(classes) else -1 for j in range(len(self.levels))], np.int64)
        self.cat_lid = np.array([index[lv] if lv is not None else -3 for lv in cat_lv], np.int64)

        def ints(table, name):
            return table[name].to_numpy(zero_copy_only=False)

        columns = [(k, "in_scope", c, "cat_in_scope"), (k, "full_pay", c, "cat_full_pay"),
                   (k, "pre_num", c, "cat_pre_num"), (k, "pre_den", c, "cat_pre_den")]
        self.ok = all(a[x].null_count == 0 and b[y].null_count == 0 for a, x, b, y in columns)
        self.r_in, self.r_full, self.r_num, self.r_den = (
            np.concatenate([ints(a, x), ints(b, y)]) if self.ok else None for a, x, b, y in columns)
        if self.ok:
            self.r_in, self.r_full = self.r_in.astype(np.bool_), self.r_full.astype(np.bool_)
            self.r_num, self.r_den = self.r_num.astype(np.int64), self.r_den.astype(np.int64)
            self.ok = not ((self.r_num > 0) & (self.r_den <= 0)).any()
        self.has_cap = _valid(c["cat_cap"].combine_chunks())
        self.cap = c["cat_cap"].fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
        # the catalogue codes: bytes, and an open-addressing table keyed by DuckDB's hash() of the code
        self.codes = c["med_list_codg"].to_pylist()
        self.lookup = len(self.codes) > SMALL_CATALOGUE  # else a CASE in the export query
        codes = [x.encode() for x in self.codes]
        self.t_bytes = np.frombuffer(b"".join(codes), np.uint8) if codes else np.zeros(0, np.uint8)
        self.t_off = np.cumsum([0] + [len(x) for x in codes], dtype=np.int64)
        size = 1 << max(4, (2 * len(codes)).bit_length())
        self.t_hash = np.zeros(size, np.int64)
        self.t_id = np.full(size, -1, np.int64)
        con.register("classify_codes", pa.table({"j": pa.array(range(len(codes)), pa.int64()),
                                                 "code": c["med_list_codg"]}))
        try:
            hashes = {j: h - (1 << 64) if h >= 1 << 63 else h  # the int64 the kernel sees
                      for j, h in con.sql("SELECT j, hash(code) FROM classify_codes").fetchall()}
        finally:
            con.unregister("classify_codes")
        for j in range(len(codes)):
            h = hashes[j]
            slot = h & (size - 1)
            while self.t_id[slot] >= 0:
                slot = (slot + 1) & (size - 1)
            self.t_hash[slot], self.t_id[slot] = h, j

    def code_case(self, column: str) -> str:
        """A small catalogue's entry for the line's code, by DuckDB itself (-1: none)."""
        whens = " ".join(f"WHEN {column} = {q(code)} THEN {j}" for j, code in enumerate(self.codes))
        return f"CASE {whens} ELSE -1 END" if self.codes else "-1"

    def level_case(self, column: str) -> str:
        """The line's level as an index into ``levels``: -1 none given, -2 one neither classes nor catalogue name."""
        whens = " ".join(f"WHEN {column} = {q(lv)} THEN {j}" for j, lv in enumerate(self.levels))
        return f"CASE WHEN {column} IS NULL THEN -1 {whens} ELSE -2 END"


EXPORT = {"preserve_insertion_order": "true",  # the lines' own order: a visit's run stays whole
          "arrow_output_version": "'1.5'", "produce_arrow_string_view": "true",  # no widening, no string copies
          # DuckDB's threads read ahead this far while Python is busy (loading the pass, summing a batch); with
          # its default (976.5 KiB) they stop at once and the reading waits for the thread that fetches
          "streaming_buffer_size": "'128MB'"}


def classified_arrow(con: duckdb.DuckDBPyConnection, pack: CompiledPack, items: str = "fee_items") -> pa.Table | None:
    """The rows of ``classification_query(items)`` with ``pack``'s tables (in any order), or None where the SQL
    must decide (see the module's docstring)."""
    rel = con.sql(f"SELECT * FROM {items} LIMIT 0")
    types = dict(zip(rel.columns, (str(t) for t in rel.types)))
    muls = {name: _scale_mul(types.get(name, ""), target) for name, target in SCALES.items()}
    if None in muls.values() or any(types.get(c) != "VARCHAR" for c in ("mdtrt_id", "med_list_codg", "chrgitm_lv")):
        return None
    rules = _Pack(con, pack)
    if not rules.ok:
        return None
    code = ("i.med_list_codg, hash(i.med_list_codg) AS h" if rules.lookup
            else f"CAST({rules.code_case('i.med_list_codg')} AS INTEGER) AS cid")
    query = (f"SELECT i.mdtrt_id, {code}, CAST({rules.level_case('i.chrgitm_lv')} AS INTEGER) AS lid,"
             f" i.det_item_fee_sumamt, i.cnt, i.preselfpay_ratio FROM {items} i")
    kept = {name: con.sql(f"SELECT current_setting({q(name)})").fetchone()[0] for name in EXPORT}
    for name, value in EXPORT.items():
        con.sql(f"SET {name} = {value}")
    try:
        # DuckDB reads on its threads while the pass sums the batches it has handed over (no GIL held); at most
        # two batches per core in flight, so memory stays bounded whatever the number of lines
        threads = os.cpu_count() or 1
        parts, pending = [], deque()
        reader = con.sql(query).to_arrow_reader(BATCH)
        _prime(reader.schema, muls, rules)  # while DuckDB reads the first lines
        with ThreadPoolExecutor(threads) as pool:
            for b in reader:
                if not parts and not pending:  # the first batch tells whether lines come grouped by visit
                    first = _batch(b, muls, rules)
                    if first is not None and first[1] is not None and not first[2] and first[1].shape[1] > SCATTERED * len(b):
                        reader.close()  # scattered: most runs one line long, the SQL's hash aggregate is faster
                        return None
                    parts.append(first)
                    continue
                if len(pending) >= 2 * threads:
                    parts.append(pending.popleft().result())
                pending.append(pool.submit(_batch, b, muls, rules))
            parts += [f.result() for f in pending]
        if any(p is None for p in parts):
            return None
    finally:
        for name, value in kept.items():
            con.sql(f"SET {name} = {q(str(value)) if isinstance(value, str) else str(value).lower()}")
    return _visits(con, [p for p in parts if p[1] is not None])


def _prime(schema: pa.Schema, muls: dict[str, int], rules: _Pack) -> None:
    """Two made-up lines of the export's own types through :func:`_batch`: Numba loads (from its disk cache) or
    compiles the specialisation this run calls while DuckDB's threads read the first batch, instead of after it
    (in a fresh process, e.g. a CLI run, the first use of Numba costs about 0.4 s of CPU). Two lines: one
    would make every column contiguous, a type a real batch of decimal128 does not have."""
    values = {"mdtrt_id": "0", "med_list_codg": "0", "h": 0, "cid": -1, "lid": -1, "det_item_fee_sumamt": Decimal(0),
              "cnt": Decimal(0), "preselfpay_ratio": None}
    _batch(pa.RecordBatch.from_arrays([pa.array([values[f.name]] * 2, f.type) for f in schema], schema=schema),
           muls, rules)


def _batch(batch: pa.RecordBatch, muls: dict[str, int], rules: _Pack):
    """(run keys, run sums, sorted) of one batch, or None where the SQL must decide."""
    if rules.lookup:
        key, code, h, lid, fee, cnt, ratio = batch.columns
        cids = np.zeros(0, np.int32)
    else:
        key, cid, lid, fee, cnt, ratio = batch.columns
        cids = cid.to_numpy()  # INTEGER, read in place
    n = batch.num_rows
    if n == 0:
        return None, None, True
    if key.null_count or fee.null_count or cnt.null_count:
        return None
    k8, k64, k32, kdata, kstarts = _views(key)
    if rules.lookup:
        c8, _, c32, cdata, cstarts = _views(code)
        cvalid, chash = _valid(code), h.to_numpy().view(np.int64)
    else:  # not read
        c8 = cdata = np.zeros(0, np.uint8)
        c8.setflags(write=False)
        c32, cstarts, cvalid, chash = np.zeros(0, np.int32), np.zeros(1, np.int64), np.zeros(0, np.bool_), cids
        c32.setflags(write=False)
    starts = np.empty(n, np.int64)
    sums = np.empty((7, n), np.int64)
    runs, ordered, safe = _classify_lines(
        k8, k64, k32, kdata, kstarts, cids, rules.lookup, c8, c32, cdata, cstarts, cvalid, chash,
        rules.t_hash, rules.t_id, rules.t_bytes, rules.t_off,
        _unscaled(fee), muls["det_item_fee_sumamt"], _unscaled(cnt), muls["cnt"], _unscaled(ratio),
        muls["preselfpay_ratio"], _valid(ratio), lid.to_numpy(),
        rules.lv_class, rules.cat_lid, rules.r_in, rules.r_full, rules.r_num, rules.r_den, rules.cap, rules.has_cap,
        starts, sums)
    if not safe:
        return None
    offsets, data = _gather(k8, k32, kdata, kstarts, starts[:runs])
    keys = pa.StringArray.from_buffers(runs, pa.py_buffer(offsets), pa.py_buffer(data))
    # the runs' sums copied out compactly: the batch-sized buffer goes back to the allocator for the next batch (kept
    # alive instead, reused heap pages made every batch's whole buffer resident: +1 GiB at ten million visits)
    return keys, sums[:, :runs].copy(), ordered


def _visits(con: duckdb.DuckDBPyConnection, parts) -> pa.Table | None:
    """Runs → visits: a visit's runs in adjacent batches joined; then, unless the keys strictly increase or are
    all distinct, the runs summed per key by DuckDB."""
    keys, sums, ordered = [], [], True
    for k, s, o in parts:
        ordered &= o
        if keys:
            last, first = keys[-1][-1].as_py(), k[0].as_py()
            if last == first:  # one visit across two batches
                joined = [int(a) + int(b) for a, b in zip(sums[-1][:, -1], s[:, 0])]
                if any(abs(v) >= SAFE for v in joined):
                    return None
                sums[-1][:, -1] = joined
                k, s = k.slice(1), s[:, 1:]
            elif last.encode() > first.encode():
                ordered = False
        if len(k):
            keys.append(k)
            sums.append(s)
    # a record batch per part, its columns the pass's own rows of sums (no copy: a concatenation of the seven
    # columns cost as much as reading them back, ~0.3 s at ten million visits)
    table = pa.Table.from_batches([pa.RecordBatch.from_arrays([k, *(pa.array(row) for row in s)], schema=RESULT)
                                   for k, s in zip(keys, sums)], RESULT)
    if ordered or pc.count_distinct(table["mdtrt_id"]).as_py() == table.num_rows:
        return table
    con.register("classify_runs", table)
    try:
        return con.sql("SELECT mdtrt_id, " + ", ".join(f"CAST(SUM({c}) AS BIGINT) AS {c}" for c in OUT)
                       + " FROM classify_runs GROUP BY mdtrt_id").to_arrow_table()
    finally:
        con.unregister("classify_runs")


def classify_into(con: duckdb.DuckDBPyConnection, pack: CompiledPack, items: str, table: str = "classified",
                  insert: bool = False, view: bool = True) -> None:
    """``table`` with the rows of ``classification_query(items)`` under ``pack``: where the compiled pass
    answers, its Arrow result registered under that name (``view``: a view on that memory, read in place by
    validation and by the settlement's join; copying a million rows with strings into a DuckDB table cost more
    than all those reads gain from it), else a table the SQL itself creates (``pack``'s tables registered).
    ``insert``: INSERT INTO the existing table ``table`` instead (``view`` does not apply)."""
    result = classified_arrow(con, pack, items)
    if not insert:
        con.unregister(table)  # a view left by an earlier run would hide the table made here
    if result is not None and view and not insert:
        con.sql(f"DROP TABLE IF EXISTS {table}")
        con.register(table, result)
        return
    if result is None:
        for name, arrow in pack_tables(pack).items():
            con.register(name, arrow)
        source = classification_query(items)
    else:
        con.register("classify_result", result)
        source = "SELECT " + ", ".join(("mdtrt_id", *OUT)) + " FROM classify_result"
    try:
        con.sql(f"INSERT INTO {table} {source}" if insert else f"CREATE OR REPLACE TABLE {table} AS {source}")
    finally:
        if result is not None:
            con.unregister("classify_result")


def warm() -> None:
    """Load the compiled pass (from Numba's disk cache, or compile it) outside a timed run, as benchmarks do for
    the settlement kernel: one line through both lookups on a throwaway connection."""
    level = SimpleNamespace(chrgitm_lv="01", in_scope=True, pre_num=1, pre_den=10, price_cap=100, full=False)
    con = duckdb.connect()
    con.register("fee_items", pa.table({
        "mdtrt_id": ["V1"], "med_list_codg": ["A"], "chrgitm_lv": ["01"],
        "cnt": pa.array([Decimal(1)], pa.decimal128(16, 4)),
        "det_item_fee_sumamt": pa.array([Decimal(1)], pa.decimal128(16, 2)),
        "preselfpay_ratio": pa.array([None], pa.decimal128(6, 4))}))
    global SMALL_CATALOGUE
    keep = SMALL_CATALOGUE
    try:
        for SMALL_CATALOGUE in (0, keep):
            classified_arrow(con, SimpleNamespace(classes={"01": level}, catalog={"A": level}))
    finally:
        SMALL_CATALOGUE = keep
        con.close()
