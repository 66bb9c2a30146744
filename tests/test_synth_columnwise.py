"""The column-wise synthetic region (issue #12: the demo's generation step) draws exactly what the
first, simpler formulations drew: each is kept here as the reference and compared table for table."""

from __future__ import annotations

from decimal import Decimal

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from yibao.policy.loader import resolve_pack
from yibao.supervision.views import OPTIONAL_TABLES
from yibao.synth import generate
from yibao.synth import profiles as P
from yibao.synth import region as R
from yibao.synth.fraud import EXAM_SHARE, _line_visit, _one_decimal, add_supervision_columns, category
from yibao.synth.ids import ascii_digits, fixed_ids


def reference_supervision_columns(tables: dict[str, pa.Table], seed: int) -> dict[str, pa.Table]:
    """The first formulation: a hash lookup per line, a 3-key sort over all lines, a SQL join for purchases."""
    rng = np.random.default_rng([seed, 5])
    insts, visits, items = tables["institutions"], tables["visits"], tables["fee_items"]
    insts = insts.append_column("fixmedins_type", pa.array(["1"] * insts.num_rows, pa.string()))
    con = duckdb.connect()
    con.register("v", visits.select(["mdtrt_id", "fixmedins_code"]))
    counts = dict(con.sql("SELECT fixmedins_code, COUNT(*) FROM v GROUP BY 1").fetchall())
    inst_code = visits.column("fixmedins_code").to_numpy(zero_copy_only=False)
    per_inst = np.array([max(1, counts[c] // 400) for c in inst_code])
    doc = np.floor(rng.random(len(inst_code)) * per_inst).astype(np.int64)
    atddr = pc.binary_join_element_wise(visits.column("fixmedins_code"),
                                        pa.array([f"{d + 1:03d}" for d in doc], pa.string()), "-D")
    visits = visits.append_column("atddr_no", atddr)
    pos = pc.index_in(items.column("mdtrt_id"), visits.column("mdtrt_id")).to_numpy()
    begn = visits.column("begntime").cast(pa.int64()).to_numpy()[pos]
    end = visits.column("endtime").cast(pa.int64()).to_numpy()[pos]
    stay = np.isin(visits.column("med_type").to_numpy(zero_copy_only=False)[pos], ["21", "52"])
    when = np.where(stay, begn + np.floor(rng.random(len(pos)) * (end - begn)).astype(np.int64), begn)
    code_id = pc.index_in(items.column("med_list_codg"), pc.unique(items.column("med_list_codg"))).to_numpy()
    order = np.lexsort((when, code_id, pos))
    first = np.r_[True, (pos[order][1:] != pos[order][:-1]) | (code_id[order][1:] != code_id[order][:-1])]
    start = np.maximum.accumulate(np.where(first, np.arange(len(order)), 0))
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order)) - start
    head = np.empty(len(order), dtype=np.int64)
    head[order] = when[order][start]
    day_ms = 86_400_000
    span = np.maximum((end - begn) // day_ms, 1) * day_ms
    when = np.where(stay & (rank > 0), begn + (head - begn + rank * day_ms) % span, when) // 1000 * 1000
    items = items.append_column("fee_ocur_time", pa.array(when, pa.int64()).cast(pa.timestamp("ms")))
    codes = pc.unique(items.column("med_list_codg"))
    cats = pa.array([category(c) for c in codes.to_pylist()], pa.string())
    items = items.append_column("med_chrgitm_type", cats.take(pc.index_in(items.column("med_list_codg"), codes)))
    con.register("f", items.select(["mdtrt_id", "med_list_codg", "cnt"]))
    con.register("v2", visits.select(["mdtrt_id", "fixmedins_code"]))
    sold = con.sql("SELECT v2.fixmedins_code, f.med_list_codg, SUM(f.cnt) AS cnt FROM f JOIN v2 USING (mdtrt_id) "
                   "WHERE f.med_list_codg LIKE 'YB-D%' GROUP BY ALL ORDER BY ALL").to_arrow_table()
    factor = 1.0 + 0.3 * rng.random(sold.num_rows)
    bought = np.ceil(sold.column("cnt").cast(pa.float64()).to_numpy() * factor).astype(np.int64)
    t0 = visits.column("begntime").cast(pa.int64()).to_numpy().min()
    purchases = pa.table({
        "fixmedins_code": sold.column("fixmedins_code"), "med_list_codg": sold.column("med_list_codg"),
        "cnt": pa.array([Decimal(int(b)) for b in bought], pa.decimal128(16, 4)),
        "purc_time": pa.array(np.full(sold.num_rows, t0), pa.int64()).cast(pa.timestamp("ms")),
    }, schema=OPTIONAL_TABLES["purchases"])
    chosen = rng.random(visits.num_rows) < EXAM_SHARE
    take = np.flatnonzero(chosen[pos] & pc.starts_with(items.column("med_list_codg"), "YB-S").to_numpy(zero_copy_only=False))
    vals = rng.normal(100, 30, len(take)).round(1)
    exams = pa.table({
        "mdtrt_id": items.column("mdtrt_id").take(pa.array(take)),
        "med_list_codg": items.column("med_list_codg").take(pa.array(take)),
        "rslt_val": pa.array([f"{v:.1f}" for v in vals], pa.string()),
    }, schema=OPTIONAL_TABLES["exam_results"])
    return {**tables, "institutions": insts, "visits": visits, "fee_items": items,
            "purchases": purchases, "exam_results": exams}


def reference_one_place_at_a_time(self, out, insts, D):
    """The first formulation: a Python loop over every second-or-later visit of a person-day."""
    if len(out) < 2:
        return out
    order = np.lexsort((out.begn, out.begn // R.DAY, out.psn))
    psn, day = out.psn[order], out.begn[order] // R.DAY
    same = np.r_[False, (psn[1:] == psn[:-1]) & (day[1:] == day[:-1])]
    if not same.any():
        return out
    begn, end, inst = out.begn.copy(), out.end.copy(), out.inst
    county = np.asarray(self.areas)[insts.area]
    gaps = np.array(P.SAME_DAY_GAP_MINUTES) * 60
    for k in np.flatnonzero(same):
        i, j = order[k - 1], order[k]
        if inst[i] == inst[j] or psn[k - 1] != psn[k] or begn[j] // R.DAY != begn[i] // R.DAY:
            continue
        a, b = county[inst[i]], county[inst[j]]
        need = end[i] + gaps[0 if a == b else 1 if a // 100 == b // 100 else 2]
        if begn[j] >= need:
            continue
        dur = end[j] - begn[j]
        start = need if need % R.DAY < P.LATEST_OUTPATIENT_HOUR * R.HOUR else begn[j] + R.DAY
        if start // R.DAY >= D:
            continue
        begn[j], end[j] = start, start + dur
    return R._Visits(out.psn, out.kind, out.level, out.inst, begn, end, out.dise, out.oprn, out.ref, out.cost)


@pytest.fixture(scope="module")
def small():
    return generate(resolve_pack("shandong-2024"), persons=2_500, seed=21)


def same_tables(got: dict[str, pa.Table], want: dict[str, pa.Table]) -> None:
    assert set(got) == set(want)
    for name in want:
        assert got[name].equals(want[name], check_metadata=True), name


def test_supervision_columns_are_the_reference_draw_for_draw(small):
    same_tables(add_supervision_columns(small, 21), reference_supervision_columns(small, 21))


def test_lines_in_any_order_take_the_general_path_and_agree(small):
    # lines not listed visit by visit (an extract sorted otherwise) are matched to visits by id
    items = small["fee_items"]
    shuffled = {**small, "fee_items": items.take(pa.array(np.random.default_rng(3).permutation(items.num_rows)))}
    same_tables(add_supervision_columns(shuffled, 4), reference_supervision_columns(shuffled, 4))


def test_line_visit_runs_and_lookup_agree(small):
    items, visits = small["fee_items"], small["visits"]
    want = pc.index_in(items.column("mdtrt_id"), visits.column("mdtrt_id")).to_numpy()
    assert np.array_equal(_line_visit(items.column("mdtrt_id"), visits.column("mdtrt_id")), want)
    backwards = visits.take(pa.array(np.arange(visits.num_rows)[::-1]))  # runs, but not in the visits' order
    want = pc.index_in(items.column("mdtrt_id"), backwards.column("mdtrt_id")).to_numpy()
    assert np.array_equal(_line_visit(items.column("mdtrt_id"), backwards.column("mdtrt_id")), want)


def test_same_day_sequencing_is_the_reference_loop(monkeypatch):
    pack = resolve_pack("shandong-2024")
    fast = generate(pack, persons=3_000, seed=8)
    monkeypatch.setattr(R._Region, "_one_place_at_a_time", reference_one_place_at_a_time)
    same_tables(fast, generate(pack, persons=3_000, seed=8))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(-400, 400, allow_nan=False), max_size=50))
def test_one_decimal_text_is_the_format_string(xs):
    values = np.round(np.array(xs + [-0.04, 0.04, -12.35], dtype=float), 1)  # -0.0 prints as "-0.0"
    assert _one_decimal(values).to_pylist() == [f"{v:.1f}" for v in values]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 10**12 - 1), max_size=50), st.integers(1, 12))
def test_fixed_width_digits_are_zfill(numbers, width):
    numbers = [n % 10**width for n in numbers]
    chars = ascii_digits(np.array(numbers, dtype=np.int64), width)
    assert [bytes(row).decode() for row in chars] == [str(n).zfill(width) for n in numbers]
    assert fixed_ids("V", np.array(numbers, dtype=np.int64), width).to_pylist() == [f"V{n:0{width}d}" for n in numbers]
