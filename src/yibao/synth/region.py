"""A synthetic region: persons, institutions, a year of visits and their fee lines.

Everything is drawn with NumPy from one seed, column by column (no Python loop over persons,
visits or lines), so 100,000 persons and their ~2 million fee lines take a few seconds and the
same seed always gives the same tables, byte for byte. The shape follows :mod:`profiles`; only
codes the policy pack declares are used (levels, categories, charge classes, and the
scheme × medical-type combinations its basic rules cover), so every visit can be settled.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from yibao.claims.schema import COUNT, RATIO, SCHEMAS, TIME, YUAN, decimal_array
from yibao.errors import Problem, YibaoError
from yibao.policy.model import PolicyPack
from yibao.synth import (
    enrolment,  # registry facts and the contribution ledger (docs/enrolment.md)
)
from yibao.synth import profiles as P
from yibao.synth.ids import certnos, fixed_ids
from yibao.synth.parquet import ROW_GROUP_ROWS, parquet_options

DAY = 86_400
HOUR = 3_600
OUTPATIENT, TWO_DISEASES, CHRONIC, INPATIENT, MATERNITY = range(5)
KIND_NAMES = ("outpatient", "two_diseases", "chronic", "inpatient", "maternity")
MED_TYPES = ("11", "11", "14", "21", "52")  # by kind

Progress = Callable[[str, float], None]  # (step, fraction done)


class SynthError(YibaoError):
    title = "无法生成合成数据"


@dataclass(frozen=True)
class Window:
    start: date
    end: date  # inclusive

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1


def window_for(pack: PolicyPack, year: int | None) -> Window:
    info = pack.pack
    year = info.effective_from.year if year is None else year
    start = max(date(year, 1, 1), info.effective_from)
    end = min(date(year, 12, 31), info.effective_to)
    if start > end:
        raise SynthError(Problem(
            "SYN002", "year",
            f"{year} 年不在政策包 {info.id} 的有效期 {info.effective_from} 至 {info.effective_to} 内"))
    return Window(start, end)


_BIRTH_DAYS = 37_000  # birth dates up to ~100 years before the data year
BLOCK_PERSONS = 200_000  # persons generated together; memory stays bounded by one block


def _check_args(persons, seed) -> None:
    if not isinstance(persons, (int, np.integer)) or isinstance(persons, bool) or persons <= 0:
        raise SynthError(Problem("SYN001", "persons", f"人数必须是正整数, 实际为 {persons!r}"))
    if persons > 50_000_000:
        raise SynthError(Problem("SYN001", "persons", "人数最多 50,000,000(更大的地区请分批生成)"))
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise SynthError(Problem("SYN003", "seed", f"随机种子必须是非负整数, 实际为 {seed!r}"))


def blocks(pack: PolicyPack, persons: int = 100_000, seed: int = 1, year: int | None = None,
           progress: Progress | None = None) -> Iterator[dict[str, pa.Table]]:
    """The region as a stream: first ``{"institutions": ...}``, then for each block of up to
    :data:`BLOCK_PERSONS` persons ``{"persons", "visits", "fee_items"}`` with running ids.

    A person's visits and lines are all in the person's block. Each block draws from its own
    child of ``SeedSequence(seed)``, so the stream depends only on the arguments.
    """
    _check_args(persons, seed)
    window = window_for(pack, year)
    note = progress or (lambda step, done: None)
    persons, seed = int(persons), int(seed)
    region = _Region(pack, window)
    n_blocks = -(-persons // BLOCK_PERSONS)
    seqs = np.random.SeedSequence(seed).spawn(1 + n_blocks)
    meta = {"generator": "yibao.synth", "version": P.GENERATOR_VERSION, "pack": pack.pack.id,
            "pack_version": pack.pack.version, "seed": seed, "persons": persons,
            "year": window.start.year, "from": str(window.start), "to": str(window.end)}
    blob = json.dumps(meta, ensure_ascii=False, sort_keys=True).encode()

    def tag(t: pa.Table) -> pa.Table:
        return t.replace_schema_metadata({**(t.schema.metadata or {}), b"yibao.synth": blob})

    note("定点医药机构", 0.0)
    insts = region.institutions(np.random.default_rng(seqs[0]), persons)
    yield {"institutions": tag(insts.table)}
    hh_offset = visit_offset = item_offset = 0
    for b in range(n_blocks):
        first = b * BLOCK_PERSONS
        size = min(BLOCK_PERSONS, persons - first)
        rngs = [np.random.default_rng(s) for s in seqs[1 + b].spawn(6)]
        where = f" ({b + 1}/{n_blocks})" if n_blocks > 1 else ""
        note("人员" + where, b / n_blocks)
        people = region.persons(rngs[0], size, first, hh_offset)
        note("就诊" + where, (b + 0.25) / n_blocks)
        visits = region.visits(rngs[2], rngs[3], people, insts)
        note("费用明细" + where, (b + 0.5) / n_blocks)
        items, medfee = region.items(rngs[4], visits, visit_offset, item_offset)
        balance = region.balances(rngs[5], people, visits, medfee)
        table = region.visit_table(people, insts, visits, medfee, balance, visit_offset)
        hh_offset += people.households
        visit_offset += len(visits)
        item_offset += items.num_rows
        note("写出" + where, (b + 0.75) / n_blocks)
        yield {"persons": tag(people.table), "visits": tag(table), "fee_items": tag(items)}
    note("完成", 1.0)


def generate(pack: PolicyPack, persons: int = 100_000, seed: int = 1, year: int | None = None,
             progress: Progress | None = None) -> dict[str, pa.Table]:
    """A region of ``persons`` insured persons and one year of claims, in the claims schemas.

    ``year`` defaults to the year the pack takes effect; all visits fall inside that year and
    inside the pack's effective dates. Same arguments → identical tables. For millions of
    persons prefer :func:`generate_to`, which writes block by block.
    """
    parts: dict[str, list[pa.Table]] = {name: [] for name in SCHEMAS}
    for block in blocks(pack, persons, seed, year, progress):
        for name, table in block.items():
            parts[name].append(table)
    return {name: ts[0] if len(ts) == 1 else pa.concat_tables(ts) for name, ts in parts.items()}


def generate_to(pack: PolicyPack, out_dir: str | Path, persons: int = 100_000, seed: int = 1,
                year: int | None = None, progress: Progress | None = None) -> dict[str, tuple[Path, int]]:
    """Generate and write ``<name>.parquet`` block by block; returns {table: (path, rows)}.

    Memory is bounded by one block of :data:`BLOCK_PERSONS` persons whatever the region's size.
    Files are written under temporary names and renamed at the end: an error leaves nothing
    half-written.
    """
    import pyarrow.parquet as pq

    _check_args(persons, seed)
    window_for(pack, year)  # refuse a bad year before touching the directory
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    writers: dict[str, pq.ParquetWriter] = {}
    rows = dict.fromkeys(SCHEMAS, 0)
    tmp = {name: out / f".{name}.parquet.tmp" for name in SCHEMAS}
    try:
        for block in blocks(pack, persons, seed, year, progress):
            for name, table in block.items():
                if name not in writers:
                    writers[name] = pq.ParquetWriter(tmp[name], table.schema, **parquet_options(table.schema))
                writers[name].write_table(table, row_group_size=ROW_GROUP_ROWS)
                rows[name] += table.num_rows
        for w in writers.values():
            w.close()
    except BaseException:
        for w in writers.values():
            w.close()
        for path in tmp.values():
            path.unlink(missing_ok=True)
        raise
    paths = {}
    for name in SCHEMAS:
        path = out / f"{name}.parquet"
        os.replace(tmp[name], path)
        paths[name] = (path, rows[name])

    paths.update(enrolment.write(pack, out, year, seed))
    return paths


def write_region(tables: dict[str, pa.Table], out_dir: str | Path) -> dict[str, Path]:
    """Write the tables as ``<name>.parquet`` (:func:`parquet_options`) in ``out_dir``; returns the paths.

    Each file is written to a temporary name and renamed, so a failed write leaves no
    half-written table behind.
    """
    import pyarrow.parquet as pq

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for name in SCHEMAS:
        if name not in tables:
            continue
        path = out / f"{name}.parquet"
        tmp = out / f".{name}.parquet.tmp"
        pq.write_table(tables[name], tmp, row_group_size=ROW_GROUP_ROWS, **parquet_options(tables[name].schema))
        os.replace(tmp, path)
        paths[name] = path
    return paths


# --- helpers ------------------------------------------------------------------------------


def _bands(rng: np.random.Generator, bands, n: int) -> np.ndarray:
    lo = np.array([b[0] for b in bands])
    hi = np.array([b[1] for b in bands])
    w = np.array([b[2] for b in bands], dtype=float)
    k = rng.choice(len(bands), size=n, p=w / w.sum())
    return lo[k] + np.floor(rng.random(n) * (hi[k] - lo[k] + 1)).astype(np.int64)


def _pick(rng: np.random.Generator, weights, n: int) -> np.ndarray:
    w = np.asarray(weights, dtype=float)
    return rng.choice(len(w), size=n, p=w / w.sum())


def _draw3(u: np.ndarray, mix: np.ndarray, row: np.ndarray) -> np.ndarray:
    """0, 1 or 2 with probabilities ``mix[row]`` (rows of three), from uniforms ``u``."""
    first = np.cumsum(mix, axis=1)
    return (u > first[row, 0]).astype(np.int64) + (u > first[row, 1])


def _rank_within(groups: np.ndarray) -> np.ndarray:
    """0, 1, 2, ... within runs of equal values of a sorted array."""
    n = len(groups)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    start = np.r_[True, groups[1:] != groups[:-1]]
    first = np.maximum.accumulate(np.where(start, np.arange(n), 0))
    return np.arange(n) - first


def _labels(values: list[str], index: np.ndarray | None = None) -> pa.Array:
    """Strings by index into a short list (Arrow take; no NumPy string arrays)."""
    arr = pa.array(values, pa.string())
    return arr if index is None else arr.take(pa.array(np.asarray(index, dtype=np.int64)))


def _areas(admdvs: str) -> np.ndarray:
    """Synthetic county codes under the pack's area: a province gets 4 cities × 3 districts."""
    if admdvs.endswith("0000"):
        codes = [int(admdvs[:2]) * 10000 + c * 100 + d for c in range(1, 5) for d in (2, 3, 4)]
    elif admdvs.endswith("00"):
        codes = [int(admdvs[:4]) * 100 + d for d in range(2, 8)]
    else:
        codes = [int(admdvs)]
    return np.array(codes, dtype=np.int64)


