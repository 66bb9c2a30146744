"""A compiled pack lowered to flat integer arrays: the settlement program the batch kernel runs.

Everything the scalar engine reads from :class:`yibao.policy.compiled.CompiledPack` per visit —
deductibles by level and admission number, repeat and referral rules, waivers, ratio bands and
bonus points, caps, tiers with their parts, tilts and exclusive groups, guarantees, the personal
account — becomes numbers in NumPy arrays, rates as numerators over one pack-wide denominator
``den``. Accumulators become integer slots. The kernel (:mod:`yibao.batch.kernel`) interprets
these arrays; it has no other knowledge of the pack.

A pack the kernel cannot settle exactly is refused here, with a coded error, never settled
differently: more than 63 categories (KRN001), or a denominator so large that a year's amounts
could overflow 64-bit integers (KRN002).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from math import lcm

import numpy as np

from yibao.errors import Problem, YibaoError
from yibao.money import mul_rate, rate_parts, yuan_to_fen
from yibao.policy.compiled import CompiledPack, bands_of
from yibao.settlement.model import BUCKETS, TIER_FIELDS

MAX_YEAR_FEN = 1_000_000_000_000  # 10 亿元 a person-year: far beyond any real year, the overflow guard's bound
NONE = -1
REPEAT_MODES = {None: 0, "factor": 1, "schedule": 2, "step": 3}
REFERRAL_MODES = {"waive": 0, "full": 1, "difference": 2}
AGES = range(151)  # ages a person may have (the claims contract's 0–150): age points are tabled per age
OFFSITE = {"local": 0, "filed": 1, "unfiled": 2}  # the batch ``offsite`` column: 异地就医 status codes
BUCKET_INDEX = {b: i for i, b in enumerate(BUCKETS)}
PAY_FIELDS = TIER_FIELDS  # where tiers and guarantees pay into, by index


class KernelError(YibaoError):
    title = "政策包无法编译为批量结算程序"


@dataclass
class Program:
    """The arrays (see the module docstring); ``rule_ids`` name the pay columns in output order."""

    den: int
    levels: list[str]
    insutypes: list[str]
    med_types: list[str]  # the last index stands for any med_type the pack does not name
    categories: list[str]
    rule_ids: list[str]
    arrays: dict[str, np.ndarray]
    n_slots: int
    households: bool = False  # some tier has a household cap: visits come in household order (stream.ORDER_HH)
    combos: object = None  # the source's numbered code combinations (yibao.batch.stream.Combos), once known

    def level_index(self, code: str | None) -> int:
        return self.levels.index(code) if code in self.levels else NONE


def _bits(codes, index: dict[str, int]) -> int:
    mask = 0
    for c in codes:
        if c in index:
            mask |= 1 << index[c]
    return mask


def lower(pack: CompiledPack) -> Program:
    levels = list(pack.levels)
    lv = {code: i for i, code in enumerate(levels)}
    cats = list(pack.categories)
    if len(cats) > 63:
        raise KernelError(Problem("KRN001", "categories", f"人员类别 {len(cats)} 个, 批量结算程序最多支持 63 个"))
    cx = {c: i for i, c in enumerate(cats)}
    insutypes = sorted({r.rule.insutype for r in pack.basic} | {i for t in pack.tiers for i in (t.insutypes or ())}
                       | {i for g in pack.guarantees for i in (g.insutypes or ())} | set(pack.account_insutypes))
    ix = {c: i for i, c in enumerate(insutypes)}
    med_types = sorted({m for r in pack.basic for m in r.med_types} | {m for t in pack.tiers for m in (t.med_types or ())}
                       | {m for g in pack.guarantees for m in (g.med_types or ())})
    mx = {c: i for i, c in enumerate(med_types)}
    n_ins, n_med, L = len(insutypes) + 1, len(med_types) + 1, len(levels)  # + "not named by the pack"

    # one denominator for every rate the pack can produce (rates, points, tilts, shares)
    dens = [1]
    for r in pack.basic:
        for spec in r.rule.ratio_by_level.values():
            dens += [rate_parts(rate)[1] for _, rate in bands_of(spec, 0, Decimal(0), "absolute")]
        dens += [rate_parts(p / 100)[1] for p in [r.rule.retiree_points, *r.rule.category_points.values(),
                                                 *r.rule.offsite_points.values()]]
        if r.uses_age:
            dens += [rate_parts(abs(r.age_points(age)) / 100)[1] for age in AGES]
        dens += [rate_parts(abs(g.points) / 100)[1] for g in r.groups]
    for t in pack.tiers:
        for scales, _cap in t._variants:
            dens += [s.denominator for s in scales]
    dens += [g.share_parts[1] for g in pack.guarantees]
    den = lcm(*dens)
    # 退休人员个人负担 × X: a retiree's rate 1 − X(1 − a/den) is exact over den × X's denominator
    den = lcm(den, *(den * rate_parts(r.rule.retiree_share_factor)[1] for r in pack.basic
                     if r.rule.retiree_share_factor is not None))
    if den * MAX_YEAR_FEN * 4 >= 2**63:
        raise KernelError(Problem("KRN002", "ratio", f"比例的公分母 {den} 过大, 年度金额可能超出 64 位整数"))

    def num(rate: Decimal) -> int:
        n, d = rate_parts(rate)
        return n * (den // d)

    slots: dict[str, int] = {}

    def slot(key: str) -> int:
        return slots.setdefault(key, len(slots))

    # --- 基本医保 rules ----------------------------------------------------------------------
    R = len(pack.basic)
    K = max([len(bands_of(spec, 0, Decimal(0), r.rule.band_edges)) for r in pack.basic
             for spec in r.rule.ratio_by_level.values()] + [1])
    S = max([len(a) for r in pack.basic if r.schedule for a in r.schedule.values()] + [1])
    W = max([len(r.rule.deductible.waive) for r in pack.basic] + [1])
    GM = max([len(r.groups) for r in pack.basic] + [1])
    a = {
        "b_mode": np.zeros(R, np.int64), "b_ded": np.full((R, L), NONE, np.int64),
        "b_rep": np.zeros(R, np.int64), "b_rep_amt": np.zeros((R, L), np.int64),
        "b_sched": np.zeros((R, L, S), np.int64), "b_sched_len": np.zeros((R, L), np.int64),
        "b_step": np.zeros(R, np.int64), "b_floor": np.zeros(R, np.int64),
        "b_nwaive": np.zeros(R, np.int64), "b_waive_cats": np.zeros((R, W), np.int64),
        "b_waive_levels": np.zeros((R, W), np.int64),
        "b_has_ref": np.zeros(R, np.int64), "b_ref_up": np.zeros(R, np.int64), "b_ref_down": np.zeros(R, np.int64),
        "b_ret_pts": np.zeros(R, np.int64), "b_ret_fac": np.full(R, NONE, np.int64), "b_cat_has": np.zeros((R, max(1, len(cats))), np.int64),
        "b_cat_pts": np.zeros((R, max(1, len(cats))), np.int64),
        "b_off_pts": np.zeros((R, len(OFFSITE)), np.int64),
        "b_above": np.zeros(R, np.int64), "b_nb": np.zeros((R, L), np.int64),
        "b_up": np.full((R, L, K), NONE, np.int64), "b_rate": np.zeros((R, L, K), np.int64),
        "b_closing": np.zeros((R, L), np.int64),
        "b_cap": np.full(R, NONE, np.int64), "b_cap_slot": np.zeros(R, np.int64),
        "b_adm_slot": np.zeros(R, np.int64), "b_once_slot": np.zeros(R, np.int64),
        "b_base_slot": np.zeros(R, np.int64), "b_paid_slot": np.zeros(R, np.int64),
        "b_fix_on_std": np.zeros(R, np.int64),
        "b_has_age": np.zeros(R, np.int64), "b_age_pts": np.zeros((R, len(AGES)), np.int64),
        # population groups (一老一小): selectors, then the group's deductible, repeat amount, cap and points
        "b_ngroups": np.zeros(R, np.int64), "gr_has_cats": np.zeros((R, GM), np.int64),
        "gr_cats": np.zeros((R, GM), np.int64), "gr_from": np.full((R, GM), NONE, np.int64),
        "gr_to": np.full((R, GM), NONE, np.int64), "gr_ded": np.full((R, GM, L), NONE, np.int64),
        "gr_rep_amt": np.zeros((R, GM, L), np.int64), "gr_cap": np.full((R, GM), NONE, np.int64),
        "gr_pts": np.zeros((R, GM), np.int64),
    }
    for r_i, r in enumerate(pack.basic):
        rule, ded = r.rule, r.rule.deductible
        a["b_mode"][r_i] = 0 if r.mode == "per_admission" else 1
        rep = ded.repeat
        a["b_rep"][r_i] = REPEAT_MODES[None if rep is None else rep.mode]
        if rep is not None and rep.mode == "step":
            a["b_step"][r_i] = yuan_to_fen(rep.step)
            a["b_floor"][r_i] = yuan_to_fen(rep.floor) if rep.floor is not None else 0
        for code, first in r.by_level.items():
            l_i = lv[code]
            a["b_ded"][r_i, l_i] = first
            if rep is not None and rep.mode == "factor":
                a["b_rep_amt"][r_i, l_i] = mul_rate(first, rep.factor)
            if r.schedule is not None:
                amounts = r.schedule[code]
                a["b_sched"][r_i, l_i, :len(amounts)] = amounts
                a["b_sched_len"][r_i, l_i] = len(amounts)
            listed = bands_of(rule.ratio_by_level[code], 0, Decimal(0), rule.band_edges)
            a["b_nb"][r_i, l_i] = len(listed)
            spec = rule.ratio_by_level[code]
            a["b_closing"][r_i, l_i] = int(isinstance(spec, list) and spec[-1].upto is not None)
            for k, (upper, rate) in enumerate(listed):
                a["b_up"][r_i, l_i, k] = NONE if upper is None else upper
                a["b_rate"][r_i, l_i, k] = num(rate)
        a["b_nwaive"][r_i] = len(ded.waive)
        for w_i, w in enumerate(ded.waive):
            a["b_waive_cats"][r_i, w_i] = _bits(w.categories, cx)
            a["b_waive_levels"][r_i, w_i] = (1 << L) - 1 if w.levels is None else _bits(w.levels, lv)
        if ded.referral is not None:
            a["b_has_ref"][r_i] = 1
            a["b_ref_up"][r_i] = REFERRAL_MODES[ded.referral.upward]
            a["b_ref_down"][r_i] = REFERRAL_MODES[ded.referral.same_or_downward]
        a["b_ret_pts"][r_i] = num(rule.retiree_points / 100)
        if rule.retiree_share_factor is not None:  # X × den: exact, den holds X's denominator
            a["b_ret_fac"][r_i] = num(rule.retiree_share_factor)
        for c, p in rule.category_points.items():
            a["b_cat_has"][r_i, cx[c]] = 1
            a["b_cat_pts"][r_i, cx[c]] = num(p / 100) if p >= 0 else -num(-p / 100)
        for status, p in rule.offsite_points.items():
            a["b_off_pts"][r_i, OFFSITE[status]] = num(p / 100) if p >= 0 else -num(-p / 100)
        a["b_above"][r_i] = int(rule.band_edges == "above_deductible")
        a["b_cap"][r_i] = NONE if r.annual_cap is None else r.annual_cap
        a["b_cap_slot"][r_i] = slot(r.cap_key)
        a["b_adm_slot"][r_i] = slot(r.adm_key)
        a["b_once_slot"][r_i] = slot(r.once_key)
        a["b_base_slot"][r_i] = slot(r.base_key)
        a["b_paid_slot"][r_i] = slot(r.paid_key)
        a["b_fix_on_std"][r_i] = int(r.fixed_on_standard)  # the standards themselves arrive per visit (fixstd)
        a["b_has_age"][r_i] = int(r.needs_age)  # age points or a group chosen by age: a known age is required
        a["b_ngroups"][r_i] = len(r.groups)
        for g_i, g in enumerate(r.groups):
            a["gr_has_cats"][r_i, g_i] = int(g.categories is not None)
            a["gr_cats"][r_i, g_i] = _bits(g.categories or (), cx)
            a["gr_from"][r_i, g_i] = NONE if g.from_age is None else g.from_age
            a["gr_to"][r_i, g_i] = NONE if g.to_age is None else g.to_age
            for code in r.by_level:
                a["gr_ded"][r_i, g_i, lv[code]] = r.first_of(code, g)
                if rep is not None and rep.mode == "factor":
                    a["gr_rep_amt"][r_i, g_i, lv[code]] = r.first_deductible(code, 2, g)
            cap = r.cap(g)
            a["gr_cap"][r_i, g_i] = NONE if cap is None else cap
            a["gr_pts"][r_i, g_i] = num(g.points / 100) if g.points >= 0 else -num(-g.points / 100)
        if r.uses_age:  # the points of every age, from the rule's own function (one definition)
            for age in AGES:
                p = r.age_points(age)
                a["b_age_pts"][r_i, age] = num(p / 100) if p >= 0 else -num(-p / 100)

    # --- cumulative tiers ----------------------------------------------------------------------
    T = len(pack.tiers)
    P = max([len(t.part_buckets) for t in pack.tiers] + [1])
    V = max([len(t._variants) for t in pack.tiers] + [1])
    KB = max([len(s.bands) for t in pack.tiers for scales, _ in t._variants for s in scales] + [1])
    groups: dict[str, int] = {}
    a.update({
        "t_ins_ok": np.zeros((max(T, 1), n_ins), np.int64), "t_med_ok": np.zeros((max(T, 1), n_med), np.int64),
        "t_per_adm": np.zeros(max(T, 1), np.int64),
        "t_has_cats": np.zeros(max(T, 1), np.int64), "t_cats": np.zeros(max(T, 1), np.int64),
        "t_group": np.full(max(T, 1), NONE, np.int64), "t_nparts": np.zeros(max(T, 1), np.int64),
        "t_part_len": np.zeros((max(T, 1), P), np.int64), "t_part_order": np.zeros((max(T, 1), P, 6), np.int64),
        "t_draw_len": np.zeros(max(T, 1), np.int64), "t_draw": np.zeros((max(T, 1), 6), np.int64),
        "t_ntilts": np.zeros(max(T, 1), np.int64), "t_tilt_cats": np.zeros((max(T, 1), max(V - 1, 1)), np.int64),
        "t_nb": np.zeros((max(T, 1), V, P), np.int64), "t_lo": np.zeros((max(T, 1), V, P, KB), np.int64),
        "t_up": np.full((max(T, 1), V, P, KB), NONE, np.int64), "t_rate": np.zeros((max(T, 1), V, P, KB), np.int64),
        "t_cap": np.full((max(T, 1), V), NONE, np.int64),
        "t_base_slot": np.zeros((max(T, 1), P), np.int64), "t_cap_slot": np.zeros(max(T, 1), np.int64),
        "t_paid_slot": np.zeros(max(T, 1), np.int64), "t_pays_into": np.zeros(max(T, 1), np.int64),
        "t_hcap": np.full(max(T, 1), NONE, np.int64),  # 家庭年度限额 (fen); its running sum is the tier's household slot
    })
    for t_i, t in enumerate(pack.tiers):
        for code, i in ix.items():
            a["t_ins_ok"][t_i, i] = int(t.insutypes is None or code in t.insutypes)
        a["t_ins_ok"][t_i, n_ins - 1] = int(t.insutypes is None)
        for code, i in mx.items():
            a["t_med_ok"][t_i, i] = int(t.med_types is None or code in t.med_types)
        a["t_med_ok"][t_i, n_med - 1] = int(t.med_types is None)
        a["t_per_adm"][t_i] = int(t.per_admission)
        a["t_has_cats"][t_i] = int(t.categories is not None)
        a["t_cats"][t_i] = _bits(t.categories or (), cx)
        if t.exclusive_group is not None:
            a["t_group"][t_i] = groups.setdefault(t.exclusive_group, len(groups))
        a["t_nparts"][t_i] = len(t.part_buckets)
        for p_i, part in enumerate(t.part_buckets):
            a["t_part_len"][t_i, p_i] = len(part)
            a["t_part_order"][t_i, p_i, :len(part)] = [BUCKET_INDEX[b] for b in part]
            a["t_base_slot"][t_i, p_i] = slot(t.base_keys[p_i])
        a["t_draw_len"][t_i] = len(t.draw_order)
        a["t_draw"][t_i, :len(t.draw_order)] = [BUCKET_INDEX[b] for b in t.draw_order]
        a["t_ntilts"][t_i] = len(t.tier.tilts)
        for k, tilt in enumerate(t.tier.tilts):
            a["t_tilt_cats"][t_i, k] = _bits(tilt.categories, cx)
        for v_i, (scales, cap) in enumerate(t._variants):
            a["t_cap"][t_i, v_i] = NONE if cap is None else cap
            for p_i, s in enumerate(scales):
                a["t_nb"][t_i, v_i, p_i] = len(s.bands)
                for k, band in enumerate(s.bands):
                    a["t_lo"][t_i, v_i, p_i, k] = band.lower
                    a["t_up"][t_i, v_i, p_i, k] = NONE if band.upper is None else band.upper
                    a["t_rate"][t_i, v_i, p_i, k] = num(band.rate)
        a["t_cap_slot"][t_i] = slot(t.cap_key)
        a["t_paid_slot"][t_i] = slot(t.paid_key)
        a["t_pays_into"][t_i] = PAY_FIELDS.index(t.pays_into)
        a["t_hcap"][t_i] = NONE if t.household_cap is None else t.household_cap

    # --- guarantees and the personal account ----------------------------------------------------
    G = len(pack.guarantees)
    a.update({
        "g_ins_ok": np.zeros((max(G, 1), n_ins), np.int64), "g_med_ok": np.zeros((max(G, 1), n_med), np.int64),
        "g_cats": np.zeros(max(G, 1), np.int64), "g_of": np.zeros(max(G, 1), np.int64),
        "g_num": np.zeros(max(G, 1), np.int64), "g_den": np.ones(max(G, 1), np.int64),
        "g_pays_into": np.zeros(max(G, 1), np.int64),
    })
    for g_i, g in enumerate(pack.guarantees):
        for code, i in ix.items():
            a["g_ins_ok"][g_i, i] = int(g.insutypes is None or code in g.insutypes)
        a["g_ins_ok"][g_i, n_ins - 1] = int(g.insutypes is None)
        for code, i in mx.items():
            a["g_med_ok"][g_i, i] = int(g.med_types is None or code in g.med_types)
        a["g_med_ok"][g_i, n_med - 1] = int(g.med_types is None)
        a["g_cats"][g_i] = _bits(g.categories, cx)
        a["g_of"][g_i] = int(g.of != "medfee_sumamt")
        a["g_num"][g_i], a["g_den"][g_i] = g.share_parts
        a["g_pays_into"][g_i] = PAY_FIELDS.index(g.pays_into)
    a["acct_ins_ok"] = np.array([int(c in pack.account_insutypes) for c in insutypes] + [0], np.int64)
    a["acct_cover"] = np.array([int(b in pack.account_covers) for b in BUCKETS], np.int64)
    a["sizes"] = np.array([R, T, G, len(slots), L], np.int64)
    rule_ids = [r.id for r in pack.basic] + [t.id for t in pack.tiers] + [g.id for g in pack.guarantees]
    return Program(den, levels, insutypes, med_types, cats, rule_ids, a, len(slots), pack.uses_households)


def visit_codes(program: Program, insutype: np.ndarray, med_type: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Insutype and med_type codes as the program's indices (the last index: not named by the pack)."""
    def index(values, names):
        lookup = {n: i for i, n in enumerate(names)}
        return np.array([lookup.get(v, len(names)) for v in values], np.int64)
    return index(insutype, program.insutypes), index(med_type, program.med_types)


def offsite_codes(statuses) -> np.ndarray:
    """``offsite_status`` values (local / filed / unfiled; missing = local) → the kernel's codes."""
    return np.array([OFFSITE[s or "local"] for s in statuses], np.int64)


def category_masks(program: Program, categories) -> np.ndarray:
    """Lists of category codes → int64 bitmasks in the program's order."""
    cx = {c: i for i, c in enumerate(program.categories)}
    return np.array([_bits(cs or (), cx) for cs in categories], np.int64)
