"""Run the batch engine on DuckDB (the embedded default: no server, one file or memory)."""

from __future__ import annotations

import duckdb
import pyarrow as pa

from yibao.batch.stream import settle_table
from yibao.policy.compiled import CompiledPack


def settle_visits(pack: CompiledPack, visits_in: pa.Table | str, con: duckdb.DuckDBPyConnection | None = None) -> pa.Table:
    """Settle every row of ``visits_in`` (an Arrow table, or a relation name in ``con``) with the compiled
    kernel; rows in (psn_no, setl_time, mdtrt_id) order."""
    return settle_table(pack, visits_in, con).sort_by([("psn_no", "ascending"), ("setl_time", "ascending"),
                                                        ("mdtrt_id", "ascending")])
