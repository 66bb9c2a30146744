"""A pack turned into what engines compute with: fen, exact rates, scales, lookup tables.

Compiling once per pack keeps the per-visit work to integer arithmetic and dictionary
look-ups. The scalar engine reads these objects and the batch kernel's lowering
(:mod:`yibao.batch.lower`) reads them too, never the pack itself, so a deductible or a band
edge is derived from the pack here only.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from math import lcm

from yibao.money import mul_rate, rate_parts, yuan_to_fen
from yibao.policy.model import BasicRule, Guarantee, IncomeShare, PolicyPack, RatioSpec, Tier, TierPart
from yibao.policy.scale import SegmentedScale
from yibao.settlement.model import expand_buckets

ONE = Decimal(1)
ZERO = Decimal(0)


def _fen(value) -> int | None:
    return None if value is None else yuan_to_fen(value)


def share_rate(rate: Decimal, share_factor: Decimal | None) -> Decimal:
    """退休人员个人负担为在职的 X 倍: 1 − X × (1 − rate), clamped to [0, 1]; the rate itself without a factor."""
    if share_factor is None:
        return rate
    return min(ONE, max(ZERO, ONE - share_factor * (ONE - rate)))


def bands_of(spec: RatioSpec, deductible: int, points: Decimal, edges: str,
             share_factor: Decimal | None = None) -> list[tuple[int | None, Decimal]]:
    """(upper edge in fen or None, rate) bands from a flat ratio or a band list, plus points.

    ``edges`` says where band edges sit: ``absolute`` on the base itself, ``above_deductible``
    counted from the deductible. Rates are clamped to [0, 1] after adding points, then a retiree's
    ``share_factor`` (personal share × X) applies.
    """
    bump = points / 100
    if not isinstance(spec, list):
        return [(None, share_rate(min(ONE, max(ZERO, spec + bump)), share_factor))]
    out = []
    for band in spec:
        upper = None if band.upto is None else yuan_to_fen(band.upto)
        if upper is not None and edges == "above_deductible":
            upper += deductible
        out.append((upper, share_rate(min(ONE, max(ZERO, band.ratio + bump)), share_factor)))
    if out[-1][0] is not None:  # past the last edge nothing more is paid
        out.append((None, ZERO))
    return out


@dataclass(frozen=True)
class CompiledGroup:
    """A population group of a basic rule (一老一小), numbers in fen; None: the rule's own."""

    index: int
    id: str
    name: str
    categories: frozenset[str] | None
    from_age: int | None
    to_age: int | None
    by_level: dict[str, int] | None
    annual_cap: int | None
    points: Decimal

    @property
    def uses_age(self) -> bool:
        return self.from_age is not None or self.to_age is not None

    def holds(self, categories: frozenset[str], age: int | None) -> bool:
        if self.categories is not None and not (self.categories & categories):
            return False
        if self.from_age is not None and (age is None or age < self.from_age):
            return False
        return self.to_age is None or (age is not None and age <= self.to_age)


@dataclass(frozen=True)
class DeductibleResult:
    amount: int  # fen applied to this admission
    first: int  # the level's first-admission deductible
    admission_no: int
    reason: str  # first | repeat | waived | once_a_year | referral_difference | referral_waived


