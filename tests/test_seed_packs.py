"""The seeds' benefit rules, settled on the shipped example packs, to the fen.

Each case is one person's visits in a year, settled one after another with
:func:`yibao.settlement.engine.settle_year`. Amounts are written in yuan in the tables and
compared as integer fen, with no tolerance. The comment above each visit is the hand
arithmetic; the numbers the seeds state are marked 【原文】, the pack's assumed numbers are
listed in each pack's ``assumptions:``.

Packs: ``src/yibao/policy/packs/shandong-2024.yaml`` (seeds/000), ``jishou-2022.yaml``
(seeds/003), ``sichuan-county-2020.yaml`` (seeds/001 范文7, 四道医疗保障线).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import lru_cache
from typing import Any

import pytest

from yibao.money import yuan_to_fen
from yibao.policy.compiled import CompiledPack
from yibao.policy.loader import load_pack, parse_yaml, shipped_pack_names, shipped_pack_path
from yibao.settlement.engine import settle_year
from yibao.settlement.model import Accumulators, ClassifiedAmounts, FeeItem, Person, Visit

SHIPPED = ("shandong-2024", "jishou-2022", "sichuan-county-2020")
YEAR = {"shandong-2024": 2024, "jishou-2022": 2022, "sichuan-county-2020": 2020}


@lru_cache(maxsize=None)
def pack(name: str) -> CompiledPack:
    return CompiledPack(load_pack(shipped_pack_path(name)))


def fen(yuan: str | int) -> int:
    return yuan_to_fen(str(yuan))


@dataclass(frozen=True)
class V:
    """One visit: med_type, level, and the four classified amounts in yuan."""

    med_type: str
    level: str
    inscp: str | int  # 政策范围内 inscp_scp_amt
    pre: str | int = 0  # 先行自付 preselfpay_amt
    over: str | int = 0  # 超限价 overlmt_selfpay
    full: str | int = 0  # 全自费 fulamt_ownpay_amt
    dise: str = ""
    referral_from: str | None = None
    acct: str | int = 0  # personal-account balance offered


@dataclass(frozen=True)
class Case:
    id: str
    pack: str
    insutype: str
    categories: frozenset[str]
    # (visit, expected): expected maps rule id → yuan paid, plus optional meta keys
    # "dedc" (act_pay_dedc), "acct" (acct_pay) and "cash" (psn_cash_pay, always given).
    visits: tuple[tuple[V, dict[str, str | int]], ...]
    retiree: bool = False


META = ("dedc", "acct", "cash")


def case(id, pack_name, insutype, categories, *visits, retiree=False) -> Any:
    c = Case(id, pack_name, insutype, frozenset(categories), tuple(visits), retiree)
    return pytest.param(c, id=id)


CASES = [
    # ==== 山东 2024 (seeds/000) ===========================================================
    case(
        "shandong 特困人员: 救助不设起付线 70%, 两次住院达到年度限额 30,000",
        "shandong-2024", "390", {"tekun"},
        # 三级住院, 政策范围内 60,000.
        #   基本医保: (60,000 − 1,000) × 60% = 35,400; 个人负担 60,000 − 35,400 = 24,600
        #   大病(特困倾斜): 起付线 15,000 × 50% = 7,500, 比例 60% + 5 = 65%
        #                   (24,600 − 7,500) × 65% = 11,115; 剩 13,485
        #   医疗救助【原文: 不设起付线, 不低于70%】: 13,485 × 70% = 9,439.50; 剩 4,045.50
        #   再救助: 门槛 40,000 × 25% = 10,000, 累计 4,045.50 未达 → 0
        (V("21", "3", 60000),
         {"resident_inpatient": 35400, "resident_critical_illness": 11115,
          "assistance_core": "9439.50", "dedc": 1000, "cash": "4045.50"}),
        # 第二次三级住院, 政策范围内 250,000 (山东不设多次住院递减, 起付线仍 1,000).
        #   基本医保: 249,000 × 60% = 149,400 (年度累计 184,800 ≤ 200,000); 个人负担 100,600
        #   大病: 累计 24,600 → 125,200; 分段按起付线以上计: 7,500–107,500 65%, 107,500–207,500 70%
        #         F(125,200) = 100,000 × 65% + 17,700 × 70% = 65,000 + 12,390 = 77,390
        #         本次 77,390 − 11,115 = 66,275; 剩 100,600 − 66,275 = 34,325
        #   医疗救助: 累计 13,485 → 47,810, 47,810 × 70% = 33,467 > 限额【原文: 不低于3万元】
        #         本次 30,000 − 9,439.50 = 20,560.50; 剩 13,764.50
        #   再救助: 累计 4,045.50 → 17,810; (17,810 − 10,000) × 70% = 5,467; 剩 8,297.50
        (V("21", "3", 250000),
         {"resident_inpatient": 149400, "resident_critical_illness": 66275,
          "assistance_core": "20560.50", "reassistance": 5467, "cash": "8297.50"}),
    ),
    case(
        "shandong 低保边缘家庭成员: 超过 3,000 元部分 50%",
        "shandong-2024", "390", {"dibao_edge"},
        # 二级住院, 政策范围内 20,000.
        #   基本医保: (20,000 − 500) × 75% = 14,625; 个人负担 5,375
        #   大病: 5,375 < 15,000 → 0 (低保边缘不享受大病倾斜)
        #   医疗救助【原文: 超过3000元以上部分救助比例不低于50%】: (5,375 − 3,000) × 50% = 1,187.50
        #   再救助: 4,187.50 < 10,000 → 0
        (V("21", "2", 20000),
         {"resident_inpatient": 14625, "assistance_edge": "1187.50", "cash": "4187.50"}),
        # 再次二级住院, 政策范围内 4,000: 基本医保 3,500 × 75% = 2,625; 个人负担 1,375
        #   救助门槛按年度累计, 已过: 1,375 × 50% = 687.50
        (V("21", "2", 4000),
         {"resident_inpatient": 2625, "assistance_edge": "687.50", "cash": "687.50"}),
    ),
    case(
        "shandong 低保对象: 三重制度后再救助 70%, 年度限额 20,000",
        "shandong-2024", "390", {"dibao"},
        # 三级住院, 政策范围内 500,000.
        #   基本医保: 499,000 × 60% = 299,400, 超过年度限额 → 200,000; 个人负担 300,000
        #             (起付线 1,000 + 自付 199,600 + 限额以上 99,400, 都是政策范围内个人负担)
        #   大病(低保倾斜, 不封顶): 7,500–107,500 65% = 65,000; 107,500–207,500 70% = 70,000;
        #                           207,500–300,000 75% = 69,375; 合计 204,375; 剩 95,625
        #   医疗救助: 95,625 × 70% = 66,937.50 → 年度限额 30,000; 剩 65,625
        #   再救助【原文: 不低于70%, 年度限额最高可达2万元】:
        #         (65,625 − 10,000) × 70% = 38,937.50 → 20,000; 个人 45,625
        (V("21", "3", 500000),
         {"resident_inpatient": 200000, "resident_critical_illness": 204375,
          "assistance_core": 30000, "reassistance": 20000, "cash": 45625}),
        # 一级住院, 政策范围内 10,000: 统筹年度限额已用完 → 基本医保 0, 起付线 200 照计
        #   大病: 累计 300,000 → 310,000, 都在 75% 段: 7,500; 救助、再救助都已到限额; 个人 2,500
        (V("21", "1", 10000),
         {"resident_critical_illness": 7500, "dedc": 200, "cash": 2500}),
    ),
    case(
        "shandong 因病致贫重病患者(职工): 超过上年人均可支配收入 25% 的部分 60%",
        "shandong-2024", "310", {"illness_poverty"},
        # 【原文: 不区分职工和居民】 职工三级住院, 政策范围内 80,000.
        #   基本医保: (80,000 − 800) × 85% = 67,320; 个人负担 12,680
        #   大额: 未超统筹限额 → 0;  大病保险只适用居民
        #   依申请救助【原文: 超过…人均可支配收入25%以上的部分(大约1万元), 不低于60%】
        #         门槛 40,000 × 25% = 10,000; (12,680 − 10,000) × 60% = 1,608; 个人 11,072
        (V("21", "3", 80000),
         {"employee_inpatient": 67320, "assistance_on_application": 1608, "cash": 11072}),
        # 二级住院, 政策范围内 10,000: 基本医保 (10,000 − 400) × 88% = 8,448; 个人负担 1,552
        #   门槛已过: 1,552 × 60% = 931.20; 个人 620.80
        (V("21", "2", 10000),
         {"employee_inpatient": 8448, "assistance_on_application": "931.20", "cash": "620.80"}),
    ),
    case(
        "shandong 医共体转诊: 上转只付起付线差额, 下转不再付起付线",
        "shandong-2024", "390", set(),
        # 一级住院 5,000: (5,000 − 200) × 85% = 4,080
        (V("21", "1", 5000), {"resident_inpatient": 4080, "dedc": 200, "cash": 920}),
        # 【原文: 对医共体内符合规定的转诊住院患者连续计算起付线】 一级 → 三级:
        #   起付线 1,000 − 已付 200 = 800; (30,000 − 800) × 60% = 17,520
        #   大病: 累计 920 + 12,480 = 13,400 < 15,000 → 0
        (V("21", "3", 30000, referral_from="1"),
         {"resident_inpatient": 17520, "dedc": 800, "cash": 12480}),
        # 三级 → 一级 下转: 不再付起付线; 2,000 × 85% = 1,700
        (V("21", "1", 2000, referral_from="3"),
         {"resident_inpatient": 1700, "dedc": 0, "cash": 300}),
    ),
    case(
        "shandong 居民两病门诊用药 70%, 与普通门诊统筹分别累计",
        "shandong-2024", "390", set(),
        # 【原文: 日常用药报销比例由60%提高到70%左右】 高血压 I10, 基层: 300 × 70% = 210
        (V("11", "1", 300, dise="I10.x00"), {"resident_two_diseases": 210, "cash": 90}),
        # 糖尿病 E11: 累计 1,000 × 70% = 700 > 两病年度限额 600 → 本次 600 − 210 = 390
        (V("11", "1", 700, dise="E11.900"), {"resident_two_diseases": 390, "cash": 310}),
        # 上呼吸道感染 J06 走普通门诊统筹【原文: 取消基层普通门诊统筹起付线】: 300 × 60% = 180
        (V("11", "1", 300, dise="J06.900"), {"resident_outpatient": 180, "cash": 120}),
    ),
    case(
        "shandong 居民门诊慢特病: 年度起付线 300 元累计计算",
        "shandong-2024", "390", set(),
        # 基层 1,000: (1,000 − 300) × 70% = 490
        (V("14", "1", 1000), {"resident_chronic": 490, "dedc": 300, "cash": 510}),
        # 基层 2,000: 起付线本年已付, 2,000 × 70% = 1,400
        (V("14", "1", 2000), {"resident_chronic": 1400, "dedc": 0, "cash": 600}),
    ),
    case(
        "shandong 职工退休人员住院比例提高 5 个百分点",
        "shandong-2024", "310", set(),
        # 二级 10,400: (10,400 − 400) × (88% + 5%) = 9,300
        (V("21", "2", 10400), {"employee_inpatient": 9300, "cash": 1100}),
        retiree=True,
    ),
    case(
        "shandong 职工在职人员住院, 个人账户支付自付和自费",
        "shandong-2024", "310", set(),
        # 二级 10,400 + 全自费 500: (10,400 − 400) × 88% = 8,800; 个人负担 1,600 + 500 = 2,100
        #   个人账户余额 1,000 全部使用; 现金 1,100
        (V("21", "2", 10400, full=500, acct=1000),
         {"employee_inpatient": 8800, "acct": 1000, "cash": 1100}),
    ),
    case(
        "shandong 职工大额医疗费用补助: 统筹限额以上 90%",
        "shandong-2024", "310", set(),
        # 三级 400,000: (400,000 − 800) × 85% = 339,320 > 统筹限额 300,000 → 300,000
        #   限额以上 39,320 × 90% = 35,388 (hifob_pay); 个人 800 + 59,880 + 3,932 = 64,612
        (V("21", "3", 400000),
         {"employee_inpatient": 300000, "employee_major_medical": 35388, "cash": 64612}),
    ),
    # ==== 吉首 2022 (seeds/003) ===========================================================
    case(
        "jishou 大病保险: 年度累计自付 9,000 元起付, 60%",
        "jishou-2022", "390", set(),
        # 三级 50,000: 基本医保 (50,000 − 1,000) × 60% = 29,400; 个人负担 20,600
        #   大病【原文: 个人年度累计自付费用达9000元的…支付比例稳定在60%】
        #         (20,600 − 9,000) × 60% = 6,960; 个人 13,640
        (V("21", "3", 50000),
         {"resident_inpatient": 29400, "critical_illness": 6960, "cash": 13640}),
    ),
    case(
        "jishou 困难群众大病倾斜: 起付线 4,500, 65%",
        "jishou-2022", "390", {"dibao"},
        # 同一次住院, 低保对象:
        #   大病【原文: 起付线降低50%, 报销比例提高5个百分点】 (20,600 − 4,500) × 65% = 10,465
        #   医疗救助(示例: 起付线 1,000, 70%): (10,135 − 1,000) × 70% = 6,394.50
        #   再救助: 门槛 24,000 × 25% = 6,000; 剩 3,740.50 未达 → 0
        (V("21", "3", 50000),
         {"resident_inpatient": 29400, "critical_illness": 10465,
          "assistance_other": "6394.50", "cash": "3740.50"}),
    ),
    case(
        "jishou 普通居民大病保险封顶 300,000",
        "jishou-2022", "390", set(),
        # 三级 1,000,000: 基本医保 999,000 × 60% = 599,400 → 年度限额 150,000; 个人负担 850,000
        #   大病: (850,000 − 9,000) × 60% = 504,600 → 封顶 300,000; 个人 550,000
        (V("21", "3", 1000000),
         {"resident_inpatient": 150000, "critical_illness": 300000, "cash": 550000}),
    ),
    case(
        "jishou 困难群众取消大病封顶线; 医疗救助年度限额 10 万; 再救助 25% 收入以上 50%",
        "jishou-2022", "390", {"dibao"},
        # 同上, 低保对象:
        #   大病【原文: 取消封顶线】 (850,000 − 4,500) × 65% = 549,575; 剩 300,425
        #   医疗救助【原文: 年度限额(10万元)】 (300,425 − 1,000) × 70% = 209,597.50 → 100,000
        #   再救助【原文: 超过…人均可支配收入的25%…不低于50%】
        #         (200,425 − 6,000) × 50% = 97,212.50; 个人 103,212.50
        (V("21", "3", 1000000),
         {"resident_inpatient": 150000, "critical_illness": 549575, "assistance_other": 100000,
          "reassistance": "97212.50", "cash": "103212.50"}),
    ),
    case(
        "jishou 第二次起住院起付线为同级首次的 50%",
        "jishou-2022", "390", set(),
        # 第 1 次, 二级 3,000: 起付线 500; 2,500 × 80% = 2,000
        (V("21", "2", 3000), {"resident_inpatient": 2000, "dedc": 500, "cash": 1000}),
        # 第 2 次, 二级 3,000【原文: 第二次起住院起付标准为同级医疗机构首次起付标准的50%】
        #   起付线 500 × 50% = 250; 2,750 × 80% = 2,200
        (V("21", "2", 3000), {"resident_inpatient": 2200, "dedc": 250, "cash": 800}),
        # 第 3 次, 乡镇卫生院 1,000【原文: 乡镇卫生院住院治疗报销比例(调整为90%)】
        #   起付线 200 × 50% = 100; 900 × 90% = 810
        (V("21", "1", 1000), {"resident_inpatient": 810, "dedc": 100, "cash": 190}),
    ),
    # ==== 四川某县 2020 四道医疗保障线 (seeds/001 范文7) ==================================
    case(
        "sichuan 非贫困人口: 大病起付线 10,000, 60%, 无补充保险和兜底",
        "sichuan-county-2020", "390", set(),
        # 三级 50,000: (50,000 − 800) × 60% = 29,520; 个人负担 20,480
        #   大病【原文推得: 贫困人口 5,000 为降低50%后 → 10,000; 65% − 5 = 60%】
        #         (20,480 − 10,000) × 60% = 6,288; 个人 14,192
        (V("21", "3", 50000),
         {"resident_inpatient": 29520, "critical_illness": 6288, "cash": 14192}),
    ),
    case(
        "sichuan 贫困人口: 二级免起付线, 大病 5,000/65%, 商业补充目录内 90% 目录外 75%",
        "sichuan-county-2020", "390", {"poor"},
        # 二级: 政策范围内 40,000, 乙类先行自付 1,000, 目录外 4,000; 总费用 45,000
        #   基本医保【原文: 一级、二级医疗机构住院报销免起付线】 40,000 × 80% = 32,000; 个人负担 8,000
        #   大病【原文: 起付线…为5000元; …为65%】 (8,000 − 5,000) × 65% = 1,950; 剩 6,050
        #   商业补充【原文: 目录内、外医疗费用, 分别按90%、75%比例报销】
        #         6,050 × 90% + 1,000 × 90% + 4,000 × 75% = 5,445 + 900 + 3,000 = 9,345
        #   支出型大病救助(示例起付线 3,000): 剩 605 → 0
        #   兜底: 已补偿 43,295 ≥ 45,000 × 90% = 40,500 → 0; 个人 1,705
        (V("21", "2", 40000, pre=1000, full=4000),
         {"resident_inpatient": 32000, "critical_illness": 1950, "supplementary": 9345,
          "dedc": 0, "cash": 1705}),
    ),
    case(
        "sichuan 贫困人口三级住院: 县财政兜底补足到总费用 90%",
        "sichuan-county-2020", "390", {"poor"},
        # 三级(不免起付线): 政策范围内 20,000, 目录外 10,000; 总费用 30,000
        #   基本医保: (20,000 − 800) × 60% = 11,520; 个人负担 8,480
        #   大病: (8,480 − 5,000) × 65% = 2,262; 剩 6,218
        #   商业补充: 6,218 × 90% + 10,000 × 75% = 5,596.20 + 7,500 = 13,096.20
        #   支出型大病救助: 剩 621.80 < 3,000 → 0
        #   兜底【原文: 实际补偿比例达不到90%的给予补足】
        #         30,000 × 90% = 27,000 − 已补偿 26,878.20 = 121.80; 个人 3,000
        (V("21", "3", 20000, full=10000),
         {"resident_inpatient": 11520, "critical_illness": 2262, "supplementary": "13096.20",
          "county_guarantee": "121.80", "dedc": 800, "cash": 3000}),
    ),
    case(
        "sichuan 商业补充保险年度封顶 250,000 (目录内外共用)",
        "sichuan-county-2020", "390", {"poor"},
        # 二级: 政策范围内 10,000, 目录外 400,000; 总费用 410,000
        #   基本医保: 10,000 × 80% = 8,000; 个人负担 2,000 (< 大病起付线 5,000)
        #   商业补充: 2,000 × 90% + 400,000 × 75% = 1,800 + 300,000 = 301,800
        #         → 封顶【原文: 年度封顶线为25万元】 250,000
        #   支出型大病救助: 政策范围内剩 2,000 − 1,800 = 200 < 3,000 → 0
        #   兜底: 410,000 × 90% = 369,000 − 258,000 = 111,000; 个人 41,000
        (V("21", "2", 10000, full=400000),
         {"resident_inpatient": 8000, "supplementary": 250000, "county_guarantee": 111000,
          "cash": 41000}),
        # 一级: 政策范围内 1,000, 目录外 1,000: 基本医保 900; 商业补充已封顶 → 0
        #   兜底: 2,000 × 90% = 1,800 − 900 = 900; 个人 200
        (V("21", "1", 1000, full=1000),
         {"resident_inpatient": 900, "county_guarantee": 900, "cash": 200}),
    ),
    case(
        "sichuan 特困人员: 政策范围内费用全额救助",
        "sichuan-county-2020", "390", {"poor", "tekun"},
        # 一级: 政策范围内 10,000, 目录外 1,000; 总费用 11,000
        #   基本医保: 免起付线, 10,000 × 90% = 9,000; 个人负担 1,000 (< 大病起付线)
        #   商业补充: 1,000 × 90% + 1,000 × 75% = 900 + 750 = 1,650
        #   医疗救助【原文: 特困人员和孤儿政策范围内医疗费用, 予以全额救助】 剩 100 × 100% = 100
        #   兜底: 已补偿 10,750 ≥ 9,900 → 0; 个人(目录外) 250
        (V("21", "1", 10000, full=1000),
         {"resident_inpatient": 9000, "supplementary": 1650, "assistance_full": 100, "cash": 250}),
    ),
    case(
        "sichuan 低保对象: 省定救助比例提高 5 个百分点",
        "sichuan-county-2020", "390", {"poor", "dibao"},
        # 三级 20,000: 基本医保 11,520; 大病 2,262; 剩 6,218
        #   商业补充: 6,218 × 90% = 5,596.20; 剩 621.80
        #   医疗救助【原文: 在省政府文件规定救助比例的基础上, 提高5个百分点】 (示例 70% + 5)
        #         621.80 × 75% = 466.35; 个人 155.45
        (V("21", "3", 20000),
         {"resident_inpatient": 11520, "critical_illness": 2262, "supplementary": "5596.20",
          "assistance_dibao": "466.35", "cash": "155.45"}),
    ),
]


def _visit(v: V, i: int, year: int) -> Visit:
    amounts = ClassifiedAmounts(
        fulamt_ownpay_amt=fen(v.full), overlmt_selfpay=fen(v.over),
        preselfpay_amt=fen(v.pre), inscp_scp_amt=fen(v.inscp),
    )
    return Visit(f"V{i + 1}", v.med_type, v.level, date(year, 3, 1 + i), dise_codg=v.dise,
                 referral_from_level=v.referral_from, amounts=amounts, acct_balance=fen(v.acct))


def _check_invariants(s) -> None:
    info = s.setlinfo
    assert info.fund_pay_sumamt == sum(d.fund_payamt for d in s.setldetail)
    assert info.medfee_sumamt == info.fund_pay_sumamt + info.psn_part_amt
    assert info.psn_part_amt == info.acct_pay + info.psn_cash_pay
    assert all(v >= 0 for v in info.as_dict().values())


@pytest.mark.parametrize("c", CASES)
def test_seed_rule(c: Case) -> None:
    year = YEAR[c.pack]
    person = Person("P1", c.insutype, c.categories, c.retiree)
    visits = [_visit(v, i, year) for i, (v, _) in enumerate(c.visits)]
    results = settle_year(pack(c.pack), person, visits, Accumulators(year))
    for (v, expected), s in zip(c.visits, results):
        _check_invariants(s)
        paid = {d.rule_id: d.fund_payamt for d in s.setldetail}
        want = {k: fen(x) for k, x in expected.items() if k not in META}
        assert paid == want, f"{s.mdtrt_id}: 各基金支付"
        assert s.setlinfo.psn_cash_pay == fen(expected["cash"]), f"{s.mdtrt_id}: 个人现金"
        if "dedc" in expected:
            assert s.setlinfo.act_pay_dedc == fen(expected["dedc"]), f"{s.mdtrt_id}: 起付线"
        assert s.setlinfo.acct_pay == fen(expected.get("acct", 0)), f"{s.mdtrt_id}: 个人账户"


# ---- the tiers' shapes, read from the statement steps ------------------------------------


def _tier_step(s, tier_id: str):
    return next(st for st in s.steps if st.kind == "tier" and st.rule_id == tier_id)


@pytest.mark.parametrize(
    "categories, deductible, ratio, cap",
    [
        # 【原文: 个人年度累计自付费用达9000元…60%】; 封顶 300,000 为示例
        (set(), "9000", "0.60", "300000"),
        # 【原文: 起付线降低50%, 报销比例提高5个百分点、取消封顶线】
        ({"tekun"}, "4500", "0.65", None),
        ({"sudden"}, "4500", "0.65", None),
    ],
)
def test_jishou_critical_illness_tilt(categories, deductible, ratio, cap) -> None:
    c = pack("jishou-2022")
    person = Person("P1", "390", frozenset(categories))
    visit = _visit(V("21", "3", 50000), 0, 2022)
    (s,) = settle_year(c, person, [visit], Accumulators(2022))
    facts = _tier_step(s, "critical_illness").facts
    assert [s.describe() for s in facts["scales"]] == [[(fen(deductible), None, Decimal(ratio))]]
    assert facts["annual_cap"] == (None if cap is None else fen(cap))


def test_shandong_income_thresholds() -> None:
    """25% of last year's income (40,000, assumed from 原文 "大约1万元") = 10,000."""
    c = pack("shandong-2024")
    assert c.income == fen(40000)
    by_id = {t.id: t for t in c.tiers}
    for tier_id in ("reassistance", "assistance_on_application"):
        tier = by_id[tier_id]
        assert tier.part_deductible(tier.tier.parts[0]) == fen(10000)