@dataclass
class _People:
    n: int
    hh: np.ndarray
    area: np.ndarray  # index into region areas
    employee: np.ndarray
    retiree: np.ndarray
    male: np.ndarray
    age: np.ndarray
    cat: np.ndarray  # index into pack categories, -1 none
    table: pa.Table
    households: int


@dataclass
class _Insts:
    level: np.ndarray  # level index per institution
    area: np.ndarray
    by_level: list[np.ndarray]  # institution indices per level
    cum_weight: list[np.ndarray]
    low_by_area: np.ndarray  # lowest-level institutions sorted by area
    low_start: np.ndarray
    low_count: np.ndarray
    table: pa.Table

    def choose(self, rng: np.random.Generator, level: np.ndarray, area: np.ndarray) -> np.ndarray:
        """An institution of each visit's level; the lowest level near the person's home."""
        out = np.empty(len(level), dtype=np.int64)
        u = rng.random(len(level))
        for li, members in enumerate(self.by_level):
            mask = level == li
            if not mask.any():
                continue
            if li == 0:
                a = area[mask]
                out[mask] = self.low_by_area[self.low_start[a] + np.floor(u[mask] * self.low_count[a]).astype(np.int64)]
            else:
                cw = self.cum_weight[li]
                j = np.searchsorted(cw, u[mask] * cw[-1], side="right")
                out[mask] = members[np.minimum(j, len(members) - 1)]
        return out


@dataclass
class _Visits:
    psn: np.ndarray
    kind: np.ndarray
    level: np.ndarray
    inst: np.ndarray
    begn: np.ndarray  # seconds from the window's first midnight
    end: np.ndarray
    dise: np.ndarray  # index into codes
    oprn: np.ndarray  # index into codes, -1 none
    ref: np.ndarray  # referral_from_level index, -1 none
    cost: np.ndarray  # target total (yuan, float)

    @staticmethod
    def concat(parts: list["_Visits"]) -> "_Visits":
        return _Visits(*(np.concatenate([getattr(p, f) for p in parts]) for f in _Visits.__dataclass_fields__))

    def take(self, idx: np.ndarray) -> "_Visits":
        return _Visits(*(getattr(self, f)[idx] for f in _Visits.__dataclass_fields__))

    def __len__(self) -> int:
        return len(self.psn)


