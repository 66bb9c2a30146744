"""Synthetic enrolment facts and a year of contributions for a synthetic region (``yibao synth``, demo).

Amounts come from :mod:`yibao.enrolment.rules` (the ledger's one definition), computed once per
distinct input (wage rounded to 100 yuan, month, retired or not; category set) and mapped onto
the persons, so a million persons cost a few thousand rule calls. Employees are grouped into
employers of a sector; about 5% of employers declare every base at the floor while their sector
pays well (瞒报基数), and about 2% of employees leave the last three months unpaid (欠费).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from yibao.enrolment import rules
from yibao.money import yuan_to_fen
from yibao.policy.model import PolicyPack
from yibao.synth.ids import fixed_ids
from yibao.synth.parquet import ROW_GROUP_ROWS, parquet_options

SECTORS = ["制造", "批发零售", "建筑", "金融", "信息技术", "教育", "卫生", "公共管理"]
SECTOR_WAGE = [5200, 4600, 5000, 11000, 10500, 6500, 7000, 6800]  # 月平均工资(元), 示例


AMOUNTS = ("base_fen", "employer_fen", "employee_fen", "personal_fen", "fiscal_fen", "assistance_fen", "relief_fen",
           "total_fen", "account_fen")
COLUMNS = ("psn_no", "insutype", "scheme", "period", "admdvs", "emp_no", "sector", "declared_base_fen", *AMOUNTS,
           "status", "category")


def contributions(pack: PolicyPack, persons: pa.Table, year: int, seed: int = 1) -> pa.Table:
    """The ledger rows of ``year`` (the en_contributions columns), built column-wise; empty when the pack
    has no ``financing`` section."""
    fin = pack.financing
    empty = pa.table({c: pa.array([], pa.int64() if c.endswith("_fen") else pa.string()) for c in COLUMNS})
    if fin is None:
        return empty
    rng = np.random.default_rng(seed + 15)
    n = persons.num_rows
    insutype = persons.column("insutype")
    retiree = persons.column("retiree").to_numpy(zero_copy_only=False).astype(bool)
    employer = rng.integers(0, max(1, n // 40), n)
    sector_of = employer % len(SECTORS)
    under = (employer * 2654435761 % 100) < 5  # employers declaring at the floor
    wage = np.array(SECTOR_WAGE)[sector_of] * rng.lognormal(0, 0.35, n)
    declared = np.where(under | retiree, 0, np.round(wage / 100) * 100).astype(np.int64)
    late = (rng.random(n) < 0.02) & ~retiree
    tables = []
    emp = (np.flatnonzero(pc.fill_null(pc.equal(insutype, "310"), False).to_numpy(zero_copy_only=False)) if fin.employee is not None
           else np.array([], dtype=np.int64))
    if len(emp):
        values, inverse = np.unique(declared[emp] * 2 + retiree[emp], return_inverse=True)
        # one rule call per distinct (wage, retired, month): amounts[k, month, field]
        amounts = np.array([[[getattr(line, f) for f in AMOUNTS]
                             for line in (rules.employee_month(fin, yuan_to_fen(int(v // 2)), date(year, m, 1), bool(v % 2))
                                          for m in range(1, 13))] for v in values], dtype=np.int64)
        who = np.repeat(emp, 12)
        month = np.tile(np.arange(12), len(emp))
        tables.append(_ledger(persons, who, "310", "employee", _labels([f"{year}-{m:02d}" for m in range(1, 13)], month),
                              _employers(employer[who]), _labels(SECTORS, sector_of[who]), declared[who] * 100,
                              amounts[np.repeat(inverse, 12), month],
                              _labels(["paid", "due"], late[who] & (month >= 9)), _labels([""], np.zeros(len(who)))))
    res = (np.flatnonzero(pc.fill_null(pc.equal(insutype, "390"), False).to_numpy(zero_copy_only=False)) if fin.resident
           else np.array([], dtype=np.int64))
    if len(res):
        cats = persons.column("categories").take(pa.array(res)).to_pylist()
        keys = [() if not c else (c[0],) if len(c) == 1 else tuple(sorted(c)) for c in cats]
        distinct = sorted(set(keys))
        lines = {k: rules.resident_year(fin, year, k) for k in distinct}
        pos = {k: j for j, k in enumerate(distinct)}
        table = np.array([[getattr(lines[k], f) for f in AMOUNTS] for k in distinct], dtype=np.int64)
        inv = np.array([pos[k] for k in keys], dtype=np.int64)
        none = np.zeros(len(res), dtype=np.int64)
        tables.append(_ledger(persons, res, "390", "resident", _labels([str(year)], none), _labels([""], none),
                              _labels([""], none), none, table[inv], _labels(["paid"], none),
                              _labels([lines[k].category for k in distinct], inv)))
    if not tables:
        return empty
    return pa.concat_tables(tables)


def _labels(values: list[str], index: np.ndarray) -> pa.Array:
    return pa.array(values, pa.string()).take(pa.array(np.asarray(index, dtype=np.int64)))


def _employers(employer: np.ndarray) -> pa.Array:
    """``U`` and the employer's number in six digits (more when it has more)."""
    if len(employer) == 0 or employer.max() < 10**6:
        return fixed_ids("U", employer, 6)
    return pa.array([f"U{e:06d}" for e in employer.tolist()], pa.string())


