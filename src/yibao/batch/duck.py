"""Run the columnar engine on DuckDB (the embedded default: no server, one file or memory)."""

from __future__ import annotations

import duckdb
import pyarrow as pa

from yibao.batch.sqlgen import SettlementSQL
from yibao.policy.compiled import CompiledPack


def settle_visits(pack: CompiledPack, visits_in: pa.Table | str, con: duckdb.DuckDBPyConnection | None = None) -> pa.Table:
    """Settle every row of ``visits_in`` (an Arrow table, or a relation name in ``con``)."""
    con = con or duckdb.connect()
    source = "visits_in"
    if isinstance(visits_in, pa.Table):
        con.register("visits_in", visits_in)
    else:
        source = visits_in
    sql = SettlementSQL(pack).query(source)
    return con.sql(f"SELECT * FROM ({sql}) ORDER BY psn_no, setl_time, mdtrt_id").to_arrow_table()