class _Region:
    def __init__(self, pack: PolicyPack, window: Window):
        self.pack = pack
        self.window = window
        self.levels = list(pack.levels)  # lowest (基层) first, as the pack lists them
        self.nl = len(self.levels)
        self.cat_codes = list(pack.categories)
        self.cat_profiles = [P.category_profile(c, pack.categories[c]) for c in self.cat_codes]
        covered = {(r.insutype, m) for r in pack.basic for m in r.med_types}
        self.covered = covered
        self.insutypes = sorted({i for i, _ in covered} & {"310", "390"})
        if not self.insutypes:
            raise SynthError(Problem("SYN004", "basic", "政策包没有职工(310)或居民(390)的基本医保规则, 无法生成参保人"))
        self.areas = _areas(pack.pack.admdvs)
        self.cert_used = np.zeros(len(self.areas) * _BIRTH_DAYS * 2, dtype=np.int64)
        self.codes: list[str] = []
        self.code_index: dict[str, int] = {}
        two = next((r for r in pack.basic if r.diseases and "11" in r.med_types), None)
        prefixes = list(two.diseases) if two else []
        self.hypertension = self._full_code(prefixes, "I1", P.HYPERTENSION_CODE)
        self.diabetes = self._full_code(prefixes, "E1", P.DIABETES_CODE)

    @staticmethod
    def _full_code(prefixes: list[str], family: str, default: str) -> str:
        """A full diagnosis code under the pack's 两病 prefixes (I10 and E11 when listed)."""
        preferred = default.split(".")[0]
        if preferred in prefixes or not prefixes:
            return default
        for prefix in prefixes:
            if prefix.upper().startswith(family):
                if prefix in P.KNOWN_FULL_CODES:
                    return P.KNOWN_FULL_CODES[prefix]
                return prefix if "." in prefix else prefix + ".900"
        return default

    def code(self, text: str) -> int:
        if text not in self.code_index:
            self.code_index[text] = len(self.codes)
            self.codes.append(text)
        return self.code_index[text]

    def covers(self, employee: np.ndarray, med_type: str) -> np.ndarray:
        e, r = ("310", med_type) in self.covered, ("390", med_type) in self.covered
        return np.where(employee, e, r)

    # --- persons --------------------------------------------------------------------------

    def persons(self, rng: np.random.Generator, n: int, first: int = 0, hh_offset: int = 0) -> _People:
        sizes = rng.choice(P.HOUSEHOLD_SIZES, size=n, p=np.array(P.HOUSEHOLD_WEIGHTS) / sum(P.HOUSEHOLD_WEIGHTS))
        cs = np.cumsum(sizes)
        m = int(np.searchsorted(cs, n))
        sizes = sizes[: m + 1].copy()
        sizes[-1] -= int(cs[m]) - n
        n_hh = len(sizes)
        hh = np.repeat(np.arange(n_hh), sizes)
        hh_area = rng.integers(0, len(self.areas), n_hh)

        # household categories (低保, 边缘, 返贫致贫, 监测 ...), exclusive
        hh_cat = np.full(n_hh, -1, dtype=np.int64)
        order = rng.permutation(n_hh)
        for ci, prof in enumerate(self.cat_profiles):
            if prof.scope != "household":
                continue
            avail = order[hh_cat[order] < 0]
            target = round(prof.share * n)
            if target <= 0 or len(avail) == 0:
                continue
            k = min(int(np.searchsorted(np.cumsum(sizes[avail]), target)) + 1, len(avail))
            hh_cat[avail[:k]] = ci
        cat = hh_cat[hh]

        # scheme: 困难群众 households are residents (资助参保) when the pack covers residents
        if self.insutypes == ["310"]:
            employee = np.ones(n, dtype=bool)
        elif self.insutypes == ["390"]:
            employee = np.zeros(n, dtype=bool)
        else:
            free = cat < 0
            share = min(1.0, P.EMPLOYEE_SHARE * n / max(1, int(free.sum())))
            employee = free & (rng.random(n) < share)
        male = rng.random(n) < P.MALE_SHARE
        retiree = employee & (rng.random(n) < P.RETIREE_SHARE)
        age = _bands(rng, P.RESIDENT_AGES, n)
        active = employee & ~retiree
        age[active] = _bands(rng, P.EMPLOYEE_AGES, int(active.sum()))
        for sex, bands in ((male, P.RETIREE_AGES_MALE), (~male, P.RETIREE_AGES_FEMALE)):
            mask = retiree & sex
            age[mask] = _bands(rng, bands, int(mask.sum()))

        # individual categories (特困 living alone, 孤儿, 因病致贫重病患者)
        single = sizes[hh] == 1
        for ci, prof in enumerate(self.cat_profiles):
            if prof.scope == "household":
                continue
            ok = (cat < 0) & (age >= prof.min_age) & (age <= prof.max_age)
            if prof.scope == "single":
                ok &= single
            if prof.scope == "single" or prof.max_age < 18:
                ok &= ~employee
            pool = np.flatnonzero(ok)
            target = min(round(prof.share * n), len(pool))
            if target <= 0:
                continue
            w = np.where(age[pool] >= 60, 4.0, 1.0) if prof.scope != "person" or prof.min_age >= 18 else np.ones(len(pool))
            cat[rng.choice(pool, size=target, replace=False, p=w / w.sum())] = ci

        # household income: reference per-capita income × size, lower for 困难群众
        ref = float(self.pack.reference.per_capita_disposable_income)
        factor = np.ones(n_hh)
        has = cat >= 0
        if has.any():
            pf = np.array([p.income_factor for p in self.cat_profiles])
            np.minimum.at(factor, hh[has], pf[cat[has]])
        sigma = P.INCOME_SIGMA
        income = ref * sizes * factor * np.exp(rng.normal(-sigma * sigma / 2, sigma, n_hh))
        income_fen = np.maximum(np.round(income), 1200).astype(np.int64) * 100

        # ID numbers: area, birth date consistent with the age on 1 January, sex in the sequence
        year = self.window.start.year
        area = hh_area[hh]
        jan1 = (np.full(n, year, dtype=np.int64) - age - 1970).astype("datetime64[Y]").astype("datetime64[D]")
        birth = jan1 - rng.integers(0, 365, n).astype("timedelta64[D]")
        # the sequence number counts on from earlier blocks, so ID numbers stay unique
        days_back = (np.datetime64(date(year, 1, 1), "D") - birth).astype(np.int64)
        key = (area * _BIRTH_DAYS + days_back) * 2 + male
        order = np.argsort(key, kind="stable")
        rank = np.empty(n, dtype=np.int64)
        rank[order] = _rank_within(key[order])
        rank += self.cert_used[key]
        np.add.at(self.cert_used, key, 1)
        seq = 2 * rank + np.where(male, 1, 2)
        if seq.max(initial=0) > 999:
            raise SynthError(Problem("SYN001", "persons", "人数过多, 合成身份证号的顺序码不够用"))
        surname = pa.array(P.SURNAMES).take(pa.array(rng.integers(0, len(P.SURNAMES), n)))
        given = pa.array(P.GIVEN)
        g1 = given.take(pa.array(rng.integers(0, len(P.GIVEN), n)))
        g2 = pa.array(list(P.GIVEN) + [""]).take(
            pa.array(np.where(rng.random(n) < 0.3, len(P.GIVEN), rng.integers(0, len(P.GIVEN), n))))
        names = pc.binary_join_element_wise(surname, g1, g2, "")

        cat_values = pa.array(self.cat_codes, pa.string()).take(pa.array(cat[cat >= 0]))
        offsets = np.r_[0, np.cumsum(cat >= 0)].astype(np.int32)
        categories = pa.ListArray.from_arrays(pa.array(offsets), cat_values, type=pa.list_(pa.string()))
        area_codes = _labels([str(a) for a in self.areas])
        table = pa.Table.from_arrays([
            fixed_ids("P", np.arange(first + 1, first + n + 1), 9),
            certnos(self.areas[area], birth, seq),
            names.cast(pa.string()),
            _labels(["2", "1"], male),
            pa.array(age.astype(np.int16)),
            _labels(["390", "310"], employee),
            pa.array(retiree),
            categories,
            area_codes.take(pa.array(area)),
            fixed_ids("H", hh + hh_offset + 1, 9),
            decimal_array(income_fen[hh], YUAN),
        ], schema=SCHEMAS["persons"])
        return _People(n, hh, area, employee, retiree, male, age, cat, table, n_hh)

    # --- institutions ---------------------------------------------------------------------

    def institutions(self, rng: np.random.Generator, n_persons: int) -> _Insts:
        n_areas = len(self.areas)
        total = max(10, round(n_persons / 150))
        counts = np.maximum(np.round(total * P.level_mix("institutions", self.nl)).astype(np.int64), 1)
        counts[0] = max(int(counts[0]), n_areas)
        level = np.repeat(np.arange(self.nl), counts)
        area = np.empty(len(level), dtype=np.int64)
        area[level == 0] = np.arange(int(counts[0])) % n_areas
        area[level > 0] = rng.integers(0, n_areas, int((level > 0).sum()))
        weight = rng.lognormal(0.0, 0.8, len(level))
        by_level = [np.flatnonzero(level == li) for li in range(self.nl)]
        cum_weight = [np.cumsum(weight[m]) for m in by_level]
        low = by_level[0]
        low_by_area = low[np.argsort(area[low], kind="stable")]
        low_count = np.bincount(area[low], minlength=n_areas)
        low_start = np.r_[0, np.cumsum(low_count)[:-1]]
        names, codes = [], []
        ordinal = np.zeros(self.nl, dtype=np.int64)
        for i in range(len(level)):  # one row per institution: a few hundred to a few thousand
            li, a = int(level[i]), int(self.areas[area[i]])
            ordinal[li] += 1
            k = int(ordinal[li])
            if li == 0:
                names.append(f"示例{a}第{k}{('社区卫生服务中心', '镇卫生院')[k % 2]}")
            elif li == self.nl - 1:
                names.append(f"示例{('市第' + str(k) + '人民医院', '医科大学第' + str(k) + '附属医院')[k % 2]}")
            else:
                names.append(f"示例{a}{('第' + str(k) + '人民医院', '第' + str(k) + '中医医院')[k % 2]}")
            codes.append(a * 100_000 + i + 1)
        table = pa.Table.from_arrays([
            fixed_ids("H", np.array(codes, dtype=np.int64), 11),
            pa.array(names, pa.string()),
            pa.array(self.levels, pa.string()).take(pa.array(level)),
            _labels([str(a) for a in self.areas], area),
        ], schema=SCHEMAS["institutions"])
        return _Insts(level, area, by_level, cum_weight, low_by_area, low_start, low_count, table)

    # --- visits ---------------------------------------------------------------------------

    def _empty(self) -> _Visits:
        z = np.zeros(0, dtype=np.int64)
        return _Visits(z, z, z, z, z, z, z, z, z, np.zeros(0))

    def visits(self, rng: np.random.Generator, rng_in: np.random.Generator, people: _People,
               insts: _Insts) -> _Visits:
        D = self.window.days
        frac = D / 365.0
        age = people.age
        two = self.covers(people.employee, "11")
        hyp = two & (rng.random(people.n) < P.by_age(P.HYPERTENSION_SHARE, age))
        dia = two & (rng.random(people.n) < P.by_age(P.DIABETES_SHARE, age))
        chronic = self.covers(people.employee, "14") & (rng.random(people.n) < P.by_age(P.CHRONIC_SHARE, age))

        parts = [self._outpatient(rng, people, insts, D, frac),
                 self._two_diseases(rng, people, insts, hyp, self.hypertension),
                 self._two_diseases(rng, people, insts, dia, self.diabetes),
                 self._chronic(rng, people, insts, chronic, D, frac)]
        stays = self._inpatient(rng_in, people, insts, hyp | dia | chronic, D, frac)
        out = _Visits.concat(parts)
        out = self._one_place_at_a_time(out, insts, D)
        out = self._clear_of_stays(rng, out, stays, D)
        # a visit moved off a stay may land beside another visit of the day: sequence again, and
        # clear again what that pushed into a stay
        out = self._clear_of_stays(rng, self._one_place_at_a_time(out, insts, D), stays, D)
        allv = _Visits.concat([out, stays])
        order = np.lexsort((allv.kind, allv.begn, allv.psn, allv.end))
        return allv.take(order)

    def _times(self, rng, day: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        begn = day * DAY + 8 * HOUR + rng.integers(0, 9 * HOUR, len(day))
        return begn, begn + rng.integers(300, 3_600, len(day))

    def _outpatient(self, rng, people: _People, insts: _Insts, D: int, frac: float) -> _Visits:
        rate = P.by_age(P.OUTPATIENT_RATE, people.age) * np.where(people.employee, P.EMPLOYEE_OUTPATIENT_FACTOR, 1.0)
        count = rng.poisson(rate * frac) * self.covers(people.employee, "11")
        psn = np.repeat(np.arange(people.n), count)
        m = len(psn)
        level = _pick(rng, P.level_mix("outpatient", self.nl), m)
        table = P.OUTPATIENT_DISEASES
        d = _pick(rng, [t[1] for t in table], m)
        dise = np.array([self.code(t[0]) for t in table])[d]
        median = P.by_level(P.OUTPATIENT_COST[0], self.nl)[level] * np.array([t[2] for t in table])[d]
        median *= np.where(people.age[psn] < 7, 0.7, 1.0)
        cost = median * np.exp(rng.normal(0, P.OUTPATIENT_COST[1], m))
        begn, end = self._times(rng, rng.integers(0, D, m))
        inst = insts.choose(rng, level, people.area[psn])
        none = np.full(m, -1)
        return _Visits(psn, np.full(m, OUTPATIENT), level, inst, begn, end, dise, none, none, cost)

    def _home(self, rng, insts: _Insts, patients: np.ndarray, people: _People, mix) -> tuple[np.ndarray, np.ndarray]:
        level = _pick(rng, mix, len(patients))
        return level, insts.choose(rng, level, people.area[patients])

    def _two_diseases(self, rng, people: _People, insts: _Insts, mask: np.ndarray, code: str) -> _Visits:
        """Monthly drug visits of 两病 patients, mostly at their home 基层 institution."""
        patients = np.flatnonzero(mask)
        home_level, home_inst = self._home(rng, insts, patients, people, P.level_mix("two_diseases", self.nl))
        months = []  # (first day, length) of each calendar month inside the window
        d = self.window.start
        while d <= self.window.end:
            nxt = (d.replace(day=1) + timedelta(days=32)).replace(day=1)
            last = min(nxt - timedelta(days=1), self.window.end)
            months.append(((d - self.window.start).days, (last - d).days + 1))
            d = nxt
        mstart = np.array([m[0] for m in months])
        mlen = np.array([m[1] for m in months])
        p = np.repeat(np.arange(len(patients)), len(months))
        mi = np.tile(np.arange(len(months)), len(patients))
        keep = rng.random(len(p)) < P.MONTHLY_ATTENDANCE
        p, mi = p[keep], mi[keep]
        m = len(p)
        day = mstart[mi] + np.floor(rng.random(m) * mlen[mi]).astype(np.int64)
        psn = patients[p]
        away = rng.random(m) >= P.HOME_INSTITUTION_SHARE
        level = home_level[p].copy()
        level[away] = _pick(rng, P.level_mix("two_diseases", self.nl), int(away.sum()))
        inst = home_inst[p].copy()
        inst[away] = insts.choose(rng, level[away], people.area[psn[away]])
        median = P.by_level(P.TWO_DISEASE_COST[0], self.nl)[level]
        cost = median * np.exp(rng.normal(0, P.TWO_DISEASE_COST[1], m))
        begn, end = self._times(rng, day)
        none = np.full(m, -1)
        return _Visits(psn, np.full(m, TWO_DISEASES), level, inst, begn, end, np.full(m, self.code(code)),
                       none, none, cost)

    def _chronic(self, rng, people: _People, insts: _Insts, mask: np.ndarray, D: int, frac: float) -> _Visits:
        patients = np.flatnonzero(mask)
        table = P.CHRONIC_DISEASES
        d = _pick(rng, [t[1] for t in table], len(patients))
        mixes = np.array([P.by_level(t[4], self.nl) + 1e-9 for t in table])
        mixes /= mixes.sum(axis=1, keepdims=True)
        u = rng.random(len(patients))
        home_level = (u[:, None] > np.cumsum(mixes[d], axis=1)).sum(axis=1).clip(0, self.nl - 1)
        home_inst = insts.choose(rng, home_level, people.area[patients])
        per_year = np.array([t[3] for t in table])[d]
        count = np.maximum(rng.poisson(per_year * frac), 1)
        p = np.repeat(np.arange(len(patients)), count)
        m = len(p)
        psn = patients[p]
        cost = np.array([t[2] for t in table])[d][p] * np.exp(rng.normal(0, 0.5, m))
        dise = np.array([self.code(t[0]) for t in table])[d][p]
        begn, end = self._times(rng, rng.integers(0, D, m))
        none = np.full(m, -1)
        return _Visits(psn, np.full(m, CHRONIC), home_level[p], home_inst[p], begn, end, dise, none, none, cost)

    def _inpatient(self, rng, people: _People, insts: _Insts, chronic: np.ndarray, D: int, frac: float) -> _Visits:
        """Admissions (21) and births (52), never overlapping for one person; referral pairs."""
        n, age = people.n, people.age
        cats_ip = self._illness_poverty(people)
        p_any = P.by_age(P.ADMISSION_P, age) * np.where(chronic, P.CHRONIC_ADMISSION_FACTOR, 1.0)
        p_any = np.minimum(np.where(cats_ip, p_any * P.ILLNESS_POVERTY_FACTOR, p_any) * frac, 0.95)
        any_ = self.covers(people.employee, "21") & (rng.random(n) < p_any)
        extra = P.by_age(tuple((a, v) for a, v in P.EXTRA_ADMISSIONS), age) * np.where(cats_ip, 3.0, 1.0)
        count = any_ * (1 + np.minimum(rng.poisson(extra), P.MAX_ADMISSIONS - 1))
        births = (self.covers(people.employee, "52") & ~people.male
                  & (rng.random(n) < P.by_age(P.BIRTH_RATE, age) * frac))
        psn = np.concatenate([np.repeat(np.arange(n), count), np.flatnonzero(births)])
        kind = np.concatenate([np.full(int(count.sum()), INPATIENT), np.full(int(births.sum()), MATERNITY)])
        m = len(psn)
        if m == 0:
            return self._empty()
        mat = kind == MATERNITY
        level = np.where(mat, _pick(rng, P.level_mix("maternity", self.nl), m),
                         _pick(rng, P.level_mix("inpatient", self.nl), m))
        dise = np.empty(m, dtype=np.int64)
        oprn = np.full(m, -1)
        cost_f = np.empty(m)
        stay_f = np.empty(m)
        for table, mask in ((P.INPATIENT_DISEASES, ~mat), (P.MATERNITY_DISEASES, mat)):
            k = int(mask.sum())
            d = _pick(rng, [t[1] for t in table], k)
            dise[mask] = np.array([self.code(t[0]) for t in table])[d]
            cost_f[mask] = np.array([t[2] for t in table])[d]
            stay_f[mask] = np.array([t[3] for t in table])[d]
            has = rng.random(k) < np.array([t[5] for t in table])[d]
            codes = np.array([self.code(t[4]) if t[4] else -1 for t in table])[d]
            oprn[mask] = np.where(has, codes, -1)
        z = rng.normal(0, 1, m)
        major = ~mat & (rng.random(m) < P.MAJOR_SHARE)
        median = np.where(mat, P.by_level(P.MATERNITY_COST[0], self.nl)[level],
                          P.by_level(P.INPATIENT_COST[0], self.nl)[level])
        sigma = np.where(mat, P.MATERNITY_COST[1], P.INPATIENT_COST[1])
        cost = median * cost_f * np.exp(sigma * z)
        cost = np.where(major, cost * 8 * np.exp(rng.normal(0, 0.5, m)), cost)
        cost = np.where(cats_ip[psn], cost * 2.0, cost)
        cost = np.minimum(cost, P.MAX_VISIT_YUAN)
        los = P.by_level(P.LOS_MEDIAN, self.nl)[level] * stay_f * np.exp(0.6 * (0.6 * z + 0.8 * rng.normal(0, 1, m)))
        los = np.clip(np.round(np.where(major, los * 1.8, los)), 1, 90).astype(np.int64)

        # referral pairs: an admission above the lowest level follows a lower-level stay
        # (mostly from the lowest level; from a middle level otherwise, e.g. 二级 → 三级)
        ref = np.full(m, -1)
        referred = ~mat & (level > 0) & (rng.random(m) < P.REFERRAL_SHARE)
        k, lv = int(referred.sum()), level[referred]
        middle = 1 + np.floor(rng.random(k) * np.maximum(lv - 1, 1)).astype(np.int64)  # 1 .. lv-1
        ref[referred] = np.where((rng.random(k) < 0.7) | (lv == 1), 0, middle)
        src_los = np.where(referred, np.maximum(1, np.round(2 + rng.exponential(2.0, m))), 0).astype(np.int64)
        gap = np.where(referred, rng.integers(0, 3, m), 0)

        # place each person's episodes in consecutive, non-overlapping segments of the window
        order = np.lexsort((rng.random(m), psn))
        rank = np.empty(m, dtype=np.int64)
        rank[order] = _rank_within(psn[order])
        limit = max(1, D // 10)
        keep = rank < limit
        per = np.minimum(np.bincount(psn, minlength=n), limit)[psn]
        seg = D // per
        avail = seg - 1
        src_los = np.where(referred, np.minimum(src_los, avail // 3), 0)
        gap = np.where(referred, np.minimum(gap, (avail - src_los) // 3), 0)
        los = np.minimum(los, avail - src_los - gap)
        span = src_los + gap + los
        start = rank * seg + np.floor(rng.random(m) * (seg - span)).astype(np.int64)

        src_begn = start * DAY + 7 * HOUR + rng.integers(0, 4 * HOUR, m)
        src_end = np.maximum((start + src_los) * DAY + 8 * HOUR + rng.integers(0, 4 * HOUR, m), src_begn + 2 * HOUR)
        main_day = start + src_los + gap
        begn = np.where(referred,
                        np.where(gap == 0, src_end + rng.integers(HOUR, 5 * HOUR, m),
                                 main_day * DAY + 8 * HOUR + rng.integers(0, 10 * HOUR, m)),
                        start * DAY + 7 * HOUR + rng.integers(0, 13 * HOUR, m))
        end = np.maximum((begn // DAY + los) * DAY + 8 * HOUR + rng.integers(0, 8 * HOUR, m), begn + 2 * HOUR)
        inst = insts.choose(rng, level, people.area[psn])
        main = _Visits(psn, kind, level, inst, begn, end, dise, oprn, ref, cost)

        r = np.flatnonzero(referred & keep)
        src_level = ref[r]
        src_cost = (P.by_level(P.INPATIENT_COST[0], self.nl)[src_level] * 0.4 * cost_f[r]
                    * np.exp(rng.normal(0, 0.5, len(r))))
        src = _Visits(psn[r], np.full(len(r), INPATIENT), src_level, insts.choose(rng, src_level, people.area[psn[r]]),
                      src_begn[r], src_end[r], dise[r], np.full(len(r), -1), np.full(len(r), -1), src_cost)
        return _Visits.concat([main.take(np.flatnonzero(keep)), src])

    def _illness_poverty(self, people: _People) -> np.ndarray:
        codes = [i for i, p in enumerate(self.cat_profiles) if "因病致贫" in p.keywords]
        return np.isin(people.cat, codes) if codes else np.zeros(people.n, dtype=bool)

    def _one_place_at_a_time(self, out: _Visits, insts: _Insts, D: int) -> _Visits:
        """A person's outpatient visits on one day at different institutions, drawn independently, may
        overlap or leave no time to get from one to the other (another city an hour later). Each later
        one starts :data:`profiles.SAME_DAY_GAP_MINUTES` after the earlier ended, or, past
        the latest hour, the next day at its drawn time."""
        if len(out) < 2:
            return out
        shift = int(D * DAY).bit_length()  # (person, start): one key, as a year's seconds fit in 25 bits
        order = np.argsort((out.psn << shift) | out.begn, kind="stable")
        psn, day = out.psn[order], out.begn[order] // DAY
        same = np.r_[False, (psn[1:] == psn[:-1]) & (day[1:] == day[:-1])]
        if not same.any():
            return out
        begn, end, inst = out.begn.copy(), out.end.copy(), out.inst
        county = np.asarray(self.areas)[insts.area]
        gaps = np.array(P.SAME_DAY_GAP_MINUTES) * 60

        def follow(i: np.ndarray, j: np.ndarray) -> None:
            """Visits ``j`` after visits ``i`` of the same person-day (pairwise), moved where they must be."""
            a, b = county[inst[i]], county[inst[j]]
            need = end[i] + gaps[np.where(a == b, 0, np.where(a // 100 == b // 100, 1, 2))]
            start = np.where(need % DAY < P.LATEST_OUTPATIENT_HOUR * HOUR, need, begn[j] + DAY)
            move = (inst[i] != inst[j]) & (begn[j] // DAY == begn[i] // DAY) & (begn[j] < need) & (start // DAY < D)
            j, start = j[move], start[move]
            end[j] = start + (end[j] - begn[j])
            begn[j] = start

        ks = np.flatnonzero(same)
        second = ks[~same[ks - 1]]  # the second visit of a person-day follows a first that nothing moves: all at once
        follow(order[second - 1], order[second])
        for k in ks[same[ks - 1]]:  # a third or later visit of the day follows the (moved) one before, in order
            follow(order[k - 1:k], order[k:k + 1])
        return _Visits(out.psn, out.kind, out.level, out.inst, begn, end, out.dise, out.oprn, out.ref, out.cost)

    def _clear_of_stays(self, rng, out: _Visits, stays: _Visits, D: int) -> _Visits:
        """Move outpatient visits that fall inside one of the person's stays to just after it
        (or before it, at the end of the window); drop the few that still collide."""
        if len(stays) == 0 or len(out) == 0:
            return out
        shift = 26  # seconds in a year < 2**25
        skey = (stays.psn << shift) | stays.begn
        order = np.argsort(skey)
        skey, s_end, s_begn, s_psn = skey[order], stays.end[order], stays.begn[order], stays.psn[order]

        def clash(psn, begn, end):
            j = np.searchsorted(skey, (psn << shift) | begn, side="right") - 1
            jj = np.maximum(j, 0)
            inside = (j >= 0) & (s_psn[jj] == psn) & (begn < s_end[jj])
            k = np.minimum(j + 1, len(skey) - 1)
            overlaps_next = (j + 1 < len(skey)) & (s_psn[k] == psn) & (end > s_begn[k])
            return inside | overlaps_next, jj

        bad, j = clash(out.psn, out.begn, out.end)
        if bad.any():
            idx = np.flatnonzero(bad)
            tod = out.begn[idx] % DAY
            dur = out.end[idx] - out.begn[idx]
            day = s_end[j[idx]] // DAY + rng.integers(1, 4, len(idx))
            before = s_begn[j[idx]] // DAY - rng.integers(1, 4, len(idx))
            day = np.where(day < D, day, before)
            out.begn[idx] = day * DAY + tod
            out.end[idx] = out.begn[idx] + dur
            still, _ = clash(out.psn, out.begn, out.end)
            ok = ~still & (out.begn >= 0) & (out.end < D * DAY)
            out = out.take(np.flatnonzero(ok))
        return out

    # --- fee lines ------------------------------------------------------------------------

    def _class_codes(self) -> tuple[list[str], list[int], list[float]]:
        classes = self.pack.classification.classes
        codes = list(classes)

        def find(pred, prefer):
            if prefer in classes and pred(classes[prefer]):
                return codes.index(prefer)
            return next((i for i, c in enumerate(codes) if pred(classes[c])), None)

        a = find(lambda c: c.in_scope and c.preselfpay_ratio == 0, "01")
        b = find(lambda c: c.in_scope and c.preselfpay_ratio > 0, "02")
        c = find(lambda c: not c.in_scope, "03")
        a = a if a is not None else (b if b is not None else 0)
        b = b if b is not None else a
        c = c if c is not None else a
        return codes, [a, b, c], [float(classes[x].preselfpay_ratio) for x in codes]

    def items(self, rng: np.random.Generator, v: _Visits, visit_offset: int = 0,
              item_offset: int = 0) -> tuple[pa.Table, np.ndarray]:
        nv = len(v)
        lo = np.array([P.LINES[k][0] for k in KIND_NAMES])
        hi = np.array([P.LINES[k][1] for k in KIND_NAMES])
        n_lines = lo[v.kind] + np.floor(rng.random(nv) * (hi[v.kind] - lo[v.kind] + 1)).astype(np.int64)
        total = int(n_lines.sum())
        vis = np.repeat(np.arange(nv), n_lines)
        starts = np.r_[0, np.cumsum(n_lines)[:-1]]
        w = rng.gamma(0.8, 1.0, total) + 1e-3
        wsum = np.add.reduceat(w, starts) if nv else np.zeros(0)
        target = np.maximum(v.cost[vis] * 100.0 * w / wsum[vis], 50.0)  # fen, at least 0.50 yuan
        kind = v.kind[vis]

        class_codes, abc, pre_ratio = self._class_codes()
        cmix = np.array([P.CLASS_MIX[k] for k in KIND_NAMES])
        kmix = np.array([P.KIND_MIX[k] for k in KIND_NAMES])
        abc_i = _draw3(rng.random(total), cmix, kind)
        kind_i = _draw3(rng.random(total), kmix, kind)
        cls = np.array(abc)[abc_i]

        # synthetic codes: a pool per (drug/service/material, class); the pack's catalog after them
        pool = P.CODES_PER_POOL
        catalog = self.pack.classification.catalog
        taken = {e.med_list_codg for e in catalog}
        pool_codes = []
        for kname in "DSM":
            for ci in range(3):
                for k in range(pool):
                    code = f"YB-{kname}{ci + 1:02d}-{k + 1:04d}"
                    pool_codes.append(code if code not in taken else code + "-S")
        code_i = (kind_i * 3 + abc_i) * pool + rng.integers(0, pool, total)

        # whole counts (boxes, days, sessions), never so many that a unit costs under a yuan
        most = np.maximum(1, np.minimum(30, target // 100)).astype(np.int64)
        drug_cap = np.array([P.DRUG_MAX_UNITS[k] for k in KIND_NAMES])[kind]
        most = np.where(kind_i == 0, np.minimum(most, drug_cap), most)
        cnt = np.minimum(rng.geometric(0.45, total), most).astype(np.int64) * 10_000
        frac = rng.random(total) < P.FRACTIONAL_CNT_SHARE
        cnt[frac] = np.array(P.FRACTIONAL_CNTS)[rng.integers(0, len(P.FRACTIONAL_CNTS), int(frac.sum()))]
        pric = np.maximum(1, np.round(target * 10_000 / cnt)).astype(np.int64)

        # catalog lines (price caps apply), some priced above the cap
        if catalog:
            # each attempt names an entry at random; a capped entry is used only on a line whose
            # amount can hold at least one unit at the cap (no 3,000-yuan implant in a 100-yuan visit)
            entry = rng.integers(0, len(catalog), total)
            cap_of = np.array([int(e.price_cap * 100) if e.price_cap is not None else 0 for e in catalog],
                              dtype=np.int64)
            cap = cap_of[entry]
            use = (rng.random(total) < P.CATALOG_SHARE) & (cap <= target)
            idx = np.flatnonzero(use)
            entry, cap = entry[idx], cap[idx]
            is_capped = cap > 0
            over = rng.random(len(idx)) < P.OVER_CAP_SHARE
            factor = np.where(over, 1.05 + 0.55 * rng.random(len(idx)), 0.5 + 0.5 * rng.random(len(idx)))
            cat_pric = np.maximum(1, np.round(cap * factor)).astype(np.int64)
            is_drug = np.array(["-D" in e.med_list_codg for e in catalog])[entry]
            pack = np.maximum(1, np.round(P.PACK_FEN / np.maximum(cap, 1)))
            most_cat = np.where(is_drug, pack * drug_cap[idx], 99_999)
            cat_cnt = np.clip(np.round(target[idx] / cat_pric), 1, most_cat).astype(np.int64) * 10_000
            pric[idx] = np.where(is_capped, cat_pric, pric[idx])
            cnt[idx] = np.where(is_capped, cat_cnt, cnt[idx])
            entry_cls = np.array([class_codes.index(e.chrgitm_lv) for e in catalog])
            cls[idx] = entry_cls[entry]
            code_i[idx] = len(pool_codes) + entry
        det = (pric * cnt + 5_000) // 10_000
        medfee = np.add.reduceat(det, starts) if nv else np.zeros(0, dtype=np.int64)

        # a few 乙类 lines carry their own 先行自付 ratio
        has_pre = np.array(pre_ratio)[cls] > 0
        own = has_pre & (rng.random(total) < P.LINE_PRESELFPAY_SHARE) & (code_i < len(pool_codes))
        ratio = np.where(own, np.array(P.LINE_PRESELFPAY)[rng.integers(0, len(P.LINE_PRESELFPAY), total)], 0)
        ratio_arr = pa.Array.from_buffers(
            RATIO, total, [pa.py_buffer(np.packbits(own, bitorder="little")),
                           decimal_array(ratio, RATIO).buffers()[1]])

        all_codes = pa.array(pool_codes + [e.med_list_codg for e in catalog], pa.string())
        table = pa.Table.from_arrays([
            fixed_ids("F", np.arange(item_offset + 1, item_offset + total + 1), 12),
            fixed_ids("V", vis + visit_offset + 1, 11),
            all_codes.take(pa.array(code_i)),
            pa.array(class_codes, pa.string()).take(pa.array(cls)),
            decimal_array(pric, YUAN),
            decimal_array(cnt, COUNT),
            decimal_array(det, YUAN),
            ratio_arr,
        ], schema=SCHEMAS["fee_items"])
        return table, medfee

    # --- personal accounts and the visits table -------------------------------------------

    def balances(self, rng: np.random.Generator, people: _People, v: _Visits, medfee: np.ndarray) -> np.ndarray:
        """Usable account balance before each employee visit (fen): the year's opening balance
        plus monthly credits, less an estimate of what earlier visits of the year drew."""
        n = people.n
        opening = np.clip(rng.lognormal(np.log(1200.0), 0.7, n), 100, 8000) * 100
        monthly = np.where(people.retiree, 120 + 80 * rng.random(n), 80 + 220 * rng.random(n)) * 100
        if len(v) == 0:
            return np.zeros(0, dtype=np.int64)
        share = np.where(np.isin(v.kind, (INPATIENT, MATERNITY)), 0.3, 0.5)
        est = medfee * share
        order = np.argsort(v.psn, kind="stable")  # visits are already in settlement order
        cs = np.cumsum(est[order])
        first = np.r_[True, v.psn[order][1:] != v.psn[order][:-1]]
        base = np.maximum.accumulate(np.where(first, cs - est[order], 0.0))
        prior = np.empty(len(v))
        prior[order] = cs - est[order] - base
        month = v.begn // (DAY * 30.44)
        bal = opening[v.psn] + monthly[v.psn] * month - prior
        bal = np.where(people.employee[v.psn], np.maximum(bal, 0), 0)
        return np.round(bal).astype(np.int64)

    def visit_table(self, people: _People, insts: _Insts, v: _Visits, medfee: np.ndarray,
                    balance: np.ndarray, visit_offset: int = 0) -> pa.Table:
        nv = len(v)
        origin = np.datetime64(self.window.start, "s")
        codes = pa.array(self.codes + [""], pa.string())
        levels = pa.array(self.levels, pa.string())

        def times(seconds: np.ndarray) -> pa.Array:
            return pa.array((origin + seconds.astype("timedelta64[s]")).astype("datetime64[ms]"), TIME)

        def nullable(index: np.ndarray, values: pa.Array) -> pa.Array:
            taken = values.take(pa.array(np.maximum(index, 0)))
            if not (index < 0).any():
                return taken
            return pc.if_else(pa.array(index >= 0), taken, pa.scalar(None, pa.string()))

        return pa.Table.from_arrays([
            fixed_ids("V", np.arange(visit_offset + 1, visit_offset + nv + 1), 11),
            people.table.column("psn_no").take(pa.array(v.psn)),
            people.table.column("insutype").take(pa.array(v.psn)),
            _labels(list(MED_TYPES), v.kind),
            insts.table.column("fixmedins_code").take(pa.array(v.inst)),
            levels.take(pa.array(v.level)),
            times(v.begn),
            times(v.end),
            times(v.end),
            codes.take(pa.array(v.dise)),
            nullable(v.oprn, codes),
            nullable(v.ref, levels),
            decimal_array(balance, YUAN),
            decimal_array(medfee, YUAN),
        ], schema=SCHEMAS["visits"])
