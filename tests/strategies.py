"""Hypothesis strategies: random *valid* policy packs, persons and years of visits.

A pack is drawn as the plain data a YAML file would hold (yuan as exact ``Decimal``, ratios as
decimals in [0, 1]) and then validated with :func:`yibao.policy.loader.pack_from_data`; every
shape the pack format allows is reachable: levels, deductibles, flat or banded ratios with
absolute or above-deductible edges, per-admission and annual basic rules, repeat admissions by
factor / schedule / step, referral, waivers, retiree and category points, annual caps and shared
cap groups, 1–4 tiers with 1–2 parts over different buckets, tilts, exclusive groups,
income-share deductibles, guarantees and a personal account.

Visits carry either the four classified amounts or fee items; amounts are fen, often zero and
heavy-tailed (a few fen up to millions of yuan).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

from yibao.policy.compiled import CompiledPack
from yibao.policy.loader import pack_from_data
from yibao.policy.model import PolicyPack
from yibao.settlement.model import ClassifiedAmounts, FeeItem, Person, Visit

YEAR = 2024
ALL_LEVELS = ("1", "2", "3")
ALL_CATEGORIES = ("dibao", "tekun", "dibian", "fanpin", "zhongbing")
BASE_BUCKETS = ("inscp_coshare", "inscp_overcap", "inscp_dedc", "preselfpay", "overlmt_selfpay", "fulamt_ownpay")
ALIASES = {
    "inscp_own": ("inscp_coshare", "inscp_overcap", "inscp_dedc"),
    "out_of_scope": ("preselfpay", "overlmt_selfpay", "fulamt_ownpay"),
}
SETL_FIELDS = ("cvlserv_pay", "hifes_pay", "hifmi_pay", "hifob_pay", "maf_pay", "oth_pay")
DISEASES = ("", "I10", "I10.x00", "E11.9", "N18.500", "C34.100", "Z51.1", "J18.9", "K35.900", "O80.000")


def yuan(fen: int) -> Decimal:
    """fen → exact yuan with two decimals, as a pack file would write it."""
    return Decimal(fen).scaleb(-2)


# --- numbers ------------------------------------------------------------------------------

def fen_amounts() -> st.SearchStrategy[int]:
    """Heavy-tailed non-negative fen: zero, a few fen, tens of yuan ... millions of yuan."""
    return st.one_of(
        st.just(0),
        st.integers(1, 100),
        st.integers(0, 100_00),
        st.integers(0, 10_000_00),
        st.integers(0, 200_000_00),
        st.integers(0, 3_000_000_00),
    )


ratios = st.one_of(
    st.integers(0, 100).map(lambda k: Decimal(k) / 100),
    st.integers(0, 1000).map(lambda k: Decimal(k) / 1000),
    st.sampled_from([Decimal(0), Decimal(1), Decimal("0.5"), Decimal("0.333"), Decimal("0.85"), Decimal("0.125")]),
)
points = st.one_of(
    st.just(Decimal(0)),
    st.integers(-10, 15).map(Decimal),
    st.integers(-100, 100).map(lambda k: Decimal(k) / 10),
)
deductible_fen = st.one_of(st.just(0), st.integers(0, 2_000_00), st.integers(0, 30_000_00), st.integers(0, 100))
cap_fen = st.one_of(st.integers(0, 5_000_00), st.integers(0, 100_000_00), st.integers(0, 600_000_00))
edge_fen = st.one_of(st.integers(1, 300_000).map(lambda y: y * 100), st.integers(1, 300_000_00))


@st.composite
def ratio_specs(draw) -> Any:
    """A flat ratio or a list of bands (strictly increasing edges, last one open or not)."""
    if draw(st.booleans()):
        return draw(ratios)
    edges = sorted(set(draw(st.lists(edge_fen, min_size=0, max_size=3))))
    bands: list[dict] = [{"upto": yuan(e), "ratio": draw(ratios)} for e in edges]
    if not bands or draw(st.integers(0, 3)) > 0:
        bands.append({"ratio": draw(ratios)})
    return bands


def subset(draw, pool, min_size=0, max_size=None) -> list:
    """An order-preserving sub-list of ``pool``."""
    if not pool:
        return []
    chosen = draw(st.sets(st.sampled_from(pool), min_size=min_size, max_size=max_size))
    return [x for x in pool if x in chosen]


# --- pack parts ---------------------------------------------------------------------------

@st.composite
def classifications(draw) -> dict:
    classes = {
        "01": {"name": "甲类", "in_scope": True},
        "02": {"name": "乙类", "in_scope": True, "preselfpay_ratio": draw(ratios)},
        "03": {"name": "丙类", "in_scope": False},
    }
    if draw(st.booleans()):
        classes["04"] = {"name": "放宽特检", "in_scope": True, "preselfpay_ratio": draw(ratios)}
    if draw(st.booleans()):  # shape 4: a class without co-share (植入类耗材), paid in full after its preselfpay share
        classes["05"] = {"name": "植入类耗材", "in_scope": True, "preselfpay_ratio": draw(ratios), "coshare": False}
    catalog = []
    for i in range(draw(st.integers(0, 8))):
        entry: dict = {"med_list_codg": f"C{i:04d}", "name": f"目录项目{i}", "chrgitm_lv": draw(st.sampled_from(sorted(classes)))}
        if draw(st.integers(0, 3)) == 0:
            entry["preselfpay_ratio"] = draw(ratios)
        if draw(st.booleans()):
            entry["price_cap"] = yuan(draw(st.integers(0, 50_000_00)))
        catalog.append(entry)
    return {"classes": classes, "catalog": catalog}


@st.composite
def deductibles(draw, levels: list[str], mode: str, categories: list[str]) -> dict:
    ded: dict = {"by_level": {lv: yuan(draw(deductible_fen)) for lv in levels}}
    if mode == "per_admission":
        kind = draw(st.sampled_from([None, "factor", "schedule", "step"]))
        if kind == "factor":
            ded["repeat"] = {"mode": "factor", "factor": draw(ratios)}
        elif kind == "schedule":
            ded["repeat"] = {"mode": "schedule", "schedule": {  # the first amount is by_level's (POL030)
                lv: [ded["by_level"][lv]] + [yuan(draw(deductible_fen)) for _ in range(draw(st.integers(0, 2)))]
                for lv in levels}}
        elif kind == "step":
            rep = {"mode": "step", "step": yuan(draw(st.integers(0, 500_00)))}
            if draw(st.booleans()):
                rep["floor"] = yuan(draw(st.integers(0, 1_000_00)))
            ded["repeat"] = rep
        if draw(st.booleans()):
            ded["referral"] = {
                "upward": draw(st.sampled_from(["difference", "full", "waive"])),
                "same_or_downward": draw(st.sampled_from(["waive", "full"])),
            }
        if draw(st.integers(0, 2)) == 0:
            ded["once_a_year_diseases"] = draw(st.sampled_from([["N18"], ["N18", "C"], ["Z51"]]))
    if categories and draw(st.integers(0, 2)) == 0:
        ded["waive"] = [
            {"categories": subset(draw, categories, min_size=1),
             **({"levels": subset(draw, levels, min_size=1)} if draw(st.booleans()) else {})}
            for _ in range(draw(st.integers(1, 2)))
        ]
    return ded


@st.composite
def basic_rules(draw, rule_id: str, insutype: str, med_types: list[str], mode: str, levels: list[str],
                categories: list[str], diseases: list[str] | None = None) -> dict:
    rule_levels = subset(draw, levels, min_size=1)
    rule: dict = {
        "id": rule_id,
        "name": f"基本医保 {rule_id}",
        "insutype": insutype,
        "med_types": med_types,
        "mode": mode,
        "deductible": draw(deductibles(rule_levels, mode, categories)),
        "ratio_by_level": {lv: draw(ratio_specs()) for lv in rule_levels},
        "band_edges": draw(st.sampled_from(["absolute", "above_deductible"])),
        "fund_pay_type": f"{insutype}100",
    }
    if diseases:
        rule["diseases"] = diseases
    draw_bonuses(draw, rule, categories)
    if draw(st.integers(0, 3)) == 0:  # ratio by age: contiguous bands from 0, or a capped per-year formula
        if draw(st.booleans()):
            cuts = sorted(set(draw(st.lists(st.integers(1, 100), max_size=3))))
            starts = [0] + cuts
            rule["age_points"] = [{"from_age": a, **({"to_age": b - 1} if b is not None else {}), "points": draw(points)}
                                  for a, b in zip(starts, cuts + [None])]
        else:
            rule["age_points"] = {"per_year": draw(st.decimals(min_value=-1, max_value=1, places=2)),
                                  "from_age": draw(st.integers(0, 60)),
                                  **({"max_points": draw(points).copy_abs()} if draw(st.booleans()) else {})}
    if draw(st.integers(0, 3)) == 0:  # 异地就医 adjustment (test_offsite settles offsite visits with it)
        rule["offsite_points"] = {s: -draw(points).copy_abs() for s in subset(draw, ["filed", "unfiled"], min_size=1)}
    if draw(st.booleans()):
        rule["annual_cap"] = yuan(draw(cap_fen))
    if mode == "per_admission" and draw(st.integers(0, 3)) == 0:
        rule["admission_group"] = "other"
    if draw(st.integers(0, 2)) == 0:  # shape 3: population groups (一老一小, by category) with their own numbers
        schedule = rule["deductible"].get("repeat", {}).get("mode") == "schedule"
        selectors = []
        if draw(st.booleans()):
            selectors.append({"from_age": draw(st.integers(50, 80))})
        if draw(st.booleans()):
            selectors.append({"to_age": draw(st.integers(0, 20))})
        if categories and draw(st.booleans()):
            selectors.append({"categories": subset(draw, categories, min_size=1),
                              **({"from_age": draw(st.integers(0, 40))} if draw(st.booleans()) else {})})
        groups = []
        for j, sel in enumerate(selectors):
            g = {"id": f"g{j}", **sel}
            if not schedule and draw(st.booleans()):
                g["deductible"] = {lv: yuan(draw(deductible_fen)) for lv in rule_levels}
            if draw(st.booleans()):
                g["annual_cap"] = yuan(draw(cap_fen))
            if draw(st.booleans()):
                g["ratio_points"] = draw(points)
            groups.append(g)
        if groups:
            rule["groups"] = groups
    return rule


def draw_bonuses(draw, rule: dict, categories: list[str]) -> None:
    """The retiree's share (a multiple of the in-service personal share, or points) and category points."""
    if draw(st.integers(0, 3)) == 0:  # 退休人员个人负担为在职的 X 倍
        rule["retiree_share_factor"] = draw(st.sampled_from([Decimal("0.5"), Decimal("0.6"), Decimal("0.65"),
                                                             Decimal("0.75"), Decimal("1.2"), Decimal(0)]))
    elif draw(st.booleans()):
        rule["retiree_points"] = draw(points)
    if categories and draw(st.booleans()):
        rule["category_points"] = {c: draw(points) for c in subset(draw, categories, min_size=1)}


