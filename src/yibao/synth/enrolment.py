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

SECTORS = ["制造", "批发零售", "建筑", "金融", "信息技术", "教育", "卫生", "公共管理"]
SECTOR_WAGE = [5200, 4600, 5000, 11000, 10500, 6500, 7000, 6800]  # 月平均工资(元), 示例


def contributions(pack: PolicyPack, persons: pa.Table, year: int, seed: int = 1) -> pa.Table:
    """The ledger rows of ``year`` (the en_contributions columns, psn_no first), or an empty table when the
    pack has no ``financing`` section."""
    fin = pack.financing
    cols: dict[str, list] = {k: [] for k in (
        "psn_no", "insutype", "scheme", "period", "admdvs", "emp_no", "sector", "declared_base_fen", "base_fen",
        "employer_fen", "employee_fen", "personal_fen", "fiscal_fen", "assistance_fen", "relief_fen", "total_fen",
        "account_fen", "status", "category")}
    if fin is None:
        return pa.table(cols)
    rng = np.random.default_rng(seed + 15)
    psn = persons.column("psn_no").to_pylist()
    ins = persons.column("insutype").to_pylist()
    ret = persons.column("retiree").to_pylist()
    adm = persons.column("admdvs").to_pylist()
    cats = persons.column("categories").to_pylist()
    n = len(psn)
    employer = rng.integers(0, max(1, n // 40), n)
    sector_of = employer % len(SECTORS)
    under = (employer * 2654435761 % 100) < 5  # employers declaring at the floor
    wage = np.array(SECTOR_WAGE)[sector_of] * rng.lognormal(0, 0.35, n)
    declared = np.where(under, 0, np.round(wage / 100) * 100).astype(np.int64)
    late = rng.random(n) < 0.02
    cache: dict[tuple, rules.Line] = {}
    res_cache: dict[tuple, rules.Line] = {}

    def add(i, insutype, scheme, period, line, status, emp_no="", sector="", declared_fen=0):
        for k, v in (("psn_no", psn[i]), ("insutype", insutype), ("scheme", scheme), ("period", period),
                     ("admdvs", adm[i]), ("emp_no", emp_no), ("sector", sector), ("declared_base_fen", declared_fen),
                     ("base_fen", line.base_fen), ("employer_fen", line.employer_fen),
                     ("employee_fen", line.employee_fen), ("personal_fen", line.personal_fen),
                     ("fiscal_fen", line.fiscal_fen), ("assistance_fen", line.assistance_fen),
                     ("relief_fen", line.relief_fen), ("total_fen", line.total_fen), ("account_fen", line.account_fen),
                     ("status", status), ("category", line.category)):
            cols[k].append(v)

    for i in range(n):
        if ins[i] == "310" and fin.employee is not None:
            emp_no, sector = f"U{employer[i]:06d}", SECTORS[sector_of[i]]
            for m in range(1, 13):
                key = (int(declared[i]), m, bool(ret[i]))
                if key not in cache:
                    cache[key] = rules.employee_month(fin, yuan_to_fen(key[0]), date(year, m, 1), key[2])
                status = "due" if late[i] and m >= 10 and not ret[i] else "paid"
                add(i, "310", "employee", f"{year}-{m:02d}", cache[key], status, emp_no, sector,
                    0 if ret[i] else yuan_to_fen(int(declared[i])))
        elif ins[i] == "390" and fin.resident:
            key = tuple(sorted(cats[i] or []))
            if key not in res_cache:
                res_cache[key] = rules.resident_year(fin, year, key)
            add(i, "390", "resident", str(year), res_cache[key], "paid")
    return pa.table(cols)


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


def write(pack: PolicyPack, out_dir: str | Path, year: int | None = None, seed: int = 1) -> dict[str, tuple[Path, int]]:
    """Read ``persons.parquet`` in ``out_dir``; write ``contributions.parquet`` and ``enrolment_facts.parquet``."""
    out = Path(out_dir)
    persons = pq.read_table(out / "persons.parquet", columns=["psn_no", "insutype", "retiree", "admdvs", "categories"])
    year = year or pack.pack.effective_from.year
    written = {}
    for name, table in (("contributions", contributions(pack, persons, year, seed)),
                        ("enrolment_facts", enrolment_facts(persons, year))):
        path = out / f"{name}.parquet"
        pq.write_table(table, path, compression="zstd")
        written[name] = (path, table.num_rows)
    return written