def _ledger(persons: pa.Table, idx: np.ndarray, insutype: str, scheme: str, period: pa.Array, emp_no: pa.Array,
            sector: pa.Array, declared_fen: np.ndarray, amounts: np.ndarray, status: pa.Array,
            category: pa.Array) -> pa.Table:
    """Ledger rows of the persons at ``idx`` (the columns of :data:`COLUMNS`)."""
    take = pa.array(idx)
    rows = len(idx)
    cols = {"psn_no": persons.column("psn_no").take(take), "insutype": _labels([insutype], np.zeros(rows)),
            "scheme": _labels([scheme], np.zeros(rows)), "period": period,
            "admdvs": persons.column("admdvs").take(take), "emp_no": emp_no, "sector": sector,
            "declared_base_fen": pa.array(declared_fen, pa.int64())}
    cols.update({f: pa.array(np.ascontiguousarray(amounts[:, j]), pa.int64()) for j, f in enumerate(AMOUNTS)})
    cols.update({"status": status, "category": category})
    return pa.table(cols, schema=pa.schema([(c, pa.int64() if c.endswith("_fen") else pa.string()) for c in COLUMNS]))


def enrolment_facts(persons: pa.Table, year: int) -> pa.Table:
    """One 参保登记 fact per person on 1 January (the registry the demo region starts from)."""
    n = persons.num_rows
    resident = pc.fill_null(pc.equal(persons.column("insutype"), "390"), False).to_numpy(zero_copy_only=False)
    retired = pc.fill_null(persons.column("retiree"), False).to_numpy(zero_copy_only=False)
    return pa.table({"psn_no": persons.column("psn_no"), "insutype": persons.column("insutype"),
                     "eff_date": pa.array([date(year, 1, 1)] * n, pa.date32()),
                     "status": pa.array(["1"] * n), "admdvs": persons.column("admdvs"),
                     "kind": pa.array(["register"] * n),
                     "psn_type": _labels(["1401", "1102", "1101"], np.where(resident, 0, np.where(retired, 1, 2)))})


BLOCK = 100_000  # persons per written block: memory stays bounded for regions of millions


def write(pack: PolicyPack, out_dir: str | Path, year: int | None = None, seed: int = 1,
          persons: pa.Table | None = None) -> dict[str, tuple[Path, int]]:
    """Read ``persons.parquet`` in ``out_dir`` (or take ``persons``, the same table in memory); write
    ``contributions.parquet`` and ``enrolment_facts.parquet`` block by block (each block's draws seeded by its
    number, so the output does not depend on memory)."""
    out = Path(out_dir)
    columns = ["psn_no", "insutype", "retiree", "admdvs", "categories"]
    persons = pq.read_table(out / "persons.parquet", columns=columns) if persons is None else persons.select(columns)
    year = year or pack.pack.effective_from.year
    written: dict[str, tuple[Path, int]] = {}
    writers: dict[str, pq.ParquetWriter] = {}
    try:
        for b, first in enumerate(range(0, max(persons.num_rows, 1), BLOCK)):
            part = persons.slice(first, BLOCK)
            for name, table in (("contributions", contributions(pack, part, year, seed + 7919 * b)),
                                ("enrolment_facts", enrolment_facts(part, year))):
                if name not in writers:
                    writers[name] = pq.ParquetWriter(out / f"{name}.parquet", table.schema, **parquet_options(table.schema))
                writers[name].write_table(table, row_group_size=ROW_GROUP_ROWS)
                path, rows = written.get(name, (out / f"{name}.parquet", 0))
                written[name] = (path, rows + table.num_rows)
    finally:
        for w in writers.values():
            w.close()
    return written
