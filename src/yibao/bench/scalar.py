"""Scalar engine benchmark (单次结算引擎性能基准): visits per second on one core.

What is timed, on one seeded population (same numbers every run for one seed):

(a) full settlement: ``settle`` of every visit with its fee lines (classification included),
    each person's visits in date order, accumulators carried from one visit to the next;
(b) the same settlements from pre-classified amounts (the four amounts instead of the lines);
(c) classification alone (``classify_items``), the integer-fen path;
(d) the obvious alternative for (c): a straightforward ``Decimal`` classification in yuan, with
    ``quantize(..., ROUND_HALF_UP)`` per line — what a naive implementation would do. Its
    inputs (fees in Decimal yuan, catalog in Decimal) are prepared untimed, so only the
    classification itself is compared; its results are checked equal to (c).

The pack is the shipped ``shandong-2024`` example (its rules as written) with its catalog
replaced by ~2,000 seeded entries (甲/乙/丙, some price caps, some own 先行自付 shares); if
that pack is not installed an equivalent pack built in code is used. Data generation is never
timed. Each figure is the best of ``repeat`` runs after a warm-up; the process is pinned to one
CPU where the OS allows it.

>>> figures = run(visits=200, items_per_visit=5, repeat=1)
>>> figures["full"]["visits"], figures["checks"]["full_equals_preclassified"]
(200, True)
"""

from __future__ import annotations

import gc
import os
import platform
import random
import resource
import sys
import time
import tracemalloc
from bisect import bisect
from dataclasses import replace
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from itertools import accumulate
from typing import Any, Callable

from yibao.money import yuan_to_fen
from yibao.policy.compiled import CompiledPack
from yibao.policy.loader import pack_from_data, resolve_pack
from yibao.policy.model import PolicyPack
from yibao.settlement.classify import classify_items
from yibao.settlement.engine import settle
from yibao.settlement.model import Accumulators, FeeItem, Person, Visit

GOAL_VISITS_PER_S = 20_000
YEAR = 2024
CENT = Decimal("0.01")


# --- the pack -----------------------------------------------------------------------------


def _catalog(rng: random.Random, size: int) -> list[dict]:
    """~45% 甲类, 40% 乙类, 15% 丙类; a third of the in-scope items have a price cap."""
    out = []
    for i in range(size):
        lv = rng.choices(("01", "02", "03"), weights=(45, 40, 15))[0]
        entry: dict[str, Any] = {"med_list_codg": f"BM{i:05d}", "name": f"基准目录项目{i}", "chrgitm_lv": lv}
        if lv != "03" and rng.random() < 0.33:
            entry["price_cap"] = Decimal(max(1, round(rng.lognormvariate(3.2, 1.3) * 100))) / 100
        if lv == "02" and rng.random() < 0.08:
            entry["preselfpay_ratio"] = Decimal("0.20")  # 放宽/植入类: own 先行自付 share
        out.append(entry)
    return out


def build_pack(rng: random.Random, catalog_size: int = 2000) -> tuple[PolicyPack, str]:
    """(pack with a seeded catalog, where its rules came from)."""
    data = resolve_pack("shandong-2024").model_dump(mode="python")
    source = "shandong-2024 (shipped) + seeded catalog"
    data["classification"]["catalog"] = _catalog(rng, catalog_size)
    data["pack"] = {**data["pack"], "id": f"{data['pack']['id']}-bench"}
    return pack_from_data(data, "<bench>"), source


# --- the population -----------------------------------------------------------------------

MED_TYPES = {  # med_type: (weight, items multiplier for amounts, needs disease)
    "11": (55, 1), "14": (15, 3), "21": (27, 40), "52": (3, 30),
}


