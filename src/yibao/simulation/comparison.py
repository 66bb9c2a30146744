"""Re-settle a year of claims under two packs and compare them, group by group, in DuckDB.

Both packs settle the same visits (tables ``settled_baseline`` and ``settled_reform``); the
comparison is a handful of SQL statements over those tables — no Python loop over visits or
persons. The statements leave four tables in the run's connection, so a reader can query further:

- ``sim_visits``: one row per visit, every amount under both packs (``b_*``, ``r_*``, fen) and
  ``changed`` (any setlinfo amount or rule payment differs);
- ``sim_py``: one row per insured person and data year (person-year), with or without visits:
  annual out-of-pocket burden (``psn_part_amt`` summed) under both packs;
- ``sim_hh``: one row per household and year: household burden, income (fen) and whether the
  household had catastrophic expenditure under each pack;
- ``sim_pcat``: person → category (``(none)`` for a person without any category).

Two kinds of group:

- person groups (overall, 险种, 人员类别): the population is every insured person-year of the
  group, so persons without any visit count with a burden of 0;
- visit groups (机构等级, 医疗类别, 险种×等级×医疗类别): the population is the persons with at
  least one visit of that kind, and their burden is what they paid on those visits.

A person with several categories is counted in each of them. Catastrophic expenditure is always
judged on the household's whole annual burden (all members, all visits).
"""

from __future__ import annotations

import time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Callable

from yibao.batch.run import BatchRun, settle
from yibao.codes import INSUTYPE_ENGLISH, INSUTYPE_NAMES, INSUTYPE_SHORT, MED_TYPE_ENGLISH, MED_TYPE_NAMES
from yibao.sql import ident, q
from yibao.errors import Problem
from yibao.money import rate_parts
from yibao.policy.compiled import CompiledPack
from yibao.settlement.model import SETLINFO_FIELDS
from yibao.simulation.errors import SimulationError
from yibao.simulation.outputs import write_outputs
from yibao.simulation.result import (
    AMOUNT_FIELDS, DECILES, NO_CATEGORY, Burden, GroupResult,
    Pair, RuleInfo, Share, SimulationResult,
)

DEFAULT_CATASTROPHIC_SHARE = Decimal("0.4")
Progress = Callable[[str, int, int], None]  # (step description, steps done, steps in all)



def catastrophic_share_of(value, reform: CompiledPack) -> Decimal:
    """The share of household income above which OOP is catastrophic: the argument if given,
    else the reform pack's ``monitoring.catastrophic_share``, else 0.4.

    >>> catastrophic_share_of("0.3", None)
    Decimal('0.3')
    """
    if value is None:
        mon = reform.pack.monitoring if reform is not None else None
        return mon.catastrophic_share if mon is not None else DEFAULT_CATASTROPHIC_SHARE
    try:
        share = Decimal(str(value).strip().rstrip("%")) / (100 if str(value).strip().endswith("%") else 1)
    except (InvalidOperation, ValueError):
        share = None
    if share is None or not share.is_finite() or not (Decimal(0) < share <= Decimal(1)):
        raise SimulationError(Problem("SIM001", "catastrophic_share",
                                      f"灾难性支出比例必须是 0 到 1 之间的小数(如 0.4 表示 40%), 实际为 {value!r}"))
    return share


def check_out_dir(out_dir: str | Path | None) -> Path | None:
    """Refuse an output path that exists and is not a directory (before any work is done)."""
    if out_dir is None:
        return None
    path = Path(out_dir)
    if path.exists() and not path.is_dir():
        raise SimulationError(Problem("SIM003", "out_dir", f"{path} 已存在且不是目录"))
    return path


