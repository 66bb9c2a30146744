"""The statement (结算单): every amount of a settlement explained in Chinese from the pack's numbers.

The engine records *what* it computed as structured steps; this module says it in words a
clerk can read aloud, citing the rule id and name and the numbers used. It also renders the
JSON output (amounts in yuan with two decimals).
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

from yibao.money import fen_to_yuan, format_yuan, yuan_to_fen
from yibao.policy.compiled import CompiledPack
from yibao.settlement.model import SETLINFO_FIELDS, Settlement, Step

FIELD_NAMES = {
    "medfee_sumamt": "医疗费总额",
    "fulamt_ownpay_amt": "全自费金额",
    "overlmt_selfpay": "超限价自费",
    "preselfpay_amt": "先行自付金额",
    "inscp_scp_amt": "政策范围内费用",
    "act_pay_dedc": "实际支付起付线",
    "hifp_pay": "基本医疗保险统筹基金支出",
    "pool_prop_selfpay": "基本医疗保险统筹基金支付比例自付",
    "cvlserv_pay": "公务员医疗补助资金支出",
    "hifes_pay": "企业补充医疗保险基金支出",
    "hifmi_pay": "居民大病保险资金支出",
    "hifob_pay": "职工大额医疗费用补助基金支出",
    "maf_pay": "医疗救助基金支出",
    "oth_pay": "其他支出",
    "fund_pay_sumamt": "基金支付总额",
    "psn_part_amt": "个人负担总金额",
    "acct_pay": "个人账户支出",
    "psn_cash_pay": "个人现金支出",
    "hosp_part_amt": "医院负担金额",
}

_REASONS = {
    "first": "本年度首次住院起付线",
    "repeat": "本年度再次住院, 按政策降低起付线",
    "waived": "该人员类别免起付线",
    "once_a_year": "此类疾病本年度已付过一次起付线, 本次免付",
    "referral_difference": "医共体内向上转诊, 只付两级起付线差额",
    "referral_waived": "医共体内同级或向下转诊, 免付起付线",
}


def pct(rate: Decimal) -> str:
    text = f"{(rate * 100).normalize():f}"
    return f"{text}%"


def describe_bands(bands) -> str:
    parts = []
    for lower, upper, rate in bands:
        if upper is None:
            parts.append(f"{format_yuan(lower)} 元以上部分 × {pct(rate)}")
        else:
            parts.append(f"{format_yuan(lower)}–{format_yuan(upper)} 元部分 × {pct(rate)}")
    return "; ".join(parts) if parts else "不支付"


def band_arithmetic(bands, start: int, end: int) -> str:
    """The amounts of [start, end) falling in each band, written out."""
    terms = []
    for lower, upper, rate in bands:
        lo = max(lower, start)
        hi = end if upper is None else min(upper, end)
        if hi > lo and rate:
            terms.append(f"{format_yuan(hi - lo)} × {pct(rate)}")
    return " + ".join(terms) if terms else "0(未达起付线)"


def _full_line(full: int) -> str:
    return (f"  其中不按比例共付的类别(coshare: false, 如植入类医用耗材先行自付后的部分) {format_yuan(full)} 元"
            f"由统筹基金全额支付: 不计入也不扣起付线, 计入年度最高支付限额。")


def explain(settlement: Settlement, pack: CompiledPack) -> list[str]:
    lines: list[str] = []
    for step in settlement.steps:
        lines.extend(_explain_step(step, pack))
    return lines


def _explain_step(step: Step, pack: CompiledPack) -> list[str]:
    f: dict[str, Any] = dict(step.facts)
    y = format_yuan
    if step.kind == "classify":
        src = f"{f['items']} 条费用明细" if f["items"] else "分类金额"
        return [
            f"【费用分类】按{src}: 医疗费总额 {y(f['medfee_sumamt'])} = 全自费 {y(f['fulamt_ownpay_amt'])}"
            f" + 超限价自费 {y(f['overlmt_selfpay'])} + 先行自付 {y(f['preselfpay_amt'])}"
            f" + 政策范围内 {y(f['inscp_scp_amt'])} 元。"
        ]
    if step.kind == "basic":
        head = f"【基本医保统筹基金 · {step.rule_name}({step.rule_id})】机构等级 {pack.levels.get(f['level'], f['level'])}"
        if f.get("offsite_points"):
            status = "异地已备案" if f["offsite_status"] == "filed" else "异地未备案"
            head += f", {status}比例调整 {f['offsite_points'].normalize():+f} 个百分点"
        if f.get("retiree_share_factor") is not None:
            head += f", 退休人员个人负担为在职的 {f['retiree_share_factor'].normalize():f} 倍(比例 = 1 − 倍数 × (1 − 在职比例))"
        if f.get("group") is not None:
            head += f", 属人群 {f['group_name']}({f['group']}), 起付线与年度限额按该人群"
            if f.get("group_points"):
                head += f", 比例调整 {f['group_points'].normalize():+f} 个百分点"
        if f.get("age_points") is not None:
            head += f", {f['age']} 周岁按年龄调整 {f['age_points'].normalize():+f} 个百分点"
        if f["points"]:
            head += f", 比例合计调整 {f['points'].normalize():+f} 个百分点(退休/人员类别/异地/年龄/人群)"
        out = [head + "。"]
        reason = _REASONS.get(f["deductible_reason"], f["deductible_reason"])
        bands = f["scale"].describe()
        if f["mode"] == "fixed_standard":
            below = f["medfee_sumamt"] < f["standard"]
            on = ("按定额标准" if f["below_standard"] == "standard" else "按实际费用") if below else "按定额标准"
            out.append(
                f"  单病种定额: 第 {f['admission_no']} 次住院, 本病种本等级定额标准 {y(f['standard'])} 元, 不设起付线;"
                f" 医疗费总额 {y(f['medfee_sumamt'])} 元, {on}结算 {y(f['settled'])} 元"
                + (f", 超出标准的 {y(f['hosp_part_amt'])} 元由医疗机构承担(hosp_part_amt)。" if f["hosp_part_amt"] else "。"))
            out.append(f"  支付比例: {describe_bands(bands)}。")
            basis = f["standard"] if below and f["below_standard"] == "standard" else f["settled"]
            out.append(f"  按比例: {band_arithmetic(bands, 0, basis)} = {y(f['uncapped'])} 元(四舍五入到分"
                       + (", 不超过实际费用" if basis != f["settled"] else "") + ")。")
        elif f["mode"] == "per_admission":
            full = f.get("inscp_full", 0)
            out.append(
                f"  第 {f['admission_no']} 次住院, 起付线 {y(f['deductible'])} 元({reason}; 首次起付线 {y(f['deductible_first'])} 元);"
                f" 本次政策范围内 {y(f['inscp'])} 元中起付线内 {y(f['act_pay_dedc'])} 元由个人负担。"
            )
            if full:
                out.append(_full_line(full))
            out.append(f"  支付比例: {describe_bands(bands)}。")
            out.append(f"  按比例: {band_arithmetic(bands, 0, f['inscp'] - full)}" + (f" + 全额支付 {y(full)}" if full else "")
                       + f" = {y(f['uncapped'])} 元(四舍五入到分)。")
        else:
            full = f.get("inscp_full", 0)
            before = f["base_before"]
            after = before + f["inscp"] - full
            out.append(
                f"  按年度累计: 年度起付线 {y(f['deductible'])} 元({reason}); 本年政策范围内累计由 {y(before)} 增至 {y(after)} 元,"
                f" 本次计入起付线 {y(f['act_pay_dedc'])} 元。"
            )
            if full:
                out.append(_full_line(full))
            out.append(f"  支付比例: {describe_bands(bands)}。")
            out.append(f"  本次对应: {band_arithmetic(bands, before, after)}" + (f" + 全额支付 {y(full)}" if full else "")
                       + f" = {y(f['uncapped'])} 元。")
        if f["annual_cap"] is not None:  # per admission or annual alike: the cap bounds the year's running sum
            out.append(
                f"  年度最高支付限额 {y(f['annual_cap'])} 元, 本年此前已计 {y(f['cap_used_before'])} 元,"
                f" 本次可付 {y(f['hifp_pay'])} 元" + (f", 超限额 {y(f['overcap'])} 元转个人负担。" if f["overcap"] else "。")
            )
        out.append(
            f"  统筹基金支付 hifp_pay = {y(f['hifp_pay'])} 元; 比例自付 pool_prop_selfpay = {y(f['pool_prop_selfpay'])} 元。"
        )
        return out
    if step.kind == "tier":
        tier = next(t for t in pack.tiers if t.id == step.rule_id)
        head = f"【{step.rule_name}({step.rule_id}) → {step.facts['pays_into']}】"
        if f["tilt"] is not None:
            tilt = tier.tier.tilts[f["tilt"]]
            names = "、".join(pack.categories.get(c, c) for c in tilt.categories)
            bits = []
            if tilt.deductible_factor != 1:
                bits.append(f"起付线 × {pct(tilt.deductible_factor)}")
            if tilt.ratio_points:
                bits.append(f"比例 + {tilt.ratio_points.normalize():f} 个百分点")
            if tilt.remove_cap:
                bits.append("取消封顶线")
            elif tilt.annual_cap is not None:
                bits.append(f"封顶线 {y(yuan_to_fen(tilt.annual_cap))} 元")
            head += f"倾斜支付({names}): {', '.join(bits) or '同一般标准'}。"
        out = [head]
        several = len(f["scales"]) > 1
        parts = [scale.describe() for scale in f["scales"]]
        for i, (bands, base, cum) in enumerate(zip(parts, f["bases"], f["cum_before"])):
            if f.get("per_admission"):
                out.append(
                    f"  计入基数({_bucket_label(tier.part_buckets[i])}) 本次住院 {y(base)} 元(按次计算, 不与本年其他住院累计);"
                    f" 标准: {describe_bands(bands)}; 本次对应 {band_arithmetic(bands, 0, base)}"
                    + (f", 本部分支付 {y(f['part_pays'][i])} 元。" if several else "。")
                )
                continue
            out.append(
                f"  计入基数({_bucket_label(tier.part_buckets[i])}) 本次 {y(base)} 元, 本年累计由 {y(cum)} 增至 {y(cum + base)} 元;"
                f" 标准: {describe_bands(bands)}; 本次对应 {band_arithmetic(bands, cum, cum + base)}"
                + (f", 本部分支付 {y(f['part_pays'][i])} 元。" if several else "。")
            )
        out.append(f"  按标准本次应付 {y(f['uncapped'])} 元(= 累计后金额 − 累计前金额, 各自四舍五入到分)。")
        if f["annual_cap"] is not None:
            out.append(f"  年度限额 {y(f['annual_cap'])} 元, 本年此前已计 {y(f['cap_used_before'])} 元。")
        if f.get("household_used_before") is not None:  # 家庭年度限额: the household's members together
            cap, used, own = f["household_cap"], f["household_used_before"], f["own_cap_pay"]
            left = max(0, cap - used)
            out.append(f"  家庭年度限额 {y(cap)} 元(同户成员合计), 本户此前已用 {y(min(used, cap))} 元, 尚余 {y(left)} 元;"
                       f" 个人限额内本次可付 {y(own)} 元, 本次可付 min({y(own)}, {y(left)}) = {y(f['pay'])} 元。")
        out.append(f"  本次支付 {y(f['pay'])} 元。")
        return out
    if step.kind == "guarantee":
        of = "医疗费总额" if f["of"] == "medfee_sumamt" else "政策范围内费用"
        return [
            f"【{step.rule_name}({step.rule_id}) → {f['pays_into']}】保障{of} {y(f['of_amount'])} 元的 {pct(f['share'])} = {y(f['target'])} 元;"
            f" 此前各项基金已付 {y(f['paid_before'])} 元, 补足 {y(f['pay'])} 元。"
        ]
    if step.kind == "account":
        return [
            f"【个人账户】可用余额 {y(f['balance'])} 元, 可由个人账户支付的个人负担 {y(f['eligible'])} 元, 支付 {y(f['acct_pay'])} 元。"
        ]
    if step.kind == "cash":
        return [
            f"【个人负担】个人负担合计 {y(f['psn_part_amt'])} 元 = 个人账户 {y(f['acct_pay'])} 元 + 现金 {y(f['psn_cash_pay'])} 元。"
        ]
    return [f"【{step.rule_name}】{f}"]


_BUCKET_NAMES = {
    "inscp_coshare": "统筹比例自付",
    "inscp_overcap": "超封顶线",
    "inscp_dedc": "起付线内",
    "preselfpay": "先行自付",
    "overlmt_selfpay": "超限价",
    "fulamt_ownpay": "全自费",
}


def _bucket_label(buckets) -> str:
    return " + ".join(_BUCKET_NAMES.get(b, b) for b in buckets)


def settlement_json(settlement: Settlement, pack: CompiledPack) -> dict[str, Any]:
    info = settlement.setlinfo
    return {
        "psn_no": settlement.psn_no,
        "mdtrt_id": settlement.mdtrt_id,
        "pack": {"id": settlement.pack_id, "version": settlement.pack_version},
        "setlinfo": {name: fen_to_yuan(getattr(info, name)) for name in SETLINFO_FIELDS},
        "setldetail": [
            {
                "fund_pay_type": d.fund_pay_type,
                "fund_payamt": fen_to_yuan(d.fund_payamt),
                "setl_field": d.setl_field,
                "rule_id": d.rule_id,
                "rule_name": d.rule_name,
            }
            for d in settlement.setldetail
        ],
        "explanation": explain(settlement, pack),
        "accumulators_after": {
            "year": settlement.accumulators_after.year,
            "values": dict(sorted(settlement.accumulators_after.values.items())),
        },
        **({} if settlement.household_after is None else {"household_accumulators_after": {
            "year": settlement.household_after.year,
            "values": dict(sorted(settlement.household_after.values.items())),
        }}),
    }


_MARK = "\u2063YUAN:"
_MARK_RE = re.compile('"' + _MARK + r'(-?[0-9]+\.[0-9]{2})"')


def dumps(data: Any, indent: int | None = 2) -> str:
    """JSON with Decimal yuan written as numbers with exactly two decimals (15555.00).

    ``indent=None`` gives one compact line through the C encoder, several times faster than the
    indented form (the service's answers; the CLI prints indented JSON for people).
    """

    def default(obj: Any) -> Any:
        if isinstance(obj, Decimal):
            return f"{_MARK}{obj:.2f}"
        raise TypeError(f"not JSON serialisable: {type(obj).__name__}")

    text = json.dumps(data, ensure_ascii=False, indent=indent, default=default,
                      separators=(",", ":") if indent is None else None)
    return _MARK_RE.sub(r"\1", text)


def compact_json(data: Any) -> str:
    """:func:`dumps` on one line: what the service answers and stores for idempotent replay."""
    return dumps(data, indent=None)
