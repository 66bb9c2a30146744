"""Property tests of the scalar engine over random packs and random years of visits.

The oracle is an independent reference written here with :class:`fractions.Fraction`, straight
from the pack *data* (not from :mod:`yibao.policy.compiled`): deductibles, band edges, points,
tilts and caps are re-derived, every F is evaluated exactly and rounded half-up only at the
end, and money flows through the same six buckets the design describes (DESIGN.md §5).
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from dataclasses import replace
from datetime import date
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import assume, given, note, settings
from hypothesis import strategies as st

from yibao.errors import SettlementError
from yibao.policy.compiled import CompiledPack
from yibao.policy.loader import pack_from_data
from yibao.settlement.classify import classify_items
from yibao.settlement.engine import reverse, reverse_household, settle_year
from yibao.settlement.model import Accumulators, ClassifiedAmounts, Person, Settlement, Visit

try:  # tests/ is on sys.path when it is not a package (pytest's default "prepend" mode)
    from strategies import ALIASES, BASE_BUCKETS, SETL_FIELDS, YEAR, Scenario, first_rule, scenarios
except ImportError:  # pragma: no cover - tests/ turned into a package
    from tests.strategies import ALIASES, BASE_BUCKETS, SETL_FIELDS, YEAR, Scenario, first_rule, scenarios

FUND_FIELDS = ("hifp_pay",) + SETL_FIELDS
# YIBAO_PROPERTY_SCALE=20 runs twenty times the examples (a deeper, slower search than CI's)
SCALE = float(os.environ.get("YIBAO_PROPERTY_SCALE", "1"))


HALF = Fraction(1, 2)


def n(examples: int) -> int:
    return max(1, int(examples * SCALE))


# === the reference ==========================================================================

def rhu(value: Fraction) -> int:
    """Round half-up to the fen (values are never negative)."""
    assert value >= 0
    return math.floor(value + HALF)


def fen(yuan) -> int:
    value = Fraction(yuan) * 100
    assert value.denominator == 1
    return int(value)


def expand(names) -> list[str]:
    out: list[str] = []
    for name in names:
        for b in ALIASES.get(name, (name,)):
            if b not in out:
                out.append(b)
    return out


def scale_value(spec, ded: int, pts, edges: str, x: int, factor=None) -> Fraction:
    """F(x) of a flat ratio or band list above deductible ``ded``, ratios raised by ``pts`` points.

    Band k pays its rate on |[e_{k-1}, e_k) ∩ [ded, x)|, with e_0 = 0 and e_k its ``upto`` in fen
    (plus ``ded`` when edges sit above the deductible); past the last closed edge nothing is paid.
    """
    bump = Fraction(pts) / 100

    def rate(r) -> Fraction:
        r = min(Fraction(1), max(Fraction(0), Fraction(r) + bump))
        if factor is None:  # 退休人员个人负担为在职的 X 倍: 1 − X(1 − r)
            return r
        return min(Fraction(1), max(Fraction(0), 1 - Fraction(factor) * (1 - r)))

    bands = [(None, rate(spec))] if not isinstance(spec, list) else [
        (None if "upto" not in b or b["upto"] is None else fen(b["upto"]) + (ded if edges == "above_deductible" else 0),
         rate(b["ratio"]))
        for b in spec
    ]
    total, prev = Fraction(0), 0
    for upper, r in bands:
        lo = max(prev, ded)
        hi = x if upper is None else min(x, upper)
        if hi > lo:
            total += r * (hi - lo)
        if upper is None:
            break
        prev = upper
    return total


def ref_basic_deductible(rule: dict, level_order: list[str], level: str, n: int, cats, referral, once_paid: bool, dise: str):
    ded = rule["deductible"]

    def nth(lv: str) -> int:
        first = fen(ded["by_level"][lv])
        rep = ded.get("repeat")
        if rep is None or n <= 1 or rule["mode"] == "annual":
            return first
        if rep["mode"] == "factor":
            return rhu(first * Fraction(rep["factor"]))
        if rep["mode"] == "schedule":
            seq = rep["schedule"][lv]
            return fen(seq[min(n, len(seq)) - 1])
        return max(fen(rep.get("floor") or 0), first - fen(rep["step"]) * (n - 1))

    for w in ded.get("waive", []):
        if set(w["categories"]) & cats and (w.get("levels") is None or level in w["levels"]):
            return 0
    once = tuple(ded.get("once_a_year_diseases", []))
    if once and dise.startswith(once) and once_paid:
        return 0
    if referral is not None and ded.get("referral") is not None and referral in ded["by_level"]:
        upward = level_order.index(level) > level_order.index(referral)
        mode = ded["referral"]["upward" if upward else "same_or_downward"]
        if mode == "waive":
            return 0
        if mode == "difference":
            return max(0, nth(level) - nth(referral))
    return nth(level)


def ref_points(rule: dict, retiree: bool, cats, age: int | None = None) -> Fraction:
    pts = Fraction(rule.get("retiree_points", 0)) if retiree else Fraction(0)
    cat = [Fraction(p) for c, p in rule.get("category_points", {}).items() if c in cats]
    spec = rule.get("age_points")
    if isinstance(spec, list):  # the band whose [from_age, to_age] holds the age
        pts += next(Fraction(b["points"]) for b in spec if b["from_age"] <= age and age <= b.get("to_age", 999))
    elif spec is not None:
        years = Fraction(spec["per_year"]) * max(0, age - spec.get("from_age", 0))
        pts += years if spec.get("max_points") is None else min(years, Fraction(spec["max_points"]))
    return pts + (max(cat) if cat else 0)


def ref_tier_parts(data: dict, tier: dict, cats):
    """([F_part], annual cap in fen or None, tilt index) of a tier for a person with ``cats``.

    The tilt is the first whose categories the person has: it scales each part's deductible
    (rounded to the fen after the income share is), raises its ratios and replaces the cap.
    """
    tilt_idx = next((i for i, t in enumerate(tier.get("tilts", [])) if set(t["categories"]) & cats), None)
    tilt = None if tilt_idx is None else tier["tilts"][tilt_idx]
    income = fen(data["reference"]["per_capita_disposable_income"])
    fns = []
    for part in tier["parts"]:
        d = part.get("deductible", 0)
        ded = rhu(income * Fraction(d["income_share"])) if isinstance(d, dict) else fen(d)
        pts = 0
        if tilt is not None:
            ded = rhu(ded * Fraction(tilt.get("deductible_factor", 1)))
            pts = tilt.get("ratio_points", 0)
        fns.append(lambda x, spec=part["ratio"], ded=ded, pts=pts, edges=part.get("band_edges", "absolute"):
                   scale_value(spec, ded, pts, edges, x))
    cap = tier.get("annual_cap")
    if tilt is not None:
        if tilt.get("remove_cap"):
            cap = None
        elif tilt.get("annual_cap") is not None:
            cap = tilt["annual_cap"]
    return fns, None if cap is None else fen(cap), tilt_idx


def ref_tier_function(data: dict, tier: dict, cats):
    """(F, tilt index) with F(cumulative part bases) = min(cap, Σ F_part), exact (DESIGN.md §5)."""
    fns, cap, tilt_idx = ref_tier_parts(data, tier, cats)

    def F(cums) -> Fraction:
        total = sum((f(c) for f, c in zip(fns, cums)), Fraction(0))
        return total if cap is None else min(total, Fraction(cap))

    return F, tilt_idx


def ref_classify(data: dict, items) -> ClassifiedAmounts:
    classes = data["classification"]["classes"]
    catalog = {e["med_list_codg"]: e for e in data["classification"]["catalog"]}
    fulamt = overlmt = pre = inscp = full = 0
    for item in items:
        entry = catalog.get(item.med_list_codg)
        if item.chrgitm_lv is not None and (entry is None or entry["chrgitm_lv"] != item.chrgitm_lv):
            cls = classes[item.chrgitm_lv]  # the line's own class, the catalog's price cap
            share = cls.get("preselfpay_ratio", 0)
        else:
            cls = classes[entry["chrgitm_lv"]]
            share = entry["preselfpay_ratio"] if entry.get("preselfpay_ratio") is not None else cls.get("preselfpay_ratio", 0)
        cap = None if entry is None or entry.get("price_cap") is None else fen(entry["price_cap"])
        if item.preselfpay_ratio is not None:
            share = item.preselfpay_ratio
        fee = item.det_item_fee_sumamt
        if not cls["in_scope"]:
            fulamt += fee
            continue
        if cap is not None and fee > rhu(cap * Fraction(item.cnt)):
            limit = rhu(cap * Fraction(item.cnt))
            overlmt += fee - limit
            fee = limit
        own = rhu(fee * Fraction(share))
        pre += own
        inscp += fee - own
        if cls.get("coshare", True) is False:  # shape 4: this class's in-scope part is paid in full
            full += fee - own
    return ClassifiedAmounts(fulamt, overlmt, pre, inscp, full)


def ref_group(rule: dict, cats, age) -> dict:
    """The rule as the person's population group sees it: the first group whose categories (any) and age range
    hold replaces the deductible by level and the annual cap (when it states them) and adds its points."""
    for g in rule.get("groups", []):
        if g.get("categories") is not None and not set(g["categories"]) & set(cats):
            continue
        if g.get("from_age") is not None and age < g["from_age"]:
            continue
        if g.get("to_age") is not None and age > g["to_age"]:
            continue
        out = {**rule, "group_points": g.get("ratio_points", 0)}
        if g.get("deductible") is not None:
            out["deductible"] = {**rule["deductible"], "by_level": g["deductible"]}
        if g.get("annual_cap") is not None:
            out["annual_cap"] = g["annual_cap"]
        return out
    return rule


def take(buckets: dict, order, amount: int) -> None:
    """Draw ``amount`` from ``buckets`` in proportion to what each holds (floored to the fen),
    the remaining fen one at a time in ``order`` to buckets that still hold more than was taken."""
    order = list(order)
    total = sum(buckets[b] for b in order)
    assert 0 <= amount <= total, "a tier paid more than its base"
    if amount == 0:
        return
    takes = {b: math.floor(Fraction(buckets[b] * amount, total)) for b in order}
    rest = amount - sum(takes.values())
    for b in order:
        if rest and buckets[b] > takes[b]:
            takes[b] += 1
            rest -= 1
    assert rest == 0
    for b in order:
        buckets[b] -= takes[b]


def take_parts(buckets: dict, parts: list[list[str]], own: list[int], pay: int) -> None:
    """A tier of several parts: each part gives its own rounded increment from its own buckets, in
    part order, while the (maybe capped) payment lasts; a rounding remainder comes from all of them."""
    if len(parts) == 1:
        take(buckets, parts[0], pay)
        return
    remaining = pay
    for names, amount in zip(parts, own):
        t = min(amount, remaining)
        take(buckets, names, t)
        remaining -= t
    take(buckets, [b for names in parts for b in names], remaining)


def reference_year(data: dict, person, visits) -> list[dict]:
    """Settle a year of visits from the pack data alone; one dict of setlinfo fields per visit.

    Caps bound the running sum of the rounded uncapped amounts (``min(used + x, cap) − min(used,
    cap)``), which for one F per year is DESIGN's ``round(F(cum + base)) − round(F(cum))`` with F
    capped; a 医共体 referral (the rule has a referral section, the referring level is one of the
    rule's) continues the referring admission: same admission number, no new count.
    """
    cats = set(person.categories)
    levels = list(data["levels"])
    state: dict = defaultdict(int)
    out = []
    for v in visits:
        fixed = None
        hosp = 0
        a = v.amounts if v.items is None else ref_classify(data, v.items)
        medfee = a.fulamt_ownpay_amt + a.overlmt_selfpay + a.preselfpay_amt + a.inscp_scp_amt
        inscp = a.inscp_scp_amt
        full = a.inscp_full  # paid 100% by the basic fund: outside the deductible and the ratio, inside the cap
        rule = ref_group(first_rule(data, person.insutype, v.med_type, v.dise_codg, v.level), cats, person.age)
        spec = rule["ratio_by_level"][v.level]
        pts = ref_points(rule, person.retiree, cats, person.age) + Fraction(rule.get("group_points", 0))
        fac = rule.get("retiree_share_factor") if person.retiree else None
        edges = rule.get("band_edges", "absolute")
        if rule["mode"] == "per_admission":
            adm = "adm:" + rule.get("admission_group", "inpatient")
            oncek = "once:" + rule["id"]
            once_match = any(v.dise_codg.startswith(p) for p in rule["deductible"].get("once_a_year_diseases", []))
            referral = (v.referral_from_level is not None and rule["deductible"].get("referral") is not None
                        and v.referral_from_level in rule["deductible"]["by_level"])
            continues = referral and state[adm] > 0
            n = state[adm] if continues else state[adm] + 1
            ded = ref_basic_deductible(rule, levels, v.level, n, cats, v.referral_from_level,
                                       state[oncek] > 0, v.dise_codg)
            unc = rhu(scale_value(spec, ded, pts, edges, inscp - full, fac)) + full
            dedc = min(inscp - full, ded)
            fixed = rule.get("fixed_standard")
            if fixed is not None:  # 单病种定额: the bill up to the standard, the excess the institution's
                prefix = max((d for d in fixed["standards"] if v.dise_codg.startswith(d)), key=len)
                std = fen(fixed["standards"][prefix][v.level])
                hosp = max(0, medfee - std)
                settled = medfee - hosp
                unc = rhu(scale_value(spec, 0, pts, edges, settled, fac))
                if fixed.get("below_standard") == "standard" and medfee < std:
                    unc = min(settled, rhu(scale_value(spec, 0, pts, edges, std, fac)))
                dedc = 0
            state[adm] += 0 if continues else 1
            state[oncek] += once_match
        else:
            ded = ref_basic_deductible(rule, levels, v.level, 1, cats, None, False, v.dise_codg)
            key = "base:" + rule["id"]
            cum = state[key]
            shared = inscp - full
            unc = rhu(scale_value(spec, ded, pts, edges, cum + shared, fac)) - rhu(scale_value(spec, ded, pts, edges, cum, fac)) + full
            dedc = min(cum + shared, ded) - min(cum, ded)
            state[key] += shared
        cap = None if rule.get("annual_cap") is None else fen(rule["annual_cap"])
        capk = "cap:" + (rule.get("cap_group") or rule["id"])
        used = state[capk]
        hifp = unc if cap is None else min(used + unc, cap) - min(used, cap)
        state[capk] += unc
        coshare = (inscp if fixed is None else settled) - dedc - unc
        buckets = {"inscp_coshare": coshare, "inscp_overcap": unc - hifp, "inscp_dedc": dedc,
                   "preselfpay": a.preselfpay_amt, "overlmt_selfpay": a.overlmt_selfpay, "fulamt_ownpay": a.fulamt_ownpay_amt}
        if fixed is not None:  # nothing outside the policy under a standard
            buckets.update(preselfpay=0, overlmt_selfpay=0, fulamt_ownpay=0)
        paid = dict.fromkeys(SETL_FIELDS, 0)
        fund = hifp
        groups: set = set()
        for tier in data["tiers"]:
            if tier.get("insutypes") is not None and person.insutype not in tier["insutypes"]:
                continue
            if tier.get("med_types") is not None and v.med_type not in tier["med_types"]:
                continue
            if tier.get("categories") is not None and not set(tier["categories"]) & cats:
                continue
            if tier.get("exclusive_group") is not None:
                if tier["exclusive_group"] in groups:
                    continue
                groups.add(tier["exclusive_group"])
            fns, cap, _ = ref_tier_parts(data, tier, cats)
            keys = [f"base:{tier['id']}:{j}" for j in range(len(tier["parts"]))]
            part_buckets = [expand(p["base"]) for p in tier["parts"]]
            bases = [sum(buckets[b] for b in names) for names in part_buckets]
            # threshold_basis per_admission (倾斜救助): each admission measured on its own
            before = [0] * len(keys) if tier.get("threshold_basis") == "per_admission" else [state[k] for k in keys]
            after = [c + b for c, b in zip(before, bases)]
            t_unc = rhu(sum(f(x) for f, x in zip(fns, after))) - rhu(sum(f(x) for f, x in zip(fns, before)))
            used = state[f"cap:{tier['id']}"]
            pay = t_unc if cap is None else min(used + t_unc, cap) - min(used, cap)
            if tier.get("household_cap") is not None:  # one person, a household of one: their own running sum
                hcap, hused = fen(tier["household_cap"]), state[f"household:{tier['id']}"]
                state[f"household:{tier['id']}"] += pay
                pay = min(hused + pay, hcap) - min(hused, hcap)
            own = [rhu(f(x1)) - rhu(f(x0)) for f, x0, x1 in zip(fns, before, after)]
            take_parts(buckets, part_buckets, own, pay)
            for k, b in zip(keys, bases):
                state[k] += b
            state[f"cap:{tier['id']}"] += t_unc
            paid[tier["pays_into"]] += pay
            fund += pay
        for g in data.get("guarantees", []):
            if g.get("insutypes") is not None and person.insutype not in g["insutypes"]:
                continue
            if g.get("med_types") is not None and v.med_type not in g["med_types"]:
                continue
            if not set(g["categories"]) & cats:
                continue
            of = medfee if g.get("of", "medfee_sumamt") == "medfee_sumamt" else inscp
            if fixed is not None:
                of = settled
            top = min(max(0, rhu(of * Fraction(g["share"])) - fund), sum(buckets.values()))
            take(buckets, BASE_BUCKETS, top)
            paid[g["pays_into"]] += top
            fund += top
        acct_cfg = data.get("personal_account")
        acct = 0
        if acct_cfg and person.insutype in acct_cfg["insutypes"] and v.acct_balance > 0:
            acct = min(v.acct_balance, sum(buckets[b] for b in expand(acct_cfg["covers"])))
        out.append({
            "medfee_sumamt": medfee, "fulamt_ownpay_amt": a.fulamt_ownpay_amt, "overlmt_selfpay": a.overlmt_selfpay,
            "preselfpay_amt": a.preselfpay_amt, "inscp_scp_amt": inscp, "act_pay_dedc": dedc, "hifp_pay": hifp,
            "pool_prop_selfpay": coshare, **paid, "fund_pay_sumamt": fund, "psn_part_amt": medfee - fund - hosp,
            "acct_pay": acct, "psn_cash_pay": medfee - fund - hosp - acct, "hosp_part_amt": hosp,
        })
    return out


# === helpers ================================================================================

def run_year(s: Scenario, visits=None) -> list[Settlement]:
    return settle_year(s.compiled, s.person, s.visits if visits is None else visits, Accumulators(YEAR))


PLAIN = (int, str, bool, type(None), Fraction, Decimal)


def comparable(r: Settlement) -> tuple:
    """Everything a settlement says, with step facts limited to plain values (numbers, codes,
    lists of them): objects such as compiled scales compare by identity, not by value."""
    def plain(v):
        if isinstance(v, (list, tuple)):
            return all(plain(x) for x in v)
        return isinstance(v, PLAIN)
    steps = tuple((x.kind, x.rule_id, {k: v for k, v in x.facts.items() if plain(v)}) for x in r.steps)
    return (r.psn_no, r.mdtrt_id, r.pack_id, r.pack_version, r.setlinfo, r.setldetail, steps,
            r.accumulators_before, r.accumulators_after, dict(r.delta))


def describe(s: Scenario) -> None:
    note(f"pack data: {s.data!r}")
    note(f"person: {s.person!r}")


# === properties =============================================================================

@settings(max_examples=n(150))
@given(scenarios(items=None))
def test_settlement_invariants(s: Scenario):
    """Every amount ≥ 0 and the platform's sums hold on every settlement."""
    describe(s)
    for r in run_year(s):
        i = r.setlinfo
        d = i.as_dict()
        assert all(v >= 0 for v in d.values()), d
        assert i.fund_pay_sumamt == sum(d[f] for f in FUND_FIELDS) == sum(x.fund_payamt for x in r.setldetail)
        assert all(x.fund_payamt > 0 for x in r.setldetail)
        for f in FUND_FIELDS:
            assert d[f] == sum(x.fund_payamt for x in r.setldetail if x.setl_field == f)
        assert i.medfee_sumamt == i.fund_pay_sumamt + i.psn_part_amt + i.hosp_part_amt
        assert i.psn_part_amt == i.acct_pay + i.psn_cash_pay
        assert i.medfee_sumamt == i.fulamt_ownpay_amt + i.overlmt_selfpay + i.preselfpay_amt + i.inscp_scp_amt
        basic = next(st for st in r.steps if st.kind == "basic")
        if basic.facts["mode"] == "fixed_standard":  # 单病种定额: the settled bill, no deductible
            assert i.hosp_part_amt == max(0, i.medfee_sumamt - basic.facts["standard"])
            assert i.act_pay_dedc == 0 and i.pool_prop_selfpay + i.hifp_pay <= basic.facts["settled"]
        else:
            assert i.hosp_part_amt == 0
            assert i.act_pay_dedc + i.pool_prop_selfpay + i.hifp_pay <= i.inscp_scp_amt
        assert i.acct_pay <= r.steps[-1].facts["psn_part_amt"]
        if i.acct_pay:
            assert i.acct_pay <= next(st.facts["balance"] for st in r.steps if st.kind == "account")
        remaining = i.medfee_sumamt - i.hosp_part_amt - i.hifp_pay
        for step in r.steps:  # no tier pays more than its base, nor more than is left
            if step.kind == "tier":
                assert 0 <= step.facts["pay"] <= sum(step.facts["bases"])
                assert all(b >= 0 for b in step.facts["bases"])
                assert step.facts["pay"] <= remaining
                remaining -= step.facts["pay"]
            elif step.kind == "guarantee":
                assert 0 <= step.facts["pay"] <= remaining
                remaining -= step.facts["pay"]
            elif step.kind == "basic":
                assert step.facts["hifp_pay"] <= step.facts.get("settled", step.facts["inscp"])
        assert remaining == i.psn_part_amt


@settings(max_examples=n(150))
@given(scenarios(items=None))
def test_engine_matches_fraction_reference(s: Scenario):
    """Every setlinfo field of every visit equals the independent Fraction reference."""
    describe(s)
    got = [r.setlinfo.as_dict() for r in run_year(s)]
    want = reference_year(s.data, s.person, s.visits)
    for k, (g, w) in enumerate(zip(got, want)):
        diff = {f: (g[f], w[f]) for f in w if g[f] != w[f]}
        assert not diff, f"visit {k} ({s.visits[k]}): engine vs reference {diff}"


@settings(max_examples=n(100))
@given(scenarios(items=None))
def test_accumulators_are_sum_of_deltas(s: Scenario):
    describe(s)
    results = run_year(s)
    total: dict = defaultdict(int)
    for r in results:
        for k, v in r.delta.items():
            assert v >= 0, (k, v)
            total[k] += v
    assert dict(results[-1].accumulators_after.values) == {k: v for k, v in total.items() if v}
    for prev, nxt in zip(results, results[1:]):
        assert nxt.accumulators_before == prev.accumulators_after
    # the paid:<rule> counters are the year's payments of that rule
    for rule in s.data["basic"] + s.data["tiers"]:
        paid = sum(d.fund_payamt for r in results for d in r.setldetail if d.rule_id == rule["id"])
        assert total.get(f"paid:{rule['id']}", 0) == paid


@settings(max_examples=n(120))
@given(scenarios(min_visits=1, max_visits=10, items=None), st.randoms(use_true_random=False))
def test_tiers_telescope(s: Scenario, rnd):
    """Each cumulative tier's payments up to any visit sum to round(G(cumulative bases)).

    G is the tier's scale for this person (tilt, income-share deductible, band edges, cap),
    re-derived from the pack data, then the household cap (this person is a household of one).
    Checked for the visits in order and shuffled.
    """
    describe(s)
    shuffled = list(s.visits)
    rnd.shuffle(shuffled)
    for visits in (s.visits, shuffled):
        results = run_year(s, visits)
        for tier in s.data["tiers"]:
            G, tilt_idx = ref_tier_function(s.data, tier, set(s.person.categories))
            cums = [0] * len(tier["parts"])
            total_pay = 0
            hcap = None if tier.get("household_cap") is None else fen(tier["household_cap"])

            def household(x, hcap=hcap):
                return x if hcap is None else min(x, hcap)
            if tier.get("threshold_basis") == "per_admission":
                # per admission: the year's total is min(Σ round(F(this admission's bases)), cap), any order
                fns, cap, _ = ref_tier_parts(s.data, tier, set(s.person.categories))
                unc = 0
                for r in results:
                    step = next((x for x in r.steps if x.kind == "tier" and x.rule_id == tier["id"]), None)
                    if step is None:
                        continue
                    assert step.facts["tilt"] == tilt_idx and step.facts["cum_before"] == [0] * len(fns)
                    unc += rhu(sum((f(b) for f, b in zip(fns, step.facts["bases"])), Fraction(0)))
                    total_pay += step.facts["pay"]
                    assert total_pay == household(unc if cap is None else min(unc, cap)), (tier["id"], unc)
                continue
            for r in results:
                step = next((x for x in r.steps if x.kind == "tier" and x.rule_id == tier["id"]), None)
                if step is None:
                    continue
                assert step.facts["tilt"] == tilt_idx
                assert step.facts["cum_before"] == cums
                cums = [c + b for c, b in zip(cums, step.facts["bases"])]
                total_pay += step.facts["pay"]
                assert total_pay == household(rhu(G(cums))), (tier["id"], cums)
            assert total_pay == household(rhu(G(cums)))
        # 统筹 with an annual cap: the payments so far are min(Σ uncapped, cap) in each cap group; a population
        # group's own cap may differ between the rules of a cap group: then never above the largest cap applied
        by_group: dict = defaultdict(lambda: [0, 0, set()])
        for r in results:
            b = next(x for x in r.steps if x.kind == "basic")
            rule = next(x for x in s.data["basic"] if x["id"] == b.rule_id)
            g = by_group[rule.get("cap_group") or rule["id"]]
            g[0] += b.facts["uncapped"]
            g[1] += b.facts["hifp_pay"]
            g[2].add(b.facts["annual_cap"])
            if len(g[2]) == 1:
                cap = b.facts["annual_cap"]
                assert g[1] == (g[0] if cap is None else min(g[0], cap))
            elif None not in g[2]:
                assert g[1] <= max(g[2])


@st.composite
def annual_split(draw):
    """A scenario with an annual-mode rule, one visit's amounts and a split of them into k visits."""
    s = draw(scenarios(min_visits=0, max_visits=4))
    annual = [r for r in s.data["basic"] if r["mode"] == "annual" and r["insutype"] == s.person.insutype]
    assume(annual)
    rule = draw(st.sampled_from(annual))
    med_type = rule["med_types"][0]
    dise = "I10" if rule.get("diseases") else ""
    level = draw(st.sampled_from(list(rule["deductible"]["by_level"])))
    assume(first_rule(s.data, s.person.insutype, med_type, dise, level) is rule)
    whole = draw(st.integers(0, 50_000_00) | st.integers(0, 3_000_000_00))
    k = draw(st.integers(2, 6))
    cuts = sorted(draw(st.lists(st.integers(0, whole), min_size=k - 1, max_size=k - 1)))
    pieces = [b - a for a, b in zip([0] + cuts, cuts + [whole])]
    template = Visit("S", med_type, level, date(YEAR, 12, 31), dise_codg=dise, amounts=ClassifiedAmounts(0, 0, 0, 0))
    return s, rule, template, whole, pieces


@settings(max_examples=n(120))
@given(annual_split())
def test_annual_rule_split_invariance(case):
    """An annual-mode rule pays the same year total however one amount is split into visits."""
    s, rule, template, whole, pieces = case
    describe(s)
    note(f"rule {rule['id']}, whole {whole}, pieces {pieces}")
    prefix = list(s.visits)

    def year_hifp(parts):
        vs = prefix + [replace(template, mdtrt_id=f"S{j}", amounts=ClassifiedAmounts(0, 0, 0, p)) for j, p in enumerate(parts)]
        res = run_year(s, vs)
        mine = [r for r in res if any(x.kind == "basic" and x.rule_id == rule["id"] for x in r.steps)]
        return sum(r.setlinfo.hifp_pay for r in mine), sum(r.setlinfo.act_pay_dedc for r in mine), \
            sum(r.setlinfo.pool_prop_selfpay for r in mine)

    assert year_hifp([whole]) == year_hifp(pieces)


@settings(max_examples=n(100))
@given(scenarios(min_visits=1, max_visits=6, items=None), st.data())
def test_reverse_then_settle_again(s: Scenario, data):
    """Reversing the latest k settlements (latest first) and settling them again is identical;
    reversing all of them returns the starting accumulators."""
    describe(s)
    prior = data.draw(st.integers(0, 3))  # admissions settled earlier in the year
    start = Accumulators(YEAR, {"adm:inpatient": prior} if prior else {})
    results = settle_year(s.compiled, s.person, s.visits, start)
    k = data.draw(st.integers(1, len(results)))
    acc, hh = results[-1].accumulators_after, results[-1].household_after  # hh: a pack with household caps
    for r in reversed(results[-k:]):
        acc = reverse(r, acc)
        assert acc == r.accumulators_before
        if hh is not None:
            hh = reverse_household(r, hh)
            assert hh.values == r.household_before.values
    again = settle_year(s.compiled, s.person, s.visits[-k:], acc, hh)
    assert [comparable(r) for r in again] == [comparable(r) for r in results[-k:]]
    acc, hh = again[-1].accumulators_after, again[-1].household_after
    for r in reversed(results[:-k] + again):
        acc = reverse(r, acc)
        hh = hh if hh is None else reverse_household(r, hh)
    assert acc.values == start.values and acc.year == start.year
    assert hh is None or hh.values == {}


@settings(max_examples=n(100))
@given(scenarios(min_visits=2, max_visits=6, items=None), st.data())
def test_reversing_an_earlier_settlement_is_refused(s: Scenario, data):
    """后结先撤: a settlement with later, accumulator-changing settlements after it is refused (SET040)."""
    describe(s)
    results = run_year(s)
    i = data.draw(st.integers(0, len(results) - 2))
    current = results[-1].accumulators_after
    with pytest.raises(SettlementError) as exc:
        reverse(results[i], current)
    assert [p.code for p in exc.value.problems] == ["SET040"]
    assert current == results[-1].accumulators_after  # nothing changed


@settings(max_examples=n(200))
@given(scenarios(min_visits=1, max_visits=3, items=True))
def test_classification_matches_fraction_reference(s: Scenario):
    describe(s)
    for v in s.visits:
        assert classify_items(s.compiled, v.items) == ref_classify(s.data, v.items)


@settings(max_examples=n(60))
@given(scenarios(min_visits=1, max_visits=4, items=True))
def test_items_settle_like_their_classified_amounts(s: Scenario):
    """A visit with fee items settles exactly as the same visit with classify_items' amounts."""
    describe(s)
    by_items = run_year(s)
    by_amounts = run_year(s, [replace(v, items=None, amounts=classify_items(s.compiled, v.items)) for v in s.visits])
    assert [r.setlinfo for r in by_items] == [r.setlinfo for r in by_amounts]
    assert [r.delta for r in by_items] == [r.delta for r in by_amounts]
    want = reference_year(s.data, s.person, s.visits)
    assert [r.setlinfo.as_dict() for r in by_items] == want


# === known gaps (documented, expected to fail until the engine changes) ======================

def _zero_delta_pack():
    data = {
        "pack": {"id": "z", "name": "z", "admdvs": "370100", "version": "1",
                 "effective_from": date(YEAR, 1, 1), "effective_to": date(YEAR, 12, 31)},
        "reference": {"year": YEAR - 1, "per_capita_disposable_income": 40000},
        "levels": {"1": "基层"},
        "classification": {"classes": {"01": {"name": "甲类", "in_scope": True}}},
        "basic": [{"id": "op", "name": "门诊统筹", "insutype": "390", "med_types": ["11"], "mode": "annual",
                   "deductible": {"by_level": {"1": 100}}, "ratio_by_level": {"1": "0.5"}, "fund_pay_type": "390100"}],
    }
    return CompiledPack(pack_from_data(data))


def test_zero_delta_later_visit_blocks_order():
    pack = _zero_delta_pack()
    person = Person("P", "390")
    v1 = Visit("M1", "11", "1", date(YEAR, 3, 1), amounts=ClassifiedAmounts(0, 0, 0, 50000))
    v2 = Visit("M2", "11", "1", date(YEAR, 3, 2), amounts=ClassifiedAmounts(3000, 0, 0, 0))
    r1, r2 = settle_year(pack, person, [v1, v2], Accumulators(YEAR))
    # M2 (all 全自费) changes no benefit counter, only the year's settlement count
    assert {k: v for k, v in r2.delta.items() if v} == {"setl:count": 1}
    # so M1 is still recognised as not the latest: reversing it first is refused
    with pytest.raises(SettlementError):
        reverse(r1, r2.accumulators_after)
    assert reverse(r1, reverse(r2, r2.accumulators_after)).values == {}
