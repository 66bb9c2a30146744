"""参保人查询 (self-service, phone width): an insured person's own settlements of a year, the year's
totals, and what is left of each annual cap and deductible under the pack that settled them.

What is left is read off the person's accumulator balance (the same row every settlement locks) — and, for
a household cap (家庭年度限额), off the household's balance —
with the pack's own compiled rules (``CompiledBasic.deductible``, ``CompiledTier.variant``): the
page computes no rule of its own, only ``limit − used``.
"""

from __future__ import annotations

from datetime import date

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select

from yibao.money import fen_to_yuan
from yibao.policy.compiled import CompiledPack
from yibao.service import ledger, registry
from yibao.service import transactions as tx
from yibao.service.auth import Principal
from yibao.service.desk import Desk
from yibao.service.statement_page import render_html
from yibao.service.statement_pdf import render_pdf
from yibao.settlement.model import Accumulators
from yibao.store.models import AccumulatorBalance, Enrollment, Institution, Person, PersonCategory, Settlement
from yibao.web import site
from yibao.web.site import nav_entry, render, require

nav_entry("/me", "我的医保", "self.read", order=20)
TOTALS = ("medfee_sumamt", "fund_pay_sumamt", "hifp_pay", "hifmi_pay", "maf_pay", "acct_pay", "psn_cash_pay")


def limits(pack: CompiledPack, insutype: str, categories: frozenset[str], acc: Accumulators,
           age: int | None = None, household: Accumulators | None = None) -> list[dict]:
    """Each annual cap and deductible that applies to the person: limit, used, left (fen) — a population group's
    own cap and deductible where the person falls in one (一老一小 by categories and age); and, given the
    household's accumulators, each household cap (家庭年度限额: what the tier paid the household so far)."""
    cats = frozenset(c for c in categories if c in pack.categories)
    out: list[dict] = []
    seen: set[str] = set()
    for rule in pack.basic:
        if rule.rule.insutype != insutype:
            continue
        group = rule.group(cats, age)
        cap = rule.cap(group)
        if cap is not None and rule.cap_key not in seen:
            seen.add(rule.cap_key)
            used = acc.get(rule.cap_key)
            name = rule.name if group is None else f"{rule.name} · {group.name}"
            out.append({"kind": "年度最高支付限额", "name": name, "limit": cap, "used": used,
                        "left": max(0, cap - used)})
        if rule.mode == "annual":
            base = acc.get(rule.base_key)
            for level, level_name in pack.levels.items():
                if not rule.covers(level):
                    continue
                ded = rule.deductible(level, 1, cats, None, False, "", group).amount
                out.append({"kind": "年度起付线", "name": f"{rule.name} · {level_name}", "limit": ded,
                            "used": min(base, ded), "left": max(0, ded - base)})
        else:
            n = acc.get(rule.adm_key)
            for level, level_name in pack.levels.items():
                if not rule.covers(level):
                    continue
                ded = rule.deductible(level, n + 1, cats, None, False, "", group).amount
                out.append({"kind": f"下次起付线(本年已 {n} 次)", "name": f"{rule.name} · {level_name}", "limit": ded,
                            "used": None, "left": ded})
    groups: set[str] = set()
    for tier in pack.tiers:
        if tier.insutypes is not None and insutype not in tier.insutypes:
            continue
        if tier.categories is not None and not tier.categories & cats:
            continue
        if tier.exclusive_group is not None:
            if tier.exclusive_group in groups:
                continue
            groups.add(tier.exclusive_group)
        scales, cap, _ = tier.variant(cats)
        for i, scale in enumerate(scales):
            ded = next((b.lower for b in scale.bands if b.rate > 0), 0)
            if ded:
                base = acc.get(tier.base_keys[i])
                out.append({"kind": "起付线", "name": tier.name, "limit": ded, "used": min(base, ded),
                            "left": max(0, ded - base)})
        if cap is not None:
            used = acc.get(tier.cap_key)
            out.append({"kind": "年度最高支付限额", "name": tier.name, "limit": cap, "used": used,
                        "left": max(0, cap - used)})
        if tier.household_cap is not None and household is not None:
            used = household.get(tier.hh_paid_key)
            out.append({"kind": "家庭年度限额(同户成员合计)", "name": tier.name, "limit": tier.household_cap,
                        "used": used, "left": max(0, tier.household_cap - used)})
    return [dict(r, limit=fen_to_yuan(r["limit"]), used=None if r["used"] is None else fen_to_yuan(r["used"]),
                 left=fen_to_yuan(r["left"]), share=(0 if not r["limit"] or r["used"] is None
                                                     else min(100, round(100 * r["used"] / r["limit"]))))
            for r in out]


