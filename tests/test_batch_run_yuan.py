"""The yuan tables written from the settled stream (:class:`yibao.batch.run.YuanTables`) are the files DuckDB's
second pass (:func:`yibao.batch.run.write_results`) writes: same schema, same rows, same order, to the fen.

Small synthetic regions under packs with several tiers and guarantees, random regions whose mdtrt_id order
differs from time order (setldetail is ordered by mdtrt_id), many small blocks, empty input, a failure in
the middle of the stream (nothing written), and the sorted fallback for packs settled in household order.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from test_batch import random_region
from yibao.batch import run as batch_run
from yibao.batch import stream
from yibao.batch.inputs import visits_in_query
from yibao.batch.lower import KernelError, lower
from yibao.batch.run import (
    BatchRun,
    YuanTables,
    classify,
    fen_to_yuan_array,
    open_claims,
    settle,
    write_results,
)
from yibao.cli import app
from yibao.errors import Problem
from yibao.money import format_yuan
from yibao.policy.compiled import CompiledPack
from yibao.policy.loader import resolve_pack
from yibao.synth import generate_to

runner = CliRunner()


def assert_same_files(streamed: dict, copied: dict) -> int:
    assert set(streamed) == set(copied) == {"setlinfo", "setldetail"}
    for name in copied:
        a, b = pq.read_table(copied[name]), pq.read_table(streamed[name])
        assert b.schema == a.schema, name
        assert b.equals(a), name  # same rows in the same order
        # the same Parquet types (decimals stored as int64, as DuckDB stores them), not only the same Arrow view
        assert pq.ParquetFile(streamed[name]).schema.to_arrow_schema() == pq.ParquetFile(copied[name]).schema.to_arrow_schema()
        assert [c.physical_type for c in pq.ParquetFile(streamed[name]).schema] == \
            [c.physical_type for c in pq.ParquetFile(copied[name]).schema], name
        # and DuckDB sees the same columns, types and rows in both (it decodes the writer's encodings, not pyarrow)
        describe = lambda path: duckdb.sql(f"DESCRIBE SELECT * FROM read_parquet('{path}')").fetchall()  # noqa: E731
        assert describe(streamed[name]) == describe(copied[name]), name
        rows = lambda path: duckdb.sql(f"SELECT * FROM read_parquet('{path}')").fetchall()  # noqa: E731
        assert rows(streamed[name]) == rows(copied[name]), name
    return pq.read_metadata(copied["setldetail"]).num_rows


def test_fen_to_yuan_is_exact_for_every_int64(tmp_path):
    fen = np.array([0, 1, -1, 99, 100, -100, 123_456_789, -987_654_321, 2**62, -(2**63), 2**63 - 1], np.int64)
    column = pa.array(fen)
    got = fen_to_yuan_array(column)
    assert got.type == pa.decimal64(16, 2)
    assert [str(d) for d in got.to_pylist()[:8]] == ["0.00", "0.01", "-0.01", "0.99", "1.00", "-1.00",
                                                      "1234567.89", "-9876543.21"]
    # the unscaled value of each decimal is the fen itself, to the last bit: the same memory, not a copy
    assert got.buffers()[1].address == column.buffers()[1].address
    assert (np.frombuffer(got.buffers()[1], np.int64) == fen).all()
    # a slice keeps its offset; a numpy array is taken as it is
    assert fen_to_yuan_array(column.slice(3, 4)).to_pylist() == got.to_pylist()[3:7]
    assert fen_to_yuan_array(fen[::2]).to_pylist() == got.to_pylist()[::2]
    with pytest.raises(TypeError):
        fen_to_yuan_array(pa.array([1], pa.int32()))
    # written with the yuan tables' options it is INT64 DECIMAL(16,2) and read back as decimal128(16,2), the
    # type DuckDB's files are read as, to the fen (amounts within decimal(16,2)'s range)
    inside = got.slice(0, 8)
    pq.write_table(pa.table({"a": inside}), tmp_path / "a.parquet", **batch_run.YUAN_PARQUET)
    back = pq.read_table(tmp_path / "a.parquet").column("a")
    assert back.type == pa.decimal128(16, 2) and back.to_pylist() == inside.to_pylist()
    assert pq.ParquetFile(tmp_path / "a.parquet").schema.column(0).physical_type == "INT64"
    assert duckdb.sql(f"SELECT CAST(SUM(a) * 100 AS BIGINT), typeof(ANY_VALUE(a)) FROM '{tmp_path / 'a.parquet'}'"
                      ).fetchone() == (int(fen[:8].sum()), "DECIMAL(16,2)")


@pytest.mark.parametrize("name", ["shandong-2024", "jishou-2022", "sichuan-county-2020"])
def test_streamed_yuan_tables_equal_duckdb_written_on_a_synthetic_region(tmp_path, name):
    model = resolve_pack(name)
    pack = CompiledPack(model)
    generate_to(model, tmp_path / "r", persons=400, seed=5)
    run = open_claims(tmp_path / "r")
    classify(run, pack)
    table = settle(run, pack, "main", out_dir=tmp_path / "streamed")  # keeps the fen table too
    streamed = run.outputs[table]
    copied = write_results(run, pack, table, tmp_path / "copied")
    assert assert_same_files(streamed, copied) > 0
    assert pq.read_metadata(streamed["setlinfo"]).num_rows == run.visits
    assert not list((tmp_path / "streamed").glob(".*"))  # no temporary file left behind
    assert run.timings["yuan_cpu_main"] > 0  # the writing's own CPU, which yibao bench settle prints


@pytest.mark.parametrize("name", ["sichuan-county-2020", "jishou-2022", "shandong-2024-groups"])
def test_streamed_equal_duckdb_written_in_many_blocks_with_mdtrt_ids_out_of_time_order(tmp_path, monkeypatch, name):
    # random visits: mdtrt_id is drawn apart from the settlement time, so setldetail's (psn_no, mdtrt_id) order
    # differs from the stream's (psn_no, setl_time) inside persons; small batches cut the year into many blocks
    monkeypatch.setattr(stream, "BATCH_ROWS", 257)
    pack = CompiledPack(resolve_pack(name))
    _, rows = random_region(pack, 3_000, seed=7)
    con = duckdb.connect()
    con.register("visits_in", pa.Table.from_pylist(rows))
    program = lower(pack)
    yuan = YuanTables(pack, program, tmp_path / "streamed")
    blocks: list[pa.RecordBatch] = []

    def sink(block: pa.RecordBatch) -> None:
        blocks.append(block)
        yuan.write(block)

    stream.settle_stream(pack, con, "visits_in", sink, program)
    assert len(blocks) > 5
    streamed = yuan.close()
    con.register("settled_all", pa.Table.from_batches(blocks))
    copied = write_results(BatchRun(con), pack, "settled_all", tmp_path / "copied")
    assert assert_same_files(streamed, copied) > 1_000


def test_persons_named_by_their_key_settle_as_when_psn_no_goes_through_the_sort(tmp_path, monkeypatch):
    # yibao batch settle sorts visits on psn_key alone and names each person from persons_in_key_order: the same
    # rows in the same order, to the fen, as when psn_no is carried through DuckDB's sort; small batches cut the
    # year into many blocks, so persons are named across block boundaries too
    monkeypatch.setattr(stream, "BATCH_ROWS", 101)
    model = resolve_pack("shandong-2024")
    pack = CompiledPack(model)
    generate_to(model, tmp_path / "r", persons=300, seed=11)
    run = open_claims(tmp_path / "r")
    classify(run, pack)
    run.con.sql(f"CREATE VIEW vin AS {visits_in_query(pack)}")
    program = stream.register_program(run.con, pack, lower(pack), "vin")
    present = stream.optional_inputs(run.con.sql("SELECT * FROM vin LIMIT 0").columns)
    assert "v.psn_no" not in stream.ordering_query(program, "vin", present=present, named_by_key=True)
    named = stream.settle_table(pack, "vin", run.con, psn_by_key=batch_run.persons_in_key_order(run.con))
    carried = stream.settle_table(pack, "vin", run.con)
    assert named.num_rows == run.visits > 1_000
    assert named.schema == carried.schema
    assert named.equals(carried)
    assert named.column("psn_no").to_pylist() == sorted(named.column("psn_no").to_pylist())


def test_empty_input_gives_the_same_empty_files(tmp_path):
    model = resolve_pack("sichuan-county-2020")
    pack = CompiledPack(model)
    generate_to(model, tmp_path / "full", persons=20, seed=1)
    (tmp_path / "r").mkdir()
    for name in ("persons", "institutions", "visits", "fee_items"):
        table = pq.read_table(tmp_path / "full" / f"{name}.parquet")
        pq.write_table(table if name in ("persons", "institutions") else table.slice(0, 0), tmp_path / "r" / f"{name}.parquet")
    run = open_claims(tmp_path / "r")
    assert run.visits == 0
    table = settle(run, pack, "main", out_dir=tmp_path / "streamed")
    copied = write_results(run, pack, table, tmp_path / "copied")
    assert assert_same_files(run.outputs[table], copied) == 0


def test_a_failure_in_the_middle_of_the_stream_writes_nothing(tmp_path, monkeypatch):
    model = resolve_pack("shandong-2024")
    pack = CompiledPack(model)
    generate_to(model, tmp_path / "r", persons=300, seed=2)
    monkeypatch.setattr(stream, "BATCH_ROWS", 100)
    real, calls = stream.settle_batch, []

    def failing(program, batch, pool=None):
        calls.append(1)
        if len(calls) == 4:  # after some blocks were written
            raise KernelError(Problem("KRN011", "visits.psn_no", "测试: 中途失败"))
        return real(program, batch, pool)

    monkeypatch.setattr(stream, "settle_batch", failing)
    run = open_claims(tmp_path / "r")
    out = tmp_path / "out"
    with pytest.raises(KernelError):
        settle(run, pack, "main", out_dir=out, keep_fen=False)
    assert not out.exists()  # neither the tables nor their temporary files, nor the directory made for them


def test_batch_settle_command_falls_back_to_the_sorted_copy_when_the_stream_is_not_in_output_order(tmp_path, monkeypatch):
    # packs with household caps settle in household order: the command must then write the tables through
    # DuckDB's ORDER BY; both ways give the same files
    generate_to(resolve_pack("sichuan-county-2020"), tmp_path / "r", persons=300, seed=3)
    args = ["batch", "settle", "--claims", str(tmp_path / "r"), "--policy", "sichuan-county-2020", "--out"]
    streamed = runner.invoke(app, [*args, str(tmp_path / "streamed")])
    assert streamed.exit_code == 0, streamed.output
    assert "写出(元)在结算中" in " ".join(streamed.output.split())
    monkeypatch.setattr(batch_run, "in_output_order", lambda pack: False)
    copied = runner.invoke(app, [*args, str(tmp_path / "copied")])
    assert copied.exit_code == 0, copied.output
    assert "写出(元)在结算中" not in copied.output
    names = ("setlinfo", "setldetail")
    assert assert_same_files({n: tmp_path / "streamed" / f"{n}.parquet" for n in names},
                             {n: tmp_path / "copied" / f"{n}.parquet" for n in names}) > 0
    # the totals table: summed from the blocks as written (streamed), read back from the file (copied): the same
    table = lambda text: text[: text.index("用时")]  # noqa: E731
    assert table(streamed.output) == table(copied.output)
    written = pq.read_table(tmp_path / "streamed" / "setlinfo.parquet")
    for field in ("medfee_sumamt", "hifp_pay", "psn_part_amt"):
        fen = int(sum(written.column(field).to_pylist()) * 100)
        assert fen > 0 and format_yuan(fen) in streamed.output, field
    assert f"{written.num_rows:,}" in streamed.output


def test_a_failure_while_writing_setldetail_surfaces_and_writes_nothing(tmp_path, monkeypatch):
    # setldetail is encoded on a thread of its own: its failure must stop the run like any other
    model = resolve_pack("shandong-2024")
    generate_to(model, tmp_path / "r", persons=300, seed=4)
    monkeypatch.setattr(stream, "BATCH_ROWS", 100)
    real, calls = YuanTables._detail_batch, []

    def failing(self, block):
        calls.append(1)
        if len(calls) == 3:
            raise OSError("disk full")
        return real(self, block)

    monkeypatch.setattr(YuanTables, "_detail_batch", failing)
    run = open_claims(tmp_path / "r")
    with pytest.raises(OSError, match="disk full"):
        settle(run, CompiledPack(model), "main", out_dir=tmp_path / "out", keep_fen=False)
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def spark():
    from yibao.batch.spark import spark_session

    session = spark_session()
    yield session
    session.stop()


def test_spark_reads_the_streamed_tables_as_it_reads_duckdb_written(tmp_path, spark):
    # the streamed files use DELTA_BINARY_PACKED amounts and INT64 decimals from decimal64; a cluster reading the
    # run's product must see what DuckDB's files give it: the same types and rows
    model = resolve_pack("shandong-2024")
    pack = CompiledPack(model)
    generate_to(model, tmp_path / "r", persons=300, seed=6)
    run = open_claims(tmp_path / "r")
    table = settle(run, pack, "main", out_dir=tmp_path / "streamed")
    copied = write_results(run, pack, table, tmp_path / "copied")
    for name, path in copied.items():
        a, b = spark.read.parquet(str(path)), spark.read.parquet(str(run.outputs[table][name]))
        assert b.dtypes == a.dtypes, name
        assert dict(a.dtypes)["mdtrt_id"] == "string"
        keys = ["psn_no", "mdtrt_id"] + (["rule_id"] if name == "setldetail" else [])
        assert b.sort(keys).collect() == a.sort(keys).collect(), name


def test_each_connection_spills_to_a_directory_of_its_own_removed_with_it(tmp_path, monkeypatch):
    """Two DuckDB instances sharing a temp directory can read or delete each other's spill files (duckdb#15173):
    the demo's audit and DIP run beside the settlement, and two batch runs may share a machine."""
    import gc
    from pathlib import Path

    monkeypatch.setenv("YIBAO_DUCKDB_TEMP", str(tmp_path / "spill"))
    first, second = batch_run.connect(), batch_run.connect()
    dirs = [Path(c.sql("SELECT current_setting('temp_directory')").fetchone()[0]) for c in (first, second)]
    assert dirs[0] != dirs[1] and all(d.parent == tmp_path / "spill" and d.is_dir() for d in dirs)
    first.close()
    del first
    gc.collect()
    assert not dirs[0].exists() and dirs[1].is_dir()