def simulate(run: BatchRun, baseline: CompiledPack, reform: CompiledPack, out_dir: Path | None = None,
             catastrophic_share=None, *, progress: Progress | None = None,
             reform_tables: Path | None = None, on_settled: Callable[[], None] | None = None) -> SimulationResult:
    """Settle ``run`` under both packs (tables ``settled_baseline``/``settled_reform``), compare,
    and if ``out_dir`` is given write simulation.json/.xlsx/.html and the PNG charts there.
    ``reform_tables``: also write the reform's setlinfo/setldetail (yuan) there while it settles, where the
    stream comes in their order (:func:`yibao.batch.run.in_output_order`; else the caller writes them).
    ``on_settled``: called once both packs are settled (and those tables written), before the comparison, so a
    caller can start work that reads them (``yibao demo``: DIP and long-term care) while DuckDB compares.

    Bad input (claims outside a pack's dates, codes a pack does not know...) raises
    :class:`yibao.batch.validate.BatchError` before anything is written.
    """
    share = catastrophic_share_of(catastrophic_share, reform)
    out_path = check_out_dir(out_dir)
    total = 4 if out_path is not None else 3
    note = progress or (lambda *_: None)
    timings: dict[str, float] = {}
    t = time.perf_counter()
    note(f"结算基线 {baseline.id}", 0, total)
    settle(run, baseline, "baseline")
    timings["settle_baseline"] = time.perf_counter() - t
    t = time.perf_counter()
    note(f"结算改革 {reform.id}", 1, total)
    settle(run, reform, "reform", out_dir=reform_tables)
    timings["settle_reform"] = time.perf_counter() - t
    if on_settled is not None:
        on_settled()
    t = time.perf_counter()
    note("比较与汇总", 2, total)
    result = compare(run, baseline, reform, share)
    timings["compare"] = time.perf_counter() - t
    if out_path is not None:
        t = time.perf_counter()
        note("写出报告", 3, total)
        result.outputs = write_outputs(result, out_path)
        timings["write"] = time.perf_counter() - t
    note("完成", total, total)
    result.timings = timings
    return result


# --- the comparison ---------------------------------------------------------------------


def rule_infos(baseline: CompiledPack, reform: CompiledPack) -> list[RuleInfo]:
    """Every rule of either pack, in the reform pack's order, then the baseline's own."""
    def listing(pack: CompiledPack):
        return ([(r.id, r.name, "basic", "hifp_pay") for r in pack.basic]
                + [(t.id, t.name, "tier", t.pays_into) for t in pack.tiers]
                + [(g.id, g.name, "guarantee", g.pays_into) for g in pack.guarantees])

    in_b = {rid for rid, *_ in listing(baseline)}
    in_r = {rid for rid, *_ in listing(reform)}
    out: dict[str, RuleInfo] = {}
    for rid, name, kind, setl in listing(reform) + listing(baseline):
        if rid not in out:
            out[rid] = RuleInfo(rid, name, kind, setl, rid in in_b, rid in in_r)
    return list(out.values())


def _columns(con, table: str) -> set[str]:
    return {row[0] for row in con.sql(f"DESCRIBE {table}").fetchall()}


def _pay(alias: str, rid: str, columns: set[str]) -> str:
    col = f"pay__{ident(rid)}"
    return f'CAST(COALESCE({alias}."{col}", 0) AS BIGINT)' if col in columns else "CAST(0 AS BIGINT)"