@st.composite
def fixed_standard_rules(draw, rule_id: str, insutype: str, levels: list[str], categories: list[str]) -> dict:
    """单病种定额: no deductible, one ratio per level, a standard per disease and level (POL034)."""
    rule_levels = subset(draw, levels, min_size=1)
    diseases = subset(draw, ["K35", "K80", "O80"], min_size=1)
    rule: dict = {
        "id": rule_id, "name": f"单病种定额 {rule_id}", "insutype": insutype, "med_types": ["21"],
        "mode": "per_admission", "diseases": diseases,
        "deductible": {"by_level": {lv: Decimal(0) for lv in rule_levels}},
        "ratio_by_level": {lv: draw(ratios) for lv in rule_levels},
        "fixed_standard": {
            "standards": {d: {lv: yuan(draw(st.integers(1, 20_000_00))) for lv in rule_levels} for d in diseases},
            "below_standard": draw(st.sampled_from(["actual", "standard"]))},
        "fund_pay_type": f"{insutype}100",
    }
    draw_bonuses(draw, rule, categories)
    if draw(st.booleans()):
        rule["annual_cap"] = yuan(draw(cap_fen))
    return rule


@st.composite
def tier_parts(draw, n_parts: int) -> list[dict]:
    """1–2 parts over disjoint buckets, each listed in a random draw order (aliases sometimes)."""
    owner = {b: draw(st.integers(-1, n_parts - 1)) for b in BASE_BUCKETS}
    seeds = draw(st.permutations(BASE_BUCKETS))
    for k in range(n_parts):  # every part needs at least one bucket of its own
        if k not in owner.values():
            owner[next(b for b in seeds if owner[b] == -1 or list(owner.values()).count(owner[b]) > 1)] = k
    parts = []
    for k in range(n_parts):
        mine = [b for b in BASE_BUCKETS if owner[b] == k]
        names: list[str] = []
        for alias, members in ALIASES.items():
            if all(m in mine for m in members) and draw(st.booleans()):
                names.append(alias)
                mine = [b for b in mine if b not in members]
        names += mine
        names = draw(st.permutations(names))
        part: dict = {"base": list(names), "ratio": draw(ratio_specs())}
        edges = draw(st.sampled_from(["absolute", "above_deductible"]))
        if draw(st.integers(0, 3)) == 0:
            part["deductible"] = {"income_share": draw(ratios)}
            if isinstance(part["ratio"], list) and any("upto" in b for b in part["ratio"]):
                edges = "above_deductible"  # POL026: income-share thresholds need relative edges
        elif draw(st.booleans()):
            part["deductible"] = yuan(draw(deductible_fen))
        part["band_edges"] = edges
        parts.append(part)
    return parts


