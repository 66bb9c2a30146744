"""The batch settlement kernel: one compiled pass over person-ordered visits, exactly the scalar engine.

:func:`settle_block` walks visits sorted by (person, year, settlement time, mdtrt_id), carrying
the person-year's accumulators in a small array, and applies the program that
:func:`yibao.batch.lower.lower` made of the pack: 基本医保 (deductible by admission number,
waivers, once-a-year diseases, referrals, ratio bands with bonus points, annual cap on the running
sum of rounded amounts), the cumulative tiers (``round(F(cum + base)) − round(F(cum))`` per part,
tilts, exclusive groups, caps, proportional draw from the buckets), guarantees and the personal
account — the order and arithmetic of :func:`yibao.settlement.engine.settle`, step for step, in
integers. It holds no GIL, so a block per thread settles on every core; it is compiled once and
cached on disk (``NUMBA_CACHE_DIR``, see docs/batch.md).

Outputs: ``out`` (one row per visit: the setlinfo fields in :data:`SETLINFO_FIELDS` order, then
``inscp_psn_part``; without the four that are the visit's own amounts when the caller keeps those, :data:`OWN`)
and ``pays`` (one column per rule: basic rules, tiers, guarantees). Inputs are integer arrays of any width: the
stream hands over DuckDB's narrow columns as they are (one compiled specialisation per set of types, cached).
"""

from __future__ import annotations

import sys
import threading

import numpy as np
from numba import njit

from yibao.batch.lower import KernelError, Program
from yibao.errors import Problem

NONE = -1
ARRAY_ORDER = (
    "b_mode", "b_ded", "b_rep", "b_rep_amt", "b_sched", "b_sched_len", "b_step", "b_floor", "b_nwaive",
    "b_waive_cats", "b_waive_levels", "b_has_ref", "b_ref_up", "b_ref_down", "b_ret_pts", "b_ret_fac", "b_cat_has", "b_cat_pts",
    "b_off_pts", "b_above", "b_nb", "b_up", "b_rate", "b_closing", "b_cap", "b_cap_slot", "b_adm_slot", "b_once_slot",
    "b_base_slot", "b_paid_slot", "b_fix_on_std", "b_has_age", "b_age_pts",
    "b_ngroups", "gr_has_cats", "gr_cats", "gr_from", "gr_to", "gr_ded", "gr_rep_amt", "gr_cap", "gr_pts",
    "t_ins_ok", "t_med_ok", "t_per_adm", "t_has_cats", "t_cats", "t_group", "t_nparts", "t_part_len", "t_part_order",
    "t_draw_len", "t_draw", "t_ntilts", "t_tilt_cats", "t_nb", "t_lo", "t_up", "t_rate", "t_cap", "t_base_slot",
    "t_cap_slot", "t_paid_slot", "t_pays_into", "t_hcap",
    "g_ins_ok", "g_med_ok", "g_cats", "g_of", "g_num", "g_den", "g_pays_into", "acct_ins_ok", "acct_cover", "sizes",
)
N_OUT = 20  # 19 setlinfo fields + inscp_psn_part
# the out columns that are the visit's own amounts (fulamt_ownpay_amt, overlmt_selfpay, preselfpay_amt,
# inscp_scp_amt): a caller that has them as columns already asks for the other N_OUT - 4 only (run(copies=False))
OWN = (1, 2, 3, 4)
EMPTY = np.zeros(0, np.int8)  # member / hh_known not given


@njit(cache=True, nogil=True)
def _rnd(numerator, den):
    return (2 * numerator + den) // (2 * den)


@njit(cache=True, nogil=True)
def _first_ded(b_mode, b_rep, b_sched, b_sched_len, b_step, b_floor, r, lv, n, first, rep_amt):
    """The n-th admission's deductible from the level's first one (the rule's or the person's group's)."""
    mode = b_rep[r]
    if mode == 0 or n <= 1 or b_mode[r] == 1:
        return first
    if mode == 1:
        return rep_amt
    if mode == 2:
        k = n if n < b_sched_len[r, lv] else b_sched_len[r, lv]
        return b_sched[r, lv, k - 1]
    value = first - b_step[r] * (n - 1)
    return value if value > b_floor[r] else b_floor[r]


