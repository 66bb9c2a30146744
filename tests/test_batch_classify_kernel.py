"""The compiled classification pass (yibao.batch.classify) returns exactly the rows of classification_query.

Random catalogues and classes (caps, ratios, full-pay classes, levels the classes do not know), lines with
nulls, per-line ratios, long and non-ASCII ids and codes (string views outside the inline 12 bytes), negative
amounts (DuckDB's ``//`` truncates), and lines sorted, grouped but unsorted, or scattered, cut into tiny
batches so visits cross them; and values beyond the checked range, where the SQL decides (same rows or same
error).
"""

from __future__ import annotations

import random
from decimal import Decimal
from types import SimpleNamespace

import duckdb
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import yibao.batch.classify as K
from test_batch import random_fee_lines
from yibao.batch.inputs import classification_query, pack_tables
from yibao.policy.compiled import CompiledPack
from yibao.policy.loader import resolve_pack
from yibao.settlement.classify import classify_items
from yibao.sql import q


def is_table(con, name: str) -> bool:
    """A DuckDB table (not a registered Arrow view)."""
    return con.sql(f"SELECT COUNT(*) FROM duckdb_tables() WHERE table_name = {q(name)}").fetchone()[0] > 0


LEVELS = ["01", "02", "03", "04", "自付等级-很长的名字"]
CODES = ["A1", "B2", "C3", "XA01AAA0101001010100040", "药品-长编码-0001", "D4", "E5"]
IDS = ["V1", "V2", "V10", "H37010200001202401010000123", "就诊-长编号-000000001", "V3", "V20"]
SCHEMA = pa.schema([("feedetl_sn", pa.string()), ("mdtrt_id", pa.string()), ("med_list_codg", pa.string()),
                    ("chrgitm_lv", pa.string()), ("cnt", pa.decimal128(16, 4)),
                    ("det_item_fee_sumamt", pa.decimal128(16, 2)), ("preselfpay_ratio", pa.decimal128(6, 4))])


def rule(draw, level):
    den = draw(st.sampled_from([1, 10, 100, 10_000, 7]))
    return dict(chrgitm_lv=level, in_scope=draw(st.booleans()), pre_num=draw(st.integers(0, den)), pre_den=den,
                full=draw(st.booleans()))


@st.composite
def packs(draw):
    classes = {lv: SimpleNamespace(**rule(draw, lv)) for lv in draw(st.lists(st.sampled_from(LEVELS), unique=True))}
    catalog = {}
    for code in draw(st.lists(st.sampled_from(CODES), unique=True)):
        entry = rule(draw, draw(st.sampled_from(LEVELS + [None])))
        entry["price_cap"] = draw(st.one_of(st.none(), st.integers(0, 50_000)))
        catalog[code] = SimpleNamespace(**entry)
    return SimpleNamespace(classes=classes, catalog=catalog)


@st.composite
def lines(draw):
    n = draw(st.integers(0, 40))
    rows = []
    for j in range(n):
        rows.append({
            "feedetl_sn": str(j), "mdtrt_id": draw(st.sampled_from(IDS)),
            "med_list_codg": draw(st.one_of(st.sampled_from(CODES + ["Z9", "未知编码-XXXXXXXXXXXX"]), st.none())),
            "chrgitm_lv": draw(st.one_of(st.none(), st.sampled_from(LEVELS + ["99"]))),
            "cnt": Decimal(draw(st.integers(-20_000, 200_000))) / 10_000,
            "det_item_fee_sumamt": Decimal(draw(st.integers(-5_000, 900_000))) / 100,
            "preselfpay_ratio": draw(st.one_of(st.none(), st.integers(0, 10_000).map(lambda x: Decimal(x) / 10_000))),
        })
    order = draw(st.sampled_from(["sorted", "grouped", "scattered"]))
    if order == "sorted":
        rows.sort(key=lambda r: r["mdtrt_id"].encode())
    elif order == "grouped":
        ids = list(dict.fromkeys(r["mdtrt_id"] for r in rows))
        random.Random(draw(st.integers(0, 99))).shuffle(ids)
        rows.sort(key=lambda r: ids.index(r["mdtrt_id"]))
    return rows


def both(pack, rows, batch=3, small=K.SMALL_CATALOGUE):
    """(rows of the SQL, rows of the compiled pass or None), each sorted."""
    con = duckdb.connect()
    for name, table in pack_tables(pack).items():
        con.register(name, table)
    con.register("fee_items", pa.Table.from_pylist(rows, SCHEMA))
    old = sorted(con.sql(classification_query()).fetchall())
    keep = K.BATCH, K.SMALL_CATALOGUE, K.SCATTERED
    K.BATCH, K.SMALL_CATALOGUE, K.SCATTERED = batch, small, 2  # scattered lines too: the run-merging paths
    try:
        result = K.classified_arrow(con, pack)
    finally:
        K.BATCH, K.SMALL_CATALOGUE, K.SCATTERED = keep
    new = None if result is None else sorted(tuple(r.values()) for r in result.to_pylist())
    return old, new


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(packs(), lines(), st.sampled_from([1, 3, 7, 1 << 19]), st.sampled_from([0, 2, 64]))
def test_compiled_pass_equals_classification_query(pack, rows, batch, small):
    # small: catalogues up to this size are looked up by DuckDB (CASE), larger ones by hash + bytes in the pass
    old, new = both(pack, rows, batch, small)
    assert new is not None  # within range: the compiled pass answers
    assert new == old