@st.composite
def tiers(draw, i: int, insutypes: list[str], med_types: list[str], categories: list[str]) -> dict:
    tier: dict = {
        "id": f"tier{i}",
        "name": f"层次{i}",
        "pays_into": draw(st.sampled_from(SETL_FIELDS)),
        "fund_pay_type": f"{600 + i}100",
        "parts": draw(tier_parts(draw(st.integers(1, 2)))),
    }
    if draw(st.integers(0, 2)) == 0:
        tier["insutypes"] = subset(draw, insutypes, min_size=1)
    if draw(st.integers(0, 2)) == 0:
        tier["med_types"] = subset(draw, med_types, min_size=1)
    if draw(st.integers(0, 3)) == 0:  # 倾斜救助-style: thresholds on each admission alone (inpatient med_types only)
        tier["threshold_basis"] = "per_admission"
        tier["med_types"] = subset(draw, [m for m in med_types if m in ("21", "52")], min_size=1)
    if categories and draw(st.integers(0, 2)) == 0:
        tier["categories"] = subset(draw, categories, min_size=1)
    if draw(st.integers(0, 2)) == 0:
        tier["exclusive_group"] = draw(st.sampled_from(["g1", "g2"]))
    if draw(st.booleans()):
        tier["annual_cap"] = yuan(draw(cap_fen))
    if categories:
        tilts = []
        for _ in range(draw(st.integers(0, 2))):
            tilt: dict = {"categories": subset(draw, categories, min_size=1)}
            if draw(st.booleans()):
                tilt["deductible_factor"] = draw(ratios)
            if draw(st.booleans()):
                tilt["ratio_points"] = draw(points)
            cap_kind = draw(st.sampled_from([None, "remove", "cap"]))
            if cap_kind == "remove":
                tilt["remove_cap"] = True
            elif cap_kind == "cap":
                tilt["annual_cap"] = yuan(draw(cap_fen))
            tilts.append(tilt)
        if tilts:
            tier["tilts"] = tilts
    if draw(st.integers(0, 3)) == 0:  # 家庭年度限额: at least every member's own cap (POL039)
        own = [c for c in [tier.get("annual_cap")] + [t.get("annual_cap") for t in tier.get("tilts", [])] if c is not None]
        tier["household_cap"] = max([Decimal("0.01")] + own) + yuan(draw(cap_fen))
    return tier


