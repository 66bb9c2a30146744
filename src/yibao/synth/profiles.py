"""The shape of a synthetic region: shares, rates, cost levels and code lists.

Every number here is an assumption about a typical Chinese prefecture, chosen so that the data
look like a real extract (shares of schemes and categories, visit mix, heavy-tailed costs), not
a statistic of any real place. Amounts are yuan; the generator turns them into fen.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

GENERATOR_VERSION = "2"  # 2: drug packs per line capped, one place at a time on a day

# --- population ---------------------------------------------------------------------------

EMPLOYEE_SHARE = 0.30  # 职工 310 among the insured (when the pack covers both schemes)
RETIREE_SHARE = 0.30  # 退休 among employees
MALE_SHARE = 0.51
HOUSEHOLD_SIZES = (1, 2, 3, 4, 5)
HOUSEHOLD_WEIGHTS = (0.16, 0.30, 0.27, 0.17, 0.10)
INCOME_SIGMA = 0.6  # lognormal spread of household income around ref × size

# (lowest age, highest age, weight)
RESIDENT_AGES = ((0, 6, 0.08), (7, 17, 0.13), (18, 34, 0.16), (35, 49, 0.19), (50, 64, 0.23),
                 (65, 79, 0.16), (80, 98, 0.05))
EMPLOYEE_AGES = ((20, 29, 0.22), (30, 39, 0.30), (40, 49, 0.28), (50, 59, 0.20))
RETIREE_AGES_MALE = ((60, 69, 0.45), (70, 79, 0.35), (80, 95, 0.20))
RETIREE_AGES_FEMALE = ((50, 59, 0.25), (60, 69, 0.35), (70, 79, 0.25), (80, 95, 0.15))


@dataclass(frozen=True)
class CategoryProfile:
    keywords: tuple[str, ...]  # matched against the pack's category name, then its code
    share: float  # of all persons
    scope: str  # household: whole households; single: persons living alone; person: individuals
    min_age: int = 0
    max_age: int = 120
    income_factor: float = 0.5  # household income relative to the region's reference


# First match wins, so the more specific names come first (低保边缘 before 低保).
CATEGORY_PROFILES = (
    CategoryProfile(("特困", "五保", "tekun"), 0.004, "single", 16, 120, 0.25),
    CategoryProfile(("孤儿", "orphan"), 0.0005, "person", 0, 17, 0.30),
    CategoryProfile(("因病致贫", "illness_poverty"), 0.002, "person", 18, 120, 0.55),
    CategoryProfile(("低保边缘", "dibao_edge"), 0.01, "household", income_factor=0.45),
    CategoryProfile(("低保", "最低生活保障", "dibao"), 0.03, "household", income_factor=0.30),
    CategoryProfile(("返贫致贫", "fanpin"), 0.005, "household", income_factor=0.35),
    CategoryProfile(("监测", "monitor"), 0.01, "household", income_factor=0.45),
    CategoryProfile(("脱贫不稳定", "unstable"), 0.004, "household", income_factor=0.45),
    CategoryProfile(("边缘易致贫", "edge"), 0.004, "household", income_factor=0.45),
    CategoryProfile(("突发严重困难", "sudden"), 0.002, "household", income_factor=0.50),
    CategoryProfile(("建档立卡", "贫困", "poor"), 0.06, "household", income_factor=0.35),
)
DEFAULT_CATEGORY = CategoryProfile((), 0.005, "household", income_factor=0.5)


def category_profile(code: str, name: str) -> CategoryProfile:
    for profile in CATEGORY_PROFILES:
        if any(k in name for k in profile.keywords if not k.isascii()):
            return profile
    for profile in CATEGORY_PROFILES:
        if code in profile.keywords:
            return profile
    return DEFAULT_CATEGORY


# --- levels: three reference values (基层, 二级, 三级), interpolated for other level counts ----

LEVEL_MIX = {
    "institutions": (0.88, 0.09, 0.03),
    "outpatient": (0.55, 0.28, 0.17),
    "two_diseases": (0.80, 0.15, 0.05),
    "chronic": (0.40, 0.35, 0.25),
    "inpatient": (0.25, 0.45, 0.30),
    "maternity": (0.15, 0.45, 0.40),
}
# medians (yuan) of a visit's total by level; sigma of the lognormal
OUTPATIENT_COST = ((70.0, 160.0, 280.0), 0.70)
TWO_DISEASE_COST = ((150.0, 180.0, 220.0), 0.40)
INPATIENT_COST = ((1800.0, 3800.0, 5100.0), 0.75)
MATERNITY_COST = ((2500.0, 4000.0, 6500.0), 0.35)
LOS_MEDIAN = (6.0, 8.0, 9.0)  # inpatient days
MAJOR_SHARE = 0.03  # admissions with a major case (ICU, big surgery): ×8 cost, wider spread
MAX_VISIT_YUAN = 1_500_000


def by_level(values: tuple[float, ...], n: int) -> np.ndarray:
    """Three reference values (lowest, middle, highest level) spread over ``n`` levels."""
    if n == 1:
        return np.array([values[0]], dtype=float)
    return np.interp(np.linspace(0, 2, n), [0, 1, 2], values)


def level_mix(kind: str, n: int) -> np.ndarray:
    w = by_level(LEVEL_MIX[kind], n)
    return w / w.sum()


# --- visits -------------------------------------------------------------------------------

# general outpatient (11) visits per person-year by age band: (lowest age, rate)
OUTPATIENT_RATE = ((0, 4.0), (7, 2.0), (18, 1.8), (45, 2.5), (65, 3.5))
EMPLOYEE_OUTPATIENT_FACTOR = 1.2

# 两病 (hypertension, diabetes) under regular management: share by age band, monthly visits
HYPERTENSION_SHARE = ((0, 0.0), (25, 0.005), (35, 0.03), (45, 0.10), (60, 0.20), (75, 0.25))
DIABETES_SHARE = ((0, 0.0), (25, 0.003), (35, 0.015), (45, 0.05), (60, 0.09), (75, 0.10))
MONTHLY_ATTENDANCE = 0.85
HOME_INSTITUTION_SHARE = 0.85  # 两病/慢特病 patients return to the same institution

# 门诊慢特病 (14): approved patients by age band
CHRONIC_SHARE = ((0, 0.002), (40, 0.02), (60, 0.06), (75, 0.08))

# inpatient: probability of at least one admission by age band, and extra admissions' mean
ADMISSION_P = ((0, 0.06), (7, 0.03), (18, 0.05), (45, 0.09), (60, 0.16), (70, 0.25), (80, 0.32))
EXTRA_ADMISSIONS = ((0, 0.20), (60, 0.40))
MAX_ADMISSIONS = 5
CHRONIC_ADMISSION_FACTOR = 1.5  # 两病 or 慢特病 patients
ILLNESS_POVERTY_FACTOR = 4.0  # 因病致贫重病患者: more and costlier admissions
REFERRAL_SHARE = 0.05  # of admissions above the lowest level

# births per resident woman-year by age band (20–40)
BIRTH_RATE = ((20, 0.05), (25, 0.08), (30, 0.06), (35, 0.025), (41, 0.0))


def by_age(bands: tuple[tuple[int, float], ...], ages: np.ndarray) -> np.ndarray:
    edges = np.array([b[0] for b in bands])
    values = np.array([b[1] for b in bands], dtype=float)
    return values[np.searchsorted(edges, ages, side="right") - 1]


# --- codes --------------------------------------------------------------------------------
# ICD-10 (医保版) diagnosis codes; ICD-9-CM-3 procedure codes. Weights are relative.

OUTPATIENT_DISEASES = (  # (code, weight, cost factor)
    ("J06.900", 20, 0.8), ("J20.900", 10, 0.9), ("K29.700", 8, 1.1), ("M54.500", 6, 1.2),
    ("L30.900", 5, 0.8), ("H10.900", 4, 0.6), ("K02.900", 5, 1.0), ("J02.900", 8, 0.7),
    ("N39.000", 4, 1.0), ("A09.900", 5, 0.9), ("R51.x00", 4, 0.8), ("M25.500", 5, 1.1),
    ("J30.400", 4, 0.9), ("K21.000", 4, 1.2), ("G47.000", 3, 1.0),
)
HYPERTENSION_CODE, DIABETES_CODE = "I10.x00", "E11.900"
KNOWN_FULL_CODES = {"I10": "I10.x00", "E11": "E11.900", "E10": "E10.900", "I11": "I11.900",
                    "I12": "I12.900", "I13": "I13.900", "I15": "I15.900", "E12": "E12.900",
                    "E13": "E13.900", "E14": "E14.900"}

CHRONIC_DISEASES = (  # (code, weight, median cost per visit, visits per year, level mix)
    ("N18.500", 4, 4500.0, 12.0, (0.0, 0.5, 0.5)),   # 尿毒症透析
    ("C34.900", 4, 2500.0, 8.0, (0.0, 0.3, 0.7)),    # 恶性肿瘤门诊治疗
    ("C50.900", 3, 2200.0, 8.0, (0.0, 0.3, 0.7)),
    ("I25.100", 18, 350.0, 8.0, (0.4, 0.35, 0.25)),  # 冠心病
    ("I63.900", 14, 300.0, 8.0, (0.45, 0.35, 0.2)),  # 脑梗死后遗症
    ("E11.900", 14, 350.0, 8.0, (0.45, 0.35, 0.2)),  # 糖尿病(慢特病)
    ("J44.900", 10, 400.0, 6.0, (0.4, 0.35, 0.25)),  # 慢阻肺
    ("F20.900", 8, 300.0, 10.0, (0.3, 0.5, 0.2)),    # 精神分裂症
    ("I50.900", 8, 450.0, 8.0, (0.3, 0.4, 0.3)),     # 心力衰竭
    ("M05.900", 5, 500.0, 6.0, (0.3, 0.4, 0.3)),     # 类风湿关节炎
    ("K74.600", 6, 600.0, 6.0, (0.3, 0.4, 0.3)),     # 肝硬化
)

INPATIENT_DISEASES = (  # (code, weight, cost factor, stay factor, procedure, procedure share)
    ("J18.900", 14, 0.9, 1.0, None, 0.0),        # 肺炎
    ("I63.900", 10, 1.3, 1.4, None, 0.0),        # 脑梗死
    ("I25.100", 8, 1.6, 0.9, "36.0700", 0.35),   # 冠心病 / 经皮冠状动脉支架置入
    ("J44.100", 7, 1.0, 1.2, None, 0.0),         # 慢阻肺急性加重
    ("K80.100", 6, 1.4, 0.9, "51.2301", 0.7),    # 胆囊结石 / 腹腔镜胆囊切除
    ("K35.800", 4, 1.1, 0.7, "47.0101", 0.9),    # 阑尾炎 / 腹腔镜阑尾切除
    ("S72.000", 3, 2.5, 1.6, "81.5201", 0.6),    # 股骨颈骨折 / 半髋关节置换
    ("C34.900", 4, 2.2, 1.3, "32.2001", 0.2),    # 肺恶性肿瘤
    ("C16.900", 3, 2.4, 1.4, "43.7x01", 0.3),    # 胃恶性肿瘤
    ("I50.900", 5, 1.2, 1.2, None, 0.0),         # 心力衰竭
    ("N20.000", 4, 0.9, 0.6, "98.5101", 0.5),    # 肾结石 / 体外冲击波碎石
    ("E11.900", 4, 0.8, 1.1, None, 0.0),         # 2 型糖尿病
    ("K29.700", 4, 0.6, 0.8, None, 0.0),         # 胃炎
    ("J20.900", 6, 0.6, 0.8, None, 0.0),         # 急性支气管炎
    ("M51.202", 4, 1.0, 1.1, "80.5101", 0.2),    # 腰椎间盘突出
    ("H25.900", 4, 0.7, 0.3, "13.4100", 0.9),    # 老年性白内障 / 超声乳化
)
MATERNITY_DISEASES = (  # (code, weight, cost factor, stay factor, procedure, procedure share)
    ("O80.000", 60, 1.0, 1.0, "73.5900", 0.3),   # 单胎顺产
    ("O82.000", 40, 1.6, 1.5, "74.1x00", 1.0),   # 剖宫产
)

# lines per visit (inclusive ranges) by visit kind
LINES = {"outpatient": (3, 6), "two_diseases": (2, 4), "chronic": (3, 8), "inpatient": (15, 40),
         "maternity": (10, 25)}
# share of lines by class A (甲), B (乙), C (丙) and by kind drug/service/material
CLASS_MIX = {"outpatient": (0.6, 0.3, 0.1), "two_diseases": (0.7, 0.3, 0.0), "chronic": (0.55, 0.35, 0.10),
             "inpatient": (0.6, 0.3, 0.1), "maternity": (0.6, 0.3, 0.1)}
KIND_MIX = {"outpatient": (0.65, 0.35, 0.0), "two_diseases": (1.0, 0.0, 0.0), "chronic": (0.7, 0.3, 0.0),
            "inpatient": (0.45, 0.45, 0.10), "maternity": (0.4, 0.5, 0.1)}
CATALOG_SHARE = 0.08  # lines that use one of the pack's catalog codes (price caps apply)
OVER_CAP_SHARE = 0.25  # of catalog lines with a price cap: priced 5–60% above it
FRACTIONAL_CNT_SHARE = 0.04
FRACTIONAL_CNTS = (5000, 15000, 25000, 3333, 6667, 12500)  # cnt × 10,000
LINE_PRESELFPAY_SHARE = 0.01  # 乙类 lines carrying their own preselfpay_ratio
LINE_PRESELFPAY = (500, 1500, 2000)  # ratio × 10,000
CODES_PER_POOL = 200
# packs of one drug on one line, at most (处方管理办法: an ordinary prescription holds up to 7 days'
# supply, a chronic-disease 长处方 up to 12 weeks; an inpatient line is one order's quantity): without
# the cap the count's geometric tail put 10–30 packs on ~0.5% of ordinary drug lines
DRUG_MAX_UNITS = {"outpatient": 6, "two_diseases": 6, "chronic": 12, "inpatient": 30, "maternity": 30}
# a catalogue drug priced per tablet or vial comes in packs of about this many fen at its cap
# (SD-EX-D001 at 0.50 yuan a tablet: packs of 60); its line holds at most DRUG_MAX_UNITS packs
PACK_FEN = 3000
# one person's outpatient visits on one day at different institutions follow one another: the later
# starts at least this many minutes after the earlier ended (same district, same city, another city)
SAME_DAY_GAP_MINUTES = (20, 60, 240)
LATEST_OUTPATIENT_HOUR = 20  # a visit pushed past this hour moves to the next day

SURNAMES = tuple("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤")
GIVEN = tuple("伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超霞平刚桂兰玉华红建国志海云飞鹏辉燕玲晓春梅文斌宇浩凯丹欣怡佳俊博思雨子涵梓萱一诺晨阳泽")