def test_the_sql_decides_beyond_the_checked_range():
    # 2 * fee * num overflows BIGINT in the SQL: the compiled pass steps aside and the same error comes back
    pack = SimpleNamespace(classes={"02": SimpleNamespace(chrgitm_lv="02", in_scope=True, pre_num=1, pre_den=10,
                                                          full=False)}, catalog={})
    rows = [{"feedetl_sn": "1", "mdtrt_id": "V1", "med_list_codg": "A", "chrgitm_lv": "02", "cnt": Decimal(1),
             "det_item_fee_sumamt": Decimal("99999999999999.99"), "preselfpay_ratio": Decimal("0.9999")}]
    con = duckdb.connect()
    for name, table in pack_tables(pack).items():
        con.register(name, table)
    con.register("fee_items", pa.Table.from_pylist(rows, SCHEMA))
    assert K.classified_arrow(con, pack) is None
    with pytest.raises(duckdb.OutOfRangeException):
        K.classify_into(con, pack, "fee_items")
    # a price cap times a huge quantity: likewise
    pack.catalog["A"] = SimpleNamespace(chrgitm_lv="02", in_scope=True, pre_num=0, pre_den=1, price_cap=10**12,
                                        full=False)
    rows[0].update(chrgitm_lv=None, cnt=Decimal("999999999999.9999"), det_item_fee_sumamt=Decimal(1))
    con.register("fee_items", pa.Table.from_pylist(rows, SCHEMA))
    assert K.classified_arrow(con, pack) is None


def test_other_column_types_go_to_the_sql():
    pack = SimpleNamespace(classes={"01": SimpleNamespace(chrgitm_lv="01", in_scope=True, pre_num=0, pre_den=1,
                                                          full=False)}, catalog={})
    con = duckdb.connect()
    for name, table in pack_tables(pack).items():
        con.register(name, table)
    con.sql("CREATE TABLE fee_items AS SELECT 'V1' AS mdtrt_id, 'A' AS med_list_codg, '01' AS chrgitm_lv, "
            "1.5::DOUBLE AS cnt, 10.25::DOUBLE AS det_item_fee_sumamt, NULL::DECIMAL(6,4) AS preselfpay_ratio")
    assert K.classified_arrow(con, pack) is None
    K.classify_into(con, pack, "fee_items")
    assert con.sql("SELECT * FROM classified").fetchall() == [("V1", 0, 0, 0, 1025, 0, 1, 0)]


def test_settings_restored_and_insert_appends():
    pack = SimpleNamespace(classes={"01": SimpleNamespace(chrgitm_lv="01", in_scope=True, pre_num=0, pre_den=1,
                                                          full=False)}, catalog={})
    con = duckdb.connect()
    con.sql("SET preserve_insertion_order = false")
    rows = [{"feedetl_sn": "1", "mdtrt_id": "V1", "med_list_codg": "A", "chrgitm_lv": "01", "cnt": Decimal(1),
             "det_item_fee_sumamt": Decimal("1.23"), "preselfpay_ratio": None}]
    con.register("fee_items", pa.Table.from_pylist(rows, SCHEMA))
    K.classify_into(con, pack, "fee_items", view=False)
    K.classify_into(con, pack, "fee_items", insert=True)
    assert con.sql("SELECT * FROM classified").fetchall() == [("V1", 0, 0, 0, 123, 0, 1, 0)] * 2
    assert is_table(con, "classified")
    assert con.sql("SELECT current_setting('preserve_insertion_order'), current_setting('produce_arrow_string_view')"
                   ).fetchone() == (False, False)


def test_warm_leaves_the_module_as_it_was():
    keep = K.SMALL_CATALOGUE
    K.warm()
    assert K.SMALL_CATALOGUE == keep