@pytest.mark.parametrize("levels", [("3", "1"), ("1", "3")])
def test_shandong_chronic_annual_cap_across_levels(levels) -> None:
    """门诊慢特病 annual cap 20,000 holds whatever the order of levels visited.

    三级 30,000: (30,000 − 300) × 60% = 17,820;  基层 5,000: 5,000 × 70% = 3,500.
    Uncapped 21,320 (or 3,290 + 18,000 = 21,290 the other way round) > 20,000, so the year's
    payments from resident_chronic must be exactly 20,000 either way.
    """
    amounts = {"3": 30000, "1": 5000}
    visits = [_visit(V("14", lv, amounts[lv]), i, 2024) for i, lv in enumerate(levels)]
    results = settle_year(pack("shandong-2024"), Person("P1", "390"), visits, Accumulators(2024))
    total = sum(d.fund_payamt for s in results for d in s.setldetail if d.rule_id == "resident_chronic")
    assert total == fen(20000)


def test_shandong_items_two_diseases() -> None:
    """Bill lines through the shipped catalogue, then the 两病 rule.

    示例乙类降糖药 SD-EX-D002: 限价 45.00/支, 2 支共 100.00 → 超限价 100 − 90 = 10.00;
    先行自付 90 × 10% = 9.00; 政策范围内 81.00.  示例丙类项目 SD-EX-S001 20.00 → 全自费.
    两病(糖尿病 E11, 基层): 81.00 × 70% = 56.70; 个人 100 + 20 − 56.70 = 63.30.
    """
    c = pack("shandong-2024")
    items = (
        FeeItem("1", "SD-EX-D002", fen(100), cnt=Decimal(2), pric=fen(50)),
        FeeItem("2", "SD-EX-S001", fen(20)),
    )
    visit = Visit("V1", "11", "1", date(2024, 5, 1), dise_codg="E11.900", items=items)
    (s,) = settle_year(c, Person("P1", "390"), [visit], Accumulators(2024))
    info = s.setlinfo
    assert (info.overlmt_selfpay, info.preselfpay_amt, info.inscp_scp_amt, info.fulamt_ownpay_amt) == (
        fen("10"), fen("9"), fen("81"), fen("20"))
    assert [(d.rule_id, d.fund_payamt) for d in s.setldetail] == [("resident_two_diseases", fen("56.70"))]
    assert info.psn_cash_pay == fen("63.30")


