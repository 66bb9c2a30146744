"""How a synthetic region's tables are written as Parquet."""

from __future__ import annotations

import pyarrow as pa

# A region is written once and read whole by DuckDB (settlement, audit, DIP, LTC), the audit many times over:
# zstd (Arrow's level 1) keeps the files small, which the readers measured as cheaper than Snappy's files of
# twice the size; dictionaries only for coded columns (a dictionary of unique identifiers is built only to be
# dropped) and no statistics on identifiers (nothing filters a region by them) save the writer CPU. Statistics
# on codes and amounts stay: batch validation filters by them (BAT002 levels, BAT018 negative amounts) and DuckDB
# skips every row group whose minimum shows nothing to find (ten million visits: BAT018 1.5 s → 0.03 s).
# Row groups of DuckDB's own size: DuckDB reads a Parquet file one row group per thread, so a million visits in
# pyarrow's default groups (up to 1,048,576 rows) came in one or two groups and the settlement's joins ran on one
# core (the ordering query over 1,002,566 visits: 0.85-0.97 s in 2 groups, 0.57-0.64 s in 9, same process).
ROW_GROUP_ROWS = 122_880
IDENTIFIERS = frozenset({"feedetl_sn", "mdtrt_id", "psn_no", "certno", "psn_name", "hh_no", "atddr_no", "srv_id",
                         "assessment_id"})


def parquet_options(schema: pa.Schema) -> dict:
    """Cheap Parquet writer options for a table of ``schema`` (see :data:`IDENTIFIERS`)."""
    coded = [f.name for f in schema if f.name not in IDENTIFIERS
             and (pa.types.is_string(f.type) or pa.types.is_list(f.type))]
    described = [f.name for f in schema if f.name not in IDENTIFIERS]
    return {"compression": "zstd", "use_dictionary": coded, "write_statistics": described}
