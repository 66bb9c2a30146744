"""DIP/DRG from the command line's point of view: read cases, build a catalog, settle a period.

Each function opens its own DuckDB (the batch engine's capped connection) and writes its
outputs whole or not at all (:func:`yibao.reports.publish`).
"""

from __future__ import annotations

import time
from pathlib import Path

import duckdb

from yibao.batch.run import connect as batch_connect
from yibao.errors import Problem
from yibao.payment import catalog as cat
from yibao.payment import drg
from yibao.payment.cases import PaymentError, load_cases
from yibao.payment.settlement import SettleResult, settle, write_outputs
from yibao.policy.model import DipPayment, DrgPayment, PointPayment, PolicyPack
from yibao.reports import publish


def params_of(pack: PolicyPack | None, kind: str) -> PointPayment:
    """The pack's payment parameters, or the defaults when the pack has no ``payment`` section."""
    section = pack.payment if pack is not None else None
    value = getattr(section, kind, None) if section is not None else None
    if value is not None:
        return value
    return DipPayment() if kind == "dip" else DrgPayment()


def connect() -> duckdb.DuckDBPyConnection:

    return batch_connect()


def open_cases(con, pack: PolicyPack, kind: str, *, cases: Path | None = None, claims: Path | None = None,
               settled: Path | None = None, table: Path | None = None) -> dict:
    params = params_of(pack, kind)
    counts = load_cases(con, list(pack.levels), cases=cases, claims=claims, settled=settled,
                        med_types=params.med_types)
    if kind == "drg":
        grouping = drg.load_table(table)
        for name, arrow in drg.table_arrow(grouping).items():
            con.register(name + "_arrow", arrow)
            con.sql(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM {name}_arrow")
        import pyarrow as pa

        names = pa.Table.from_pylist([{"code": k, "name": v} for k, v in grouping.drg_names().items()])
        con.register("drg_names_arrow", names)
        con.sql("CREATE OR REPLACE TABLE drg_names AS SELECT * FROM drg_names_arrow")
        counts["table"] = f"{grouping.table.id} {grouping.table.version}"
        con.sql("CREATE OR REPLACE TABLE drg_table_id AS SELECT $name AS name", params={"name": counts["table"]})
    return counts


def _error(message: str) -> PaymentError:
    return PaymentError(Problem("PAY080", "--out", message))


def build_catalog(pack: PolicyPack, kind: str, out_dir: Path, years: dict[int, int], con=None, loaded: bool = False,
                  **sources) -> dict:
    """Build and publish a catalog; returns its manifest (with timings).

    ``loaded=True`` reuses the cases already in ``con`` (:func:`open_cases`), so one read and
    validation serves both the build and the settlement.
    """
    con = con or connect()
    t = time.perf_counter()
    counts = {} if loaded else open_cases(con, pack, kind, **sources)
    params = params_of(pack, kind)
    build = cat.BuildParams(kind, params.scale, getattr(params, "min_cases", 0), params.level_coefficients)
    t_load = time.perf_counter()
    manifest = cat.build(con, build, years)
    manifest["pack"] = pack.pack.id
    if kind == "drg":
        manifest["table"] = counts.get("table") or _table_name(con)
        manifest["names"] = dict(con.sql("SELECT code, name FROM drg_names").fetchall())
    t_build = time.perf_counter()
    paths = publish(out_dir, lambda tmp: cat.write(con, manifest, tmp), _error)
    manifest["timings"] = {"load": t_load - t, "build": t_build - t_load, "write": time.perf_counter() - t_build}
    manifest["outputs"] = {k: str(v) for k, v in paths.items()}
    return manifest


def _table_name(con) -> str:
    return con.sql("SELECT name FROM drg_table_id").fetchone()[0]


def settle_period(pack: PolicyPack, kind: str, catalog_dir: Path, period: str, out_dir: Path | None,
                  budget: int | None = None, con=None, loaded: bool = False, **sources) -> SettleResult:
    con = con or connect()
    t = time.perf_counter()
    manifest = cat.load(con, catalog_dir, kind)
    if not loaded:
        open_cases(con, pack, kind, **sources)
    t_load = time.perf_counter()
    result = settle(con, kind, manifest, params_of(pack, kind), period, budget)
    t_settle = time.perf_counter()
    if out_dir is not None:
        result.outputs = publish(out_dir, lambda tmp: write_outputs(con, result, tmp), _error)
    result.timings = {"load": t_load - t, **result.timings, "settle": t_settle - t_load,
                      "write": time.perf_counter() - t_settle}
    return result