@st.composite
def pack_data(draw) -> dict:
    """A random pack as a data dict; always valid (checked by :func:`valid_packs`)."""
    levels = subset(draw, list(ALL_LEVELS), min_size=1)
    levels = draw(st.permutations(levels))  # declaration order is the referral rank
    categories = subset(draw, list(ALL_CATEGORIES))
    insutypes = subset(draw, ["310", "390"], min_size=1)
    basic: list[dict] = []
    for ins in insutypes:
        if draw(st.integers(0, 2)) == 0:  # 单病种定额 before the general inpatient rule (pack order decides)
            basic.append(draw(fixed_standard_rules(f"r{ins}_dbz", ins, levels, categories)))
        basic.append(draw(basic_rules(f"r{ins}_inp", ins, ["21", "52"] if draw(st.booleans()) else ["21"],
                                      "per_admission", levels, categories)))
        if draw(st.booleans()):
            basic.append(draw(basic_rules(f"r{ins}_op", ins, ["11"], "annual", levels, categories)))
        if draw(st.integers(0, 2)) == 0:  # a disease-limited rule before (maybe) a general one
            basic.append(draw(basic_rules(f"r{ins}_lb", ins, ["14"], draw(st.sampled_from(["annual", "per_admission"])),
                                          levels, categories, diseases=["I10", "E11"])))
            if draw(st.booleans()):
                basic.append(draw(basic_rules(f"r{ins}_mt", ins, ["14"], "annual", levels, categories)))
    # rules may share one annual cap (all per-admission rules, or every rule)
    if draw(st.integers(0, 2)) == 0:
        every = draw(st.booleans())
        shared = [r for r in basic if every or r["mode"] == "per_admission"]
        cap = shared[0].get("annual_cap")
        for r in shared:
            r["cap_group"] = "shared_cap"
            r.pop("annual_cap", None)
            if cap is not None:
                r["annual_cap"] = cap
    med_types = sorted({m for r in basic for m in r["med_types"]})
    data: dict = {
        "pack": {"id": "random", "name": "随机政策包", "admdvs": "370100", "version": "1",
                 "effective_from": date(YEAR, 1, 1), "effective_to": date(YEAR, 12, 31)},
        "reference": {"year": YEAR - 1, "per_capita_disposable_income": yuan(draw(st.integers(0, 80_000_00)))},
        "levels": {lv: f"等级{lv}" for lv in levels},
        "categories": {c: c for c in categories},
        "classification": draw(classifications()),
        "basic": basic,
        "tiers": [draw(tiers(i, insutypes, med_types, categories)) for i in range(draw(st.integers(1, 4)))],
    }
    if categories and draw(st.booleans()):
        data["guarantees"] = [
            {"id": f"g{i}", "name": f"兜底{i}", "pays_into": draw(st.sampled_from(SETL_FIELDS)),
             "fund_pay_type": f"{700 + i}100", "categories": subset(draw, categories, min_size=1),
             "share": draw(ratios), "of": draw(st.sampled_from(["medfee_sumamt", "inscp_scp_amt"])),
             **({"med_types": subset(draw, med_types, min_size=1)} if draw(st.booleans()) else {})}
            for i in range(draw(st.integers(1, 2)))
        ]
    if draw(st.booleans()):
        data["personal_account"] = {
            "insutypes": subset(draw, insutypes, min_size=1),
            "covers": draw(st.lists(st.sampled_from(list(BASE_BUCKETS) + list(ALIASES)), min_size=1, max_size=3, unique=True)),
        }
    return data


