"""Issue 12 (the audit step of ``make demo`` faster): each faster formulation gives exactly what the
one it replaced gave. The replaced SQL is kept here as the reference; hypothesis draws small tables
with NULLs, ties and repeated keys, where the formulations could part."""

from __future__ import annotations

from datetime import datetime

import duckdb
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from yibao.supervision.views import DERIVED, DUCKDB_DERIVED, baseline_sql, duckdb_seconds, seconds


def reference_baseline_sql(test_categories: tuple[str, ...], dx_len: int) -> str:
    """The baseline table as first written: QUANTILE_DISC over every row, per_visit from vx ⟕ lines."""
    cats = "(" + ", ".join("'" + c + "'" for c in test_categories) + ")"
    per_visit = (f"(SELECT x.mdtrt_id, x.level, x.med_type, SUBSTRING(x.dise_codg, 1, {dx_len}) AS dx, "
                 f"COUNT(DISTINCT CASE WHEN l.cat IN {cats} THEN l.med_list_codg END) AS v "
                 f"FROM vx x LEFT JOIN lines l ON l.mdtrt_id = x.mdtrt_id GROUP BY x.mdtrt_id, x.level, x.med_type, x.dise_codg)")

    def robust(kind, src, keys, code, med_type):
        return (f"SELECT '{kind}' AS kind, {code} AS code, level, {med_type} AS med_type, m.n, m.med, "
                f"CAST(QUANTILE_DISC(ABS(s.v - m.med), 0.5) AS BIGINT) AS mad FROM {src} s JOIN "
                f"(SELECT {keys}, COUNT(*) AS n, CAST(QUANTILE_DISC(v, 0.5) AS BIGINT) AS med FROM {src} GROUP BY {keys}) m "
                f"USING ({keys}) GROUP BY {keys}, m.n, m.med")
    price = "(SELECT med_list_codg, level, med_type, pric_fen AS v FROM lines)"
    qty = "(SELECT med_list_codg, level, med_type, cnt4 AS v FROM lines)"
    return " UNION ALL ".join([
        robust("price", price, "med_list_codg, level, med_type", "med_list_codg", "med_type"),
        robust("qty", qty, "med_list_codg, level, med_type", "med_list_codg", "med_type"),
        robust("tests", per_visit, "dx, level, med_type", "dx", "med_type"),
        robust("tests", f"(SELECT level, med_type, v FROM {per_visit})", "level, med_type", "'*'", "med_type"),
    ])


def maybe(values):
    return st.sampled_from([None, *values])  # NULL now and then


visit_rows = st.lists(st.tuples(st.sampled_from([f"V{i}" for i in range(8)]), maybe(["1", "1", "2"]),
                                maybe(["11", "11", "21"]), maybe(["J06.9", "J06.1", "K29", "I10"])), min_size=1, max_size=10)
line_rows = st.lists(st.tuples(st.sampled_from([f"V{i}" for i in range(9)]), maybe(["A", "B", "B", "C"]),
                               maybe([0, 100, 150, 2500, 90, 90]), maybe([10000, 5000, 30000, 1]), maybe(["03", "04", "09"])),
                     max_size=80)


@settings(max_examples=150, deadline=None)
@given(visits=visit_rows, lines=line_rows)
def test_baselines_equal_the_quantile_disc_formulation(visits, lines):
    con = duckdb.connect()
    con.register("vx", pa.table({k: [v[i] for v in visits] for i, k in
                                 enumerate(["mdtrt_id", "level", "med_type", "dise_codg"])}))
    by_id = {v[0]: v for v in visits}
    # lines carry their visit's level and med_type (as views.LINES_SQL does); a line of an unknown visit has none
    con.register("lines", pa.table({
        "mdtrt_id": [x[0] for x in lines], "med_list_codg": [x[1] for x in lines],
        "pric_fen": pa.array([x[2] for x in lines], pa.int64()), "cnt4": pa.array([x[3] for x in lines], pa.int64()),
        "cat": pa.array([x[4] for x in lines], pa.string()),
        "level": pa.array([by_id[x[0]][1] if x[0] in by_id else None for x in lines], pa.string()),
        "med_type": pa.array([by_id[x[0]][2] if x[0] in by_id else None for x in lines], pa.string())}))
    for cats, dx_len in ((("03", "04"), 3), (("09",), 1)):
        got = con.sql(f"SELECT * FROM ({baseline_sql(cats, dx_len)}) ORDER BY ALL").fetchall()
        want = con.sql(f"SELECT * FROM ({reference_baseline_sql(cats, dx_len)}) ORDER BY ALL").fetchall()
        assert got == want


