"""Run the same settlement SQL on Apache Spark, for regions that outgrow one machine.

The queries of :mod:`yibao.batch.sqlgen` and :mod:`yibao.batch.inputs` are transpiled from
DuckDB's dialect to Spark SQL with SQLGlot; nothing is rewritten by hand, so Spark and DuckDB run
one definition. Local mode is used in tests; ``docs/batch.md`` has the ``spark-submit`` recipe.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import sqlglot

from yibao.batch.inputs import classification_query, pack_tables, visits_in_query
from yibao.batch.sqlgen import SettlementSQL
from yibao.policy.compiled import CompiledPack


def to_spark(sql: str) -> str:
    return sqlglot.transpile(sql, read="duckdb", write="spark")[0]


def spark_session(master: str = "local[2]"):
    """A Spark session bound to loopback with Arrow transfer on."""
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark.sql import SparkSession

    return (
        SparkSession.builder.master(master)
        .appName("yibao")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.shuffle.partitions", "8")
        .config("spark.sql.analyzer.maxIterations", "5000")
        .config("spark.sql.optimizer.maxIterations", "5000")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )


def output_sql(pack: CompiledPack, source: str) -> str:
    return f"SELECT * FROM ({SettlementSQL(pack).query(source, sparse=False)}) ORDER BY psn_no, setl_time, mdtrt_id"


def settle_visits(spark, pack: CompiledPack, visits_in: pa.Table) -> pa.Table:
    """Settle an Arrow ``visits_in`` table (see sqlgen) on Spark; returns Arrow."""
    spark.createDataFrame(visits_in).createOrReplaceTempView("visits_in")
    return spark.sql(to_spark(output_sql(pack, "visits_in"))).toArrow()


def settle_claims(spark, pack: CompiledPack, claims_dir: str | Path):
    """Classify and settle a claims directory of Parquet files; returns a Spark DataFrame."""
    claims_dir = Path(claims_dir)
    for name in ("persons", "visits", "fee_items"):
        spark.read.parquet(str(claims_dir / f"{name}.parquet")).createOrReplaceTempView(name)
    for name, table in pack_tables(pack).items():
        spark.createDataFrame(table).createOrReplaceTempView(name)
    spark.sql(to_spark(classification_query("fee_items"))).createOrReplaceTempView("classified")
    spark.sql(to_spark(visits_in_query(pack))).createOrReplaceTempView("visits_in")
    return spark.sql(to_spark(output_sql(pack, "visits_in")))


def main(argv: list[str] | None = None) -> None:
    """spark-submit entry point: settle a claims directory and write setlinfo as Parquet.

    spark-submit --master yarn -m yibao.batch.spark is not possible (Spark runs files), so
    ``docs/batch.md`` ships a two-line driver that calls this function.
    """
    import argparse

    from pyspark.sql import SparkSession

    from yibao.policy.loader import resolve_pack

    parser = argparse.ArgumentParser(description="yibao 批量结算 (Spark)")
    parser.add_argument("--claims", required=True, help="claims directory (persons/visits/fee_items Parquet)")
    parser.add_argument("--policy", required=True, help="policy pack file or shipped name")
    parser.add_argument("--out", required=True, help="output directory for setlinfo Parquet")
    args = parser.parse_args(argv)
    spark = SparkSession.builder.appName("yibao").getOrCreate()
    pack = CompiledPack(resolve_pack(args.policy))
    settle_claims(spark, pack, args.claims).write.mode("overwrite").parquet(args.out)