def valid_packs() -> st.SearchStrategy[tuple[dict, PolicyPack]]:
    """(data, validated pack); a PolicyError here is a bug of the generator and fails loudly."""
    return pack_data().map(lambda d: (d, pack_from_data(d, "<hypothesis>")))


# --- persons and visits -------------------------------------------------------------------

def first_rule(data: dict, insutype: str, med_type: str, dise: str, level: str) -> dict | None:
    """The basic rule a visit falls under: the first for its scheme, med_type and diagnosis that
    covers its level (a rule without the level is passed over)."""
    for r in data["basic"]:
        if r["insutype"] == insutype and med_type in r["med_types"] and level in r["deductible"]["by_level"]:
            if not r.get("diseases") or dise.startswith(tuple(r["diseases"])):
                return r
    return None


@st.composite
def persons(draw, data: dict) -> Person:
    insutype = draw(st.sampled_from(sorted({r["insutype"] for r in data["basic"]})))
    cats = frozenset(subset(draw, sorted(data["categories"])))
    households = any(t.get("household_cap") is not None for t in data["tiers"])
    return Person("P001", insutype, cats, retiree=draw(st.booleans()), age=draw(st.integers(0, 110)),
                  hh_no="H001" if households else None)


@st.composite
def amounts(draw) -> ClassifiedAmounts:
    inscp = draw(fen_amounts())
    full = draw(st.integers(0, inscp)) if inscp and draw(st.integers(0, 3)) == 0 else 0  # coshare: false part
    return ClassifiedAmounts(draw(fen_amounts()), draw(fen_amounts()), draw(fen_amounts()), inscp, full)