def build_tables(con, rules: list[RuleInfo], share: Decimal,
                 baseline_table: str = "settled_baseline", reform_table: str = "settled_reform") -> None:
    """Create sim_visits, sim_py, sim_hh and sim_pcat (see the module docstring)."""
    cb, cr = _columns(con, baseline_table), _columns(con, reform_table)
    amounts = ", ".join(f'CAST(b.{f} AS BIGINT) AS "b_{f}", CAST(r.{f} AS BIGINT) AS "r_{f}"' for f in AMOUNT_FIELDS)
    pays = ", ".join(f'{_pay("b", x.id, cb)} AS "b_rule_{i}", {_pay("r", x.id, cr)} AS "r_rule_{i}"'
                     for i, x in enumerate(rules))
    compared = [f"b.{f} IS DISTINCT FROM r.{f}" for f in (*SETLINFO_FIELDS, "inscp_psn_part")]
    compared += [f"{_pay('b', x.id, cb)} <> {_pay('r', x.id, cr)}" for x in rules]
    con.sql(f"""
        CREATE OR REPLACE TABLE sim_visits AS
        SELECT b.mdtrt_id, b.psn_no, b.yr, b.insutype, b.level, b.med_type,
               COALESCE(p.hh_no, 'P:' || p.psn_no) AS hh_key,
               {amounts}{', ' + pays if pays else ''},
               ({' OR '.join(compared)}) AS changed
        FROM {baseline_table} b
        JOIN {reform_table} r ON r.mdtrt_id = b.mdtrt_id
        JOIN persons p ON p.psn_no = b.psn_no""")
    nb = con.sql(f"SELECT COUNT(*) FROM {baseline_table}").fetchone()[0]
    nr = con.sql(f"SELECT COUNT(*) FROM {reform_table}").fetchone()[0]
    nv = con.sql("SELECT COUNT(*) FROM sim_visits").fetchone()[0]
    if not nb == nr == nv:
        raise SimulationError(Problem(
            "SIM004", "visits",
            f"两个政策包结算的就诊不一致(基线 {nb:,} 次, 改革 {nr:,} 次, 能对应的 {nv:,} 次); 请检查就诊与人员数据"))
    con.sql("""
        CREATE OR REPLACE TABLE sim_py AS
        WITH v AS (
            SELECT psn_no, yr, SUM(b_psn_part_amt) AS b_oop, SUM(r_psn_part_amt) AS r_oop,
                   bool_or(changed) AS changed, COUNT(*) AS visits
            FROM sim_visits GROUP BY psn_no, yr),
        yrs AS (SELECT DISTINCT yr FROM sim_visits)
        SELECT p.psn_no, y.yr, p.insutype, COALESCE(p.hh_no, 'P:' || p.psn_no) AS hh_key,
               CAST(p.hh_income * 100 AS BIGINT) AS hh_income,
               CAST(COALESCE(v.b_oop, 0) AS BIGINT) AS b_oop, CAST(COALESCE(v.r_oop, 0) AS BIGINT) AS r_oop,
               COALESCE(v.changed, FALSE) AS changed, COALESCE(v.visits, 0) AS visits
        FROM persons p CROSS JOIN yrs y
        LEFT JOIN v ON v.psn_no = p.psn_no AND v.yr = y.yr""")
    num, den = rate_parts(share)
    con.sql(f"""
        CREATE OR REPLACE TABLE sim_hh AS
        SELECT hh_key, yr, MAX(hh_income) AS income, SUM(b_oop) AS b_oop, SUM(r_oop) AS r_oop,
               CASE WHEN MAX(hh_income) IS NULL THEN NULL ELSE SUM(b_oop) * {den} > MAX(hh_income) * {num} END AS b_cat,
               CASE WHEN MAX(hh_income) IS NULL THEN NULL ELSE SUM(r_oop) * {den} > MAX(hh_income) * {num} END AS r_cat
        FROM sim_py GROUP BY hh_key, yr""")
    con.sql(f"""
        CREATE OR REPLACE TABLE sim_pcat AS
        SELECT psn_no, UNNEST(CASE WHEN len(list_distinct(COALESCE(categories, []::VARCHAR[]))) = 0
                                   THEN [{q(NO_CATEGORY)}]
                                   ELSE list_distinct(categories) END) AS cat
        FROM persons""")


DECILE_LIST = "[" + ", ".join(f"{p / 100}" for p in DECILES) + "]"


def population_sql(dimension: str) -> str:
    """(psn_no, yr, hh_key, key, b_oop, r_oop): the burden population of a dimension."""
    person_key = {"overall": "CAST(NULL AS VARCHAR)", "insutype": "s.insutype", "category": "c.cat"}
    if dimension in person_key:
        join = " JOIN sim_pcat c ON c.psn_no = s.psn_no" if dimension == "category" else ""
        return (f"SELECT s.psn_no, s.yr, s.hh_key, {person_key[dimension]} AS key, s.b_oop, s.r_oop "
                f"FROM sim_py s{join}")
    return (f"SELECT psn_no, yr, hh_key, {visit_key(dimension)} AS key, "
            f"SUM(b_psn_part_amt) AS b_oop, SUM(r_psn_part_amt) AS r_oop "
            f"FROM sim_visits GROUP BY psn_no, yr, hh_key, {visit_key(dimension)}")


def visit_key(dimension: str, alias: str = "") -> str:
    a = f"{alias}." if alias else ""
    return {"overall": "CAST(NULL AS VARCHAR)", "insutype": f"{a}insutype", "level": f"{a}level",
            "med_type": f"{a}med_type", "category": "c.cat",
            "visit_kind": f"{a}insutype || '/' || {a}level || '/' || {a}med_type"}[dimension]