def routes(router: APIRouter, desk: Desk) -> None:

    def overview(who, year: int | None) -> dict:
        def q(s):
            p = registry.person(s, who.psn_no)
            years = sorted({y for (y,) in s.execute(select(Settlement.year).where(
                Settlement.psn_no == p.psn_no).distinct())}, reverse=True)
            chosen = year or (years[0] if years else date.today().year)
            rows = list(s.scalars(select(Settlement).where(Settlement.psn_no == p.psn_no, Settlement.year == chosen)
                                  .order_by(Settlement.setl_time.desc())))
            valid = [r for r in rows if r.status == "valid"]
            totals = {f: fen_to_yuan(sum(getattr(r, f) for r in valid)) for f in TOTALS}
            names = dict(s.execute(select(Institution.fixmedins_code, Institution.fixmedins_name).where(
                Institution.fixmedins_code.in_({r.fixmedins_code for r in rows}))).all())
            enrol = list(s.scalars(select(Enrollment).where(Enrollment.psn_no == p.psn_no)))
            on = date(chosen, 12, 31) if chosen < date.today().year else date.today()
            cats = frozenset(s.scalars(select(PersonCategory.category).where(
                PersonCategory.psn_no == p.psn_no, PersonCategory.valid_from <= on, PersonCategory.valid_to >= on)))
            bal = s.get(AccumulatorBalance, (p.psn_no, chosen))
            acc = Accumulators(chosen, {k: int(v) for k, v in (bal.acc_values if bal else {}).items()})
            caps = []
            for e in enrol:
                pack = None
                last = next((r for r in valid if r.insutype == e.insutype), None)
                if last is not None:
                    pack = desk.packs.by_version(last.pack_id, last.pack_version)
                if pack is None:
                    try:
                        pack = desk.packs.pick(e.insuplc_admdvs, max(e.valid_from, min(e.valid_to, on)))
                    except Exception:  # noqa: BLE001 - no pack for that year: nothing to show, said on the page
                        continue
                household = (ledger.household_accumulators(s, p.hh_no, chosen)
                             if pack.uses_households and p.hh_no else None)
                caps.append({"insutype": e.insutype, "pack": f"{pack.id} {pack.version}",
                             "rows": limits(pack, e.insutype, cats, acc, registry.age_on(p.brdy, on), household)})
            return {"psn_name": site.mask_name(p.psn_name), "certno": site.mask_certno(p.certno), "psn_no": p.psn_no,
                    "year": chosen, "years": years, "rows": rows, "names": names, "totals": totals, "caps": caps,
                    "balance": fen_to_yuan(p.acct_balc_fen) if any(e.insutype == "310" for e in enrol) else None}
        return desk.read(q)

    @router.get("/me", response_class=HTMLResponse)
    def me(request: Request, year: int | None = None):
        who = site.current(request, desk)
        require(who, "self.read")
        if year is not None and not 2000 <= year <= 2100:
            year = None
        data = overview(who, year)
        return render(request, "me.html", d=data, yuan_of=fen_to_yuan)

    def own_statement(who, setl_id: str):
        """The insured person's own statement: ownership checked here, then the record read as a reader
        of settlements (the insured role itself holds no staff permission)."""
        def parts(s):
            row = s.get(Settlement, setl_id) if len(setl_id) <= 40 else None
            if row is None or row.psn_no != who.psn_no:
                raise site.NotFoundPage("没有这笔结算, 或它不是您本人的结算")
            _, record = tx.settlement_record(s, Principal(who.name, "auditor"), setl_id)
            p = s.get(Person, row.psn_no)
            inst = registry.institution(s, row.fixmedins_code)
            return (record, {"certno": site.mask_certno(p.certno), "psn_name": site.mask_name(p.psn_name)},
                    {"fixmedins_code": inst.fixmedins_code, "fixmedins_name": inst.fixmedins_name})
        return desk.read(parts)

    @router.get("/me/settlements/{setl_id}/statement.html", response_class=HTMLResponse)
    def my_statement(request: Request, setl_id: str):
        who = site.current(request, desk)
        require(who, "self.read")
        return HTMLResponse(render_html(*own_statement(who, setl_id)))

    @router.get("/me/settlements/{setl_id}/statement.pdf")
    def my_statement_pdf(request: Request, setl_id: str):
        who = site.current(request, desk)
        require(who, "self.read")
        return Response(render_pdf(*own_statement(who, setl_id)), media_type="application/pdf",
                        headers={"Content-Disposition": f'attachment; filename="statement-{setl_id}.pdf"'})
