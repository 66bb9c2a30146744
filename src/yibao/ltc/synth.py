"""Synthetic long-term care for a synthetic region: assessed persons, care institutions, a year of records.

Reads the region ``yibao synth`` wrote (persons, institutions, visits) and adds ``ltc_persons``,
``ltc_assessments``, ``ltc_institutions`` and ``ltc_records`` beside them, reproducibly from the
seed. About 4% of persons aged 60 and over (and a few younger) are assessed; their scores give
their level through the pack's rules, so every level and the ineligible ones occur. A few records
are wrong on purpose, as an institution's would be (care on inpatient days, after death, of a
level above the assessed one, the same days billed twice), so the LTC audit rules have something
to find; ``ltc_labels`` says which.
"""

from __future__ import annotations

from bisect import bisect_right
from calendar import monthrange
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from yibao.claims.schema import decimal_array
from yibao.ltc.assess import assess, valid_until
from yibao.ltc.settle import add_months
from yibao.policy.model import PolicyPack

AMOUNTS = {  # yuan per care day (visit: per visit), low–high
    ("institution", "care"): (60, 120), ("institution", "medical_care"): (15, 45),
    ("institution", "bed"): (30, 60), ("institution", "meals"): (18, 30),
    ("home", "care"): (40, 90), ("home", "medical_care"): (10, 30),
    ("visit", "care"): (80, 150),
}


def _scores(rng: np.random.Generator, pack: PolicyPack, severity: float) -> dict[str, dict[str, int]]:
    """Item scores: each ADL item drops to its lowest score with probability ``severity`` (cognition and
    perception half as often), otherwise any allowed score."""
    out = {}
    for dim, weight in (("adl", 1.0), ("cognition", 0.5), ("perception", 0.5)):
        items = getattr(pack.ltc.assessment, dim)
        # it.scores[rng.integers(0, n)] is rng.choice(it.scores), draw for draw, at a sixth of the cost
        out[dim] = {it.code: (min(it.scores) if rng.random() < severity * weight
                              else int(it.scores[int(rng.integers(0, len(it.scores)))]))
                    for it in items}
    return out


def _cdf(p: list[float]) -> list[float]:
    """What ``Generator.choice(..., p=p)`` searches its uniform draw in."""
    cdf = np.array(p, dtype=float).cumsum()
    cdf /= cdf[-1]
    return cdf.tolist()


MODES, MODE_CDF = ["institution", "home", "visit"], _cdf([0.3, 0.5, 0.2])
INJECTS, INJECT_CDF = ["", "double_days", "after_death", "above_level"], _cdf([0.94, 0.02, 0.02, 0.02])


def _choose(rng: np.random.Generator, values: list[str], cdf: list[float]) -> str:
    """``str(rng.choice(values, p=p))``, draw for draw, without its per-call checks."""
    return values[bisect_right(cdf, rng.random())]


