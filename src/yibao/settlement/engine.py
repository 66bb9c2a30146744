"""The scalar engine: settle one visit one-stop across every tier, exactly, with its reasons.

Order (DESIGN.md §5): classify items → 基本医保 → the pack's tiers in pack order (大病/大额,
医疗救助, 再救助/依申请救助, supplementary) → 兜底 guarantees → personal account → cash.

Money flows through six buckets (:data:`yibao.settlement.model.BUCKETS`). 基本医保 splits the
in-scope amount into what it pays, the part under the deductible, the co-share and what the
annual cap left; every later tier's base is the sum of the buckets it covers as earlier tiers
left them, and what it pays is drawn from those buckets in proportion (see :func:`draw`).

Cumulative tiers pay ``round(G(cum + base)) − round(G(cum))`` and per-admission 基本医保 its
rounded per-admission amount; an annual cap then bounds the running sum of those amounts
(``min(used + x, cap) − min(used, cap)``). With one G for the year this is exactly
``round(F(cum + base)) − round(F(cum))`` for F = min(cap, G) (DESIGN.md §5); when the level or
a category tilt changes G between visits, the cap still holds to the fen. The engine is pure: it reads
the compiled pack, the person, the visit and the year-to-date accumulators, and returns a
:class:`Settlement` holding the accumulators after it and the delta it added.
"""

from __future__ import annotations

from yibao.errors import Problem, SettlementError
from yibao.policy.compiled import CompiledPack
from yibao.policy.scale import round_numerator
from yibao.settlement.classify import classify_items
from yibao.settlement.model import (
    BUCKETS,
    Accumulators,
    Person,
    SetlDetail,
    Setlinfo,
    Settlement,
    Step,
    Visit,
)


SETTLEMENT_COUNT = "setl:count"