@njit(cache=True, nogil=True)
def _basic_num(b_nb, b_up, b_rate, b_closing, b_above, r, lv, ded, pts, fac, den, x):
    """G(x) × den for rule r at level lv, deductible ``ded`` and bonus points ``pts`` (SegmentedScale.numerator);
    ``fac`` ≥ 0: a retiree's personal share × X (X × den), the rate then den − X(den − rate), exact (lower's den)."""
    total = 0
    lower = ded
    nb = b_nb[r, lv]
    for k in range(nb):
        up = b_up[r, lv, k]
        if up != NONE and b_above[r] == 1:
            up += ded
        rate = b_rate[r, lv, k]
        if not (b_closing[r, lv] == 1 and k == nb - 1):
            rate += pts
            if rate < 0:
                rate = 0
            elif rate > den:
                rate = den
            if fac != NONE:  # compiled.share_rate
                rate = den - fac * (den - rate) // den
                if rate < 0:
                    rate = 0
                elif rate > den:
                    rate = den
        if up != NONE and up <= lower:
            continue
        if x <= lower:
            break
        top = x if (up == NONE or x < up) else up
        total += (top - lower) * rate
        if up == NONE:
            break
        lower = up
    return total


@njit(cache=True, nogil=True)
def _tier_num(t_nb, t_lo, t_up, t_rate, t, v, p, x):
    total = 0
    for k in range(t_nb[t, v, p]):
        lower = t_lo[t, v, p, k]
        if x <= lower:
            break
        up = t_up[t, v, p, k]
        top = x if (up == NONE or x < up) else up
        total += (top - lower) * t_rate[t, v, p, k]
    return total


@njit(cache=True, nogil=True)
def _draw(buckets, order, n_order, amount, takes):
    """Take ``amount`` out of the buckets in ``order`` in proportion (engine.draw); returns False if it cannot."""
    if amount <= 0:
        return True
    total = 0
    for j in range(n_order):
        total += buckets[order[j]]
    if amount > total:
        return False
    if amount == total:
        for j in range(n_order):
            buckets[order[j]] = 0
        return True
    rest = amount
    for j in range(n_order):
        takes[j] = buckets[order[j]] * amount // total
        rest -= takes[j]
    for j in range(n_order):
        if rest > 0 and buckets[order[j]] > takes[j]:
            takes[j] += 1
            rest -= 1
        buckets[order[j]] -= takes[j]
    return True


