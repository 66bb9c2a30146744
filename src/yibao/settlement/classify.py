"""Item classification (费用分类): from bill lines to the four amounts every tier starts from.

Per line: 丙类 (out of scope) → 全自费 fulamt_ownpay_amt; otherwise the part of the price above
the catalog's cap → 超限价 overlmt_selfpay, then the 乙类 share of the rest → 先行自付
preselfpay_amt (rounded half-up to the fen on each line, as the platform reports per line),
and what remains is 政策范围内 inscp_scp_amt — of which the lines of a class without co-share
(``coshare: false``, e.g. 植入类医用耗材) are also summed as ``inscp_full``.
"""

from __future__ import annotations

from yibao.errors import Problem, SettlementError
from yibao.money import mul_rate, rate_parts
from yibao.policy.compiled import CompiledPack
from yibao.settlement.model import ClassifiedAmounts, FeeItem


def classify_items(pack: CompiledPack, items: tuple[FeeItem, ...]) -> ClassifiedAmounts:
    fulamt = overlmt = pre = inscp = full = 0
    catalog_get, classes = pack.catalog.get, pack.classes
    for i, item in enumerate(items):
        rule = catalog_get(item.med_list_codg)
        level = item.chrgitm_lv
        if level is not None and rule is None:
            rule = classes.get(level) or _class_rule(classes, level, None, i)
        elif level is not None and rule.chrgitm_lv != level:
            rule = _class_rule(classes, level, rule, i)
        elif rule is None:
            raise SettlementError(Problem(
                "SET021", f"visit.items[{i}].chrgitm_lv",
                f"项目 {item.med_list_codg!r} 不在目录中, 且未给出收费项目等级(chrgitm_lv)",
            ))
        fee = item.det_item_fee_sumamt
        if not rule.in_scope:
            fulamt += fee
            continue
        cap = rule.price_cap
        if cap is not None:
            limit = mul_rate(cap, item.cnt)
            if fee > limit:
                overlmt += fee - limit
                fee = limit
        if item.preselfpay_ratio is not None:
            num, den = rate_parts(item.preselfpay_ratio)
        else:
            num, den = rule.pre_num, rule.pre_den
        if num:
            share = (2 * fee * num + den) // (2 * den)  # round_numerator, inlined: ~30 lines per visit
            pre += share
            fee -= share
        inscp += fee
        if rule.full:
            full += fee
    return ClassifiedAmounts(fulamt, overlmt, pre, inscp, full)


def _class_rule(classes, level: str, catalog_rule, index: int):
    """The line's own class wins over the catalog's; the catalog's price cap for the code stays."""
    cls = classes.get(level)
    if cls is None:
        raise SettlementError(Problem(
            "SET020", f"visit.items[{index}].chrgitm_lv",
            f"收费项目等级 {level!r} 不在政策包的分类中: {sorted(classes)}",
        ))
    if catalog_rule is None or catalog_rule.price_cap is None:
        return cls
    return type(cls)(cls.chrgitm_lv, cls.in_scope, cls.pre_num, cls.pre_den, catalog_rule.price_cap, cls.full)
