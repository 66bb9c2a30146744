"""Would 再救助 or 依申请救助 apply to a person the monitoring flagged? The rule, from the pack.

The pack, not this module, says which tiers exist. A tier counts here when one of its parts has a
deductible stated as a share of last year's per-capita disposable income (``{income_share: …}``):
that is how a pack writes "personal burden above N% of income" — 再救助 for the assistance
categories, 依申请救助 for 因病致贫重病患者. Such a tier is

- **依申请救助 (on application)** when every category it names is one the pack lists under
  ``application_categories``: categories a person enters *by applying* (民政部门认定), such as the
  Shandong pack's ``illness_poverty`` 因病致贫重病患者;
- **再救助 (automatic)** otherwise: its categories are recognised beforehand (特困, 低保, …) or it
  names none (everyone).

For each flagged person and each such tier whose 险种 fits:

1. the person already holds one of the tier's categories (or the tier names none): the batch
   settlement has applied it; the amount it paid this year is reported (``paid``), or ``below``
   when nothing was paid (burden under the threshold), or ``superseded`` when an earlier tier of
   the same ``exclusive_group`` applies to the person's categories (the engine takes only the
   first of a group);
2. the person does not hold the category and the tier is on application: ``eligible`` if, after
   being recognised, the tier would pay something — estimated as the tier's own scale (with its
   tilts and annual cap) applied to the person's annual in-scope own share (``inscp_psn_part``) on
   the visits the tier covers (its 医疗类别) — else ``below``; ``superseded`` if the person's
   present categories already put them in an earlier tier of the same exclusive group (a 低保
   person receives 医疗救助 as 低保, not 依申请救助);
3. otherwise the tier does not concern the person and is not listed.

The estimate is exact for a tier whose base is the whole in-scope own share (``inscp_own``) or
the whole personal share and which no later tier reduces, as in the shipped packs; for tiers with
several parts or other bases no amount is estimated (``estimate`` None).
"""

from __future__ import annotations

from dataclasses import dataclass

from yibao.money import fen_to_yuan, format_yuan
from yibao.policy.compiled import CompiledPack, CompiledTier
from yibao.policy.model import IncomeShare
from yibao.settlement.model import BUCKETS

INSCP_BUCKETS = frozenset({"inscp_coshare", "inscp_overcap", "inscp_dedc"})
ROUTE_NAMES = {"reassistance": "再救助", "application": "依申请救助"}


def application_categories(pack: CompiledPack) -> frozenset[str]:
    """Categories a person enters by applying, as the pack states them (``application_categories``).

    >>> from yibao.policy.loader import resolve_pack
    >>> sorted(application_categories(CompiledPack(resolve_pack("shandong-2024"))))
    ['illness_poverty']
    """
    return frozenset(pack.pack.application_categories)


def income_share_tiers(pack: CompiledPack) -> list[CompiledTier]:
    """Tiers with a part whose deductible is a share of per-capita income, in pack order."""
    return [t for t in pack.tiers if any(isinstance(p.deductible, IncomeShare) for p in t.tier.parts)]


def route_of(pack: CompiledPack, tier: CompiledTier) -> str:
    apply = application_categories(pack)
    if tier.categories and tier.categories <= apply:
        return "application"
    return "reassistance"


def threshold_of(tier: CompiledTier) -> int:
    """The tier's income-share deductible in fen (its first such part)."""
    part = next(p for p in tier.tier.parts if isinstance(p.deductible, IncomeShare))
    return tier.part_deductible(part)


def base_kind(tier: CompiledTier) -> str | None:
    """'inscp' or 'oop' when the estimate can use the annual inscp_psn_part / psn_part_amt."""
    if len(tier.part_buckets) != 1:
        return None
    buckets = frozenset(tier.part_buckets[0])
    if buckets == INSCP_BUCKETS:
        return "inscp"
    if buckets == frozenset(BUCKETS):
        return "oop"
    return None


def estimate(tier: CompiledTier, categories: frozenset[str], inscp: int, oop: int) -> int | None:
    """What the tier would pay for the year on this base, in fen (None if not estimable).

    >>> from yibao.policy.loader import resolve_pack
    >>> pack = CompiledPack(resolve_pack("shandong-2024"))
    >>> t = next(t for t in pack.tiers if t.id == "assistance_on_application")
    >>> estimate(t, frozenset({"illness_poverty"}), 1_580_000, 0)   # (15,800 − 10,000) × 60%
    348000
    """
    kind = base_kind(tier)
    if kind is None:
        return None
    scales, cap, _ = tier.variant(categories)
    amount = scales[0].uncapped_amount(inscp if kind == "inscp" else oop)
    return amount if cap is None else min(amount, cap)