class CompiledBasic:
    """基本医保 rule ready for the engine (see :class:`yibao.policy.model.BasicRule`)."""

    def __init__(self, rule: BasicRule, level_rank: dict[str, int]):
        self.rule = rule
        self.id = rule.id
        self.name = rule.name
        self.mode = rule.mode
        self.fund_pay_type = rule.fund_pay_type
        self.annual_cap = _fen(rule.annual_cap)
        self.cap_key = f"cap:{rule.cap_group or rule.id}"
        self.adm_key = f"adm:{rule.admission_group}"
        self.once_key = f"once:{rule.id}"
        self.base_key = f"base:{rule.id}"
        self.paid_key = f"paid:{rule.id}"
        self.med_types = frozenset(rule.med_types)
        self.diseases = tuple(rule.diseases)
        self.once_diseases = tuple(rule.deductible.once_a_year_diseases)
        self.by_level = {lv: yuan_to_fen(v) for lv, v in rule.deductible.by_level.items()}
        self.level_rank = level_rank
        rep = rule.deductible.repeat
        self.schedule = (
            {lv: [yuan_to_fen(a) for a in amounts] for lv, amounts in rep.schedule.items()}
            if rep is not None and rep.schedule
            else None
        )
        fs = rule.fixed_standard
        self.fixed = None if fs is None else {
            dise: {lv: yuan_to_fen(v) for lv, v in by_level.items()} for dise, by_level in fs.standards.items()}
        self.fixed_on_standard = fs is not None and fs.below_standard == "standard"
        self.groups = tuple(CompiledGroup(
            i, g.id, g.name or g.id, None if g.categories is None else frozenset(g.categories), g.from_age, g.to_age,
            None if g.deductible is None else {lv: yuan_to_fen(v) for lv, v in g.deductible.items()},
            _fen(g.annual_cap), g.ratio_points) for i, g in enumerate(rule.groups))
        self._scale = lru_cache(maxsize=4096)(self._build_scale)

    def fixed_standard(self, dise_codg: str, level: str) -> int | None:
        """单病种定额: the standard (fen) for the visit's disease — the longest listed prefix — and level;
        None for a rule settled item by item."""
        if self.fixed is None:
            return None
        prefix = max((d for d in self.fixed if dise_codg.startswith(d)), key=len, default=None)
        return None if prefix is None else self.fixed[prefix].get(level)

    def fixed_amount(self, scale: SegmentedScale, medfee: int, standard: int) -> tuple[int, int, int]:
        """单病种定额 arithmetic, one definition for the engine and the kernel's tests: (settled, uncapped fund
        amount, hosp_part_amt). The bill up to the standard is settled at the ratio; above it the institution
        bears the excess; below it the fund pays its share of the bill, or of the standard when the pack says
        ``below_standard: standard`` (never more than the bill)."""
        hosp = medfee - standard if medfee > standard else 0
        settled = medfee - hosp
        if self.fixed_on_standard and medfee < standard:
            return settled, min(settled, scale.uncapped_amount(standard)), hosp
        return settled, scale.uncapped_amount(settled), hosp

    def matches(self, insutype: str, med_type: str, dise_codg: str) -> bool:
        if insutype != self.rule.insutype or med_type not in self.med_types:
            return False
        return not self.diseases or dise_codg.startswith(self.diseases)

    def is_referral(self, referral_from: str | None) -> bool:
        """A 医共体 referral this rule counts continuously (the pack has a referral rule)."""
        return (referral_from is not None and self.rule.deductible.referral is not None
                and referral_from in self.by_level)

    def covers(self, level: str) -> bool:
        return level in self.by_level

    def group(self, categories: frozenset[str], age: int | None) -> CompiledGroup | None:
        """The person's population group in this rule: the first that holds, or None (the rule's own numbers)."""
        return next((g for g in self.groups if g.holds(categories, age)), None)

    def cap(self, group: CompiledGroup | None) -> int | None:
        """The annual cap (fen) for the person's group: the group's when it states one, else the rule's."""
        return self.annual_cap if group is None or group.annual_cap is None else group.annual_cap

    def first_of(self, level: str, group: CompiledGroup | None) -> int:
        return (self.by_level if group is None or group.by_level is None else group.by_level)[level]

    def first_deductible(self, level: str, admission_no: int, group: CompiledGroup | None = None) -> int:
        """The level's deductible for the n-th admission of the year, before waivers/referral."""
        first = self.first_of(level, group)
        rep = self.rule.deductible.repeat
        if rep is None or admission_no <= 1 or self.mode == "annual":
            return first
        if rep.mode == "factor":
            return mul_rate(first, rep.factor)  # type: ignore[arg-type]
        if rep.mode == "schedule":
            amounts = self.schedule[level]  # type: ignore[index]
            return amounts[min(admission_no, len(amounts)) - 1]
        floor = yuan_to_fen(rep.floor) if rep.floor is not None else 0
        return max(floor, first - yuan_to_fen(rep.step) * (admission_no - 1))  # type: ignore[arg-type]

    def deductible(
        self,
        level: str,
        admission_no: int,
        categories: frozenset[str],
        referral_from: str | None,
        once_paid: bool,
        dise_codg: str,
        group: CompiledGroup | None = None,
    ) -> DeductibleResult:
        ded = self.rule.deductible
        first = self.first_of(level, group)
        amount = self.first_deductible(level, admission_no, group)
        reason = "first" if admission_no <= 1 or amount == first else "repeat"
        for waiver in ded.waive:
            if categories.intersection(waiver.categories) and (waiver.levels is None or level in waiver.levels):
                return DeductibleResult(0, first, admission_no, "waived")
        if self.once_diseases and dise_codg.startswith(self.once_diseases) and once_paid:
            return DeductibleResult(0, first, admission_no, "once_a_year")
        if self.is_referral(referral_from):
            assert ded.referral is not None and referral_from is not None
            upward = self.level_rank[level] > self.level_rank[referral_from]
            mode = ded.referral.upward if upward else ded.referral.same_or_downward
            if mode == "waive":
                return DeductibleResult(0, first, admission_no, "referral_waived")
            if mode == "difference":
                paid_before = self.first_deductible(referral_from, admission_no, group)
                return DeductibleResult(max(0, amount - paid_before), first, admission_no, "referral_difference")
        return DeductibleResult(amount, first, admission_no, reason)

    @property
    def uses_age(self) -> bool:
        return self.rule.age_points is not None

    @property
    def needs_age(self) -> bool:
        """Settling under this rule needs the person's age: age points, or a group chosen by age."""
        return self.uses_age or any(g.uses_age for g in self.groups)

    def age_points(self, age: int | None) -> Decimal:
        """Points for the person's age (completed years): the band holding it, or ``per_year`` × the years
        above ``from_age`` up to ``max_points``. The pack's validation guarantees a band for every age."""
        spec = self.rule.age_points
        if spec is None:
            return ZERO
        if age is None:
            raise ValueError("age required")  # the engine refuses first (SET008)
        if isinstance(spec, list):
            return next(b.points for b in spec if b.from_age <= age and (b.to_age is None or age <= b.to_age))
        value = spec.per_year * max(0, age - spec.from_age)
        return value if spec.max_points is None else min(value, spec.max_points)

    def points(self, retiree: bool, categories: frozenset[str], offsite: str = "local", age: int | None = None,
               group: CompiledGroup | None = None) -> Decimal:
        """Ratio bonus in points: retiree bonus plus the largest bonus of the person's categories, plus
        the 异地就医 adjustment for a filed / unfiled offsite visit (usually negative), plus the age's and the
        population group's."""
        bonus = self.rule.retiree_points if retiree else ZERO
        cat = [p for c, p in self.rule.category_points.items() if c in categories]
        return (bonus + (max(cat) if cat else ZERO) + self.rule.offsite_points.get(offsite, ZERO)
                + self.age_points(age) + (ZERO if group is None else group.points))

    def scale(self, level: str, retiree: bool, categories: frozenset[str], deductible: int,
              offsite: str = "local", age: int | None = None, group: CompiledGroup | None = None) -> SegmentedScale:
        relevant = frozenset(c for c in categories if c in self.rule.category_points)
        return self._scale(level, retiree, relevant, deductible, offsite, age if self.uses_age else None,
                           None if group is None else group.index)

    def _build_scale(self, level: str, retiree: bool, categories: frozenset[str], deductible: int,
                     offsite: str = "local", age: int | None = None, group: int | None = None) -> SegmentedScale:
        bands = bands_of(self.rule.ratio_by_level[level], deductible,
                         self.points(retiree, categories, offsite, age, None if group is None else self.groups[group]),
                         self.rule.band_edges, self.rule.retiree_share_factor if retiree else None)
        return SegmentedScale.from_bands(deductible, bands)