def burden_query(dimension: str) -> str:
    hh = "s.hh_key || '|' || CAST(s.yr AS VARCHAR)"
    return f"""
        SELECT s.key, COUNT(*) AS n,
               COALESCE(SUM(s.b_oop), 0) AS b_total, COALESCE(SUM(s.r_oop), 0) AS r_total,
               quantile_disc(s.b_oop, {DECILE_LIST}) AS b_dec, quantile_disc(s.r_oop, {DECILE_LIST}) AS r_dec,
               COUNT(*) FILTER (WHERE h.income IS NOT NULL) AS p_known,
               COUNT(*) FILTER (WHERE h.b_cat) AS p_b, COUNT(*) FILTER (WHERE h.r_cat) AS p_r,
               COUNT(DISTINCT {hh}) AS hh, COUNT(DISTINCT {hh}) FILTER (WHERE h.income IS NOT NULL) AS hh_known,
               COUNT(DISTINCT {hh}) FILTER (WHERE h.b_cat) AS hh_b, COUNT(DISTINCT {hh}) FILTER (WHERE h.r_cat) AS hh_r
        FROM ({population_sql(dimension)}) s JOIN sim_hh h ON h.hh_key = s.hh_key AND h.yr = s.yr
        GROUP BY s.key"""


def visit_query(dimension: str, n_rules: int) -> str:
    sums = ", ".join(f'SUM(v."b_{f}") AS "b_{f}", SUM(v."r_{f}") AS "r_{f}"' for f in AMOUNT_FIELDS)
    rules = "".join(f', SUM(v."b_rule_{i}"), SUM(v."r_rule_{i}")' for i in range(n_rules))
    join = " JOIN sim_pcat c ON c.psn_no = v.psn_no" if dimension == "category" else ""
    return f"""
        SELECT {visit_key(dimension, 'v')} AS key, COUNT(*) AS visits, COUNT(*) FILTER (WHERE v.changed) AS affected,
               COUNT(DISTINCT v.psn_no) AS persons, COUNT(DISTINCT v.psn_no) FILTER (WHERE v.changed) AS persons_affected,
               {sums}{rules}
        FROM sim_visits v{join}
        GROUP BY 1"""


def compare(run: BatchRun, baseline: CompiledPack, reform: CompiledPack, share: Decimal,
            baseline_table: str = "settled_baseline", reform_table: str = "settled_reform") -> SimulationResult:
    """Compare two settled tables of the same visits (see the module docstring)."""
    con = run.con
    rules = rule_infos(baseline, reform)
    build_tables(con, rules, share, baseline_table, reform_table)
    years = [r[0] for r in con.sql("SELECT DISTINCT yr FROM sim_visits ORDER BY yr").fetchall()]
    names = _Names(baseline, reform)
    groups: list[GroupResult] = []
    for dimension in ("overall", "insutype", "level", "category", "med_type", "visit_kind"):
        visit_rows = {row[0]: row for row in con.sql(visit_query(dimension, len(rules))).fetchall()}
        burden_rows = {row[0]: row for row in con.sql(burden_query(dimension)).fetchall()}
        keys = set(visit_rows) | set(burden_rows)
        if dimension == "overall":
            keys.add(None)
        elif dimension == "category":  # every category the packs declare, also one nobody holds
            keys.update(names.category_order)
        elif dimension == "level":
            keys.update(names.level_order)
        for key in names.order(dimension, keys):
            groups.append(_group(dimension, key, names, visit_rows.get(key), burden_rows.get(key), len(rules)))
    return SimulationResult(
        baseline={"id": baseline.id, "name": baseline.name, "version": baseline.version},
        reform={"id": reform.id, "name": reform.name, "version": reform.version},
        catastrophic_share=share, years=years, rules=rules, groups=groups,
        tables={"visits": "sim_visits", "person_years": "sim_py", "households": "sim_hh",
                "person_categories": "sim_pcat", "baseline": baseline_table, "reform": reform_table})