@dataclass(frozen=True)
class AssistanceCheck:
    tier_id: str
    tier_name: str
    route: str  # reassistance | application
    status: str  # paid | eligible | below | superseded
    threshold: int  # fen
    paid: int  # fen the settled data show this tier paid this year
    estimate: int | None  # fen, for an application
    message: str  # Chinese, for the list

    def to_dict(self) -> dict:
        def yuan(fen: int | None) -> str | None:
            return None if fen is None else str(fen_to_yuan(fen))

        return {"tier_id": self.tier_id, "tier_name": self.tier_name, "route": self.route,
                "route_name": ROUTE_NAMES[self.route], "status": self.status, "threshold": yuan(self.threshold),
                "paid": yuan(self.paid), "estimate": yuan(self.estimate), "message": self.message}


def _applies(tier: CompiledTier, insutype: str, categories: frozenset[str]) -> bool:
    if tier.insutypes is not None and insutype not in tier.insutypes:
        return False
    return tier.categories is None or bool(tier.categories & categories)


def _earlier_in_group(pack: CompiledPack, tier: CompiledTier, insutype: str,
                      categories: frozenset[str]) -> CompiledTier | None:
    if tier.exclusive_group is None:
        return None
    for other in pack.tiers:
        if other is tier:
            return None
        if other.exclusive_group == tier.exclusive_group and _applies(other, insutype, categories):
            return other
    return None


def check(pack: CompiledPack, insutype: str, categories: frozenset[str], paid: dict[str, int],
          bases: dict[str, tuple[int, int]]) -> list[AssistanceCheck]:
    """The checks for one person-year. ``paid``: tier id → fen paid; ``bases``: tier id →
    (inscp_psn_part, psn_part_amt) summed over the visits the tier covers."""
    out = []
    names = pack.categories
    for tier in income_share_tiers(pack):
        if tier.insutypes is not None and insutype not in tier.insutypes:
            continue
        route = route_of(pack, tier)
        threshold = threshold_of(tier)
        got = paid.get(tier.id, 0)
        inscp, oop = bases.get(tier.id, (0, 0))
        line = f"{format_yuan(threshold)} 元"
        if _applies(tier, insutype, categories):
            earlier = _earlier_in_group(pack, tier, insutype, categories)
            if got > 0:
                out.append(AssistanceCheck(tier.id, tier.name, route, "paid", threshold, got, None,
                                           f"已享受{tier.name} {format_yuan(got)} 元"))
            elif earlier is not None:
                out.append(AssistanceCheck(tier.id, tier.name, route, "superseded", threshold, 0, None,
                                           f"已按{earlier.name}救助, 不再适用{tier.name}"))
            else:
                out.append(AssistanceCheck(tier.id, tier.name, route, "below", threshold, 0, None,
                                           f"属{tier.name}对象, 个人负担未超过起付线 {line}"))
            continue
        if route != "application":
            continue
        earlier = _earlier_in_group(pack, tier, insutype, categories)
        if earlier is not None:
            out.append(AssistanceCheck(tier.id, tier.name, route, "superseded", threshold, 0, None,
                                       f"已属{earlier.name}对象, 不适用{tier.name}"))
            continue
        wanted = sorted(tier.categories or ())
        who = "、".join(names.get(c, c) for c in wanted)
        amount = estimate(tier, categories | {wanted[0]}, inscp, oop) if wanted else None
        if amount is None:
            status = "eligible" if inscp > threshold else "below"
            message = (f"可申请{tier.name}: 经认定为{who}后按政策救助(金额无法估算)" if status == "eligible"
                       else f"政策范围内个人负担未超过{tier.name}起付线 {line}")
        elif amount > 0:
            status = "eligible"
            message = f"可申请{tier.name}: 经认定为{who}后, 预计救助 {format_yuan(amount)} 元"
        else:
            status = "below"
            message = f"政策范围内个人负担未超过{tier.name}起付线 {line}"
        out.append(AssistanceCheck(tier.id, tier.name, route, status, threshold, 0, amount, message))
    return out