def settle(pack: CompiledPack, person: Person, visit: Visit, acc: Accumulators,
           household: Accumulators | None = None) -> Settlement:
    """Settle one visit on top of the person's year-to-date accumulators ``acc`` and, where the pack has household
    caps (家庭年度限额), the year-to-date accumulators of the person's household (empty when not given)."""
    if pack.uses_households and household is None:
        household = Accumulators(acc.year)
    check_visit(pack, person, visit, acc, household)
    amounts = visit.amounts if visit.items is None else classify_items(pack, visit.items)
    assert amounts is not None
    cats = person.categories
    steps: list[Step] = [Step("classify", "classify", "费用分类", {
        "medfee_sumamt": amounts.medfee_sumamt,
        "fulamt_ownpay_amt": amounts.fulamt_ownpay_amt,
        "overlmt_selfpay": amounts.overlmt_selfpay,
        "preselfpay_amt": amounts.preselfpay_amt,
        "inscp_scp_amt": amounts.inscp_scp_amt,
        "items": 0 if visit.items is None else len(visit.items),
    })]
    # every settlement counts itself, so 后结先撤 can tell the latest even when it changed nothing else
    delta: dict[str, int] = {SETTLEMENT_COUNT: 1}
    hh_delta: dict[str, int] = {}
    details: list[SetlDetail] = []
    get = acc.values.get

    # --- 基本医保 统筹基金 -------------------------------------------------------------
    rule = pack.basic_rule(person.insutype, visit.med_type, visit.dise_codg, visit.level)
    if rule is None:
        near = next((r for r in pack.basic if r.matches(person.insutype, visit.med_type, visit.dise_codg)), None)
        if near is not None:
            raise SettlementError(Problem(
                "SET006", "visit.level", f"规则 {near.id}({near.name})未规定机构等级 {visit.level!r} 的起付线和比例",
            ))
        raise SettlementError(Problem(
            "SET005", "visit.med_type",
            f"政策包 {pack.id} 没有险种 {person.insutype}、医疗类别 {visit.med_type} 的基本医保规则",
        ))
    if rule.needs_age and person.age is None:
        raise SettlementError(Problem("SET008", "person.age",
                                      f"规则 {rule.id}({rule.name})按年龄确定支付比例或人群, 须给出参保人年龄"))
    group = rule.group(cats, person.age)  # 一老一小 and the like: the group's deductible, cap and points
    inscp = amounts.inscp_scp_amt
    full = amounts.inscp_full  # in-scope amount of classes without co-share (coshare: false)
    standard = None  # 单病种定额 standard (fen) when the rule settles on one
    hosp = 0  # hosp_part_amt: what the institution bears (a bill above a 单病种 standard)
    if rule.mode == "per_admission":
        count = acc.get(rule.adm_key)
        # a 医共体 referral continues the referring admission: same admission number, no new count
        continues = rule.is_referral(visit.referral_from_level) and count > 0
        n = count if continues else count + 1
        once_match = bool(rule.once_diseases) and visit.dise_codg.startswith(rule.once_diseases)
        ded = rule.deductible(visit.level, n, cats, visit.referral_from_level,
                              acc.get(rule.once_key) > 0, visit.dise_codg, group)
        scale = rule.scale(visit.level, person.retiree, cats, ded.amount, visit.offsite_status, person.age, group)
        standard = rule.fixed_standard(visit.dise_codg, visit.level)
        if standard is None:  # the co-share-free part (inscp_full) is paid in full, beside the deductible and ratio
            uncapped = scale.uncapped_amount(inscp - full) + full
            dedc = min(inscp - full, ded.amount)
        else:  # 单病种定额: the bill up to the standard, no deductible (validated), the excess the institution's
            settled, uncapped, hosp = rule.fixed_amount(scale, amounts.medfee_sumamt, standard)
            dedc = 0
        if not continues:
            delta[rule.adm_key] = 1
        if once_match:
            delta[rule.once_key] = 1
        basic_facts = {"mode": "per_admission", "admission_no": n, "deductible": ded.amount,
                       "deductible_first": ded.first, "deductible_reason": ded.reason}
        if standard is not None:
            basic_facts.update({"mode": "fixed_standard", "standard": standard, "medfee_sumamt": amounts.medfee_sumamt,
                                "settled": settled, "hosp_part_amt": hosp,
                                "below_standard": "standard" if rule.fixed_on_standard else "actual"})
    else:
        ded = rule.deductible(visit.level, 1, cats, None, False, visit.dise_codg, group)
        scale = rule.scale(visit.level, person.retiree, cats, ded.amount, visit.offsite_status, person.age, group)
        base_before = acc.get(rule.base_key)
        shared = inscp - full  # the year's running base counts the co-shared amounts only
        uncapped = scale.uncapped_amount(base_before + shared) - scale.uncapped_amount(base_before) + full
        dedc = min(base_before + shared, ded.amount) - min(base_before, ded.amount)
        delta[rule.base_key] = shared
        basic_facts = {"mode": "annual", "deductible": ded.amount, "deductible_reason": ded.reason,
                       "base_before": base_before}
    # the annual cap bounds the running sum of the rounded uncapped amounts (per cap group)
    cap = rule.cap(group)
    cap_used = acc.get(rule.cap_key)
    hifp = uncapped if cap is None else min(cap_used + uncapped, cap) - min(cap_used, cap)
    if uncapped:
        delta[rule.cap_key] = uncapped
    basic_facts["cap_used_before"] = cap_used
    delta[rule.paid_key] = hifp
    coshare = (inscp if standard is None else settled) - dedc - uncapped
    overcap = uncapped - hifp
    steps.append(Step("basic", rule.id, rule.name, {
        **basic_facts, "level": visit.level, "inscp": inscp, "inscp_full": 0 if standard is not None else full,
        "scale": scale, "points": rule.points(person.retiree, cats, visit.offsite_status, person.age, group),
        "retiree_share_factor": rule.rule.retiree_share_factor if person.retiree else None,
        "group": None if group is None else group.id, "group_name": None if group is None else group.name,
        "group_points": None if group is None else group.points,
        "age": person.age if rule.uses_age else None, "age_points": rule.age_points(person.age) if rule.uses_age else None,
        "offsite_status": visit.offsite_status, "offsite_points": rule.rule.offsite_points.get(visit.offsite_status), "annual_cap": cap, "uncapped": uncapped,
        "hifp_pay": hifp, "act_pay_dedc": dedc, "pool_prop_selfpay": coshare, "overcap": overcap,
    }))
    if hifp:
        details.append(SetlDetail(rule.fund_pay_type, hifp, "hifp_pay", rule.id, rule.name))
    fixed = standard is not None  # under a 单病种 standard the whole settled bill is the person's co-share
    buckets = {
        "inscp_coshare": coshare,
        "inscp_overcap": overcap,
        "inscp_dedc": dedc,
        "preselfpay": 0 if fixed else amounts.preselfpay_amt,
        "overlmt_selfpay": 0 if fixed else amounts.overlmt_selfpay,
        "fulamt_ownpay": 0 if fixed else amounts.fulamt_ownpay_amt,
    }
    paid = {"cvlserv_pay": 0, "hifes_pay": 0, "hifmi_pay": 0, "hifob_pay": 0, "maf_pay": 0, "oth_pay": 0}
    fund_total = hifp

    # --- cumulative tiers: 大病/大额, 医疗救助, 再救助, 补充 ---------------------------------
    used_groups: set[str] = set()
    for tier in pack.tiers:
        if not tier.applies(person.insutype, visit.med_type, cats):
            continue
        if tier.exclusive_group is not None:
            if tier.exclusive_group in used_groups:
                continue
            used_groups.add(tier.exclusive_group)
        scales, cap, tilt = tier.variant(cats)
        bases = [_sum_of(buckets, part) for part in tier.part_buckets]
        # a per-admission tier measures each admission on its own; the year's base is still recorded
        cums = [0] * len(tier.base_keys) if tier.per_admission else [get(k, 0) for k in tier.base_keys]
        den = scales[0].denominator
        before = sum(s.numerator(c) for s, c in zip(scales, cums))
        after = sum(s.numerator(c + b) for s, c, b in zip(scales, cums, bases))
        uncapped = round_numerator(after, den) - round_numerator(before, den)
        cap_used = get(tier.cap_key, 0)
        pay = uncapped if cap is None else min(cap_used + uncapped, cap) - min(cap_used, cap)
        own_pay = pay  # what the person's own cap lets through
        hh_used = None
        if tier.household_cap is not None:  # the household's cap bounds the running sum of its members' own_pay
            if person.hh_no is None:
                raise SettlementError(Problem("SET009", "person.hh_no",
                                              f"层次 {tier.id}({tier.name})有家庭年度限额, 须给出参保人的家庭编号 hh_no"))
            assert household is not None
            hh_used = household.get(tier.hh_cap_key)
            pay = min(hh_used + own_pay, tier.household_cap) - min(hh_used, tier.household_cap)
            if own_pay:
                hh_delta[tier.hh_cap_key] = own_pay
            if pay:
                hh_delta[tier.hh_paid_key] = pay
        part_pays = draw_parts(buckets, tier, scales, cums, bases, pay)
        for key, base in zip(tier.base_keys, bases):
            if base:
                delta[key] = base
        if uncapped:
            delta[tier.cap_key] = uncapped
        if pay:
            delta[tier.paid_key] = pay
            paid[tier.pays_into] += pay
            fund_total += pay
            details.append(SetlDetail(tier.fund_pay_type, pay, tier.pays_into, tier.id, tier.name))
        steps.append(Step("tier", tier.id, tier.name, {
            "pays_into": tier.pays_into, "tilt": tilt, "per_admission": tier.per_admission,
            "bases": bases, "cum_before": cums, "part_pays": part_pays,
            "scales": scales, "annual_cap": cap, "pay": pay, "uncapped": uncapped,
            "cap_used_before": cap_used,
            "paid_before": get(tier.paid_key, 0),
            "household_cap": tier.household_cap, "hh_no": person.hh_no if hh_used is not None else None,
            "household_used_before": hh_used, "own_cap_pay": own_pay,
        }))

    # --- 兜底 guarantees -------------------------------------------------------------------
    for g in pack.guarantees:
        if not g.applies(person.insutype, visit.med_type, cats):
            continue
        if fixed:  # under a 单病种 standard the settled bill is the basis, all of it within the policy
            of = settled
        else:
            of = amounts.medfee_sumamt if g.of == "medfee_sumamt" else amounts.inscp_scp_amt
        num, den = g.share_parts
        target = round_numerator(of * num, den)
        topup = min(max(0, target - fund_total), sum(buckets.values()))
        draw(buckets, BUCKETS, topup)
        if topup:
            paid[g.pays_into] += topup
            details.append(SetlDetail(g.fund_pay_type, topup, g.pays_into, g.id, g.name))
        steps.append(Step("guarantee", g.id, g.name, {
            "share": g.share, "of": g.of, "of_amount": of, "target": target,
            "paid_before": fund_total, "pay": topup, "pays_into": g.pays_into,
        }))
        fund_total += topup

    # --- personal account, then cash --------------------------------------------------------
    psn_part = amounts.medfee_sumamt - fund_total - hosp
    acct = 0
    if person.insutype in pack.account_insutypes and visit.acct_balance > 0:
        eligible = sum(buckets[b] for b in pack.account_covers)
        acct = min(visit.acct_balance, eligible)
        steps.append(Step("account", "personal_account", "个人账户", {
            "balance": visit.acct_balance, "eligible": eligible, "acct_pay": acct,
        }))
    cash = psn_part - acct
    steps.append(Step("cash", "cash", "个人现金", {"psn_part_amt": psn_part, "acct_pay": acct, "psn_cash_pay": cash}))

    info = Setlinfo(
        medfee_sumamt=amounts.medfee_sumamt,
        fulamt_ownpay_amt=amounts.fulamt_ownpay_amt,
        overlmt_selfpay=amounts.overlmt_selfpay,
        preselfpay_amt=amounts.preselfpay_amt,
        inscp_scp_amt=inscp,
        act_pay_dedc=dedc,
        hifp_pay=hifp,
        pool_prop_selfpay=coshare,
        fund_pay_sumamt=fund_total,
        psn_part_amt=psn_part,
        acct_pay=acct,
        psn_cash_pay=cash,
        hosp_part_amt=hosp,
        **paid,
    )
    return Settlement(
        psn_no=person.psn_no,
        mdtrt_id=visit.mdtrt_id,
        pack_id=pack.id,
        pack_version=pack.version,
        setlinfo=info,
        setldetail=tuple(details),
        steps=tuple(steps),
        accumulators_before=acc,
        accumulators_after=acc.plus(delta),
        delta=delta,
        inscp_psn_part=buckets["inscp_coshare"] + buckets["inscp_overcap"] + buckets["inscp_dedc"],
        household_before=household,
        household_delta=hh_delta,
    )