@njit(cache=True, nogil=True)
def settle_block(
    b_mode, b_ded, b_rep, b_rep_amt, b_sched, b_sched_len, b_step, b_floor, b_nwaive,
    b_waive_cats, b_waive_levels, b_has_ref, b_ref_up, b_ref_down, b_ret_pts, b_ret_fac, b_cat_has, b_cat_pts,
    b_off_pts, b_above, b_nb, b_up, b_rate, b_closing, b_cap, b_cap_slot, b_adm_slot, b_once_slot,
    b_base_slot, b_paid_slot, b_fix_on_std, b_has_age, b_age_pts,
    b_ngroups, gr_has_cats, gr_cats, gr_from, gr_to, gr_ded, gr_rep_amt, gr_cap, gr_pts,
    t_ins_ok, t_med_ok, t_per_adm, t_has_cats, t_cats, t_group, t_nparts, t_part_len, t_part_order,
    t_draw_len, t_draw, t_ntilts, t_tilt_cats, t_nb, t_lo, t_up, t_rate, t_cap, t_base_slot,
    t_cap_slot, t_paid_slot, t_pays_into, t_hcap,
    g_ins_ok, g_med_ok, g_cats, g_of, g_num, g_den, g_pays_into, acct_ins_ok, acct_cover, sizes,
    den, start, ins, med, level, ref, bidx, once_match, cats, retiree, acct_bal, ful, ovl, pre, inscp, offsite,
    fixstd, age, full, member, hh_known, out, pays,
):
    """Settle visits 0..n-1 (``start[i]`` = 1 where a settlement unit's year begins: a person-year, or where the
    pack has household caps a household-year whose members' visits interleave in time order; ``member[i]``: the
    visit's person within the unit, 0..). Returns -1; or the first visit index a tier could not draw its payment
    for (impossible for a valid pack; reported, never hidden); or −2 − i for the first visit i that reaches a
    household-capped tier without a household (``hh_known[i]`` = 0). ``out`` and ``pays`` hold one row per output
    column (``out[j, i]``): each column one contiguous buffer, and one compiled type whatever the block's size."""
    n_rules, n_tiers, n_guar, n_slots = sizes[0], sizes[1], sizes[2], sizes[3]
    members = member.shape[0] > 0  # empty: a person-ordered run, member 0 throughout
    known = hh_known.shape[0] > 0  # empty: every person has a household
    copies = out.shape[0] == N_OUT  # else the caller keeps ful, ovl, pre, inscp: they are its own inputs (OWN)
    n_members = 1
    for i in range(member.shape[0]):
        if member[i] >= n_members:
            n_members = member[i] + 1
    accs = np.zeros((n_members, max(n_slots, 1)), np.int64)  # each member's accumulators (a person-year)
    fresh = np.full(n_members, -1, np.int64)  # the unit whose year a member's row holds (rows reset when first met)
    household = np.zeros(max(n_tiers, 1), np.int64)  # the unit's running sum of members' capped tier payments
    unit = -1
    acc = accs[0]
    last = 0
    buckets = np.zeros(6, np.int64)
    takes = np.zeros(6, np.int64)
    used = np.zeros(max(n_tiers, 1), np.int64)
    paid = np.zeros(6, np.int64)
    all_buckets = np.arange(6)
    n_cats = b_cat_has.shape[1]
    for i in range(start.shape[0]):
        if start[i] == 1:
            unit = i
            household[:] = 0
        m = member[i] if members else 0
        if fresh[m] != unit:
            accs[m, :] = 0
            fresh[m] = unit
        if m != last:  # (a person-ordered run has member 0 throughout: one view for the whole block)
            acc = accs[m]
            last = m
        r = bidx[i]
        lv = level[i]
        c = cats[i]
        # --- 基本医保 -------------------------------------------------------------------------
        x = inscp[i]
        continues = False
        once_paid = False
        is_ref = False
        n_adm = 1
        if b_mode[r] == 0:
            count = acc[b_adm_slot[r]]
            is_ref = ref[i] >= 0 and b_has_ref[r] == 1 and b_ded[r, ref[i]] >= 0
            continues = is_ref and count > 0
            n_adm = count if continues else count + 1
            once_paid = acc[b_once_slot[r]] > 0
        g = -1  # the person's population group: the first whose categories and age range hold (CompiledBasic.group)
        for k in range(b_ngroups[r]):
            if gr_has_cats[r, k] == 1 and (c & gr_cats[r, k]) == 0:
                continue
            if gr_from[r, k] != NONE and age[i] < gr_from[r, k]:
                continue
            if gr_to[r, k] != NONE and age[i] > gr_to[r, k]:
                continue
            g = k
            break
        ded = _first_ded(b_mode, b_rep, b_sched, b_sched_len, b_step, b_floor, r, lv, n_adm,
                         b_ded[r, lv] if g < 0 else gr_ded[r, g, lv], b_rep_amt[r, lv] if g < 0 else gr_rep_amt[r, g, lv])
        waived = False
        for w in range(b_nwaive[r]):
            if (c & b_waive_cats[r, w]) != 0 and ((b_waive_levels[r, w] >> lv) & 1) == 1:
                waived = True
                break
        if waived:
            ded = 0
        elif b_mode[r] == 0 and once_match[i] == 1 and once_paid:
            ded = 0
        elif is_ref:
            up = lv > ref[i]
            how = b_ref_up[r] if up else b_ref_down[r]
            if how == 0:
                ded = 0
            elif how == 2:
                rl = ref[i]
                before = _first_ded(b_mode, b_rep, b_sched, b_sched_len, b_step, b_floor, r, rl, n_adm,
                                    b_ded[r, rl] if g < 0 else gr_ded[r, g, rl],
                                    b_rep_amt[r, rl] if g < 0 else gr_rep_amt[r, g, rl])
                ded = ded - before if ded > before else 0
        pts = b_ret_pts[r] if retiree[i] == 1 else 0
        fac = b_ret_fac[r] if retiree[i] == 1 else NONE
        best = 0
        found = False
        for k in range(n_cats):
            if b_cat_has[r, k] == 1 and ((c >> k) & 1) == 1:
                if not found or b_cat_pts[r, k] > best:
                    best = b_cat_pts[r, k]
                    found = True
        pts += best + b_off_pts[r, offsite[i]]
        if b_has_age[r] == 1:  # checked before the kernel: a known age (block_inputs, KRN013)
            pts += b_age_pts[r, age[i]]
        if g >= 0:
            pts += gr_pts[r, g]
        fs = fixstd[i]  # 单病种定额 standard of the visit's disease and level, or -1 (CompiledBasic.fixed_amount)
        hosp = 0
        settled = x
        if b_mode[r] == 0 and fs >= 0:
            bill = ful[i] + ovl[i] + pre[i] + x
            hosp = bill - fs if bill > fs else 0
            settled = bill - hosp
            uncapped = _rnd(_basic_num(b_nb, b_up, b_rate, b_closing, b_above, r, lv, ded, pts, fac, den, settled), den)
            if b_fix_on_std[r] == 1 and bill < fs:
                on_std = _rnd(_basic_num(b_nb, b_up, b_rate, b_closing, b_above, r, lv, ded, pts, fac, den, fs), den)
                uncapped = settled if on_std > settled else on_std
            dedc = 0
            if not continues:
                acc[b_adm_slot[r]] += 1
            if once_match[i] == 1:
                acc[b_once_slot[r]] += 1
        elif b_mode[r] == 0:  # the co-share-free part full[i] is paid in full beside the deductible and ratio
            xs = x - full[i]
            uncapped = _rnd(_basic_num(b_nb, b_up, b_rate, b_closing, b_above, r, lv, ded, pts, fac, den, xs), den) + full[i]
            dedc = xs if xs < ded else ded
            if not continues:
                acc[b_adm_slot[r]] += 1
            if once_match[i] == 1:
                acc[b_once_slot[r]] += 1
        else:
            bb = acc[b_base_slot[r]]
            xs = x - full[i]  # the year's running base counts the co-shared amounts only
            uncapped = (_rnd(_basic_num(b_nb, b_up, b_rate, b_closing, b_above, r, lv, ded, pts, fac, den, bb + xs), den)
                        - _rnd(_basic_num(b_nb, b_up, b_rate, b_closing, b_above, r, lv, ded, pts, fac, den, bb), den)
                        + full[i])
            after = bb + xs if bb + xs < ded else ded
            before = bb if bb < ded else ded
            dedc = after - before
            acc[b_base_slot[r]] += xs
        cap = b_cap[r] if g < 0 else gr_cap[r, g]
        used_cap = acc[b_cap_slot[r]]
        if cap == NONE:
            hifp = uncapped
        else:
            hifp = (used_cap + uncapped if used_cap + uncapped < cap else cap) - (used_cap if used_cap < cap else cap)
        acc[b_cap_slot[r]] += uncapped
        acc[b_paid_slot[r]] += hifp
        coshare = settled - dedc - uncapped
        buckets[0] = coshare
        buckets[1] = uncapped - hifp
        buckets[2] = dedc
        fixed = fs >= 0 and b_mode[r] == 0  # under a 单病种 standard nothing is outside the policy
        buckets[3] = 0 if fixed else pre[i]
        buckets[4] = 0 if fixed else ovl[i]
        buckets[5] = 0 if fixed else ful[i]
        for k in range(6):
            paid[k] = 0
        pays[r, i] = hifp  # ``pays`` arrives zeroed: only the rules that applied are written
        fund = hifp
        # --- cumulative tiers ----------------------------------------------------------------
        for t in range(n_tiers):
            used[t] = 0
        for t in range(n_tiers):
            if t_ins_ok[t, ins[i]] == 0 or t_med_ok[t, med[i]] == 0:
                continue
            if t_has_cats[t] == 1 and (c & t_cats[t]) == 0:
                continue
            g = t_group[t]
            if g >= 0:
                if used[g] == 1:
                    continue
                used[g] = 1
            v = 0
            for k in range(t_ntilts[t]):
                if (c & t_tilt_cats[t, k]) != 0:
                    v = k + 1
                    break
            before_num = 0
            after_num = 0
            for p in range(t_nparts[t]):
                base = 0
                for j in range(t_part_len[t, p]):
                    base += buckets[t_part_order[t, p, j]]
                cum = 0 if t_per_adm[t] == 1 else acc[t_base_slot[t, p]]  # per admission: this visit alone
                before_num += _tier_num(t_nb, t_lo, t_up, t_rate, t, v, p, cum)
                after_num += _tier_num(t_nb, t_lo, t_up, t_rate, t, v, p, cum + base)
            uncapped = _rnd(after_num, den) - _rnd(before_num, den)
            cap = t_cap[t, v]
            used_cap = acc[t_cap_slot[t]]
            if cap == NONE:
                pay = uncapped
            else:
                pay = (used_cap + uncapped if used_cap + uncapped < cap else cap) - (used_cap if used_cap < cap else cap)
            hc = t_hcap[t]
            if hc != NONE:  # 家庭年度限额 on the running sum of what members' own caps let through (engine.settle)
                if known and hh_known[i] == 0:
                    return -2 - i
                hu = household[t]
                own = pay
                pay = (hu + own if hu + own < hc else hc) - (hu if hu < hc else hc)
                household[t] += own
            # draw: each part from its own buckets first (engine.draw_parts), bases added to the year
            if t_nparts[t] == 1:
                base = 0
                for j in range(t_part_len[t, 0]):
                    base += buckets[t_part_order[t, 0, j]]
                if not _draw(buckets, t_draw[t], t_draw_len[t], pay, takes):
                    return i
                acc[t_base_slot[t, 0]] += base
            else:
                remaining = pay
                for p in range(t_nparts[t]):
                    base = 0
                    for j in range(t_part_len[t, p]):
                        base += buckets[t_part_order[t, p, j]]
                    cum = 0 if t_per_adm[t] == 1 else acc[t_base_slot[t, p]]
                    own = (_rnd(_tier_num(t_nb, t_lo, t_up, t_rate, t, v, p, cum + base), den)
                           - _rnd(_tier_num(t_nb, t_lo, t_up, t_rate, t, v, p, cum), den))
                    take = own if own < remaining else remaining
                    if not _draw(buckets, t_part_order[t, p], t_part_len[t, p], take, takes):
                        return i
                    remaining -= take
                    acc[t_base_slot[t, p]] += base
                if remaining > 0 and not _draw(buckets, t_draw[t], t_draw_len[t], remaining, takes):
                    return i
            acc[t_cap_slot[t]] += uncapped
            acc[t_paid_slot[t]] += pay
            paid[t_pays_into[t]] += pay
            pays[n_rules + t, i] = pay
            fund += pay
        # --- 兜底 guarantees -------------------------------------------------------------------
        medfee = ful[i] + ovl[i] + pre[i] + x
        for gi in range(n_guar):
            if g_ins_ok[gi, ins[i]] == 0 or g_med_ok[gi, med[i]] == 0 or (c & g_cats[gi]) == 0:
                continue
            of = settled if fixed else (medfee if g_of[gi] == 0 else x)
            target = (2 * of * g_num[gi] + g_den[gi]) // (2 * g_den[gi])
            left = 0
            for k in range(6):
                left += buckets[k]
            topup = target - fund if target > fund else 0
            if topup > left:
                topup = left
            if not _draw(buckets, all_buckets, 6, topup, takes):
                return i
            paid[g_pays_into[gi]] += topup
            pays[n_rules + n_tiers + gi, i] = topup
            fund += topup
        # --- personal account, cash ---------------------------------------------------------------
        psn_part = medfee - fund - hosp
        acct = 0
        if acct_ins_ok[ins[i]] == 1 and acct_bal[i] > 0:
            eligible = 0
            for k in range(6):
                if acct_cover[k] == 1:
                    eligible += buckets[k]
            acct = acct_bal[i] if acct_bal[i] < eligible else eligible
        out[0, i] = medfee
        o = 1
        if copies:
            out[1, i] = ful[i]
            out[2, i] = ovl[i]
            out[3, i] = pre[i]
            out[4, i] = x
            o = 5
        out[o, i] = dedc
        out[o + 1, i] = hifp
        out[o + 2, i] = coshare
        for k in range(6):
            out[o + 3 + k, i] = paid[k]
        out[o + 9, i] = fund
        out[o + 10, i] = psn_part
        out[o + 11, i] = acct
        out[o + 12, i] = psn_part - acct
        out[o + 13, i] = hosp
        out[o + 14, i] = buckets[0] + buckets[1] + buckets[2]
    return -1


