"""Item classification (费用分类): from bill lines to the four amounts every tier starts from.

Per line: 丙类 (out of scope) → 全自费 fulamt_ownpay_amt; otherwise the part of the price above
the catalog's cap → 超限价 overlmt_selfpay, then the 乙类 share of the rest → 先行自付
preselfpay_amt (rounded half-up to the fen on each line, as the platform reports per line),
and what remains is 政策范围内 inscp_scp_amt.
"""

from __future__ import annotations

from yibao.errors import Problem, SettlementError
from yibao.money import mul_rate, rate_parts
from yibao.policy.compiled import CompiledPack
from yibao.settlement.model import ClassifiedAmounts, FeeItem


def classify_items(pack: CompiledPack, items: tuple[FeeItem, ...]) -> ClassifiedAmounts:
    fulamt = overlmt = pre = inscp = 0
    catalog, classes = pack.catalog, pack.classes
    for i, item in enumerate(items):
        rule = catalog.get(item.med_list_codg)
        if item.chrgitm_lv is not None and (rule is None or rule.chrgitm_lv != item.chrgitm_lv):
            cls = classes.get(item.chrgitm_lv)
            if cls is None:
                raise SettlementError(Problem(
                    "SET020", f"visit.items[{i}].chrgitm_lv",
                    f"收费项目等级 {item.chrgitm_lv!r} 不在政策包的分类中: {sorted(classes)}",
                ))
            # the item's own class wins; a catalog price cap for the code still applies
            cap = rule.price_cap if rule is not None else None
            rule = cls if cap is None else type(cls)(cls.chrgitm_lv, cls.in_scope, cls.pre_num, cls.pre_den, cap)
        elif rule is None:
            raise SettlementError(Problem(
                "SET021", f"visit.items[{i}].chrgitm_lv",
                f"项目 {item.med_list_codg!r} 不在目录中, 且未给出收费项目等级(chrgitm_lv)",
            ))
        fee = item.det_item_fee_sumamt
        if not rule.in_scope:
            fulamt += fee
            continue
        rest = fee
        if rule.price_cap is not None:
            limit = mul_rate(rule.price_cap, item.cnt)
            if fee > limit:
                overlmt += fee - limit
                rest = limit
        if item.preselfpay_ratio is not None:
            num, den = rate_parts(item.preselfpay_ratio)
        else:
            num, den = rule.pre_num, rule.pre_den
        share = (2 * rest * num + den) // (2 * den) if num else 0
        pre += share
        inscp += rest - share
    return ClassifiedAmounts(fulamt, overlmt, pre, inscp)