def _population(rng: random.Random, pack: CompiledPack, visits: int, items_per_visit: int):
    """[(person, [visits in date order])] with ``visits`` visits in all; fee lines and amounts."""
    codes = list(pack.catalog)
    # popular items are billed far more often (Zipf-like weights, cumulative for bisect)
    cum_weights = list(accumulate(1 / (k + 1) ** 0.9 for k in range(len(codes))))
    unit = {c: max(1, round(rng.lognormvariate(3.0, 1.2) * 100)) for c in codes}  # fen per unit
    categories = list(pack.categories)
    has_account = pack.account_insutypes
    insutypes = sorted({r.rule.insutype for r in pack.basic})
    people = []
    made = 0
    p = 0
    while made < visits:
        p += 1
        insutype = rng.choice(insutypes)
        cats = frozenset([rng.choice(categories)]) if categories and rng.random() < 0.15 else frozenset()
        person = Person(f"P{p:07d}", insutype, cats, retiree=insutype == "310" and rng.random() < 0.3)
        n = min(visits - made, 1 + int(rng.expovariate(1 / 3)))
        days = sorted(rng.randrange(366) for _ in range(n))
        vs = []
        for j, day in enumerate(days):
            med_type = rng.choices(list(MED_TYPES), weights=[w for w, _ in MED_TYPES.values()])[0]
            if med_type == "52" and insutype != "390":
                med_type = "21"
            scale = MED_TYPES[med_type][1]
            level = rng.choices(("1", "2", "3"), weights=(45, 35, 20))[0]
            dise = rng.choice(("I10.x00", "E11.900")) if med_type in ("11", "14") and rng.random() < 0.3 else "J18.900"
            referral = rng.choice(("1", "2")) if med_type == "21" and rng.random() < 0.05 else None
            items = []
            for k in range(items_per_visit):
                code = codes[bisect(cum_weights, rng.random() * cum_weights[-1])]
                cnt = Decimal(rng.choice((1, 1, 1, 2, 3, 5, 10))) * (scale if rng.random() < 0.5 else 1)
                if rng.random() < 0.05:
                    cnt = cnt / 2  # half units (0.5 支)
                price = unit[code]
                rule = pack.catalog[code]
                if rule.price_cap is not None and rng.random() < 0.3:
                    price = rule.price_cap + rng.randrange(1, 1 + rule.price_cap // 2 + 1)  # over the cap
                fee = int((price * cnt).to_integral_value(ROUND_HALF_UP))
                items.append(FeeItem(f"{k + 1}", code, fee, cnt=cnt, pric=price))
            vs.append(Visit(
                mdtrt_id=f"M{made + j + 1:08d}", med_type=med_type, level=level,
                setl_date=date(YEAR, 1, 1) + timedelta(days=day), fixmedins_code=f"H{level}{rng.randrange(50):03d}",
                dise_codg=dise, referral_from_level=referral if referral != level else None, items=tuple(items),
                acct_balance=rng.randrange(0, 300_000) if insutype in has_account else 0,
            ))
        made += n
        people.append((person, vs))
    return people


# --- the runs -----------------------------------------------------------------------------

def _settle_all(pack: CompiledPack, people) -> int:
    fund = 0
    for person, visits in people:
        acc = Accumulators(YEAR)
        for visit in visits:
            result = settle(pack, person, visit, acc)
            acc = result.accumulators_after
            fund += result.setlinfo.fund_pay_sumamt
    return fund


def _classify_all(pack: CompiledPack, item_lists) -> int:
    total = 0
    for items in item_lists:
        total += classify_items(pack, items).inscp_scp_amt
    return total


def decimal_tables(pack: PolicyPack):
    """The catalog and classes as a naive implementation holds them: Decimal yuan and ratios."""
    classes = {code: (c.in_scope, c.preselfpay_ratio) for code, c in pack.classification.classes.items()}
    catalog = {}
    for e in pack.classification.catalog:
        in_scope, pre = classes[e.chrgitm_lv]
        catalog[e.med_list_codg] = (e.chrgitm_lv, in_scope, pre if e.preselfpay_ratio is None else e.preselfpay_ratio,
                                    e.price_cap)
    return catalog, classes


def classify_decimal(catalog, classes, lines) -> tuple[Decimal, Decimal, Decimal, Decimal]:
    """费用分类, the naive way: Decimal yuan, quantize half-up per line (same rules as classify_items).

    ``lines``: (med_list_codg, chrgitm_lv or None, fee in yuan, cnt, preselfpay_ratio or None).
    """
    fulamt = overlmt = pre = inscp = Decimal(0)
    for code, lv, fee, cnt, own_ratio in lines:
        entry = catalog.get(code)
        if lv is not None and (entry is None or entry[0] != lv):
            in_scope, ratio = classes[lv]
            cap = entry[3] if entry is not None else None
        else:
            _, in_scope, ratio, cap = entry
        if not in_scope:
            fulamt += fee
            continue
        if cap is not None:
            limit = (cap * cnt).quantize(CENT, rounding=ROUND_HALF_UP)
            if fee > limit:
                overlmt += fee - limit
                fee = limit
        if own_ratio is not None:
            ratio = own_ratio
        share = (fee * ratio).quantize(CENT, rounding=ROUND_HALF_UP)
        pre += share
        inscp += fee - share
    return fulamt, overlmt, pre, inscp


def _classify_all_decimal(catalog, classes, line_lists) -> Decimal:
    total = Decimal(0)
    for lines in line_lists:
        total += classify_decimal(catalog, classes, lines)[3]
    return total


def _best_of(repeat: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    best, value = float("inf"), None
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - start)
    return best, value


def _rates(seconds: float, visits: int, items: int) -> dict:
    return {
        "seconds": round(seconds, 4),
        "visits": visits,
        "items": items,
        "visits_per_s": round(visits / seconds) if seconds else None,
        "items_per_s": round(items / seconds) if seconds else None,
        "us_per_visit": round(seconds * 1e6 / visits, 2) if visits else None,
    }


def run(visits: int = 20000, items_per_visit: int = 30, seed: int = 1, repeat: int = 3,
        catalog_size: int = 2000, trace_memory: bool = True) -> dict:
    """Build the seeded pack and population, time (a)–(d), and return the figures.

    The process is pinned to one CPU while it runs (Linux), and unpinned afterwards.
    """
    try:
        saved = os.sched_getaffinity(0)
        cpu = min(saved)
        os.sched_setaffinity(0, {cpu})
        affinity = f"pinned to CPU {cpu} of {len(saved)}"
    except (AttributeError, OSError):  # pragma: no cover - macOS / Windows
        saved, affinity = None, "not pinned (single thread)"
    try:
        return _run(visits, items_per_visit, seed, repeat, catalog_size, trace_memory, affinity)
    finally:
        if saved is not None:
            os.sched_setaffinity(0, saved)


def _run(visits: int, items_per_visit: int, seed: int, repeat: int, catalog_size: int, trace_memory: bool,
         affinity: str) -> dict:
    rng = random.Random(seed)
    t0 = time.perf_counter()
    policy, source = build_pack(rng, catalog_size)
    pack = CompiledPack(policy)
    people = _population(rng, pack, visits, items_per_visit)
    all_visits = [v for _, vs in people for v in vs]
    item_lists = [v.items for v in all_visits]
    pre_people = [(person, [replace(v, items=None, amounts=classify_items(pack, v.items)) for v in vs])
                  for person, vs in people]
    catalog_dec, classes_dec = decimal_tables(policy)
    line_lists = [[(i.med_list_codg, i.chrgitm_lv, Decimal(i.det_item_fee_sumamt) / 100, i.cnt, i.preselfpay_ratio)
                   for i in items] for items in item_lists]
    setup_s = time.perf_counter() - t0
    n_visits = len(all_visits)
    n_items = sum(len(items) for items in item_lists)

    # warm-up: caches (rule look-ups, scales) and the interpreter's specialisations
    warm = people[: max(1, len(people) // 20)]
    _settle_all(pack, warm)
    _settle_all(pack, pre_people[: len(warm)])
    _classify_all_decimal(catalog_dec, classes_dec, line_lists[:200])

    full_s, fund_full = _best_of(repeat, lambda: _settle_all(pack, people))
    pre_s, fund_pre = _best_of(repeat, lambda: _settle_all(pack, pre_people))
    cls_s, inscp_int = _best_of(repeat, lambda: _classify_all(pack, item_lists))
    dec_s, inscp_dec = _best_of(repeat, lambda: _classify_all_decimal(catalog_dec, classes_dec, line_lists))

    # the naive Decimal classifier must give the same four amounts, line rules and rounding alike
    same = all(
        tuple(yuan_to_fen(x) for x in classify_decimal(catalog_dec, classes_dec, lines))
        == (lambda a: (a.fulamt_ownpay_amt, a.overlmt_selfpay, a.preselfpay_amt, a.inscp_scp_amt))(classify_items(pack, items))
        for lines, items in zip(line_lists, item_lists)
    )

    traced_peak = None
    if trace_memory:  # separate, untimed pass over ~2,000 visits: tracemalloc slows what it watches ~15x,
        gc.collect()  # and settling keeps nothing but the running accumulators, so the peak is per visit
        tracemalloc.start()
        _settle_all(pack, people[: max(1, len(people) * 2000 // max(1, n_visits))])
        traced_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux

    full = _rates(full_s, n_visits, n_items)
    return {
        "pack": policy.pack.id,
        "pack_source": source,
        "seed": seed,
        "persons": len(people),
        "catalog_size": len(policy.classification.catalog),
        "items_per_visit": items_per_visit,
        "repeat": repeat,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cpu": affinity,
        "setup_seconds": round(setup_s, 2),
        "full": full,
        "preclassified": _rates(pre_s, n_visits, n_items),
        "classify": _rates(cls_s, n_visits, n_items),
        "classify_decimal": _rates(dec_s, n_visits, n_items),
        "decimal_slowdown": round(dec_s / cls_s, 2) if cls_s else None,
        "classify_share_of_full": round(cls_s / full_s, 3) if full_s else None,
        "goal_visits_per_s": GOAL_VISITS_PER_S,
        "meets_goal": bool(full["visits_per_s"] and full["visits_per_s"] >= GOAL_VISITS_PER_S),
        "tracemalloc_peak_mib": None if traced_peak is None else round(traced_peak / 2**20, 2),
        "peak_rss_mib": round(rss_kib / 1024, 1) if sys.platform != "darwin" else round(rss_kib / 2**20, 1),
        "checks": {
            "full_equals_preclassified": fund_full == fund_pre,
            "decimal_equals_integer": same and inscp_dec == Decimal(inscp_int) / 100,
            "fund_pay_sumamt_total_fen": fund_full,
        },
    }


def format_report(figures: dict) -> str:
    """The figures as a short plain-text report (fits 80 columns), Chinese labels with English."""
    f = figures
    checks = f["checks"]
    ok = {True: "通过 ok", False: "不一致 MISMATCH"}

    def row(r: dict, label: str) -> str:
        return f"  {r['visits_per_s']:>9,} {r['items_per_s']:>10,} {r['us_per_visit']:>8.2f}  {label}"

    ratio = f["decimal_slowdown"]
    return "\n".join([
        "单次结算引擎性能基准 Scalar settlement benchmark",
        f"  政策包 pack: {f['pack']} ({f['pack_source']})",
        f"  目录 catalog {f['catalog_size']:,} 项; 参保人 persons {f['persons']:,}; 就诊 visits {f['full']['visits']:,}",
        f"  明细 lines {f['full']['items']:,} ({f['items_per_visit']}/visit); 种子 seed {f['seed']}; "
        f"best of {f['repeat']}",
        f"  {f['python']} {f['machine']}; 单核 one core ({f['cpu']})",
        "",
        f"  {'次/秒':>7} {'条/秒':>8} {'微秒/次':>5}",
        f"  {'visits/s':>9} {'items/s':>10} {'µs/visit':>8}",
        row(f["full"], "(a) 完整结算 full, with fee lines"),
        row(f["preclassified"], "(b) 已分类金额结算 pre-classified"),
        row(f["classify"], "(c) 仅费用分类 classify, int fen"),
        row(f["classify_decimal"], "(d) 朴素 Decimal 分类 naive Decimal"),
        "",
        f"  (d)/(c) 耗时比 time ratio: {ratio} (Decimal {'slower' if ratio and ratio > 1 else 'not slower'})",
        f"  费用分类占 (a) classification share of (a): {f['classify_share_of_full'] * 100:.1f}%",
        f"  目标 goal ≥ {f['goal_visits_per_s']:,} visits/s, ~30 lines: "
        f"{'达到 met' if f['meets_goal'] else '未达到 NOT met'}",
        f"  内存 memory: 结算峰值 tracemalloc peak {f['tracemalloc_peak_mib']} MiB;",
        f"    进程 peak RSS {f['peak_rss_mib']} MiB (含生成数据 incl. generated data)",
        f"  校验 checks: (a)=(b) {ok[checks['full_equals_preclassified']]}; "
        f"(d)=(c) {ok[checks['decimal_equals_integer']]}",
        f"  基金支付合计 fund total: {checks['fund_pay_sumamt_total_fen'] / 100:,.2f} 元 yuan",
    ])
