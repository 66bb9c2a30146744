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
import pyarrow.parquet as pq

from yibao.enrolment import rules
from yibao.money import yuan_to_fen
from yibao.policy.model import PolicyPack
from yibao.synth.parquet import parquet_options

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
    insutype = np.array(persons.column("insutype").to_pylist())
    retiree = np.array(persons.column("retiree").to_pylist(), dtype=bool)
    employer = rng.integers(0, max(1, n // 40), n)
    sector_of = employer % len(SECTORS)
    under = (employer * 2654435761 % 100) < 5  # employers declaring at the floor
    wage = np.array(SECTOR_WAGE)[sector_of] * rng.lognormal(0, 0.35, n)
    declared = np.where(under | retiree, 0, np.round(wage / 100) * 100).astype(np.int64)
    late = (rng.random(n) < 0.02) & ~retiree
    parts = []
    emp = np.flatnonzero(insutype == "310") if fin.employee is not None else np.array([], dtype=np.int64)
    if len(emp):
        values, inverse = np.unique(declared[emp] * 2 + retiree[emp], return_inverse=True)
        # one rule call per distinct (wage, retired, month): amounts[k, month, field]
        amounts = np.array([[[getattr(line, f) for f in AMOUNTS]
                             for line in (rules.employee_month(fin, yuan_to_fen(int(v // 2)), date(year, m, 1), bool(v % 2))
                                          for m in range(1, 13))] for v in values], dtype=np.int64)
        who = np.repeat(emp, 12)
        month = np.tile(np.arange(12), len(emp))
        got = amounts[np.repeat(inverse, 12), month]
        status = np.where(late[who] & (month >= 9), "due", "paid")
        parts.append({"idx": who, "insutype": "310", "scheme": "employee",
                      "period": np.array([f"{year}-{m:02d}" for m in range(1, 13)])[month],
                      "emp_no": np.char.add("U", np.char.zfill(employer[who].astype(str), 6)),
                      "sector": np.array(SECTORS)[sector_of[who]], "declared_base_fen": declared[who] * 100,
                      "amounts": got, "status": status, "category": np.full(len(who), "")})
    res = np.flatnonzero(insutype == "390") if fin.resident else np.array([], dtype=np.int64)
    if len(res):
        cats = persons.column("categories").to_pylist()
        keys = [tuple(sorted(cats[i] or [])) for i in res]
        distinct = sorted(set(keys))
        lines = {k: rules.resident_year(fin, year, k) for k in distinct}
        pos = {k: j for j, k in enumerate(distinct)}
        table = np.array([[getattr(lines[k], f) for f in AMOUNTS] for k in distinct], dtype=np.int64)
        inv = np.array([pos[k] for k in keys], dtype=np.int64)
        parts.append({"idx": res, "insutype": "390", "scheme": "resident", "period": np.full(len(res), str(year)),
                      "emp_no": np.full(len(res), ""), "sector": np.full(len(res), ""),
                      "declared_base_fen": np.zeros(len(res), dtype=np.int64), "amounts": table[inv],
                      "status": np.full(len(res), "paid"),
                      "category": np.array([lines[k].category for k in distinct] or [""])[inv]})
    if not parts:
        return empty
    tables = []
    for p in parts:
        rows = len(p["idx"])
        take = pa.array(p["idx"])
        cols = {"psn_no": persons.column("psn_no").take(take), "insutype": pa.array([p["insutype"]] * rows),
                "scheme": pa.array([p["scheme"]] * rows), "period": pa.array(p["period"].astype(str)),
                "admdvs": persons.column("admdvs").take(take), "emp_no": pa.array(p["emp_no"].astype(str)),
                "sector": pa.array(p["sector"].astype(str)),
                "declared_base_fen": pa.array(p["declared_base_fen"], pa.int64())}
        cols.update({f: pa.array(p["amounts"][:, j], pa.int64()) for j, f in enumerate(AMOUNTS)})
        cols.update({"status": pa.array(p["status"].astype(str)), "category": pa.array(p["category"].astype(str))})
        tables.append(pa.table(cols).cast(empty.schema))
    return pa.concat_tables(tables)


def enrolment_facts(persons: pa.Table, year: int) -> pa.Table:
    """One 参保登记 fact per person on 1 January (the registry the demo region starts from)."""
    n = persons.num_rows
    ins = persons.column("insutype").to_pylist()
    ret = persons.column("retiree").to_pylist()
    return pa.table({"psn_no": persons.column("psn_no"), "insutype": persons.column("insutype"),
                     "eff_date": pa.array([date(year, 1, 1)] * n, pa.date32()),
                     "status": pa.array(["1"] * n), "admdvs": persons.column("admdvs"),
                     "kind": pa.array(["register"] * n),
                     "psn_type": pa.array(["1401" if t == "390" else ("1102" if r else "1101")
                                           for t, r in zip(ins, ret)])})


BLOCK = 100_000  # persons per written block: memory stays bounded for regions of millions


def write(pack: PolicyPack, out_dir: str | Path, year: int | None = None, seed: int = 1) -> dict[str, tuple[Path, int]]:
    """Read ``persons.parquet`` in ``out_dir``; write ``contributions.parquet`` and ``enrolment_facts.parquet``
    block by block (each block's draws seeded by its number, so the output does not depend on memory)."""
    out = Path(out_dir)
    persons = pq.read_table(out / "persons.parquet", columns=["psn_no", "insutype", "retiree", "admdvs", "categories"])
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
                writers[name].write_table(table)
                path, rows = written.get(name, (out / f"{name}.parquet", 0))
                written[name] = (path, rows + table.num_rows)
    finally:
        for w in writers.values():
            w.close()
    return written
