"""Supervision inputs and fraud patterns for synthetic regions, with ground-truth labels.

:func:`add_supervision_columns` adds the optional inputs the rules read (physician codes,
fee times, institution types, a purchase table, exam results) to a clean region, drawing from
its own random stream so the original columns stay byte-identical. :func:`inject_fraud` then
adds, for every rule, cases that must be flagged (labelled) and look-alike legitimate cases
(decoys, not labelled), each on new persons so one pattern never fires another rule. The
codes come from the rule parameters, so a region's catalogue drives what is injected; the
evaluation patterns (:data:`PATTERNS`) are built from the region's own data instead. A generator, so
it lives with the synthetic region (``yibao synth --fraud``), not in the supervision engine, which it
only reads (rule parameters, the optional-input schema).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from yibao.claims.schema import SCHEMAS, decimal_array, decimal_units
from yibao.errors import Problem
from yibao.supervision.ruleset import RuleSet, load_ruleset
from yibao.supervision.views import OPTIONAL_COLUMNS, OPTIONAL_TABLES
from yibao.synth import SynthError, generate
from yibao.synth.ids import fixed_ids
from yibao.synth.parquet import ROW_GROUP_ROWS, parquet_options

# pattern: the evaluation pattern a case was built for (None: the rule's own injector)
LABEL_SCHEMA = pa.schema([("rule_id", pa.string()), ("subject", pa.string()), ("pattern", pa.string())])
# codes of the injectors' own (the region's pool codes end in 4 digits): a case billed at a fixed price
# never gives one of the region's codes a made-up standard price
FILLER_DRUGS = [f"YB-D01-X{k:03d}" for k in range(1, 41)]
FILLER_SERVICES = [f"YB-S01-X{k:03d}" for k in range(1, 41)]
EXAM_SHARE = 0.10  # visits with exam results
TEST_CATEGORIES = ("03", "04")  # the generator's notion of a test, kept apart from the rules' parameters


def category(code: str) -> str:
    """医疗收费项目类别 of a synthetic code: 01 床位 02 诊察 03 检查 04 化验 05 治疗 06 手术 07 护理
    08 卫生材料 09 西药. Drugs (…D…), materials (…M…) by their letter; services spread over
    检查 / 化验 / 治疗 by a stable hash of the code; the example bed and nursing codes by name."""
    import zlib

    if "BED" in code:
        return "01"
    if "NUR" in code:
        return "07"
    letter = next((part[0] for part in code.split("-")[1:] if part[:1] in ("D", "S", "M")), "S")
    if letter == "D":
        return "09"
    if letter == "M":
        return "08"
    return ("03", "04", "04", "05")[zlib.crc32(code.encode()) % 4]


def schema_with_optional(name: str) -> pa.Schema:
    schema = SCHEMAS[name]
    for col, typ in OPTIONAL_COLUMNS.get(name, {}).items():
        schema = schema.append(pa.field(col, typ))
    return schema


# --- optional columns on a clean region ---------------------------------------------------------


def add_supervision_columns(tables: dict[str, pa.Table], seed: int) -> dict[str, pa.Table]:
    """Physician per visit, fee time per line, institution type, purchases and exam results.

    Column-wise NumPy over dictionary codes (no Python loop over visits or lines, no SQL join):
    a million fee lines take well under a second, and the draws are those of the first version,
    so the same seed gives the same tables byte for byte."""
    rng = np.random.default_rng([seed, 5])
    insts, visits, items = tables["institutions"], tables["visits"], tables["fee_items"]
    insts = insts.append_column("fixmedins_type", pa.array(["1"] * insts.num_rows, pa.string()))
    # physicians: one per ~400 visits a year at an institution, at least one
    inst_codes = _whole(visits.column("fixmedins_code"))
    inst_enc = inst_codes.dictionary_encode()
    inst_of = inst_enc.indices.to_numpy().astype(np.int64)
    per_inst = np.maximum(1, np.bincount(inst_of, minlength=len(inst_enc.dictionary)) // 400)[inst_of]
    doc = np.floor(rng.random(len(inst_of)) * per_inst).astype(np.int64)
    atddr = pc.binary_join_element_wise(inst_codes, _numbered(doc + 1, 3), "-D")
    visits = visits.append_column("atddr_no", atddr)
    # fee times: uniform inside the visit (outpatient lines at its start); an item billed again in a
    # stay is a repeat order, executed a day later (wrapping round the stay), not at a random moment
    # that may fall an hour after the first, which no ward does and SV-DUP-04 rightly flags
    pos = _line_visit(items.column("mdtrt_id"), visits.column("mdtrt_id"))
    v_begn = visits.column("begntime").cast(pa.int64()).to_numpy()
    v_end = visits.column("endtime").cast(pa.int64()).to_numpy()
    v_stay = pc.is_in(visits.column("med_type"), value_set=pa.array(["21", "52"])).to_numpy(zero_copy_only=False)
    begn, stay = v_begn[pos], v_stay[pos]
    u = rng.random(len(pos))
    when = begn.copy()
    s = np.flatnonzero(stay)  # only a stay's lines move, and only a stay's repeats are re-timed
    sb, se = begn[s], v_end[pos[s]]
    when[s] = sb + np.floor(u[s] * (se - sb)).astype(np.int64)
    code_enc = _whole(items.column("med_list_codg")).dictionary_encode()  # codes in order of first use
    codes = code_enc.dictionary
    code_id = code_enc.indices.to_numpy().astype(np.int64)
    if len(s):
        ws, cs, ps = when[s], code_id[s], pos[s]
        order = np.lexsort((ws, cs, ps))
        first = np.r_[True, (ps[order][1:] != ps[order][:-1]) | (cs[order][1:] != cs[order][:-1])]
        start = np.maximum.accumulate(np.where(first, np.arange(len(order)), 0))
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(len(order)) - start
        head = np.empty(len(order), dtype=np.int64)
        head[order] = ws[order][start]
        day_ms = 86_400_000
        span = np.maximum((se - sb) // day_ms, 1) * day_ms
        when[s] = np.where(rank > 0, sb + (head - sb + rank * day_ms) % span, ws)
    when = when // 1000 * 1000
    items = items.append_column("fee_ocur_time", pa.array(when, pa.int64()).cast(pa.timestamp("ms")))
    cats = pa.array([category(c) for c in codes.to_pylist()], pa.string())
    items = items.append_column("med_chrgitm_type", cats.take(code_enc.indices))
    # purchases: what each institution dispensed of each drug, bought with a margin, sorted by
    # (institution, drug) as text
    drug = pc.starts_with(codes, "YB-D").to_numpy(zero_copy_only=False)[code_id]
    inst_dict = inst_enc.dictionary
    inst_sorted, code_sorted = _text_order(inst_dict), _text_order(codes)
    inst_rank, code_rank = np.argsort(inst_sorted), np.argsort(code_sorted)
    key = inst_rank[inst_of[pos[drug]]] * len(codes) + code_rank[code_id[drug]]
    units = decimal_units(items.column("cnt"))[drug]  # nulls count 0, as SUM skips them
    order = np.argsort(key, kind="stable")
    key = key[order]
    heads = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]) if len(key) else np.zeros(0, dtype=np.int64)
    sums = np.add.reduceat(units[order], heads) if len(key) else np.zeros(0, dtype=np.int64)
    group = key[heads]
    sold_cnt = decimal_array(sums, pa.decimal128(38, 4))  # what SUM over decimal(16,4) gives
    factor = 1.0 + 0.3 * rng.random(len(group))
    bought = np.ceil(sold_cnt.cast(pa.float64()).to_numpy() * factor).astype(np.int64)
    start = v_begn.min() if visits.num_rows else 0
    purchases = pa.table({
        "fixmedins_code": inst_dict.take(pa.array(inst_sorted[group // max(len(codes), 1)])),
        "med_list_codg": codes.take(pa.array(code_sorted[group % max(len(codes), 1)])),
        "cnt": decimal_array(bought * 10_000, pa.decimal128(16, 4)),
        "purc_time": pa.array(np.full(len(group), start), pa.int64()).cast(pa.timestamp("ms")),
    }, schema=OPTIONAL_TABLES["purchases"])
    # exam results: every service line of a sample of visits, with values unique to the patient
    chosen = rng.random(visits.num_rows) < EXAM_SHARE
    service = pc.starts_with(codes, "YB-S").to_numpy(zero_copy_only=False)[code_id]
    take = pa.array(np.flatnonzero(chosen[pos] & service))
    vals = rng.normal(100, 30, len(take)).round(1)
    exams = pa.table({
        "mdtrt_id": items.column("mdtrt_id").take(take),
        "med_list_codg": items.column("med_list_codg").take(take),
        "rslt_val": _one_decimal(vals),
    }, schema=OPTIONAL_TABLES["exam_results"])
    return {**tables, "institutions": insts, "visits": visits, "fee_items": items,
            "purchases": purchases, "exam_results": exams}


def _whole(column) -> pa.Array:
    """One array of a column (its only chunk as it is; several joined)."""
    if not isinstance(column, pa.ChunkedArray):
        return column
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


def _line_visit(line_ids, visit_ids) -> np.ndarray:
    """Row of each fee line's visit. A generated region lists lines visit by visit in the visits'
    order: then the runs of equal ids are the visits and no hashing is needed."""
    ids, vids = _whole(line_ids), _whole(visit_ids)
    n = len(ids)
    if n and len(vids):
        change = pc.not_equal(ids.slice(1), ids.slice(0, n - 1)).to_numpy(zero_copy_only=False)
        starts = np.r_[0, np.flatnonzero(change) + 1]
        if len(starts) == len(vids) and pc.all(pc.equal(ids.take(pa.array(starts)), vids),
                                               skip_nulls=False).as_py():
            return np.repeat(np.arange(len(vids), dtype=np.int64), np.diff(np.r_[starts, n]))
    return pc.index_in(ids, vids).to_numpy().astype(np.int64)


def _numbered(numbers: np.ndarray, width: int) -> pa.Array:
    """``f"{k:0{width}d}"`` of each number, as Arrow strings."""
    if len(numbers) and numbers.min() >= 0 and numbers.max() < 10**width:
        return fixed_ids("", numbers, width)
    return pa.array([f"{int(k):0{width}d}" for k in numbers], pa.string())


def _text_order(values: pa.Array) -> np.ndarray:
    """Indices of ``values`` in text order (code points, as DuckDB's ORDER BY orders VARCHAR)."""
    texts = values.to_pylist()
    return np.array(sorted(range(len(texts)), key=texts.__getitem__), dtype=np.int64)


def _one_decimal(values: np.ndarray) -> pa.Array:
    """``f"{v:.1f}"`` of values already rounded to one decimal, as Arrow strings."""
    tenths = np.rint(np.abs(values) * 10).astype(np.int64)
    sign = pa.array(["", "-"], pa.string()).take(pa.array(np.signbit(values).astype(np.int64)))
    whole = pa.array(tenths // 10).cast(pa.string())
    frac = pa.array(tenths % 10).cast(pa.string())
    return pc.binary_join_element_wise(pc.binary_join_element_wise(sign, whole, ""), frac, ".")


# --- the builder of injected cases ----------------------------------------------------------------


class Builder:
    """New persons, institutions, visits and lines appended to a region, with labels."""

    def __init__(self, tables: dict[str, pa.Table], rng: np.random.Generator, pack=None):
        self.t = tables
        self.rng = rng
        self.pack = pack  # the policy pack the region was generated under (its catalogue caps), if known
        self.pattern: str | None = None  # the evaluation pattern being built, recorded on its labels
        self.rows: dict[str, list[dict]] = {n: [] for n in ("persons", "institutions", "visits", "fee_items",
                                                            "purchases", "exam_results")}
        self.labels: list[dict] = []
        persons = tables["persons"]
        self.n_psn = persons.num_rows
        self.n_visit = tables["visits"].num_rows
        self.n_line = tables["fee_items"].num_rows
        self.n_inst = 0
        visits = tables["visits"]
        begn = visits.column("begntime").cast(pa.int64()).to_numpy()
        self.start = datetime(1970, 1, 1) + timedelta(milliseconds=int(begn.min()))
        self.start = self.start.replace(hour=0, minute=0, second=0, microsecond=0)
        self.days = max(120, int((begn.max() - begn.min()) // 86_400_000))
        # templates: persons by (insutype covering the medical type)
        vt = visits.select(["psn_no", "med_type", "insutype"]).to_pylist()
        self.insutype_for = {}
        for r in vt:
            self.insutype_for.setdefault(r["med_type"], set()).add(r["insutype"])
        self.templates = persons.slice(0, min(persons.num_rows, 2000)).to_pylist()
        self.insts = tables["institutions"].to_pylist()
        self.levels = sorted({i["level"] for i in self.insts})
        self.areas = sorted({i["admdvs"] for i in self.insts})
        stays = visits.filter(pc.equal(visits.column("med_type"), "21"))
        los = (pc.subtract(stays.column("endtime").cast(pa.int64()), stays.column("begntime").cast(pa.int64()))
               .to_numpy() / 86_400_000)
        lv = stays.column("level").to_numpy(zero_copy_only=False)
        self.los = {level: max(2, int(round(float(np.mean(los[lv == level]))))) if (lv == level).any() else 6
                    for level in sorted(set(lv.tolist()) | {i["level"] for i in self.insts})}
        self.classes = pc.unique(tables["fee_items"].column("chrgitm_lv")).drop_null().to_pylist() or ["01"]
        self.filler_pool = self._filler_pool(tables)

    def _filler_pool(self, tables: dict[str, pa.Table]) -> dict[bool, list[tuple]]:
        """Lines of the region's own synthetic codes (no catalogue rule lists them), outpatient and
        inpatient apart: fillers copy them, so injected visits leave each code's price and quantity
        baselines as the region has them (fixed filler codes at made-up prices shifted them)."""
        import duckdb

        con = duckdb.connect()
        con.register("f", tables["fee_items"].select(["mdtrt_id", "med_list_codg", "chrgitm_lv", "pric", "cnt"]))
        con.register("v", tables["visits"].select(["mdtrt_id", "med_type"]))
        out = {}
        for stay, types in ((False, "('11')"), (True, "('21')")):
            rows = con.sql(f"SELECT f.med_list_codg, f.chrgitm_lv, f.pric, f.cnt FROM f JOIN v USING (mdtrt_id) "
                           f"WHERE v.med_type IN {types} AND f.med_list_codg LIKE 'YB-%' AND f.pric > 0 "
                           f"ORDER BY f.mdtrt_id, f.med_list_codg, f.pric, f.cnt LIMIT 50000").fetchall()
            out[stay] = [(c, lv, int((pr * 100).to_integral_value()), cnt) for c, lv, pr, cnt in rows]
        return out

    # -- entities
    def day(self, margin: int = 40) -> datetime:
        d = int(self.rng.integers(margin, max(margin + 1, self.days - margin)))
        return self.start + timedelta(days=d)

    def person(self, gend: str | None = None, age: int | None = None, med_type: str = "11") -> str:
        ok = self.insutype_for.get(med_type, {"390"})
        pool = [p for p in self.templates if p["insutype"] in ok]
        tpl = dict(pool[int(self.rng.integers(0, len(pool)))])
        self.n_psn += 1
        tpl["psn_no"] = f"P{9 * 10**8 + self.n_psn:09d}"
        tpl["hh_no"] = f"H{9 * 10**8 + self.n_psn:09d}"
        if gend is not None:
            tpl["gend"] = gend
        if age is not None:
            tpl["age"] = age
            tpl["retiree"] = tpl["retiree"] and age >= 50
        self.rows["persons"].append(tpl)
        return tpl["psn_no"]

    def inst(self, level: str | None = None, area: str | None = None, not_area: str | None = None,
             exclude: tuple[str, ...] = ()) -> dict:
        pool = [i for i in self.insts if i.get("fixmedins_type", "1") == "1" and (level is None or i["level"] == level)
                and (area is None or i["admdvs"] == area) and (not_area is None or i["admdvs"] != not_area)
                and i["fixmedins_code"] not in exclude]
        return pool[int(self.rng.integers(0, len(pool)))] if pool else None

    def new_inst(self, level: str, kind: str = "1") -> dict:
        self.n_inst += 1
        area = self.areas[int(self.rng.integers(0, len(self.areas)))]
        row = {"fixmedins_code": f"{'Y' if kind == '2' else 'X'}{area}{self.n_inst:05d}",
               "fixmedins_name": ("示例大药房" if kind == "2" else "示例注入医院") + f"{self.n_inst}",
               "level": level, "admdvs": area, "fixmedins_type": kind}
        self.rows["institutions"].append(row)
        return row

    def visit(self, psn: str, inst: dict, med_type: str, begn: datetime, end: datetime, dise: str,
              oprn: str | None = None, atddr: str | None = None, referral: str | None = None) -> str:
        self.n_visit += 1
        vid = f"V9{self.n_visit:010d}"
        insutype = next(p["insutype"] for p in reversed(self.rows["persons"]) if p["psn_no"] == psn)
        self.rows["visits"].append({
            "mdtrt_id": vid, "psn_no": psn, "insutype": insutype, "med_type": med_type,
            "fixmedins_code": inst["fixmedins_code"], "level": inst["level"], "begntime": begn, "endtime": end,
            "setl_time": end, "dise_codg": dise, "oprn_oprt_code": oprn, "referral_from_level": referral,
            "acct_balance": Decimal("0.00"), "medfee_sumamt": Decimal(0),
            "atddr_no": atddr or f"{inst['fixmedins_code']}-D001"})
        return vid

    def line(self, vid: str, code: str, pric_fen: int, cnt: int | Decimal = 1, when: datetime | None = None,
             lv: str | None = None) -> str:
        self.n_line += 1
        sn = f"F9{self.n_line:012d}"
        v = self.rows["visits"][-1] if self.rows["visits"][-1]["mdtrt_id"] == vid else \
            next(x for x in self.rows["visits"] if x["mdtrt_id"] == vid)
        cnt = Decimal(cnt)
        det = (Decimal(pric_fen) * cnt).quantize(Decimal(1), rounding="ROUND_HALF_UP")
        self.rows["fee_items"].append({
            "feedetl_sn": sn, "mdtrt_id": vid, "med_list_codg": code, "chrgitm_lv": lv or self.classes[0],
            "pric": Decimal(pric_fen) / 100, "cnt": cnt, "det_item_fee_sumamt": det / 100, "preselfpay_ratio": None,
            "fee_ocur_time": when or v["begntime"], "med_chrgitm_type": category(code)})
        v["medfee_sumamt"] += det / 100
        return sn

    def fillers(self, vid: str, n: int, days: int = 0, begn: datetime | None = None) -> None:
        """n ordinary lines: copies of the region's own lines (distinct codes), an admission's spread
        over its days."""
        pool = self.filler_pool.get(begn is not None) or []
        used: set[str] = set()
        for k in range(n):
            when = None if begn is None else begn + timedelta(days=(k % max(days, 1)), hours=1)
            if len(pool) > 4 * n:
                code, lv, pric, cnt = pool[int(self.rng.integers(0, len(pool)))]
                while code in used:
                    code, lv, pric, cnt = pool[int(self.rng.integers(0, len(pool)))]
                used.add(code)
                self.line(vid, code, pric, cnt, when, lv)
            else:  # a region too small to copy from
                code = (FILLER_DRUGS if k % 2 == 0 else FILLER_SERVICES)[int(self.rng.integers(0, 40))]
                self.line(vid, code, int(self.rng.integers(1500, 9000)), 1, when)

    def outpatient(self, psn: str, inst: dict, when: datetime, dise: str = "J06.900", minutes: int = 30,
                   fillers: int = 2, atddr: str | None = None) -> str:
        vid = self.visit(psn, inst, "11", when, when + timedelta(minutes=minutes), dise, atddr=atddr)
        self.fillers(vid, fillers)
        return vid

    def admission(self, psn: str, inst: dict, begn: datetime, days: int = 5, dise: str = "J18.900",
                  oprn: str | None = None, fillers: int = 8, med_type: str = "21", referral: str | None = None) -> str:
        vid = self.visit(psn, inst, med_type, begn, begn + timedelta(days=days, hours=2), dise, oprn, referral=referral)
        self.fillers(vid, fillers, days, begn)
        return vid

    def label(self, rule_id: str, subject: str) -> None:
        self.labels.append({"rule_id": rule_id, "subject": subject, "pattern": self.pattern})

    def tables(self) -> tuple[dict[str, pa.Table], pa.Table]:
        # injected ordinary drug lines are stocked like the rest (only STOCK cases run short)
        inst_of = {v["mdtrt_id"]: v["fixmedins_code"] for v in self.rows["visits"]}
        stocked: dict[tuple[str, str], Decimal] = {}
        for f in self.rows["fee_items"]:
            if f["med_list_codg"].startswith("YB-D"):
                key = (inst_of[f["mdtrt_id"]], f["med_list_codg"])
                stocked[key] = stocked.get(key, Decimal(0)) + f["cnt"]
        for (inst, code), cnt in sorted(stocked.items()):
            self.rows["purchases"].append({"fixmedins_code": inst, "med_list_codg": code, "cnt": cnt,
                                           "purc_time": self.start})
        out = dict(self.t)
        for name, rows in self.rows.items():
            if not rows:
                continue
            schema = OPTIONAL_TABLES[name] if name in OPTIONAL_TABLES else schema_with_optional(name)
            if name == "visits":
                for r in rows:
                    r["medfee_sumamt"] = Decimal(r["medfee_sumamt"]).quantize(Decimal("0.01"))
            add = pa.Table.from_pylist(rows, schema=schema)
            base = out[name]
            meta = {**(schema.metadata or {}), **(base.schema.metadata or {})}  # keeps the synth tag (its pack)
            out[name] = pa.concat_tables([base.select(schema.names).cast(schema), add]).replace_schema_metadata(meta)
        return out, pa.Table.from_pylist(self.labels, schema=LABEL_SCHEMA)


# --- one injector per rule: positives (labelled) and decoys --------------------------------------


def _params(ruleset: RuleSet, rid: str):
    return ruleset.by_id()[rid].params


def _simple_item(b: Builder, rid: str, bad: bool, code: str, *, gend=None, age=None, level=None,
                 med_type="11", dise="J06.900", oprn=None, pric=3000, cnt=1) -> None:
    psn = b.person(gend, age, med_type)
    inst = b.inst(level) or b.inst()
    when = b.day()
    vid = (b.outpatient(psn, inst, when, dise) if med_type == "11"
           else b.admission(psn, inst, when, dise=dise, oprn=oprn, med_type=med_type))
    b.line(vid, code, pric, cnt)
    if bad:
        b.label(rid, vid)


def _inject_gender(b, p, bad):
    it = p.items[int(b.rng.integers(0, len(p.items)))]
    other = "2" if it.gend == "1" else "1"
    _simple_item(b, "SV-GEND-01", bad, it.code, gend=other if bad else it.gend, age=40)


def _inject_child(b, p, bad):
    it = next(i for i in p.items if i.max_age is not None)
    _simple_item(b, "SV-AGE-01", bad, it.code, age=it.max_age + 20 if bad else 0)


def _inject_min_age(b, p, bad):
    it = next(i for i in p.items if i.min_age is not None)
    _simple_item(b, "SV-AGE-02", bad, it.code, age=max(0, it.min_age - 10) if bad else it.min_age + 20)


def _inject_level(b, p, bad):
    it = p.items[int(b.rng.integers(0, len(p.items)))]
    wrong = [lv for lv in b.levels if lv not in it.levels]
    if bad and not wrong:
        return
    level = wrong[0] if bad else it.levels[-1]
    if b.inst(level) is None:
        return
    _simple_item(b, "SV-LVL-01", bad, it.code, level=level)


def _inject_inpatient_only(b, p, bad):
    _simple_item(b, "SV-MODE-01", bad, p.items[0].code, med_type="11" if bad else "21")


def _inject_outpatient_only(b, p, bad):
    _simple_item(b, "SV-MODE-02", bad, p.items[0].code, med_type="21" if bad else "11", pric=1000)


def _inject_indication(b, p, bad):
    it = p.items[int(b.rng.integers(0, len(p.items)))]
    _simple_item(b, "SV-IND-01", bad, it.code, dise="J06.900" if bad else it.prefixes[0] + ".900")


def _inject_consumable(b, p, bad):
    it = p.items[0]
    _simple_item(b, "SV-SWAP-01", bad, it.code, med_type="21", oprn=None if bad else it.procedures[0] + "701",
                 pric=80000)


def _inject_duplicate(b, p, bad):
    psn = b.person()
    when = b.day()
    vid = b.outpatient(psn, b.inst(), when)
    b.line(vid, FILLER_SERVICES[0], 2500, 1, when)
    sn = b.line(vid, FILLER_SERVICES[0], 2500, 1, when if bad else when + timedelta(minutes=20))
    if bad:
        b.label("SV-DUP-01", vid)
    del sn


def _inject_window(b, p, bad):
    it = p.items[0]
    psn = b.person()
    inst = b.inst()
    when = b.day()
    v1 = b.outpatient(psn, inst, when)
    b.line(v1, it.code, 15000)
    gap = max(1, it.days - 4) if bad else it.days + 10
    v2 = b.outpatient(psn, inst, when + timedelta(days=gap))
    b.line(v2, it.code, 15000)
    if bad:
        b.label("SV-DUP-02", v2)


def _inject_included(b, p, bad):
    pair = p.pairs[0]
    psn = b.person(med_type="21")
    vid = b.admission(psn, b.inst(), b.day(), oprn="47.0101")
    b.line(vid, pair.main, 120000)
    if bad:
        b.line(vid, pair.included, 20000)
        b.label("SV-DUP-03", vid)
    else:
        b.line(vid, FILLER_SERVICES[1], 20000)


def _inject_split(b, p, bad):
    pk = p.packages[0]
    psn = b.person()
    vid = b.outpatient(psn, b.inst(), b.day())
    k = pk.min_components if bad else pk.min_components - 1
    for code in pk.components[:k]:
        b.line(vid, code, 2000)
    if bad:
        b.label("SV-SPLIT-01", vid)


def _inject_price(b, p, bad):
    it = p.items[0]
    cap = int(it.cap * 100)
    _simple_item(b, "SV-PRICE-01", bad, it.code, pric=cap + max(1, cap // 2) if bad else cap, cnt=2)


def _inject_limit(rid):
    def inject(b, p, bad):
        it = p.items[0]
        lim = int(it.limit)
        med = "21" if p.med_types and "11" not in p.med_types else "11"
        _simple_item(b, rid, bad, it.code, med_type=med, cnt=lim + 2 if bad else lim, pric=2000)
    return inject


def _inject_bed(b, p, bad):
    psn = b.person(med_type="21")
    days = 5
    vid = b.admission(psn, b.inst(), b.day(), days=days)
    b.line(vid, p.items[0].code, 3000, days + 3 if bad else days)
    if bad:
        b.label("SV-QTY-01", vid)


def _inject_overlap(b, p, bad):
    d = p.drugs[0]
    psn = b.person(age=65)
    inst = b.inst()
    when = b.day()
    units = max(1, int(28 / d.days_per_unit))
    supply = int(units * d.days_per_unit)
    v1 = b.outpatient(psn, inst, when, "I10.x00")
    b.line(v1, d.code, 2500, units)
    gap = supply - p.tolerance_days - 8 if bad else supply + 2
    v2 = b.outpatient(psn, inst, when + timedelta(days=max(1, gap)), "I10.x00")
    b.line(v2, d.code, 2500, units)
    if bad:
        b.label("SV-DRUG-01", v2)


def _inject_single(b, p, bad):
    d = p.drugs[0]
    units = int(p.max_days / d.days_per_unit) + 3
    dise = "J06.900" if bad else (p.long_rx_prefixes[0] + ".900" if p.long_rx_prefixes else "J06.900")
    if not bad and not p.long_rx_prefixes:
        units = int(p.max_days / d.days_per_unit)
    _simple_item(b, "SV-DRUG-02", bad, d.code, dise=dise, cnt=units, pric=2500)


def _inject_readmission(b, p, bad):
    psn = b.person(med_type="21")
    inst = b.inst()
    when = b.day()
    b.admission(psn, inst, when, days=5, dise="J18.900")
    gap = max(1, p.days - 5) if bad else p.days + 20
    v2 = b.admission(psn, inst, when + timedelta(days=5 + gap), days=5, dise="J18.900" if bad else "K29.700")
    if bad:
        b.label("SV-ADM-01", v2)


def _inject_idle(b, p, bad):
    psn = b.person(med_type="21")
    days = 10
    begn = b.day()
    vid = b.visit(psn, b.inst(), "21", begn, begn + timedelta(days=days, hours=3), "J18.900")
    treat_days = 1 if bad else days
    for k in range(max(8, treat_days)):
        b.line(vid, FILLER_SERVICES[k % 40], 9000, 1, begn + timedelta(days=k % treat_days, hours=2))
    for k in range(days):
        b.line(vid, p.idle_codes[0], 3000, 1, begn + timedelta(days=k, hours=1))
    if bad:
        b.label("SV-ADM-02", vid)


def _inject_low(b, p, bad):
    psn = b.person(med_type="21")
    begn = b.day()
    vid = b.visit(psn, b.inst(), "21", begn, begn + timedelta(days=1), "J06.900" if bad else "K35.800",
                  None if bad else "47.0101")
    for k in range(3):
        b.line(vid, FILLER_DRUGS[k], 8000, 1)
    if bad:
        b.label("SV-ADM-03", vid)


def _inject_impossible(b, p, bad):
    prefix = p.female_only_prefixes[-1]
    psn = b.person("1" if bad else "2", 45)
    vid = b.outpatient(psn, b.inst(), b.day(), prefix + ".000" if "." not in prefix else prefix)
    if bad:
        b.label("SV-ID-01", vid)


def _inject_overlap_visits(b, p, bad):
    psn = b.person()
    a = b.inst()
    other = b.inst(area=a["admdvs"], exclude=(a["fixmedins_code"],))
    if other is None:
        return
    when = b.day().replace(hour=9)
    b.outpatient(psn, a, when, minutes=40)
    v2 = b.outpatient(psn, other, when + timedelta(minutes=20 if bad else 120))
    if bad:
        b.label("SV-ID-02", v2)


def _inject_stay_clash(b, p, bad):
    psn = b.person(med_type="21")
    begn = b.day()
    b.admission(psn, b.inst(), begn, days=6)
    v2 = b.outpatient(psn, b.inst(), begn + timedelta(days=3 if bad else 10, hours=3))
    if bad:
        b.label("SV-ID-03", v2)


def _inject_multi_area(b, p, bad):
    """Positive: the second visit, in another district, starts 5–25 minutes after the first ended
    (no time to get there). Decoy: another city 3½–5 hours later (time enough)."""
    psn = b.person()
    a = b.inst()
    other = (b.inst(not_area=a["admdvs"]) if bad else
             next((i for i in b.rng.permutation(b.insts) if i["admdvs"][:4] != a["admdvs"][:4]
                   and i.get("fixmedins_type", "1") == "1"), None))
    if other is None:
        return
    when = b.day().replace(hour=8)
    b.outpatient(psn, a, when)
    gap = timedelta(minutes=30 + int(b.rng.integers(5, 26))) if bad else timedelta(minutes=30 + int(b.rng.integers(210, 301)))
    v2 = b.outpatient(psn, other, when + gap)
    if bad:
        b.label("SV-ID-04", v2)


def _inject_frequent(b, p, bad):
    psn = b.person()
    inst = b.inst()
    when = b.day()
    n = p.max_visits + 3 if bad else p.max_visits
    step = max(1, (p.days - 5) // n)
    for k in range(n):
        vid = b.outpatient(psn, inst, when + timedelta(days=k * step))
        if bad and k >= p.max_visits:
            b.label("SV-VISIT-01", vid)


def _inject_physician(b, p, bad):
    inst = b.inst()
    b.n_doc = getattr(b, "n_doc", 0) + 1  # a code of its own: two cases never share a physician
    doc = f"{inst['fixmedins_code']}-D9{b.n_doc:03d}"
    n = p.max_per_day + 5 if bad else max(1, p.max_per_day - 10)
    when = b.day().replace(hour=7)
    for k in range(n):
        b.outpatient(b.person(), inst, when + timedelta(minutes=5 * k), minutes=4, fillers=1, atddr=doc)
    if bad:
        b.label("SV-DOC-01", doc)


def _inject_same_results(b, p, bad):
    inst = b.inst()
    codes = FILLER_SERVICES[5:5 + max(3, p.min_results)]
    same = [f"{v:.1f}" for v in b.rng.normal(100, 30, len(codes))]
    for _ in range(p.min_patients + 1):
        vid = b.outpatient(b.person(), inst, b.day(), fillers=0)
        vals = same if bad else [f"{v:.1f}" for v in b.rng.normal(100, 30, len(codes))]
        for code, val in zip(codes, vals):
            b.line(vid, code, 3000)
            b.rows["exam_results"].append({"mdtrt_id": vid, "med_list_codg": code, "rslt_val": val})
        if bad:
            b.label("SV-LAB-01", vid)


def _inject_stock(b, p, bad):
    inst = b.new_inst(b.levels[0])
    code = f"SV-D-STK{len(b.rows['institutions']):03d}"
    sold = 0
    for _ in range(3):
        vid = b.outpatient(b.person(), inst, b.day())
        b.line(vid, code, 2000, 10)
        sold += 10
    bought = int(sold * (0.5 if bad else 1.2))
    b.rows["purchases"].append({"fixmedins_code": inst["fixmedins_code"], "med_list_codg": code,
                                "cnt": Decimal(bought), "purc_time": b.start})
    if bad:
        b.label("SV-STOCK-01", inst["fixmedins_code"])


def _inject_non_medical(b, p, bad):
    inst = b.new_inst(b.levels[0], "2")
    vid = b.outpatient(b.person(), inst, b.day(), fillers=1)
    code = (p.codes[0] if p.codes else p.prefixes[0] + "RICE") if bad else FILLER_DRUGS[3]
    b.line(vid, code, 5990, 2)
    if bad:
        b.label("SV-PHAR-01", vid)


def _peer_group(b, level: str, make, bad_index: int | None, rid: str, size: int) -> None:
    """Three new institutions of one level; the ``bad_index`` one behaves abnormally."""
    for k in range(3):
        inst = b.new_inst(level)
        make(inst, k == bad_index, size)
        if k == bad_index:
            b.label(rid, inst["fixmedins_code"])


def _inject_peer_cost(b, p, bad):
    def make(inst, abnormal, size):
        for _ in range(size):
            vid = b.outpatient(b.person(), inst, b.day(), fillers=2)
            if abnormal:
                b.line(vid, FILLER_SERVICES[9], int(b.rng.integers(150000, 250000)))
    _peer_group(b, b.levels[0], make, 0 if bad else None, "SV-PROV-01", p.min_visits + 5)
    if bad:  # the abnormal institution's one physician is, rightly, an outlier among physicians too
        b.label("SV-DOC-02", b.rows["institutions"][-3]["fixmedins_code"] + "-D001")


def _inject_peer_stay(b, p, bad):
    def make(inst, abnormal, size):
        for _ in range(size):
            normal = b.los[inst["level"]]
            b.admission(b.person(med_type="21"), inst, b.day(), days=normal * 3 if abnormal else normal)
    _peer_group(b, b.levels[-1], make, 0 if bad else None, "SV-PROV-02", p.min_admissions + 2)


def _inject_peer_readmission(b, p, bad):
    def make(inst, abnormal, size):
        k = 0
        while k < size:
            psn = b.person(med_type="21")
            when = b.day()
            b.admission(psn, inst, when, days=b.los[inst["level"]], dise="J18.900")
            k += 1
            if abnormal and k % 3 == 0:
                gap = b.los[inst["level"]] + max(1, p.days - 6)
                b.admission(psn, inst, when + timedelta(days=gap), days=b.los[inst["level"]], dise="I50.900")
                k += 1
    _peer_group(b, b.levels[-1], make, 0 if bad else None, "SV-PROV-03", p.min_admissions + 4)


# --- the issue-20 patterns: built from the region's own data (codes, institutions, times vary), not
# from the rule parameters: what an inspector would plant, not what a rule was tuned on.


class RegionFacts:
    """Codes of the region and their usual values, worked out once per injection."""

    def __init__(self, b: Builder):
        import duckdb

        con = duckdb.connect()
        con.register("f", b.t["fee_items"].select(["mdtrt_id", "med_list_codg", "pric", "cnt"]))
        con.register("v", b.t["visits"].select(["mdtrt_id", "level", "med_type", "dise_codg"]))
        stats = con.sql("SELECT f.med_list_codg, v.level, COUNT(*) AS n, MODE(f.pric) AS usual, "
                        "AVG(CASE WHEN f.pric = (SELECT MODE(g.pric) FROM f g JOIN v w USING (mdtrt_id) WHERE "
                        "g.med_list_codg = f.med_list_codg AND w.level = v.level AND w.med_type = '11') THEN 1.0 ELSE 0.0 END) "
                        "AS share, CASE WHEN QUANTILE_DISC(f.cnt, 0.4) = QUANTILE_DISC(f.cnt, 0.6) THEN QUANTILE_DISC(f.cnt, 0.5) END AS c, "
                        "QUANTILE_DISC(f.pric, 0.5) AS p50 FROM f JOIN v USING (mdtrt_id) "
                        "WHERE v.med_type = '11' GROUP BY ALL HAVING COUNT(*) >= 30 ORDER BY ALL").fetchall()
        # an ordinary code: billed at least 30 times in outpatient visits at the level. Its usual price:
        # the price most of its lines carry (a standard price); its usual quantity: the median, where the 40th and 60th percentiles agree (a count most lines share).
        self.priced = [(code, lv, float(usual)) for code, lv, n, usual, share, c, p50 in stats if usual > 0 and share >= 0.5]
        # drugs with their usual quantity and their median unit price: over-dispensing bills more packs at
        # the pack's price, so the amount grows with the count
        self.dosed = [(code, lv, float(c), int(round(p50 * 100))) for code, lv, n, usual, share, c, p50 in stats
                      if category(code) == "09" and c is not None and c > 0 and p50 > 0]
        codes = sorted(set(b.t["fee_items"].column("med_list_codg").to_pylist()))
        self.services = [c for c in codes if category(c) in ("03", "04", "05")]
        self.tests = [c for c in codes if category(c) in TEST_CATEGORIES]
        self.dx = sorted({d for (d,) in con.sql("SELECT dise_codg FROM v WHERE med_type = '11' AND dise_codg IS NOT NULL").fetchall()})
        self.dx14 = sorted({d for (d,) in con.sql("SELECT dise_codg FROM v WHERE med_type = '14' AND dise_codg IS NOT NULL").fetchall()})


def _facts(b: Builder) -> RegionFacts:
    if not hasattr(b, "facts"):
        b.facts = RegionFacts(b)
    return b.facts


def _pick(b: Builder, seq):
    return seq[int(b.rng.integers(0, len(seq)))]


def _pattern_dates(b, p, bad):
    """A line dated 3–15 days before the visit began or after it ended (decoy: inside the visit)."""
    f = _facts(b)
    inpatient = b.rng.random() < 0.5
    psn = b.person(med_type="21" if inpatient else "11")
    inst = b.inst()
    begn = b.day().replace(hour=int(b.rng.integers(7, 17)), minute=int(b.rng.integers(0, 60)))
    days = int(b.rng.integers(3, 9))
    vid = b.admission(psn, inst, begn, days=days) if inpatient else b.outpatient(psn, inst, begn)
    end = begn + timedelta(days=days, hours=2) if inpatient else begn + timedelta(minutes=30)
    off = int(b.rng.integers(3, 16))
    when = (begn - timedelta(days=off) if b.rng.random() < 0.5 else end + timedelta(days=off)) if bad else \
        begn + (end - begn) * float(b.rng.random())
    b.line(vid, _pick(b, f.services), int(b.rng.integers(800, 20000)), 1, when.replace(microsecond=0))
    if bad:
        b.label("SV-DATE-01", vid)


def _pattern_rebill(b, p, bad):
    """An inpatient item billed, then again 1–3 hours later the same day (decoy: the next day)."""
    f = _facts(b)
    psn = b.person(med_type="21")
    begn = b.day().replace(hour=9, minute=0)
    days = int(b.rng.integers(3, 9))
    vid = b.admission(psn, b.inst(), begn, days=days, fillers=6)
    code = _pick(b, f.services)
    first = (begn + timedelta(days=int(b.rng.integers(1, days)))).replace(hour=int(b.rng.integers(7, 13)),
                                                                        minute=int(b.rng.integers(0, 60)))
    price = int(b.rng.integers(1000, 30000))
    b.line(vid, code, price, 1, first)
    later = first + (timedelta(minutes=int(b.rng.integers(60, 181))) if bad else timedelta(days=1))
    b.line(vid, code, price, 1, later)
    if bad:
        b.label("SV-DUP-04", vid)


def _pattern_cross_split(b, p, bad):
    """Discharged, then admitted 1–4 days later with the same diagnosis at another hospital of the
    same city (decoy: a same-day transfer, or a month later)."""
    psn = b.person(med_type="21")
    a = b.inst()
    same_city = [i for i in b.insts if i["admdvs"][:4] == a["admdvs"][:4] and i["fixmedins_code"] != a["fixmedins_code"]
                 and i.get("fixmedins_type", "1") == "1"]
    if not same_city:
        return
    other = _pick(b, same_city)
    dx = _pick(b, ["J18.900", "I63.900", "K80.101", "N39.000", "I50.900", "E11.900"])
    begn = b.day().replace(hour=int(b.rng.integers(8, 18)))
    days = int(b.rng.integers(3, 9))
    b.admission(psn, a, begn, days=days, dise=dx)
    gap = int(b.rng.integers(1, 5)) if bad else (0 if b.rng.random() < 0.5 else int(b.rng.integers(25, 40)))
    v2 = b.admission(psn, other, begn + timedelta(days=days + gap, hours=1), days=int(b.rng.integers(3, 9)), dise=dx)
    if bad:
        b.label("SV-ADM-04", v2)


def _standard_prices(b: Builder) -> list[tuple[str, str, float]]:
    """Ordinary codes with a standard price. Real catalogues price every service; the synthetic
    generator draws each line's price at random, so when the region has none, a few service codes
    with a standard price are billed once, 30 ordinary outpatient visits each, as a real region would."""
    f = _facts(b)
    if f.priced:
        return f.priced
    if not getattr(b, "price_list", None):
        level = b.levels[0]
        b.price_list = []
        for k in range(3):
            code, price = f"YB-S09-{k + 1:04d}", int(b.rng.integers(1000, 30000))
            for _ in range(30):
                vid = b.outpatient(b.person(), b.inst(level) or b.inst(), b.day().replace(hour=int(b.rng.integers(8, 17))))
                b.line(vid, code, price, 1)
            b.price_list.append((code, level, price / 100))
    return b.price_list


def _pattern_price(b, p, bad):
    """An ordinary code billed at 6× its usual price at that level (decoy: at the usual price)."""
    code, level, usual = _pick(b, _standard_prices(b))
    psn = b.person()
    inst = b.inst(level) or b.inst()
    vid = b.outpatient(psn, inst, b.day().replace(hour=int(b.rng.integers(8, 17))))
    b.line(vid, code, max(1, int(round(usual * 100 * (6 if bad else 1)))), 1)
    if bad:
        b.label("SV-PRICE-02", vid)


def _pattern_quantity(b, p, bad):
    """An ordinary drug dispensed at 10× its usual quantity at its usual unit price (decoy: the usual
    quantity)."""
    f = _facts(b)
    if not f.dosed:
        return
    code, level, usual, price = _pick(b, f.dosed)
    psn = b.person()
    inst = b.inst(level) or b.inst()
    vid = b.outpatient(psn, inst, b.day().replace(hour=int(b.rng.integers(8, 17))))
    cnt = Decimal(str(round(usual * (10 if bad else 1), 4)))
    b.line(vid, code, price, cnt)
    if bad:
        b.label("SV-QTY-03", vid)


def _pattern_tests(b, p, bad):
    """15–20 distinct tests in one outpatient visit (decoy: 2–4)."""
    f = _facts(b)
    if len(f.tests) < 20:
        return
    psn = b.person()
    inst = b.inst()
    when = b.day().replace(hour=int(b.rng.integers(8, 17)))
    vid = b.outpatient(psn, inst, when, dise=_pick(b, f.dx) if f.dx else "J06.900")
    _tests_on(b, f, vid, bad)


def _tests_on(b, f, vid, bad):
    """15–20 distinct tests on the visit (labelled SV-TEST-01), or 2–4 for a decoy."""
    n = int(b.rng.integers(15, 21)) if bad else int(b.rng.integers(2, 5))
    for code in b.rng.choice(f.tests, n, replace=False):
        b.line(vid, str(code), int(b.rng.integers(1000, 15000)), 1)
    if bad:
        b.label("SV-TEST-01", vid)


def _inject_peer_physician(b, p, bad):
    """A physician at an existing institution whose visits each carry a 1,500–2,500 yuan service
    (decoy: a physician with ordinary visits)."""
    inst = b.inst()
    doc = f"{inst['fixmedins_code']}-D8{len(b.labels) % 100:02d}{int(b.rng.integers(0, 10))}"
    for _ in range(p.min_visits + 5):
        vid = b.outpatient(b.person(), inst, b.day().replace(hour=int(b.rng.integers(8, 17))), atddr=doc)
        if bad:
            b.line(vid, FILLER_SERVICES[11], int(b.rng.integers(150000, 250000)))
    if bad:
        b.label("SV-DOC-02", doc)


def _inject_cap_multiple(b, p, bad):
    """A listed capped item at 3× its cap (decoy: 1.3× the cap, an ordinary 超限价自费 line)."""
    it = p.items[int(b.rng.integers(0, len(p.items)))]
    cap = int(it.cap * 100)
    _simple_item(b, "SV-PRICE-03", bad, it.code, pric=cap * 3 if bad else cap * 13 // 10, cnt=2)


# --- patterns the library was not tuned on: other institutions, times, codes and the pack's own caps


def _pattern_cap4(b, p, bad):
    """A catalogue item of the policy pack billed at 4× the pack's own 最高支付限价, in or out of hospital,
    at any institution (decoy: 5–55% above the cap, which settlement treats as 超限价自费)."""
    caps = [e for e in (b.pack.classification.catalog if b.pack is not None else []) if e.price_cap]
    if not caps:
        return
    e = _pick(b, caps)
    cap = int(e.price_cap * 100)
    inpatient = b.rng.random() < 0.5
    psn = b.person(med_type="21" if inpatient else "11")
    inst = b.inst()
    when = b.day().replace(hour=int(b.rng.integers(7, 18)))
    vid = b.admission(psn, inst, when, days=int(b.rng.integers(3, 9))) if inpatient else b.outpatient(psn, inst, when)
    price = cap * 4 if bad else int(cap * (1.05 + 0.5 * float(b.rng.random())))
    b.line(vid, e.med_list_codg, max(1, price), int(b.rng.integers(1, 4)), when + timedelta(hours=1))
    if bad:
        b.label("SV-PRICE-03", vid)


def _pattern_rebill_priced(b, p, bad):
    """An inpatient item re-billed 30–170 minutes later at a slightly different price, any day of the stay
    (decoy: 200–300 minutes later)."""
    f = _facts(b)
    psn = b.person(med_type="21")
    begn = b.day().replace(hour=int(b.rng.integers(7, 12)), minute=int(b.rng.integers(0, 60)))
    days = int(b.rng.integers(3, 12))
    vid = b.admission(psn, b.inst(), begn, days=days, fillers=10)
    code = _pick(b, f.services)
    first = (begn + timedelta(days=int(b.rng.integers(0, days)))).replace(hour=int(b.rng.integers(6, 14)),
                                                                       minute=int(b.rng.integers(0, 60)))
    price = int(b.rng.integers(500, 50000))
    b.line(vid, code, price, 1, first)
    gap = int(b.rng.integers(30, 171)) if bad else int(b.rng.integers(200, 301))
    b.line(vid, code, int(price * (0.8 + 0.4 * float(b.rng.random()))), 1, first + timedelta(minutes=gap))
    if bad:
        b.label("SV-DUP-04", vid)


def _pattern_split_subcode(b, p, bad):
    """Discharged, then admitted 5–7 days later at a hospital of another district of the same city with a
    sibling diagnosis (J18.000 after J18.900) (decoy: 12–25 days later, or a recorded referral upward)."""
    psn = b.person(med_type="21")
    a = b.inst()
    others = [i for i in b.insts if i["admdvs"][:4] == a["admdvs"][:4] and i["admdvs"] != a["admdvs"]
              and i.get("fixmedins_type", "1") == "1"]
    if not others:
        return
    other = _pick(b, others)
    dx = _pick(b, [("J18.900", "J18.000"), ("I63.900", "I63.400"), ("N39.000", "N39.001"), ("K29.700", "K29.500")])
    begn = b.day().replace(hour=int(b.rng.integers(8, 18)))
    days = int(b.rng.integers(3, 10))
    b.admission(psn, a, begn, days=days, dise=dx[0])
    referral = None
    if bad:
        gap = int(b.rng.integers(5, 8))
    elif b.rng.random() < 0.5:
        gap = int(b.rng.integers(12, 26))
    else:
        gap, referral = int(b.rng.integers(1, 3)), a["level"]
    v2 = b.admission(psn, other, begn + timedelta(days=days + gap, hours=2), days=int(b.rng.integers(3, 9)), dise=dx[1],
                     referral=referral)
    if bad:
        b.label("SV-ADM-04", v2)


def _pattern_tests_chronic(b, p, bad):
    """15–20 distinct tests in one 门诊慢特病 (14) visit (decoy: 2–4)."""
    f = _facts(b)
    if len(f.tests) < 20 or not f.dx14:
        return
    psn = b.person(med_type="14")
    inst = b.inst()
    when = b.day().replace(hour=int(b.rng.integers(8, 17)))
    vid = b.visit(psn, inst, "14", when, when + timedelta(minutes=40), _pick(b, f.dx14))
    b.fillers(vid, 2)
    _tests_on(b, f, vid, bad)


def _pattern_quantity_upper(b, p, bad):
    """An ordinary drug at 12–15× its usual quantity at a 二级 or 三级 institution (decoy: twice the usual)."""
    f = _facts(b)
    upper = [d for d in f.dosed if d[1] != b.levels[0]] or f.dosed
    if not upper:
        return
    code, level, usual, price = _pick(b, upper)
    inst = b.inst(level) or b.inst()
    vid = b.outpatient(b.person(), inst, b.day().replace(hour=int(b.rng.integers(8, 17))))
    k = float(b.rng.integers(12, 16)) if bad else 2.0
    b.line(vid, code, price, Decimal(str(round(usual * k, 4))))
    if bad:
        b.label("SV-QTY-03", vid)


def _pattern_two_cities(b, p, bad):
    """Outpatient visits in two cities on one day, the second 15–45 minutes after the first ended
    (decoy: 4–6 hours later)."""
    a = b.inst()
    others = [i for i in b.insts if i["admdvs"][:4] != a["admdvs"][:4] and i.get("fixmedins_type", "1") == "1"]
    if not others:
        return
    psn = b.person()
    when = b.day().replace(hour=int(b.rng.integers(7, 11)), minute=int(b.rng.integers(0, 60)))
    minutes = int(b.rng.integers(10, 40))
    b.outpatient(psn, a, when, minutes=minutes)
    gap = int(b.rng.integers(15, 46)) if bad else int(b.rng.integers(240, 361))
    v2 = b.outpatient(psn, _pick(b, others), when + timedelta(minutes=minutes + gap))
    if bad:
        b.label("SV-ID-04", v2)


# pattern id: (rule, builder, Chinese name). The first six are the issue's; the rest vary institutions,
# times and codes, and use the pack's own caps, none of them used to tune the rules.
PATTERNS = {
    "date-3-15d": ("SV-DATE-01", _pattern_dates, "明细日期在就诊期外 3–15 天"),
    "rebill-1-3h": ("SV-DUP-04", _pattern_rebill, "住院同日 1–3 小时后再次收费"),
    "split-1-4d": ("SV-ADM-04", _pattern_cross_split, "出院 1–4 天后同诊断在同城另一医院入院"),
    "price-6x": ("SV-PRICE-02", _pattern_price, "常规编码 6 倍单价"),
    "qty-10x": ("SV-QTY-03", _pattern_quantity, "常规药品 10 倍数量"),
    "tests-15-20": ("SV-TEST-01", _pattern_tests, "一次门诊 15–20 项不同检查"),
    "cap-4x": ("SV-PRICE-03", _pattern_cap4, "政策包限价 4 倍收费(新)"),
    "rebill-priced": ("SV-DUP-04", _pattern_rebill_priced, "住院 30–170 分钟后改价再收费(新)"),
    "split-subcode": ("SV-ADM-04", _pattern_split_subcode, "出院 5–7 天后同类诊断在同城另一区县入院(新)"),
    "tests-chronic": ("SV-TEST-01", _pattern_tests_chronic, "门诊慢特病一次 15–20 项检查(新)"),
    "qty-12-15x-upper": ("SV-QTY-03", _pattern_quantity_upper, "二三级医院常规药品 12–15 倍数量(新)"),
    "two-cities": ("SV-ID-04", _pattern_two_cities, "同日两城市门诊相隔 15–45 分钟(新)"),
}
PATTERN_ZH = {pid: zh for pid, (_, _, zh) in PATTERNS.items()}
PATTERN_RULE = {pid: rid for pid, (rid, _, _) in PATTERNS.items()}
PATTERN_MIN_CASES = 20


INJECTORS = {
    "SV-GEND-01": _inject_gender, "SV-AGE-01": _inject_child, "SV-AGE-02": _inject_min_age,
    "SV-LVL-01": _inject_level, "SV-MODE-01": _inject_inpatient_only, "SV-MODE-02": _inject_outpatient_only,
    "SV-IND-01": _inject_indication, "SV-SWAP-01": _inject_consumable, "SV-DUP-01": _inject_duplicate,
    "SV-DUP-02": _inject_window, "SV-DUP-03": _inject_included, "SV-SPLIT-01": _inject_split,
    "SV-PRICE-01": _inject_price, "SV-FREQ-01": _inject_limit("SV-FREQ-01"),
    "SV-FREQ-02": _inject_limit("SV-FREQ-02"), "SV-QTY-02": _inject_limit("SV-QTY-02"),
    "SV-QTY-01": _inject_bed, "SV-DRUG-01": _inject_overlap, "SV-DRUG-02": _inject_single,
    "SV-ADM-01": _inject_readmission, "SV-ADM-02": _inject_idle, "SV-ADM-03": _inject_low,
    "SV-ID-01": _inject_impossible, "SV-ID-02": _inject_overlap_visits, "SV-ID-03": _inject_stay_clash,
    "SV-ID-04": _inject_multi_area, "SV-VISIT-01": _inject_frequent, "SV-DOC-01": _inject_physician,
    "SV-LAB-01": _inject_same_results, "SV-STOCK-01": _inject_stock, "SV-PHAR-01": _inject_non_medical,
    "SV-PROV-01": _inject_peer_cost, "SV-PROV-02": _inject_peer_stay, "SV-PROV-03": _inject_peer_readmission,
    "SV-DOC-02": _inject_peer_physician, "SV-PRICE-03": _inject_cap_multiple,
}
PROVIDER_PATTERNS = {"SV-DOC-01", "SV-DOC-02", "SV-STOCK-01", "SV-PROV-01", "SV-PROV-02", "SV-PROV-03"}
MIN_CASES = 5


def inject_fraud(tables: dict[str, pa.Table], rate: float, seed: int,
                 ruleset: RuleSet | None = None, pack=None) -> tuple[dict[str, pa.Table], pa.Table]:
    """Add each rule's pattern at ``rate`` of the visits (split evenly over the rules, at least
    a few cases each; provider patterns a tenth as often) and each evaluation pattern of
    :data:`PATTERNS` (at least 20 cases), each with as many decoys; return the tables and the
    labels (rule_id, subject, pattern). ``pack``: the policy pack the region follows (its catalogue
    caps feed the cap-4x pattern). Expects :func:`add_supervision_columns` to have run."""
    ruleset = ruleset or load_ruleset("default")
    rng = np.random.default_rng([seed, 6])
    b = Builder(tables, rng, pack)
    rules = [r for r in ruleset.rules if r.id in INJECTORS]
    by_id = ruleset.by_id()
    per_rule = rate * tables["visits"].num_rows / max(len(rules), 1)
    if rate <= 0:
        return b.tables()
    for r in rules:
        provider = r.id in PROVIDER_PATTERNS
        n = max(1 if provider else MIN_CASES, int(round(per_rule / (10 if provider else 1))))
        for k in range(n):
            INJECTORS[r.id](b, r.params, True)
            INJECTORS[r.id](b, r.params, False)
    for pid, (rid, build, _) in PATTERNS.items():
        if rid not in by_id:
            continue
        b.pattern = pid
        for k in range(max(PATTERN_MIN_CASES, int(round(per_rule)))):
            build(b, by_id[rid].params, True)
            build(b, by_id[rid].params, False)
        b.pattern = None
    return b.tables()


def write_supervised(tables: dict[str, pa.Table], out_dir, labels: pa.Table | None = None) -> dict:
    """Every table (claims, purchases, exam_results) and ``labels.parquet`` as Parquet (:func:`parquet_options`),
    each written under a temporary name and renamed. Two at a time, largest first: Arrow writes without
    the GIL, so the fee lines take one core while the other tables share the second."""
    import os
    from concurrent.futures import ThreadPoolExecutor
    from pathlib import Path

    import pyarrow.parquet as pq

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    items = dict(tables)
    if labels is not None:
        items["labels"] = labels

    def write(name: str) -> None:
        tmp = out / f".{name}.parquet.tmp"
        pq.write_table(items[name], tmp, row_group_size=ROW_GROUP_ROWS, **parquet_options(items[name].schema))
        os.replace(tmp, out / f"{name}.parquet")

    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(write, sorted(items, key=lambda name: -items[name].num_rows)))
    return {name: (out / f"{name}.parquet", table.num_rows) for name, table in items.items()}


def synth_supervised(pack, out_dir, persons: int, seed: int, year: int | None, rate: float, progress=None) -> dict:
    """``yibao synth --fraud RATE``: a region with the optional inputs, RATE of fraud and labels."""

    if not 0 <= rate <= 0.5:
        raise SynthError(Problem("SYN006", "--fraud", f"注入比例应在 0–0.5 之间, 实际为 {rate}"))
    tables = add_supervision_columns(generate(pack, persons, seed, year, progress), seed)
    tables, labels = inject_fraud(tables, rate, seed, pack=pack)
    return write_supervised(tables, out_dir, labels)
