"""The columnar engine: a policy pack compiled into one SQL query that settles a whole table.

The query has exactly the semantics of :mod:`yibao.settlement.engine` — same pack, same results
to the fen — and is built from the same compiled pack (:mod:`yibao.policy.compiled`), so a
deductible, band edge or ratio is derived in one place. Everything is integer arithmetic on fen:
a rate r is a numerator over one common denominator ``DEN`` for the whole pack, and
``round_half_up(N / DEN)`` is ``(2N + DEN) DIV (2 DEN)``. Year-to-date quantities are window
sums over (person, year) ordered by settlement time, so the query needs no per-row Python.

The SQL is written in DuckDB's dialect using only portable constructs (CASE, LEAST/GREATEST,
integer ``//``, window sums with ROWS frames) and transpiled with SQLGlot for Spark.

Input relation ``visits_in`` (one row per visit, amounts in fen):
psn_no, yr, setl_time, mdtrt_id, insutype, retiree, cat_<code> booleans for every pack
category, med_type, level, dise_codg, referral_from_level, acct_balance, fulamt, overlmt, pre,
inscp. Output: the input columns plus every setlinfo field (fen) and ``pay__<rule id>`` per rule.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from math import lcm

from yibao.money import mul_rate, rate_parts, yuan_to_fen
from yibao.policy.compiled import CompiledBasic, CompiledPack, CompiledTier, bands_of
from yibao.settlement.model import BUCKETS, SETLINFO_FIELDS

ORDER = "ORDER BY rn"  # rn: the row's place in (person, year, settlement time, mdtrt_id) order
MAX_VISIT_FEN = 1_000_000_000  # 10,000,000 yuan: larger visits are refused by batch validation
PRIOR = "ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING"
SHORT = {"inscp_coshare": "b_co", "inscp_overcap": "b_oc", "inscp_dedc": "b_dd",
         "preselfpay": "b_pre", "overlmt_selfpay": "b_ovl", "fulamt_ownpay": "b_ful"}


def q(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def prior_sum(expr: str, partition: str) -> str:
    return f"COALESCE(SUM({expr}) OVER (PARTITION BY {partition} {ORDER} {PRIOR}), 0)"


def case_on(column: str, branches: dict[str, str], default: str = "0") -> str:
    if not branches:
        return default
    parts = " ".join(f"WHEN {q(k)} THEN {v}" for k, v in branches.items())
    return f"(CASE {column} {parts} ELSE {default} END)"


def ident(text: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in text)


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def alias_of(column: str) -> str:
    return column.rsplit(" AS ", 1)[1].strip()


@dataclass
class Query:
    """A chain of CTEs, each adding columns to the previous one.

    :meth:`sql` keeps in each stage only the columns that a later stage or the output still
    reads, so window operators sort narrow rows rather than every intermediate column.
    """

    source: str
    stages: list[tuple[str, list[str]]] = field(default_factory=list)
    sparse: bool = False  # DuckDB: year-to-date sums over only the rows that add to them (see add_prior)
    windows: dict[str, tuple[str, str, list[tuple[str, str]]]] = field(default_factory=dict)
    priors: set[str] = field(default_factory=set)  # stages that are year-to-date window passes
    passes: int = 0  # of those, how many the last sql() kept (a pass no output needs is dropped)

    def add(self, *columns: str) -> None:
        self.stages.append((f"s{len(self.stages)}", list(columns)))

    def add_prior(self, sums: list[tuple[str, str]], partition: str, rows: str) -> None:
        """Year-to-date sums before each row: ``sums`` is [(expression, alias)] over ``partition``.

        ``rows`` is a condition outside which every summed expression is 0 and no later stage
        reads the sum (a row adding nothing to a cumulative tier gets nothing from it). With
        ``sparse``, the window then runs over only those rows and narrow (row number, partition,
        values), and the sums are joined back by row number — the wide rows are never sorted.
        Without it (Spark) the sums are ordinary window sums over every row.
        """
        self.priors.add(f"s{len(self.stages)}")
        if not self.sparse:
            self.add(*(f"{prior_sum(expr, partition)} AS {alias}" for expr, alias in sums))
            return
        name = f"s{len(self.stages)}"
        self.windows[name] = (partition, rows, list(sums))
        self.stages.append((name, [f"COALESCE(w.{alias}, 0) AS {alias}" for _, alias in sums]))

    def sql(self, inputs: list[str], outputs: list[str], head: str = "", final: str | None = None) -> str:
        """``head``: CTEs placed before the chain; ``final``: the closing SELECT, with {last}."""
        available = [list(inputs)]
        for _, cols in self.stages:
            available.append(available[-1] + [alias_of(c) for c in cols])
        needed = set(outputs)
        selects: list[list[str]] = []
        for i in range(len(self.stages) - 1, -1, -1):
            cols = self.stages[i][1]
            new_names = {alias_of(c) for c in cols}
            keep_new = [c for c in cols if alias_of(c) in needed]
            passing = [c for c in available[i] if c in needed and c not in new_names]
            selects.append(passing + keep_new)
            refs = set()
            for c in keep_new:
                refs.update(_IDENT.findall(c.rsplit(" AS ", 1)[0]))
            name = self.stages[i][0]
            if name in self.windows and keep_new:
                partition, rows, sums = self.windows[name]
                used = " ".join(expr for expr, alias in sums if alias in needed)
                refs.update(_IDENT.findall(f"{partition} {rows} {used}") + ["rn"])
            needed = (needed - new_names) | {c for c in refs if c in set(available[i])}
        selects.reverse()
        ctes = []
        previous = self.source
        self.passes = 0
        for (name, stage_cols), cols in zip(self.stages, selects):
            wanted = {alias_of(c) for c in stage_cols if c in cols}
            self.passes += name in self.priors and bool(wanted)
            if name in self.windows and wanted:
                partition, rows, sums = self.windows[name]
                sums = [(expr, alias) for expr, alias in sums if alias in wanted]
                kept = [c for c in cols if c not in stage_cols]
                values = ", ".join(f"{expr} AS v__{alias}" for expr, alias in sums)
                ctes.append(f"{name}_in AS (SELECT * FROM {previous})")
                ctes.append(f"{name}_w AS (SELECT rn, "
                            + ", ".join(prior_sum(f"v__{a}", partition) + f" AS {a}" for _, a in sums)
                            + f" FROM (SELECT rn, {partition}, {values} FROM {name}_in WHERE {rows}))")
                picked = [f"i.{c}" for c in kept] + [c for c in cols if c not in kept]
                ctes.append(f"{name} AS (SELECT {', '.join(picked) or '1 AS _'} FROM {name}_in i "
                            f"LEFT JOIN {name}_w w ON w.rn = i.rn)")
            else:
                ctes.append(f"{name} AS (SELECT {', '.join(cols) or '1 AS _'} FROM {previous})")
            previous = name
        closing = final.format(last=previous) if final else f"SELECT {', '.join(outputs)} FROM {previous}"
        return "WITH " + head + ",\n".join(ctes) + "\n" + closing


def never_together(a: CompiledTier, b: CompiledTier) -> bool:
    """True when no row can be eligible for both tiers (so they may share a window pass)."""
    if a.exclusive_group is not None and a.exclusive_group == b.exclusive_group:
        return True
    if a.insutypes is not None and b.insutypes is not None and not (a.insutypes & b.insutypes):
        return True
    return a.med_types is not None and b.med_types is not None and not (a.med_types & b.med_types)


def pass_groups(tiers: list[CompiledTier]) -> list[list[CompiledTier]]:
    """Consecutive tiers, grouped while every pair in a group can never apply together."""
    groups: list[list[CompiledTier]] = []
    for tier in tiers:
        if groups and all(never_together(tier, other) for other in groups[-1]):
            groups[-1].append(tier)
        else:
            groups.append([tier])
    return groups


class SettlementSQL:
    """Builds the settlement query for one compiled pack."""

    def __init__(self, pack: CompiledPack):
        self.pack = pack
        dens = [1]
        for rule in pack.basic:
            for spec in rule.rule.ratio_by_level.values():
                for _, rate in bands_of(spec, 0, Decimal(0), "absolute"):
                    dens.append(rate_parts(rate)[1])
            for pts in [rule.rule.retiree_points, *rule.rule.category_points.values()]:
                dens.append(rate_parts(pts / 100)[1])
        for tier in pack.tiers:
            for scales, _cap in tier._variants:
                dens.extend(s.denominator for s in scales)
        for g in pack.guarantees:
            dens.append(g.share_parts[1])
        self.den = lcm(*dens)

    # --- helpers ------------------------------------------------------------------------

    def rnd(self, numerator: str) -> str:
        """round_half_up(numerator / DEN) for a non-negative integer numerator."""
        return f"((2 * ({numerator}) + {self.den}) // {2 * self.den})"

    def num(self, rate: Decimal) -> int:
        n, d = rate_parts(rate)
        return n * (self.den // d)

    def cat(self, code: str) -> str:
        return f"cat_{ident(code)}"

    def any_cat(self, codes) -> str:
        codes = list(codes)
        return "(" + " OR ".join(self.cat(c) for c in codes) + ")" if codes else "FALSE"

    def in_list(self, column: str, values) -> str:
        return f"{column} IN ({', '.join(q(v) for v in values)})"

    def band_sum(self, x: str, bands: list[tuple[str, str | None, str]]) -> str:
        """Σ rate_num · max(0, min(x, upper) − lower) as SQL; bands are (lower, upper, rate_num)."""
        terms = []
        for lower, upper, rate in bands:
            top = x if upper is None else f"LEAST({x}, {upper})"
            terms.append(f"({rate}) * GREATEST(0, {top} - ({lower}))")
        return " + ".join(terms) if terms else "0"

    # --- 基本医保 -----------------------------------------------------------------------------

    def rule_condition(self, rule: CompiledBasic, insutype: str = "insutype", med_type: str = "med_type",
                       level: str = "level", dise_codg: str = "dise_codg") -> str:
        """The row matches this basic rule (columns may be named, e.g. for a join)."""
        r = rule.rule
        cond = [f"{insutype} = {q(r.insutype)}", self.in_list(med_type, r.med_types),
                self.in_list(level, list(rule.by_level))]
        if r.diseases:
            cond.append("(" + " OR ".join(f"starts_with({dise_codg}, {q(d)})" for d in r.diseases) + ")")
        return " AND ".join(cond)

    def deductible_n(self, rule: CompiledBasic, level_col: str, n: str) -> str:
        """The level's deductible for the n-th admission (before waivers / referral)."""
        rep = rule.rule.deductible.repeat
        branches = {}
        for lv, first in rule.by_level.items():
            if rep is None or rule.mode == "annual":
                branches[lv] = str(first)
            elif rep.mode == "factor":
                branches[lv] = f"(CASE WHEN {n} <= 1 THEN {first} ELSE {mul_rate(first, rep.factor)} END)"
            elif rep.mode == "schedule":
                amounts = rule.schedule[lv]  # type: ignore[index]
                whens = " ".join(f"WHEN {n} = {i + 1} THEN {a}" for i, a in enumerate(amounts[:-1]))
                branches[lv] = f"(CASE {whens} ELSE {amounts[-1]} END)" if whens else str(amounts[-1])
            else:
                floor = yuan_to_fen(rep.floor) if rep.floor is not None else 0
                branches[lv] = (f"(CASE WHEN {n} <= 1 THEN {first} ELSE "
                                f"GREATEST({floor}, {first} - {yuan_to_fen(rep.step)} * ({n} - 1)) END)")
        return case_on(level_col, branches)

    def deductible(self, rule: CompiledBasic) -> str:
        ded = rule.rule.deductible
        n = "adm_no"
        whens = []
        for w in ded.waive:
            cond = self.any_cat(w.categories)
            if w.levels is not None:
                cond += " AND " + self.in_list("level", w.levels)
            whens.append(f"WHEN {cond} THEN 0")
        if rule.mode == "per_admission" and rule.once_diseases:
            whens.append("WHEN once_match AND once_paid THEN 0")
        amount = self.deductible_n(rule, "level", n)
        if rule.mode == "per_admission" and ded.referral is not None:
            rank = rule.level_rank
            up = " OR ".join(
                f"(level = {q(a)} AND referral_from_level = {q(b)})"
                for a in rule.by_level for b in rule.by_level if rank[a] > rank[b]
            ) or "FALSE"
            mode_up, mode_down = ded.referral.upward, ded.referral.same_or_downward
            source = self.deductible_n(rule, "referral_from_level", n)
            up_value = {"waive": "0", "full": amount, "difference": f"GREATEST(0, {amount} - {source})"}[mode_up]
            down_value = {"waive": "0", "full": amount}[mode_down]
            whens.append(f"WHEN is_referral AND ({up}) THEN {up_value}")
            whens.append(f"WHEN is_referral THEN {down_value}")
        return f"(CASE {' '.join(whens)} ELSE {amount} END)" if whens else amount

    def points_num(self, rule: CompiledBasic) -> str:
        """Ratio bonus as a numerator over DEN: retiree points + the largest category points."""
        r = rule.rule
        parts = []
        if r.retiree_points:
            parts.append(f"(CASE WHEN retiree THEN {self.num(r.retiree_points / 100)} ELSE 0 END)")
        if r.category_points:
            ordered = sorted(r.category_points.items(), key=lambda kv: kv[1], reverse=True)
            whens = " ".join(f"WHEN {self.cat(c)} THEN {self.num(p / 100)}" for c, p in ordered)
            parts.append(f"(CASE {whens} ELSE 0 END)")
        return " + ".join(parts) if parts else "0"

    def basic_g(self, rule: CompiledBasic, x: str) -> str:
        """G(x) × DEN for this rule at the row's level, deductible ``ded`` and points ``pts``."""
        r = rule.rule
        branches = {}
        for lv, spec in r.ratio_by_level.items():
            bands = []
            previous = "0"
            listed = bands_of(spec, 0, Decimal(0), r.band_edges)
            # bands_of closes a list whose last band has an edge with a (None, 0) band: that one
            # pays nothing whatever the bonus points; every listed band gets the points
            closing = isinstance(spec, list) and spec[-1].upto is not None
            for k, (upper, rate) in enumerate(listed):
                if upper is None:
                    up = None
                elif r.band_edges == "above_deductible":
                    up = f"(ded + {upper})"
                else:
                    up = str(upper)
                if closing and k == len(listed) - 1:
                    rate_sql = "0"
                else:
                    rate_sql = f"LEAST({self.den}, GREATEST(0, {self.num(rate)} + pts))"
                bands.append((f"GREATEST(ded, {previous})", up, rate_sql))
                if up is None:
                    break
                previous = up
            branches[lv] = self.band_sum(x, bands)
        return case_on("level", branches)

    # --- the query ---------------------------------------------------------------------------

    def input_columns(self) -> list[str]:
        return ["psn_no", "yr", "setl_time", "mdtrt_id", "insutype", "retiree",
                *(self.cat(c) for c in self.pack.categories), "med_type", "level", "dise_codg",
                "referral_from_level", "acct_balance", "fulamt", "overlmt", "pre", "inscp"]

    def output_columns(self) -> list[str]:
        pack = self.pack
        rule_ids = [r.id for r in pack.basic] + [t.id for t in pack.tiers] + [g.id for g in pack.guarantees]
        return ["psn_no", "mdtrt_id", "yr", "setl_time", "insutype", "med_type", "level", *SETLINFO_FIELDS,
                "inscp_psn_part", *(f"pay__{ident(i)}" for i in rule_ids)]

    def query(self, source: str = "visits_in", outputs: list[str] | None = None, sparse: bool = True) -> str:
        """The settlement query over ``source``; selects ``outputs`` (default: output_columns).

        ``sparse`` (DuckDB) narrows year-to-date windows to the rows that add to them: each such
        stage is a CTE read twice (the window, and the join back), which DuckDB materialises
        once (``tests/test_batch.py`` checks the plan). Spark would recompute a CTE per reference,
        so it gets plain windows; both forms give the same amounts to the fen.
        """
        pack = self.pack
        qy = Query("keyed", sparse=sparse)
        self.cur = dict(SHORT)  # bucket → the column holding its current remainder
        rules = pack.basic
        adm_ids = {key: i for i, key in enumerate(dict.fromkeys(r.adm_key for r in rules))}
        cap_ids = {key: i for i, key in enumerate(dict.fromkeys(r.cap_key for r in rules))}
        rule_idx = " ".join(f"WHEN {self.rule_condition(r)} THEN {i}" for i, r in enumerate(rules))
        # everything that depends only on who and where (not on amounts) is decided up front, so
        # the strings and category flags are not carried through the window passes
        qy.add(f"(CASE {rule_idx} ELSE -1 END) AS rule_idx", *self.flags())

        def per_rule(expr_of, default="0") -> str:
            return "(CASE rule_idx " + " ".join(
                f"WHEN {i} THEN {expr_of(r)}" for i, r in enumerate(rules)) + f" ELSE {default} END)"

        pa_idx = [str(i) for i, r in enumerate(rules) if r.mode == "per_admission"]
        is_pa = f"rule_idx IN ({', '.join(pa_idx)})" if pa_idx else "FALSE"
        qy.add(
            f"({is_pa}) AS is_pa",
            per_rule(lambda r: str(adm_ids[r.adm_key]) if r.mode == "per_admission" else "NULL", "NULL") + " AS adm_grp",
            per_rule(lambda r: str(cap_ids[r.cap_key]), "NULL") + " AS cap_grp",
            per_rule(lambda r: (
                "(" + " OR ".join(f"starts_with(dise_codg, {q(d)})" for d in r.once_diseases) + ")"
                if r.mode == "per_admission" and r.once_diseases else "FALSE"), "FALSE") + " AS once_match",
            per_rule(lambda r: (
                f"(referral_from_level IS NOT NULL AND {self.in_list('referral_from_level', list(r.by_level))})"
                if r.rule.deductible.referral is not None and r.mode == "per_admission" else "FALSE"),
                "FALSE") + " AS is_referral",
        )
        # a rule index fixes whether the row is per admission, so (pk, rule_idx) partitions never mix
        qy.add_prior([("CASE WHEN is_pa THEN 1 ELSE 0 END", "prior_pa")], "pk, adm_grp", "is_pa")
        qy.add_prior([("CASE WHEN once_match THEN 1 ELSE 0 END", "n_once")], "pk, rule_idx", "once_match")
        qy.add_prior([("CASE WHEN is_pa THEN 0 ELSE inscp END", "base_before")], "pk, rule_idx", "NOT is_pa")
        qy.add("(n_once > 0) AS once_paid", "(is_referral AND prior_pa > 0) AS continues")
        qy.add_prior([("CASE WHEN is_pa AND NOT continues THEN 1 ELSE 0 END", "prior_new_adm")], "pk, adm_grp", "is_pa")
        qy.add("CASE WHEN is_pa THEN prior_new_adm + CASE WHEN continues THEN 0 ELSE 1 END ELSE 1 END AS adm_no")
        qy.add(per_rule(self.deductible) + " AS ded", per_rule(self.points_num) + " AS pts")
        uncapped = per_rule(lambda r: (
            self.rnd(self.basic_g(r, "inscp")) if r.mode == "per_admission" else
            f"({self.rnd(self.basic_g(r, '(base_before + inscp)'))} - {self.rnd(self.basic_g(r, 'base_before'))})"))
        dedc = per_rule(lambda r: (
            "LEAST(inscp, ded)" if r.mode == "per_admission"
            else "(LEAST(base_before + inscp, ded) - LEAST(base_before, ded))"))
        qy.add(f"{uncapped} AS u_basic", f"{dedc} AS act_pay_dedc")
        qy.add_prior([("u_basic", "cap_used")], "pk, cap_grp", "u_basic <> 0")  # no payment, no cap use
        hifp = per_rule(lambda r: (
            "u_basic" if r.annual_cap is None
            else f"(LEAST(cap_used + u_basic, {r.annual_cap}) - LEAST(cap_used, {r.annual_cap}))"))
        qy.add(f"{hifp} AS hifp_pay")
        qy.add("inscp - act_pay_dedc - u_basic AS b_co", "u_basic - hifp_pay AS b_oc", "act_pay_dedc AS b_dd",
               "pre AS b_pre", "overlmt AS b_ovl", "fulamt AS b_ful", "inscp - act_pay_dedc - u_basic AS pool_prop_selfpay")


        # --- tiers in pack order -----------------------------------------------------------
        pay_cols: dict[str, list[str]] = {f: [] for f in ("cvlserv_pay", "hifes_pay", "hifmi_pay", "hifob_pay", "maf_pay", "oth_pay")}
        for group in pass_groups(pack.tiers):
            self.add_bases(qy, group)
            for tier in group:
                self.add_tier(qy, tier)
                pay_cols[tier.pays_into].append(f"pay__{ident(tier.id)}")
        fund_total = " + ".join(["hifp_pay"] + [c for cols in pay_cols.values() for c in cols])
        qy.add(f"{fund_total} AS fund_before_guarantee")
        running = "fund_before_guarantee"
        for g in pack.guarantees:
            gid = ident(g.id)
            cond = f"gapp__{gid}"
            of = "(fulamt + overlmt + pre + inscp)" if g.of == "medfee_sumamt" else "inscp"
            num, den = g.share_parts
            target = f"((2 * {of} * {num} + {den}) // {2 * den})"
            total = " + ".join(self.cur[b] for b in BUCKETS)
            qy.add(f"CASE WHEN {cond} THEN LEAST(GREATEST(0, {target} - ({running})), {total}) ELSE 0 END AS pay__{gid}")
            self.draw(qy, f"pay__{gid}", BUCKETS, f"g_{gid}")
            pay_cols[g.pays_into].append(f"pay__{gid}")
            running = f"{running} + pay__{gid}"
        cols = [f"({' + '.join(v) if v else '0'}) AS {k}" for k, v in pay_cols.items()]
        qy.add(*cols)
        qy.add("(fulamt + overlmt + pre + inscp) AS medfee_sumamt",
               "hifp_pay + cvlserv_pay + hifes_pay + hifmi_pay + hifob_pay + maf_pay + oth_pay AS fund_pay_sumamt")
        if pack.account_insutypes:
            covered = " + ".join(self.cur[b] for b in pack.account_covers)
            acct = (f"CASE WHEN acct_ok AND acct_balance > 0 "
                    f"THEN LEAST(acct_balance, {covered}) ELSE 0 END")
        else:
            acct = "0"
        qy.add("medfee_sumamt - fund_pay_sumamt AS psn_part_amt", f"{acct} AS acct_pay")
        qy.add("psn_part_amt - acct_pay AS psn_cash_pay", "0 AS hosp_part_amt",
               "fulamt AS fulamt_ownpay_amt", "overlmt AS overlmt_selfpay", "pre AS preselfpay_amt",
               "inscp AS inscp_scp_amt",
               f"{self.cur['inscp_coshare']} + {self.cur['inscp_overcap']} + {self.cur['inscp_dedc']} AS inscp_psn_part",
               # each basic rule's payment, from the rule chosen for the row (not carried through the windows)
               *(f"CASE WHEN rule_idx = {i} THEN hifp_pay ELSE 0 END AS pay__{ident(r.id)}" for i, r in enumerate(rules)))
        outputs = outputs or self.output_columns()
        ids = ["psn_no", "mdtrt_id", "yr", "setl_time", "insutype", "med_type", "level"]
        passthrough = {"fulamt_ownpay_amt": "fulamt", "overlmt_selfpay": "overlmt", "preselfpay_amt": "pre",
                       "inscp_scp_amt": "inscp"}
        numeric = [c for c in outputs if c not in ids and c not in passthrough]
        head = (f"keyed AS (SELECT *, DENSE_RANK() OVER (ORDER BY psn_no, yr) AS pk, "
                f"ROW_NUMBER() OVER (ORDER BY psn_no, yr, setl_time, mdtrt_id) AS rn FROM {source}),\n")
        picked = ", ".join(f"k.{c}" if c in ids else f"k.{passthrough[c]} AS {c}" if c in passthrough else f"c.{c}"
                           for c in outputs)
        final = f"SELECT {picked} FROM {{last}} c JOIN keyed k ON k.rn = c.rn"
        sql = qy.sql(self.input_columns() + ["pk", "rn"], numeric + ["rn"], head, final)
        self.window_passes = qy.passes  # year-to-date passes the query runs, each over the last
        return sql

    def flags(self) -> list[str]:
        """Per-row flags: which tiers apply (exclusive groups resolved), their tilt, guarantees, account."""
        out = []
        seen: dict[str, list[str]] = {}
        for tier in self.pack.tiers:
            tid = ident(tier.id)
            cond = self.applies(tier.insutypes, tier.med_types, tier.categories)
            if tier.exclusive_group is not None:
                earlier = seen.setdefault(tier.exclusive_group, [])
                full = f"({cond})" + (f" AND NOT ({' OR '.join(earlier)})" if earlier else "")
                earlier.append(f"({cond})")
                cond = full
            tilts = " ".join(f"WHEN {self.any_cat(t.categories)} THEN {i + 1}" for i, t in enumerate(tier.tier.tilts))
            out.append(f"({cond}) AS app__{tid}")
            out.append(f"{f'(CASE {tilts} ELSE 0 END)' if tilts else '0'} AS var__{tid}")
        for g in self.pack.guarantees:
            out.append(f"({self.applies(g.insutypes, g.med_types, g.categories)}) AS gapp__{ident(g.id)}")
        insutypes = sorted(self.pack.account_insutypes)
        out.append(f"({self.in_list('insutype', insutypes) if insutypes else 'FALSE'}) AS acct_ok")
        return out

    def applies(self, insutypes, med_types, categories) -> str:
        cond = ["TRUE"]
        if insutypes is not None:
            cond.append(self.in_list("insutype", sorted(insutypes)))
        if med_types is not None:
            cond.append(self.in_list("med_type", sorted(med_types)))
        if categories is not None:
            cond.append(self.any_cat(sorted(categories)))
        return " AND ".join(cond)

    def add_bases(self, qy: Query, group: list[CompiledTier]) -> None:
        """Bases and their year-to-date sums for tiers that share one window pass.

        Tiers of a pass group never both apply to a row, so each sees the buckets as they were
        before the group: the one that applies is the only one that draws on that row.
        """
        bases = []
        for tier in group:
            tid = ident(tier.id)
            for p, buckets in enumerate(tier.part_buckets):
                total = " + ".join(self.cur[b] for b in buckets)
                bases.append(f"CASE WHEN app__{tid} THEN {total} ELSE 0 END AS base__{tid}_{p}")
        qy.add(*bases)
        names = [f"{ident(t.id)}_{p}" for t in group for p in range(len(t.part_buckets))]
        # a row with no base in this pass is paid nothing by it, whatever came before
        qy.add_prior([(f"base__{n}", f"cum__{n}") for n in names], "pk",
                     " OR ".join(f"base__{n} <> 0" for n in names))

    def add_tier(self, qy: Query, tier: CompiledTier) -> None:
        tid = ident(tier.id)

        def g_part(variant_idx: int, p: int, x: str) -> str:
            scale = tier._variants[variant_idx][0][p]
            bands = [(str(b.lower), None if b.upper is None else str(b.upper), str(self.num(b.rate)))
                     for b in scale.bands]
            return self.band_sum(x, bands)

        def by_variant(make) -> str:
            whens = " ".join(f"WHEN {v} THEN {make(v)}" for v in range(len(tier._variants)))
            return f"(CASE var__{tid} {whens} ELSE 0 END)"

        parts = range(len(tier.part_buckets))
        after = by_variant(lambda v: " + ".join(g_part(v, p, f"(cum__{tid}_{p} + base__{tid}_{p})") for p in parts))
        before = by_variant(lambda v: " + ".join(g_part(v, p, f"cum__{tid}_{p}") for p in parts))
        own = [by_variant(lambda v, p=p: f"{self.rnd(g_part(v, p, f'(cum__{tid}_{p} + base__{tid}_{p})'))}"
                                          f" - {self.rnd(g_part(v, p, f'cum__{tid}_{p}'))}") for p in parts]
        # with the person's variant fixed for the year, the uncapped increments telescope, so the
        # cap already used is round(G(cum before)) — no second window needed
        qy.add(f"{self.rnd(after)} - {self.rnd(before)} AS u__{tid}", f"{self.rnd(before)} AS capused__{tid}",
               *(f"{own[p]} AS own__{tid}_{p}" for p in parts))
        caps = {v: cap for v, (_, cap) in enumerate(tier._variants)}
        pay_by_var = " ".join(
            f"WHEN {v} THEN " + (f"u__{tid}" if cap is None else
                                 f"LEAST(capused__{tid} + u__{tid}, {cap}) - LEAST(capused__{tid}, {cap})")
            for v, cap in caps.items())
        qy.add(f"CASE WHEN app__{tid} THEN (CASE var__{tid} {pay_by_var} ELSE 0 END) ELSE 0 END AS pay__{tid}")
        if len(tier.part_buckets) == 1:
            self.draw(qy, f"pay__{tid}", tier.draw_order, f"d_{tid}")
            return
        remaining = f"pay__{tid}"
        for p, buckets in enumerate(tier.part_buckets):
            qy.add(f"LEAST(own__{tid}_{p}, {remaining}) AS take__{tid}_{p}")
            self.draw(qy, f"take__{tid}_{p}", buckets, f"d_{tid}_{p}")
            remaining = f"({remaining} - take__{tid}_{p})"
        qy.add(f"{remaining} AS rest__{tid}")
        self.draw(qy, f"rest__{tid}", tier.draw_order, f"d_{tid}_r")

    def draw(self, qy: Query, amount: str, buckets, prefix: str) -> None:
        """Take ``amount`` out of the bucket columns in proportion (see engine.draw).

        Products stay in BIGINT: both factors are at most a visit's total in fen, and batch input
        validation refuses visits above MAX_VISIT_FEN, so the product stays below 10^18.
        """
        cols = [self.cur[b] for b in buckets]
        total = " + ".join(cols)
        qy.add(*(f"CASE WHEN ({total}) = 0 THEN 0 ELSE ({c} * {amount}) // ({total}) END AS {prefix}_t{j}"
                 for j, c in enumerate(cols)))
        takes = " + ".join(f"{prefix}_t{j}" for j in range(len(cols)))
        qy.add(f"{amount} - ({takes}) AS {prefix}_r")
        # the remainder (fewer fen than buckets) goes a fen each to the first buckets with room
        room = [f"(CASE WHEN {c} > {prefix}_t{j} THEN 1 ELSE 0 END)" for j, c in enumerate(cols)]
        new = []
        for j, c in enumerate(cols):
            before = " + ".join(room[:j]) or "0"
            extra = f"(CASE WHEN {c} > {prefix}_t{j} AND ({before}) < {prefix}_r THEN 1 ELSE 0 END)"
            new.append(f"CAST({c} - {prefix}_t{j} - {extra} AS BIGINT) AS {prefix}_b{j}")
        qy.add(*new)
        for j, b in enumerate(buckets):
            self.cur[b] = f"{prefix}_b{j}"