class CompiledTier:
    """A cumulative tier (大病/大额, 医疗救助, 再救助, 补充保险) ready for the engine."""

    def __init__(self, tier: Tier, income: int):
        self.tier = tier
        self.id = tier.id
        self.name = tier.name
        self.pays_into = tier.pays_into
        self.fund_pay_type = tier.fund_pay_type
        self.insutypes = None if tier.insutypes is None else frozenset(tier.insutypes)
        self.med_types = None if tier.med_types is None else frozenset(tier.med_types)
        self.categories = None if tier.categories is None else frozenset(tier.categories)
        self.exclusive_group = tier.exclusive_group
        self.per_admission = tier.threshold_basis == "per_admission"  # thresholds on this admission alone
        self.part_buckets = tuple(expand_buckets(p.base) for p in tier.parts)
        self.draw_order = expand_buckets([b for p in tier.parts for b in p.base])
        self.base_keys = tuple(f"base:{tier.id}:{i}" for i in range(len(tier.parts)))
        self.paid_key = f"paid:{tier.id}"
        self.cap_key = f"cap:{tier.id}"
        # 家庭年度限额: bounds the household's running sum of what members' own caps let through (household
        # accumulators, keyed apart from a person's: engine.settle's ``household``)
        self.household_cap = _fen(tier.household_cap)
        self.hh_cap_key = f"hhcap:{tier.id}"
        self.hh_paid_key = f"hhpaid:{tier.id}"
        self.income = income
        self._variants = [self._build(None)] + [self._build(i) for i in range(len(tier.tilts))]

    def applies(self, insutype: str, med_type: str, categories: frozenset[str]) -> bool:
        if self.insutypes is not None and insutype not in self.insutypes:
            return False
        if self.med_types is not None and med_type not in self.med_types:
            return False
        return self.categories is None or bool(self.categories & categories)

    def tilt_index(self, categories: frozenset[str]) -> int | None:
        for i, tilt in enumerate(self.tier.tilts):
            if categories.intersection(tilt.categories):
                return i
        return None

    def variant(self, categories: frozenset[str]) -> tuple[tuple[SegmentedScale, ...], int | None, int | None]:
        """(part scales with a common denominator, annual cap in fen or None, tilt index)."""
        idx = self.tilt_index(categories)
        scales, cap = self._variants[0 if idx is None else idx + 1]
        return scales, cap, idx

    def part_deductible(self, part: TierPart) -> int:
        if isinstance(part.deductible, IncomeShare):
            return mul_rate(self.income, part.deductible.income_share)
        return yuan_to_fen(part.deductible)

    def _build(self, tilt_idx: int | None) -> tuple[tuple[SegmentedScale, ...], int | None]:
        tilt = None if tilt_idx is None else self.tier.tilts[tilt_idx]
        raw = []
        for part in self.tier.parts:
            ded = self.part_deductible(part)
            points = ZERO
            if tilt is not None:
                ded = mul_rate(ded, tilt.deductible_factor)
                points = tilt.ratio_points
            raw.append(SegmentedScale.from_bands(ded, bands_of(part.ratio, ded, points, part.band_edges)))
        den = lcm(*(s.denominator for s in raw))
        scales = tuple(SegmentedScale(s.bands, None, den) for s in raw)
        cap = _fen(self.tier.annual_cap)
        if tilt is not None:
            if tilt.remove_cap:
                cap = None
            elif tilt.annual_cap is not None:
                cap = _fen(tilt.annual_cap)
        return scales, cap