def _sum_of(buckets: dict[str, int], names) -> int:
    total = 0
    for name in names:
        total += buckets[name]
    return total


def draw_parts(buckets: dict[str, int], tier, scales, cums, bases, pay: int) -> list[int]:
    """Draw a tier's payment, each part from its own buckets (in-scope from in-scope...).

    Each part is credited its own rounded increment, in part order, until the tier's payment
    (which may be capped) is used up; a rounding remainder of a fen or two is drawn from the
    tier's buckets in the pack's order. A tier never pays more than its base.
    """
    if len(scales) == 1:
        draw(buckets, tier.draw_order, pay)
        return [pay]
    remaining = pay
    part_pays = []
    for scale, cum, base, part in zip(scales, cums, bases, tier.part_buckets):
        own = scale.uncapped_amount(cum + base) - scale.uncapped_amount(cum)
        take = own if own < remaining else remaining
        draw(buckets, part, take)
        part_pays.append(take)
        remaining -= take
    if remaining:
        draw(buckets, tier.draw_order, remaining)
        part_pays[-1] += remaining
    return part_pays


def draw(buckets: dict[str, int], order, amount: int) -> None:
    """Take ``amount`` out of ``buckets`` in proportion to what each holds.

    A tier that pays 90% of a base made of several amounts leaves 10% of each of them for the
    tiers after it. Shares are floored to the fen; the remainder (fewer fen than buckets) is
    taken a fen at a time in the pack's order. A tier never pays more than its base.
    """
    if amount <= 0:
        return
    total = 0
    for name in order:
        total += buckets[name]
    if amount > total:
        raise AssertionError("tier paid more than its base")  # impossible: scales have slope ≤ 1
    if amount == total:
        for name in order:
            buckets[name] = 0
        return
    rest = amount
    takes = []
    for name in order:
        take = buckets[name] * amount // total
        takes.append(take)
        rest -= take
    for i, name in enumerate(order):
        if rest and buckets[name] > takes[i]:
            takes[i] += 1
            rest -= 1
        buckets[name] -= takes[i]