# ---- every shipped pack ------------------------------------------------------------------


def test_seed_packs_are_shipped() -> None:
    assert set(SHIPPED) <= set(shipped_pack_names())


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_pack_loads(name: str) -> None:
    p = load_pack(shipped_pack_path(name))
    assert p.pack.id == name
    assert re.search(r"seeds/00\d", p.pack.source), "source 须注明所依据的 seed"
    assert set(p.levels) == {"1", "2", "3"}
    assert p.assumptions, "未写明的数字须列入 assumptions"
    CompiledPack(p)


@pytest.mark.parametrize("name", SHIPPED)
def test_assumption_paths_point_into_the_pack(name: str) -> None:
    """Every assumption names a non-empty path whose parent exists in the YAML (a typo shows)."""
    path = shipped_pack_path(name)
    data = parse_yaml(path.read_text(encoding="utf-8"), str(path))
    for a in load_pack(path).assumptions:
        assert a.path.strip() and a.note.strip()
        node: Any = data
        steps = re.findall(r"[^.\[\]]+|\[\d+\]", a.path)
        for k, step in enumerate(steps):
            last = k == len(steps) - 1
            if step.startswith("["):
                node = node[int(step[1:-1])]
                continue
            assert isinstance(node, dict), f"{a.path}: {step!r} 的上级不是映射"
            if last and step not in node:
                break  # a field the pack leaves unset on purpose ("不设限额")
            assert step in node, f"{a.path}: 找不到 {step!r}"
            node = node[step]