EDGES = ["2000-01-01 00:00:00", "1999-12-31 23:59:59.999", "2024-12-31 23:59:59", "2025-01-01 00:00:00",
         "2024-02-29 12:34:56.789", "1970-01-01 00:00:00", "1969-12-31 23:59:59.001", "1900-03-01 00:00:00.5",
         "2024-05-01 00:00:00.001", "2099-12-31 23:59:59.999"]


def seconds_both(con, values: list) -> list[tuple]:
    con.register("t", pa.table({"ts": pa.array(values, pa.timestamp("ms"))}))
    return con.sql(f"SELECT {seconds('ts')}, {duckdb_seconds('ts')} FROM t").fetchall()


def test_duckdb_seconds_equal_the_portable_seconds_on_edges():
    con = duckdb.connect()
    rows = seconds_both(con, [datetime.fromisoformat(e) for e in EDGES] + [None])
    assert rows[0] == (0, 0) and rows[1] == (-1, -1) and rows[5] == (-946684800, -946684800)
    assert rows[6] == (-946684801, -946684801)  # 0.999 s before 1970: the floor, as STRFTIME's seconds give
    assert rows[-1] == (None, None)
    assert all(a == b for a, b in rows)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1)), min_size=1, max_size=50))
def test_duckdb_seconds_equal_the_portable_seconds(stamps):
    rows = seconds_both(duckdb.connect(), [s.replace(microsecond=s.microsecond // 1000 * 1000) for s in stamps])
    assert all(a == b for a, b in rows)


def test_the_batch_views_differ_from_the_portable_ones_only_in_the_seconds():
    portable = dict(DERIVED)
    for name, sql in DUCKDB_DERIVED:
        assert "STRFTIME" not in sql and "EPOCH_US" in sql
        assert sql.replace(duckdb_seconds("f.fee_ocur_time"), seconds("f.fee_ocur_time")).replace(
            duckdb_seconds("v.begntime"), seconds("v.begntime")).replace(
            duckdb_seconds("v.endtime"), seconds("v.endtime")) == portable[name]


def test_excel_sheets_hold_what_the_openpyxl_writer_held(tmp_path):
    """write_excel's XlsxWriter cells read back as the openpyxl writer's did: numbers (Decimal yuan),
    date-times, blanks, booleans, lists joined; text that looks like a formula or a link stays text."""
    from decimal import Decimal

    from openpyxl import load_workbook

    from yibao.supervision import audit as A

    table = pa.table({
        "rule_id": ["SV-DUP-01", "SV-X"], "amount_yuan": pa.array([Decimal("120.50"), None], pa.decimal128(16, 2)),
        "setl_time": pa.array([datetime(2024, 12, 31, 23, 59, 59), None], pa.timestamp("ms")),
        "blocking": [True, False], "hits": pa.array([3, 0], pa.int64()), "score": [1.25, None],
        "feedetl_sns": pa.array([["F1", "F2"], None], pa.list_(pa.string())),
        "detail": ["=SUM(A1) 不是公式", "见 http://example.org/x"]})
    wb = A.excel_workbook(tmp_path / "a.xlsx")
    A._sheet(wb, "按规则", table)
    wb.close()
    rows = list(load_workbook(tmp_path / "a.xlsx", read_only=True)["按规则"].iter_rows(values_only=True))
    assert rows == [tuple(table.column_names),
                    ("SV-DUP-01", 120.5, datetime(2024, 12, 31, 23, 59, 59), True, 3, 1.25, "F1, F2", "=SUM(A1) 不是公式"),
                    ("SV-X", None, None, False, 0, None, None, "见 http://example.org/x")]