@st.composite
def fee_items(draw, data: dict, n_max: int = 12) -> tuple[FeeItem, ...]:
    classes = sorted(data["classification"]["classes"])
    codes = [e["med_list_codg"] for e in data["classification"]["catalog"]]
    out = []
    for i in range(draw(st.integers(0, n_max))):
        if codes and draw(st.integers(0, 2)) > 0:
            code = draw(st.sampled_from(codes))
            lv = draw(st.sampled_from([None, None, None, *classes]))  # mostly from the catalog
        else:
            code, lv = f"X{draw(st.integers(0, 99)):03d}", draw(st.sampled_from(classes))
        cnt = draw(st.sampled_from([Decimal(1), Decimal(1), Decimal(2), Decimal("0.5"), Decimal("1.5"), Decimal(10), Decimal("0.333")]))
        pre = draw(st.one_of(st.none(), st.none(), st.none(), ratios))
        out.append(FeeItem(f"{i + 1}", code, draw(fen_amounts()), cnt=cnt, chrgitm_lv=lv, preselfpay_ratio=pre))
    return tuple(out)


@st.composite
def visit_lists(draw, data: dict, person: Person, min_size: int = 1, max_size: int = 8, items: bool | None = False) -> list[Visit]:
    """A year of visits the pack can settle (a basic rule and level always exist)."""
    rules = [r for r in data["basic"] if r["insutype"] == person.insutype]
    pack_levels = list(data["levels"])
    n = draw(st.integers(min_size, max_size))
    days = sorted(draw(st.lists(st.integers(0, 365), min_size=n, max_size=n)))
    visits = []
    for i, day in enumerate(days):
        wanted = draw(st.sampled_from(rules))
        med_type = draw(st.sampled_from(wanted["med_types"]))
        level = draw(st.sampled_from(list(wanted["deductible"]["by_level"])))
        dise = draw(st.sampled_from(DISEASES))
        if first_rule(data, person.insutype, med_type, dise, level) is None:
            dise = wanted["diseases"][0] + ".x01"  # a disease-limited rule: give it its disease
        assert first_rule(data, person.insutype, med_type, dise, level) is not None
        referral = draw(st.one_of(st.none(), st.none(), st.sampled_from(pack_levels)))
        use_items = draw(st.booleans()) if items is None else items
        vis_items = draw(fee_items(data)) if use_items else None
        vis_amounts = None if use_items else draw(amounts())
        visits.append(Visit(
            mdtrt_id=f"M{i + 1:03d}", med_type=med_type, level=level,
            setl_date=date(YEAR, 1, 1) + timedelta(days=min(day, 365)),
            dise_codg=dise, referral_from_level=referral,
            items=vis_items, amounts=vis_amounts,
            acct_balance=draw(st.one_of(st.just(0), fen_amounts())),
        ))
    return visits


@dataclass
class Scenario:
    data: dict
    pack: PolicyPack
    compiled: CompiledPack
    person: Person
    visits: list[Visit]


@st.composite
def scenarios(draw, min_visits: int = 1, max_visits: int = 8, items: bool | None = False) -> Scenario:
    data, pack = draw(valid_packs())
    person = draw(persons(data))
    visits = draw(visit_lists(data, person, min_visits, max_visits, items))
    return Scenario(data, pack, CompiledPack(pack), person, visits)