@pytest.mark.parametrize("name", ["shandong-2024", "shandong-2024-implant"])
@pytest.mark.parametrize("small", [0, 16])
def test_compiled_pass_equals_the_scalar_classification(name, small, monkeypatch):
    # the real packs, through classify_into as the batch run calls it: each visit as classify_items says
    monkeypatch.setattr(K, "SMALL_CATALOGUE", small)
    monkeypatch.setattr(K, "BATCH", 997)  # visits across batches
    pack = CompiledPack(resolve_pack(name))
    rows, visits = random_fee_lines(pack, 1_500, seed=7, visit_id="V{:05d}")
    con = duckdb.connect()
    con.register("fee_items", pa.Table.from_pylist(rows, SCHEMA))
    assert K.classified_arrow(con, pack) is not None  # the compiled pass answers, not the SQL
    K.classify_into(con, pack, "fee_items")
    got = {r[0]: r[1:] for r in con.sql("SELECT * FROM classified").fetchall()}
    assert len(got) == len(visits)
    for mdtrt_id, items in visits.items():
        c = classify_items(pack, items)
        assert got[mdtrt_id] == (c.fulamt_ownpay_amt, c.overlmt_selfpay, c.preselfpay_amt, c.inscp_scp_amt, 0,
                                 len(items), c.inscp_full), mdtrt_id


def test_scattered_lines_go_to_the_sql():
    # every line its own run in the first batch: the pass steps aside, the SQL's rows come back
    pack = SimpleNamespace(classes={"01": SimpleNamespace(chrgitm_lv="01", in_scope=True, pre_num=1, pre_den=10,
                                                          full=False)}, catalog={})
    rows = [{"feedetl_sn": str(j), "mdtrt_id": f"V{j % 3}", "med_list_codg": "A", "chrgitm_lv": "01", "cnt": Decimal(1),
             "det_item_fee_sumamt": Decimal(j) / 4, "preselfpay_ratio": None} for j in range(12)]
    con = duckdb.connect()
    for name, table in pack_tables(pack).items():
        con.register(name, table)
    con.register("fee_items", pa.Table.from_pylist(rows, SCHEMA))
    assert K.classified_arrow(con, pack) is None
    K.classify_into(con, pack, "fee_items")
    assert sorted(con.sql("SELECT * FROM classified").fetchall()) == sorted(con.sql(classification_query()).fetchall())
    rows.sort(key=lambda r: r["mdtrt_id"])  # the same lines grouped: the pass answers
    con.register("fee_items", pa.Table.from_pylist(rows, SCHEMA))
    assert sorted(K.classified_arrow(con, pack).to_pylist(), key=lambda r: r["mdtrt_id"])[0]["item_count"] == 4


def test_classified_is_a_view_on_the_pass_result_with_the_tables_columns(monkeypatch):
    # the compiled pass's result is registered as ``classified``: same rows, names and types as the table the SQL
    # creates; a table left by an earlier run (the SQL's) is replaced by it, and the SQL's table replaces it again
    pack = CompiledPack(resolve_pack("shandong-2024"))
    rows, _ = random_fee_lines(pack, 300, seed=3, visit_id="V{:05d}")
    con = duckdb.connect()
    con.register("fee_items", pa.Table.from_pylist(rows, SCHEMA))
    for name, table in pack_tables(pack).items():
        con.register(name, table)
    con.sql(f"CREATE TABLE classified AS {classification_query()}")
    expected = sorted(con.sql("SELECT * FROM classified").fetchall())
    described = con.sql("DESCRIBE classified").fetchall()
    K.classify_into(con, pack, "fee_items")
    assert not is_table(con, "classified")
    assert "classified" in {r[0] for r in con.sql("SHOW TABLES").fetchall()}
    assert con.sql("DESCRIBE classified").fetchall() == described
    assert sorted(con.sql("SELECT * FROM classified").fetchall()) == expected
    monkeypatch.setattr(K, "classified_arrow", lambda *a: None)  # where the SQL decides, it creates the table
    K.classify_into(con, pack, "fee_items")
    assert is_table(con, "classified")
    assert sorted(con.sql("SELECT * FROM classified").fetchall()) == expected


@pytest.mark.parametrize("small", [0, 16])
def test_warm_and_prime_load_the_types_a_run_calls(small, monkeypatch, tmp_path):
    # the pass is typed by its arguments: warm() (benchmarks) and the two made-up lines each run sends first
    # (_prime) must reach the same specialisation as DuckDB's batches of a Parquet file, or a run loads another
    import numba

    seen = []
    real = K._classify_lines

    def spy(*args):
        seen.append(tuple(numba.typeof(a) for a in args))
        return real(*args)

    monkeypatch.setattr(K, "_classify_lines", spy)
    monkeypatch.setattr(K, "SMALL_CATALOGUE", small)
    K.warm()
    warmed = set(seen)
    seen.clear()
    pack = CompiledPack(resolve_pack("shandong-2024"))
    rows, _ = random_fee_lines(pack, 200, seed=5, visit_id="V{:05d}")
    path = tmp_path / "fee_items.parquet"
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows, SCHEMA), path)
    con = duckdb.connect()
    con.sql(f"CREATE VIEW fee_items AS SELECT * FROM read_parquet('{path.as_posix()}')")
    monkeypatch.setattr(K, "BATCH", 64)
    assert K.classified_arrow(con, pack) is not None
    assert len(seen) > 2 and len(set(seen)) == 1  # the primer's lines and every batch: one specialisation
    assert set(seen) <= warmed