def generate(pack: PolicyPack, region: Path, seed: int = 7, year: int | None = None) -> dict[str, pa.Table]:
    ltc = pack.ltc
    assert ltc is not None
    rng = np.random.default_rng(seed)
    year = year or pack.pack.effective_from.year
    persons = pq.read_table(region / "persons.parquet", columns=["psn_no", "age", "insutype"])
    insts = pq.read_table(region / "institutions.parquet", columns=["admdvs"]).column("admdvs").to_pylist()
    areas = sorted(set(insts))
    homes = []
    for i, area in enumerate(areas):
        homes.append({"fixmedins_code": f"C{area}{i + 1:04d}", "fixmedins_name": f"示例{area}护理院{i + 1}",
                      "admdvs": area, "modes": ["institution", "home", "visit"], "beds": int(rng.integers(40, 200))})
    # one draw per person of an LTC scheme, in the persons' order (as one draw each in a loop would be)
    eligible = np.flatnonzero(pc.is_in(persons.column("insutype"),
                                       value_set=pa.array(list(ltc.eligibility.insutypes), pa.string()))
                              .to_numpy(zero_copy_only=False))
    age = persons.column("age").to_numpy()[eligible]
    picked = eligible[rng.random(len(eligible)) < np.where(age >= 60, 0.04, 0.002)]
    chosen = persons.take(pa.array(picked)).to_pylist()
    stays: dict[str, list[tuple[date, date]]] = {}
    visits = pq.read_table(region / "visits.parquet", columns=["psn_no", "med_type", "begntime", "endtime"])
    visits = visits.filter(pc.and_(pc.equal(visits.column("med_type"), "21"),
                                   pc.is_in(visits.column("psn_no"), value_set=pa.array([p["psn_no"] for p in chosen],
                                                                                      pa.string()))))
    for psn, begin, end in zip(visits.column("psn_no").to_pylist(), visits.column("begntime").cast(pa.date32()).to_pylist(),
                               visits.column("endtime").cast(pa.date32()).to_pylist()):
        stays.setdefault(psn, []).append((begin, end))
    psn_rows, assess_rows, records, labels = [], [], [], []
    jan1, dec31 = date(year, 1, 1), date(year, 12, 31)
    served = {lv for b in ltc.benefits for lv in b.levels}
    pending = ["double_days", "after_death", "above_level"]  # the first persons served get one each: every region has all
    for k, p in enumerate(chosen):
        since = jan1 - timedelta(days=int(rng.integers(30, 3650)))
        begin = jan1 - timedelta(days=int(rng.integers(0, 400))) if rng.random() < 0.7 else jan1 + timedelta(days=int(rng.integers(0, 200)))
        result = assess(ltc.assessment, _scores(rng, pack, float(rng.uniform(0.2, 0.9))))
        end = valid_until(ltc.assessment, begin)
        start = max(begin, jan1)
        inject = None
        if result.level in served and start < dec31 - timedelta(days=40):
            options = [x for x in pending if x != "above_level" or result.level != max(served)]
            inject = options[0] if options else _choose(rng, INJECTS, INJECT_CDF) or None
            if inject in pending:
                pending.remove(inject)
            if inject == "above_level" and result.level == max(served):
                inject = None
        death = None
        if inject == "after_death" or rng.random() < 0.04:
            death = start + timedelta(days=int(rng.integers(10, max(11, (dec31 - start).days - 15))))
        psn_rows.append({"psn_no": p["psn_no"], "insutype": p["insutype"], "enrolled_since": since, "death_date": death})
        assess_rows.append({"assessment_id": f"LA{k + 1:06d}", "psn_no": p["psn_no"], "level": result.level,
                            "begin": begin, "end": end, "assessor": f"E{int(rng.integers(1, 21)):03d}",
                            "adl": result.totals["adl"], "cognition": result.totals["cognition"],
                            "perception": result.totals["perception"]})
        if result.level not in served:
            continue
        mode = "institution" if inject == "double_days" else _choose(rng, MODES, MODE_CDF)
        home = homes[int(rng.integers(0, len(homes)))]["fixmedins_code"]
        last_day = min(end, dec31, death or dec31)
        if inject == "after_death":  # the institution keeps billing after death
            last_day = min(dec31, death + timedelta(days=10))
        srv_level = str(int(result.level) + 1) if inject == "above_level" else result.level
        double = inject == "double_days"
        if inject:
            labels.append({"psn_no": p["psn_no"], "pattern": inject})
        if any(s[0] <= last_day and s[1] >= start for s in stays.get(p["psn_no"], [])):
            labels.append({"psn_no": p["psn_no"], "pattern": "in_hospital"})
        # an institution bills by month, and apart where eligibility changes (enough months enrolled, death)
        breaks = {add_months(since, ltc.eligibility.continuous_months)} | ({death + timedelta(days=1)} if death else set())
        day = start
        n = 0
        while day <= last_day:
            month_end = date(day.year, day.month, monthrange(day.year, day.month)[1])
            seg_end = min([month_end, last_day] + [b - timedelta(days=1) for b in breaks if day < b <= month_end])
            span = (seg_end - day).days + 1
            if mode == "visit":
                for d in sorted(set(rng.integers(0, span, size=int(rng.integers(2, 9))).tolist())):
                    n += 1
                    lo, hi = AMOUNTS[("visit", "care")]
                    records.append(_rec(p, home, f"{k}-{n}", day + timedelta(days=d), 1, "visit", "care",
                                        int(rng.integers(lo, hi + 1)) * 100, srv_level))
            else:
                for (m, item), (lo, hi) in AMOUNTS.items():
                    if m != mode:
                        continue
                    n += 1
                    per_day = int(rng.integers(lo, hi + 1)) * 100
                    records.append(_rec(p, home, f"{k}-{n}", day, span, mode, item, per_day * span, srv_level))
                    if double and item == "care":
                        n += 1
                        records.append(_rec(p, home, f"{k}-{n}", day, span, mode, item, per_day * span, srv_level))
            day = seg_end + timedelta(days=1)
    return {
        "ltc_persons": pa.Table.from_pylist(psn_rows, schema=pa.schema([
            ("psn_no", pa.string()), ("insutype", pa.string()), ("enrolled_since", pa.date32()), ("death_date", pa.date32())])),
        "ltc_assessments": pa.Table.from_pylist(assess_rows, schema=pa.schema([
            ("assessment_id", pa.string()), ("psn_no", pa.string()), ("level", pa.string()), ("begin", pa.date32()),
            ("end", pa.date32()), ("assessor", pa.string()), ("adl", pa.int32()), ("cognition", pa.int32()),
            ("perception", pa.int32())])),
        "ltc_institutions": pa.Table.from_pylist(homes, schema=pa.schema([
            ("fixmedins_code", pa.string()), ("fixmedins_name", pa.string()), ("admdvs", pa.string()),
            ("modes", pa.list_(pa.string())), ("beds", pa.int32())])),
        "ltc_records": _records(records),
        "ltc_labels": pa.Table.from_pylist(labels, schema=pa.schema([("psn_no", pa.string()), ("pattern", pa.string())])),
    }


RECORD_SCHEMA = pa.schema([
    ("srv_id", pa.string()), ("psn_no", pa.string()), ("fixmedins_code", pa.string()), ("srv_date", pa.date32()),
    ("days", pa.int32()), ("mode", pa.string()), ("item_class", pa.string()), ("amount", pa.decimal128(16, 2)),
    ("srv_level", pa.string()),
])


def _rec(p, home, sid, day, days, mode, item, fen, level) -> tuple:
    return f"S{sid}", p["psn_no"], home, day, days, mode, item, fen, level


def _records(rows: list[tuple]) -> pa.Table:
    """The records as a table, column by column (amounts from fen, exactly)."""
    cols = list(zip(*rows)) if rows else [()] * len(RECORD_SCHEMA)
    return pa.Table.from_arrays(
        [decimal_array(np.array(c, dtype=np.int64), f.type) if f.name == "amount" else pa.array(c, f.type)
         for c, f in zip(cols, RECORD_SCHEMA)], schema=RECORD_SCHEMA)


def write(tables: dict[str, pa.Table], region: Path) -> dict[str, Path]:
    out = {}
    for name, table in tables.items():
        path = Path(region) / f"{name}.parquet"
        pq.write_table(table, path)
        out[name] = path
    return out