def _group(dimension: str, key, names: "_Names", v, b, n_rules: int) -> GroupResult:
    nf = len(AMOUNT_FIELDS)
    if v is None:
        v = (key, 0, 0, 0, 0) + (0,) * (2 * nf + 2 * n_rules)
    if b is None:
        b = (key, 0, 0, 0, None, None, 0, 0, 0, 0, 0, 0, 0)
    amounts = {f: Pair(int(v[5 + 2 * i] or 0), int(v[6 + 2 * i] or 0)) for i, f in enumerate(AMOUNT_FIELDS)}
    base = 5 + 2 * nf
    rules = {rid: Pair(int(v[base + 2 * i] or 0), int(v[base + 2 * i + 1] or 0)) for i, rid in enumerate(names.rule_ids)}
    _, n, b_total, r_total, b_dec, r_dec, p_known, p_b, p_r, hh, hh_known, hh_b, hh_r = b
    deciles = tuple(Pair(int(x), int(y)) for x, y in zip(b_dec or [0] * 9, r_dec or [0] * 9))
    return GroupResult(
        dimension=dimension, key=key, name=names.name(dimension, key), label=names.label(dimension, key),
        visits=v[1], visits_affected=v[2], persons_with_visits=v[3], persons_affected=v[4],
        amounts=amounts, rules=rules,
        burden=Burden(n, Pair(int(b_total), int(r_total)), deciles),
        households=Share(hh, hh_known, Pair(hh_b, hh_r)),
        persons=Share(n, p_known, Pair(p_b, p_r)),
    )


class _Names:
    """Chinese names, English chart labels and report order of group keys."""

    def __init__(self, baseline: CompiledPack, reform: CompiledPack):
        self.levels = {**baseline.levels, **reform.levels}
        self.level_order = list(reform.levels) + [lv for lv in baseline.levels if lv not in reform.levels]
        self.categories = {**baseline.categories, **reform.categories}
        self.category_order = list(reform.categories) + [c for c in baseline.categories if c not in reform.categories]
        self.rule_ids = [r.id for r in rule_infos(baseline, reform)]

    def order(self, dimension: str, keys) -> list:
        keys = [k for k in keys]
        if dimension == "level":
            rank = {lv: i for i, lv in enumerate(self.level_order)}
            return sorted(keys, key=lambda k: (rank.get(k, len(rank)), str(k)))
        if dimension == "category":
            rank = {c: i for i, c in enumerate(self.category_order)}
            rank[NO_CATEGORY] = len(rank) + 1
            return sorted(keys, key=lambda k: (rank.get(k, len(rank)), str(k)))
        if dimension == "visit_kind":
            rank = {lv: i for i, lv in enumerate(self.level_order)}

            def kind_key(k):
                ins, lv, med = k.split("/")
                return ins, med, rank.get(lv, len(rank)), lv
            return sorted(keys, key=kind_key)
        return sorted(keys, key=lambda k: (k is not None, str(k)))

    def name(self, dimension: str, key) -> str:
        if dimension == "overall":
            return "全体参保人"
        if dimension == "insutype":
            return INSUTYPE_NAMES.get(key, f"险种 {key}")
        if dimension == "level":
            return self.levels.get(key, f"等级 {key}")
        if dimension == "category":
            return "普通参保人(无类别)" if key == NO_CATEGORY else self.categories.get(key, key)
        if dimension == "med_type":
            return MED_TYPE_NAMES.get(key, f"医疗类别 {key}")
        ins, lv, med = key.split("/")
        return (f"{INSUTYPE_SHORT.get(ins, ins)} · {self.levels.get(lv, lv)} · "
                f"{MED_TYPE_NAMES.get(med, med)}")

    def label(self, dimension: str, key) -> str:
        if dimension == "overall":
            return "all insured"
        if dimension == "insutype":
            return f"{key} {INSUTYPE_ENGLISH.get(key, '')}".strip()
        if dimension == "level":
            return f"level {key}"
        if dimension == "category":
            return "no category" if key == NO_CATEGORY else key
        if dimension == "med_type":
            return f"{key} {MED_TYPE_ENGLISH.get(key, '')}".strip()
        ins, lv, med = key.split("/")
        return f"{INSUTYPE_ENGLISH.get(ins, ins)} L{lv} {MED_TYPE_ENGLISH.get(med, med)}"