def check_visit(pack: CompiledPack, person: Person, visit: Visit, acc: Accumulators,
                household: Accumulators | None = None) -> None:
    """Refuse, with every reason at once, a visit this pack cannot settle."""
    problems: list[Problem] = []
    if household is not None and household.year != visit.setl_date.year:
        problems.append(Problem("SET002", "household.year",
                                f"家庭累计信息年度 {household.year} 与结算日期年度 {visit.setl_date.year} 不一致"))
    if not (pack.effective_from <= visit.setl_date <= pack.effective_to):
        problems.append(Problem("SET001", "visit.setl_time",
                                f"结算日期 {visit.setl_date} 不在政策包 {pack.id} 的有效期 "
                                f"{pack.effective_from} 至 {pack.effective_to} 内"))
    if acc.year != visit.setl_date.year:
        problems.append(Problem("SET002", "accumulators.year",
                                f"累计信息年度 {acc.year} 与结算日期年度 {visit.setl_date.year} 不一致"))
    if visit.level not in pack.levels:
        problems.append(Problem("SET003", "visit.level",
                                f"未知的机构等级 {visit.level!r}; 政策包已声明: {sorted(pack.levels)}"))
    if visit.referral_from_level is not None and visit.referral_from_level not in pack.levels:
        problems.append(Problem("SET003", "visit.referral_from_level",
                                f"未知的转出机构等级 {visit.referral_from_level!r}"))
    unknown = sorted(set(person.categories) - set(pack.categories))
    if unknown:
        problems.append(Problem("SET004", "person.categories",
                                f"未知的人员类别 {unknown}; 政策包已声明: {sorted(pack.categories)}"))
    if visit.items is None and visit.amounts is None:
        problems.append(Problem("SET007", "visit.items", "须给出费用明细(items)或四项分类金额(amounts)"))
    if problems:
        raise SettlementError(problems)


