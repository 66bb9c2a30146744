"""Settle on Apache Spark, for regions that outgrow one machine: the laptop's kernel inside the executors.

The input SQL of :mod:`yibao.batch.inputs` and :mod:`yibao.batch.stream` is transpiled from
DuckDB's dialect to Spark SQL with SQLGlot; visits are repartitioned by person (by household where the
pack has household caps) and sorted within partitions, and every partition goes through the same compiled kernel
(:func:`yibao.batch.stream.settle_batch`) with ``mapInArrow`` — a cluster runs exactly the code a
laptop runs. Local mode is used in tests; ``docs/batch.md`` has the ``spark-submit`` recipe.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pyarrow as pa
import sqlglot

from yibao.batch.inputs import classification_query, pack_tables, visits_in_query
from yibao.batch.lower import lower
from yibao.batch.stream import (
    COMBOS,
    code_tables,
    combos_of,
    optional_inputs,
    ordering_query,
    person_blocks,
    settle_batch,
    settled_schema,
    unit_key,
)
from yibao.policy.compiled import CompiledPack
from yibao.policy.loader import resolve_pack


def to_spark(sql: str) -> str:
    return sqlglot.transpile(sql, read="duckdb", write="spark")[0]


def spark_session(master: str = "local[2]"):
    """A Spark session bound to loopback with Arrow transfer on."""
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # executors run the kernel: this interpreter's packages
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


def settle_frame(spark, pack: CompiledPack, source: str = "visits_in", partitions: int | None = None):
    """Settle the ``visits_in`` columns of temp view ``source``; returns a Spark DataFrame (one row per visit)."""
    from pyspark.sql.pandas.types import from_arrow_schema

    combos = [tuple(r) for r in spark.sql(to_spark(COMBOS.format(source=source))).collect()]
    program = combos_of(pack, lower(pack), combos)  # travels to the executors with the closure below
    for name, table in code_tables(program).items():
        spark.createDataFrame(table.to_pandas() if table.num_rows else None, schema=from_arrow_schema(table.schema)) \
            .createOrReplaceTempView(name)
    present = optional_inputs(spark.table(source).columns)
    ordered = spark.sql(to_spark(ordering_query(program, source, order=False, present=present)))
    key = unit_key(program)  # the person, or the household where the pack has household caps
    ordered = (ordered.repartition(partitions or int(spark.conf.get("spark.sql.shuffle.partitions")), key)
               .sortWithinPartitions(key, "yr", "setl_time", "mdtrt_id"))
    passing = {f.name: f for f in ordered.schema.fields}
    schema = settled_schema(program)
    fields = [passing[f.name] if f.name in passing else from_arrow_schema(pa.schema([f])).fields[0] for f in schema]
    from pyspark.sql.types import StructType

    def settle_partition(batches):
        for block in person_blocks(batches, key):
            yield settle_batch(program, block)

    return ordered.mapInArrow(settle_partition, StructType(fields))


def settle_visits(spark, pack: CompiledPack, visits_in: pa.Table) -> pa.Table:
    """Settle an Arrow ``visits_in`` table on Spark; returns Arrow in person order."""
    spark.createDataFrame(visits_in).createOrReplaceTempView("visits_in")
    return settle_frame(spark, pack).orderBy("psn_no", "setl_time", "mdtrt_id").toArrow()


def settle_claims(spark, pack: CompiledPack, claims_dir: str | Path):
    """Classify and settle a claims directory of Parquet files; returns a Spark DataFrame."""
    claims_dir = Path(claims_dir)
    facts = (claims_dir / "handling_facts.parquet").exists()  # 经办 facts exported from the store (optional)
    for name in ("persons", "visits", "fee_items") + (("institutions", "handling_facts") if facts else ()):
        spark.read.parquet(str(claims_dir / f"{name}.parquet")).createOrReplaceTempView(name)
    for name, table in pack_tables(pack).items():
        spark.createDataFrame(table).createOrReplaceTempView(name)
    spark.sql(to_spark(classification_query("fee_items"))).createOrReplaceTempView("classified")
    offsite = "offsite_status" in spark.table("visits").columns
    spark.sql(to_spark(visits_in_query(pack, offsite=offsite, facts=facts))).createOrReplaceTempView("visits_in")
    return settle_frame(spark, pack)


def main(argv: list[str] | None = None) -> None:
    """spark-submit entry point: settle a claims directory and write setlinfo as Parquet.

    spark-submit --master yarn -m yibao.batch.spark is not possible (Spark runs files), so
    ``docs/batch.md`` ships a two-line driver that calls this function.
    """
    import argparse

    from pyspark.sql import SparkSession

    parser = argparse.ArgumentParser(description="yibao 批量结算 (Spark)")
    parser.add_argument("--claims", required=True, help="claims directory (persons/visits/fee_items Parquet)")
    parser.add_argument("--policy", required=True, help="policy pack file or shipped name")
    parser.add_argument("--out", required=True, help="output directory for setlinfo Parquet")
    args = parser.parse_args(argv)
    spark = SparkSession.builder.appName("yibao").getOrCreate()
    pack = CompiledPack(resolve_pack(args.policy))
    settle_claims(spark, pack, args.claims).write.mode("overwrite").parquet(args.out)