class CompiledGuarantee:
    def __init__(self, g: Guarantee):
        self.guarantee = g
        self.id = g.id
        self.name = g.name
        self.pays_into = g.pays_into
        self.fund_pay_type = g.fund_pay_type
        self.categories = frozenset(g.categories)
        self.insutypes = None if g.insutypes is None else frozenset(g.insutypes)
        self.med_types = None if g.med_types is None else frozenset(g.med_types)
        self.share = g.share
        self.share_parts = rate_parts(g.share)
        self.of = g.of

    def applies(self, insutype: str, med_type: str, categories: frozenset[str]) -> bool:
        if self.insutypes is not None and insutype not in self.insutypes:
            return False
        if self.med_types is not None and med_type not in self.med_types:
            return False
        return bool(self.categories & categories)


@dataclass(frozen=True, slots=True)
class ItemRule:
    """How one charge class or catalog entry is classified."""

    chrgitm_lv: str
    in_scope: bool
    pre_num: int
    pre_den: int
    price_cap: int | None  # fen per unit
    full: bool = False  # in-scope part paid in full by the basic fund, no co-share (class ``coshare: false``)


class CompiledPack:
    """Everything an engine needs from one pack, precomputed."""

    def __init__(self, pack: PolicyPack):
        self.pack = pack
        info = pack.pack
        self.id = info.id
        self.version = info.version
        self.name = info.name
        self.effective_from = info.effective_from
        self.effective_to = info.effective_to
        self.levels = dict(pack.levels)
        self.level_rank = {lv: i for i, lv in enumerate(pack.levels)}
        self.categories = dict(pack.categories)
        self.income = yuan_to_fen(pack.reference.per_capita_disposable_income)
        self.classes: dict[str, ItemRule] = {}
        for code, cls in pack.classification.classes.items():
            num, den = rate_parts(cls.preselfpay_ratio)
            self.classes[code] = ItemRule(code, cls.in_scope, num, den, None, not cls.coshare)
        self.catalog: dict[str, ItemRule] = {}
        for entry in pack.classification.catalog:
            base = self.classes[entry.chrgitm_lv]
            if entry.preselfpay_ratio is not None:
                num, den = rate_parts(entry.preselfpay_ratio)
            else:
                num, den = base.pre_num, base.pre_den
            self.catalog[entry.med_list_codg] = ItemRule(
                entry.chrgitm_lv, base.in_scope, num, den, _fen(entry.price_cap), base.full
            )
        self.basic = [CompiledBasic(r, self.level_rank) for r in pack.basic]
        self.tiers = [CompiledTier(t, self.income) for t in pack.tiers]
        self.uses_households = any(t.household_cap is not None for t in self.tiers)  # settle needs hh_no, in household order
        self.guarantees = [CompiledGuarantee(g) for g in pack.guarantees]
        acct = pack.personal_account
        self.account_insutypes = frozenset(acct.insutypes) if acct else frozenset()
        self.account_covers = expand_buckets(acct.covers) if acct else ()
        self._basic_lookup: dict[tuple[str, str, str, str], CompiledBasic | None] = {}

    def basic_rule(self, insutype: str, med_type: str, dise_codg: str, level: str) -> CompiledBasic | None:
        """The first basic rule for this scheme, med_type, diagnosis and level (pack order decides).

        A rule that does not cover the visit's level is passed over, so a disease-specific rule
        for some levels falls through to the general rule after it.
        """
        key = (insutype, med_type, dise_codg, level)
        try:
            return self._basic_lookup[key]
        except KeyError:
            found = next((r for r in self.basic if r.matches(insutype, med_type, dise_codg) and r.covers(level)), None)
            if len(self._basic_lookup) < 100_000:
                self._basic_lookup[key] = found
            return found