def settle_year(pack: CompiledPack, person: Person, visits, acc: Accumulators,
                household: Accumulators | None = None) -> list[Settlement]:
    """Settle one person's visits in order, carrying the accumulators (the person's and, where the pack has
    household caps, the household's) from one to the next."""
    out = []
    for i, visit in enumerate(visits):
        try:
            result = settle(pack, person, visit, acc, household)
        except SettlementError as exc:  # say which visit of the list, in the request's own terms
            raise SettlementError([
                Problem(p.code, p.path.replace("visit.", f"visits[{i}].", 1), f"(就诊 {visit.mdtrt_id}) {p.message}")
                for p in exc.problems
            ]) from None
        out.append(result)
        acc = result.accumulators_after
        household = result.household_after
    return out


def settle_in_order(pack: CompiledPack, persons, visits) -> list[Settlement]:
    """Settle visits of many persons in the given order (``visits``: (psn_no, Visit) pairs), each on its person's
    and household's running accumulators — what the service does as visits arrive, and the scalar reference of a
    batch run in household order. A household is its ``hh_no`` within the settlement year."""
    accs: dict[tuple[str, int], Accumulators] = {}
    households: dict[tuple[str, int], Accumulators] = {}
    out = []
    for psn_no, visit in visits:
        person = persons[psn_no]
        year = visit.setl_date.year
        hh = None
        if pack.uses_households and person.hh_no is not None:
            hh = households.get((person.hh_no, year)) or Accumulators(year)
        result = settle(pack, person, visit, accs.get((psn_no, year)) or Accumulators(year), hh)
        accs[(psn_no, year)] = result.accumulators_after
        if hh is not None:
            households[(person.hh_no, year)] = result.household_after
        out.append(result)
    return out


def reverse(settlement: Settlement, current: Accumulators) -> Accumulators:
    """结算撤销: the accumulators without this settlement.

    Later settlements of the same person and year were computed on top of this one, so only the
    latest may be reversed (后结先撤): ``current`` must be exactly what this settlement left.
    Reverse the later ones first, then this one; settling again then gives the same results.
    """
    if _normal(current) != _normal(settlement.accumulators_after):
        raise SettlementError(Problem(
            "SET040", "mdtrt_id",
            f"就诊 {settlement.mdtrt_id} 之后该参保人本年度还有结算; 须按后结先撤的顺序先撤销之后的结算",
        ))
    restored = current.minus(settlement.delta)
    assert _normal(restored) == _normal(settlement.accumulators_before)
    return restored


def reverse_household(settlement: Settlement, current: Accumulators) -> Accumulators:
    """结算撤销 of a settlement that used a household cap: the household's accumulators without it.

    A later settlement of any member was capped on top of this one, so only the household's latest such
    settlement may be reversed (后结先撤 within the household): ``current`` must be what it left.
    """
    after = settlement.household_after
    if after is None or not settlement.household_delta:
        return current
    if _normal(current) != _normal(after):
        raise SettlementError(Problem(
            "SET041", "mdtrt_id",
            f"就诊 {settlement.mdtrt_id} 之后该家庭本年度还有计入家庭年度限额的结算; 须按后结先撤的顺序先撤销之后的结算",
        ))
    return current.minus(settlement.household_delta)


def _normal(acc: Accumulators) -> tuple[int, dict[str, int]]:
    return acc.year, {k: v for k, v in acc.values.items() if v}