def checked_age(program: Program, visits: dict[str, np.ndarray]) -> None:
    """Visits whose basic rule has age points need an age in 0–150 (the kernel indexes the rule's table by it)."""
    if not program.arrays["b_has_age"].any():
        return  # no rule has age points (most packs): nothing to look at per visit
    needs = program.arrays["b_has_age"][visits["bidx"]] == 1
    if not needs.any():
        return
    age = visits.get("age")
    bad = needs if age is None else needs & ((age < 0) | (age >= program.arrays["b_age_pts"].shape[1]))
    if bad.any():
        raise KernelError(Problem("KRN013", "persons.age",
                                  f"{int(bad.sum()):,} 次就诊适用按年龄确定比例或人群的规则, 但参保人年龄缺失或不在 0–150 岁"))


class OutputPool:
    """Output memory of settled blocks, used again once nothing refers to a block's outputs any more.

    Why: on this project's machines the first touch of fresh output memory (page faults, ~240 MB per million
    visits) costs about as much as the settlement arithmetic, and a stream's blocks are written and dropped one
    after another. A slab is handed out again only when its reference count shows that no array, Arrow buffer
    or writer still holds a view of it — CPython's count is exact, so a block still being written (or kept by a
    caller) is never overwritten; it merely is not reused. ``keep``: at most that many slabs are kept.
    """

    def __init__(self, keep: int):
        self.keep = keep
        self._slabs: list[np.ndarray] = []
        self._lock = threading.Lock()
        probe = [np.empty(0, np.int64)]
        self._idle = next(sys.getrefcount(slab) for slab in probe)  # a slab's count when only the pool holds it

    @classmethod
    def for_threads(cls, threads: int) -> "OutputPool":
        """As many slabs as a stream's blocks can be alive at once: settling (a few per thread), waiting for the
        sink, being written."""
        return cls(keep=3 * threads + 4)

    def views(self, n_out: int, n_pays: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(out, pays) as (columns, visits) arrays; ``pays`` zeroed, ``out`` not (the kernel writes all of it)."""
        size = (n_out + n_pays) * n
        with self._lock:
            found = next((slab for slab in self._slabs if slab.size >= size and sys.getrefcount(slab) == self._idle),
                         None)
            if found is None and len(self._slabs) < self.keep:
                found = np.empty(size + size // 4, np.int64)  # room for a slightly larger block next time
                self._slabs.append(found)
            elif found is None:
                found = np.empty(size, np.int64)  # all kept slabs in use: this one is not kept
            out = found[:n_out * n].reshape(n_out, n)
            pays = found[n_out * n:size].reshape(n_pays, n)  # views hold the slab: counted from here on
        pays.fill(0)
        return out, pays


def run(program: Program, visits: dict[str, np.ndarray], ids=None, copies: bool = True,
        pool: OutputPool | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Settle person-ordered visits (keys: start, ins, med, level, ref, bidx, once_match, cats, retiree,
    acct_bal, ful, ovl, pre, inscp: integer arrays of any width, e.g. the narrow columns DuckDB hands over;
    optional ``offsite``: 0 local, 1 filed, 2 unfiled, default local;
    optional ``fixstd``: the 单病种定额 standard in fen of the visit's rule, disease and level, default -1 none;
    optional ``full``: the part of inscp in classes without co-share (coshare: false), default 0;
    ``age``: completed years, -1 unknown, required where the visit's rule has age points: see ``checked_age``;
    for a pack with household caps, household-ordered visits with ``member`` (the person within the household-year
    block, 0..; default 0) and ``hh_known`` (0 where the person has no hh_no; default 1)).
    ``ids(i)`` names visit i in an error. Returns (out, pays); ``copies=False``: ``out`` without the :data:`OWN`
    columns, which are the caller's ful, ovl, pre and inscp as given; ``pool``: the outputs in memory of
    earlier blocks that nothing holds any more (:class:`OutputPool`)."""
    n = len(visits["start"])
    checked_age(program, visits)
    # column-major: each output column is one contiguous buffer that Arrow takes without a copy. ``out`` is written
    # whole by the kernel, so it is not zeroed first; ``pays`` only where a rule applied. Returned as (visits, columns)
    n_out = N_OUT if copies else N_OUT - len(OWN)
    if pool is not None:
        out, pays = pool.views(n_out, len(program.rule_ids), n)
    else:
        out = np.empty((n_out, n), np.int64)  # transposed: one type however many rows
        pays = np.zeros((len(program.rule_ids), n), np.int64)
    a = program.arrays
    bad = settle_block(*(a[k] for k in ARRAY_ORDER), program.den,
                       *(visits[k] for k in ("start", "ins", "med", "level", "ref", "bidx", "once_match", "cats",
                                             "retiree", "acct_bal", "ful", "ovl", "pre", "inscp")),
                       *(visits[k] if k in visits else np.full(n, default, np.int64)  # made only when not given
                         for k, default in (("offsite", 0), ("fixstd", NONE), ("age", NONE), ("full", 0))),
                       visits.get("member", EMPTY), visits.get("hh_known", EMPTY), out, pays)
    if bad >= 0:
        raise AssertionError(f"a tier paid more than its base at visit {bad}")  # engine.draw raises the same
    if bad <= -2:
        i = -2 - bad
        raise KernelError(Problem("KRN014", "persons.hh_no",
                                  f"就诊 {ids(i) if ids else i} 适用有家庭年度限额的层次, 但参保人没有家庭编号 hh_no"
                                  "(与联机结算的 SET009 相同)"))
    return out.T, pays.T


def warm(program: Program) -> None:
    """Load the stream's compiled pass (from Numba's disk cache, or compile it) before visits arrive: two visits
    typed as the stream's blocks are (:func:`yibao.batch.stream.block_inputs`: the ordering query's narrow columns
    read in place, read-only; the codes looked up; outputs column-major), so the pass loaded is the one a stream
    calls (``tests/test_kernel.py`` checks that a stream after it adds no signature)."""

    def column(dtype, value=0, readonly=True):
        a = np.full(2, value, dtype)
        a.flags.writeable = not readonly
        return a

    two = {k: column(np.int64) for k in ("cats", "acct_bal", "ful", "ovl", "pre", "inscp", "full")}
    two |= {"start": column(np.int8, 1, False), "ref": column(np.int16, -1), "retiree": column(np.int8),
            "offsite": column(np.int8), "age": column(np.int16, -1), "fixstd": column(np.int64, -1, False),
            "once_match": column(np.int8, 0, False)}
    two |= {k: column(np.int16, 0, False) for k in ("ins", "med", "level", "bidx")}
    run(program, two, copies=False)
