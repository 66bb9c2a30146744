"""The DIP and DRG SQL on Spark local gives exactly DuckDB's results (one definition, two engines)."""

from __future__ import annotations

import random
from datetime import datetime
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from yibao.batch.spark import to_spark
from yibao.payment import dip, drg
from yibao.payment.cases import load_cases
from yibao.payment.run import connect
from yibao.payment.sql import group_level_sql, group_stats_sql, level_coefficient_sql, points_sql
from test_dip import SCHEMA

DISES = [("K80.100", ["51.2301", None]), ("J18.900", [None]), ("I25.100", ["36.0700", None, "88.5501"]),
         ("C34.900", ["32.2001", None]), ("S72.000", ["81.5201"]), ("O82.000", ["74.1x00"]), ("N20.000", ["98.5101"]),
         ("H25.900", ["13.4100"]), ("K35.800", ["47.0101", "47.0101+54.2100"]), ("E11.900", [None])]
SECONDARY = [None, "E11.900", "I10.x00+J96.000", "N18.500", "A41.900"]


def sample(n=1500, seed=5):
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        dise, ops = rng.choice(DISES) if i >= 20 else (f"J18.{i % 10}01", [None])  # rare: comprehensive
        cost = Decimal(rng.randint(50_000, 5_000_000)) / 100
        hifp = (cost * Decimal("0.6")).quantize(Decimal("0.01"))
        rows.append({"mdtrt_id": f"V{i:05d}", "psn_no": f"P{i}", "insutype": "390",
                     "fixmedins_code": f"H{rng.randint(1, 12)}", "level": str(rng.randint(1, 3)), "dise_codg": dise,
                     "oprn_oprt_code": rng.choice(ops), "sec_dise_codg": rng.choice(SECONDARY),
                     "medfee_sumamt": cost, "hifp_pay": hifp, "fund_pay_sumamt": hifp, "psn_part_amt": cost - hifp,
                     "setl_time": datetime(2023 + i % 2, 1 + i % 12, 1)})
    schema = SCHEMA.append(pa.field("sec_dise_codg", pa.string()))
    return pa.Table.from_pylist(rows, schema)


@pytest.fixture(scope="module")
def spark():
    from yibao.batch.spark import spark_session

    session = spark_session()
    yield session
    session.stop()


STEPS = [
    ("grouped", lambda: dip.build_grouping_sql("hist", 15)),
    ("cat_groups", lambda: group_stats_sql("grouped", dip.KEYS, Decimal(1000))),
    ("cat_group_levels", lambda: group_level_sql("grouped")),
    ("cat_levels", lambda: level_coefficient_sql("grouped", "cat_groups")),
    ("assigned_ok", lambda: dip.settle_grouping_sql("period_ok")),
    ("points", lambda: points_sql("assigned_ok", "cat_groups", "cat_group_levels", "cat_levels",
                                  Decimal(2), Decimal("0.5"))),
    ("drg", lambda: drg.grouping_sql("period_ok")),
]


def test_dip_and_drg_sql_agree_on_spark(spark, tmp_path):
    pq.write_table(sample(), tmp_path / "cases.parquet")
    con = connect()
    load_cases(con, ["1", "2", "3"], cases=tmp_path / "cases.parquet")
    for name, arrow in drg.table_arrow(drg.load_table()).items():
        con.register(name, arrow)
        spark.createDataFrame(arrow).createOrReplaceTempView(name)
    con.sql("CREATE TABLE hist AS SELECT *, 1 + (year - 2023) AS w FROM cases_all WHERE reason IS NULL AND year = 2023")
    con.sql("CREATE TABLE period_ok AS SELECT *, 1 AS w FROM cases_all WHERE reason IS NULL AND year = 2024")
    for name in ("hist", "period_ok", "case_procs", "case_secondary"):
        spark.createDataFrame(con.sql(f"SELECT * EXCLUDE (setl_time) FROM {name}" if "setl_time" in
                                      con.sql(f"SELECT * FROM {name} LIMIT 0").columns else f"SELECT * FROM {name}")
                              .to_arrow_table()).createOrReplaceTempView(name)
    for name, sql in STEPS:
        text = sql()
        con.sql(f"CREATE TABLE {name} AS {text}")
        spark.sql(to_spark(text)).createOrReplaceTempView(name)
        cols = [c for c in con.sql(f"SELECT * FROM {name} LIMIT 0").columns if c != "setl_time"]
        order = ", ".join(cols)
        on_duck = con.sql(f"SELECT {order} FROM {name} ORDER BY {order}").fetchall()
        on_spark = [tuple(r) for r in spark.sql(f"SELECT {order} FROM {name} ORDER BY {order}").collect()]
        assert on_duck, name
        assert on_spark == on_duck, name
    kinds = dict(con.sql("SELECT group_kind, COUNT(*) FROM cat_groups GROUP BY 1").fetchall())
    assert kinds.get("core") and kinds.get("comprehensive")
    assert con.sql("SELECT COUNT(DISTINCT deviation) FROM points").fetchone()[0] == 3
    assert con.sql("SELECT COUNT(*) FROM drg WHERE group_code IS NULL").fetchone()[0] == 0
    assert {r[0][-1] for r in con.sql("SELECT DISTINCT group_code FROM drg").fetchall()} >= {"1", "3", "5", "9"}
