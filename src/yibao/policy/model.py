"""The policy pack: every number of a region's benefit rules, as validated, typed data.

A pack is written in YAML by people in a 待遇保障处 (see ``docs/policy-packs.md``) and read
into these models. The models hold no formulas: the settlement engine reads them. Amounts are
written in yuan (exact, at most two decimals) and ratios as decimals in [0, 1]; the engine turns
them into fen and exact rates once, when the pack is compiled.

Cross-references (a level or category that the pack does not declare, a band edge below the
previous one, duplicate ids) are checked in :mod:`yibao.policy.loader`, which reports them with
the path inside the file.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Literal, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints


def _yuan(value: Decimal) -> Decimal:
    if not value.is_finite():
        raise ValueError("金额必须是有限数字")
    if value < 0:
        raise ValueError("金额不能为负数")
    if value >= Decimal("1e13"):  # beyond any real bill; quantize would overflow the context
        raise ValueError("金额超出范围(须小于 10 万亿元)")
    if value != value.quantize(Decimal("0.01")):
        raise ValueError("金额精确到分, 最多两位小数")
    return value


def _ratio(value: Decimal) -> Decimal:
    if not value.is_finite() or not (Decimal(0) <= value <= Decimal(1)):
        raise ValueError("比例必须在 0 到 1 之间(例如 0.85 表示 85%)")
    return value


def _points(value: Decimal) -> Decimal:
    if not value.is_finite() or not (Decimal(-100) <= value <= Decimal(100)):
        raise ValueError("百分点必须在 -100 到 100 之间")
    return value


Yuan = Annotated[Decimal, AfterValidator(_yuan), Field(description="金额(元), 最多两位小数")]
Ratio = Annotated[Decimal, AfterValidator(_ratio), Field(description="比例, 0–1 之间的小数")]
Points = Annotated[Decimal, AfterValidator(_points), Field(description="百分点, 如 5 表示提高 5 个百分点")]
Code = Annotated[str, StringConstraints(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_.\-]+$")]
Insutype = Literal["310", "320", "330", "390", "392", "510"]
MedType = Annotated[str, StringConstraints(pattern=r"^[0-9]{2,6}$")]
Admdvs = Annotated[str, StringConstraints(pattern=r"^[0-9]{6}$")]
FundPayType = Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z]{3,10}$")]

# Amount buckets a tier may draw on. After the basic tier, the in-scope amount splits into the
# part under the deductible, the co-share above it, and what the annual cap left unpaid.
AmountName = Literal[
    "inscp_own",  # = inscp_coshare + inscp_overcap + inscp_dedc
    "inscp_coshare",
    "inscp_overcap",
    "inscp_dedc",
    "out_of_scope",  # = preselfpay + overlmt_selfpay + fulamt_ownpay
    "preselfpay",
    "overlmt_selfpay",
    "fulamt_ownpay",
]
SetlField = Literal["cvlserv_pay", "hifes_pay", "hifmi_pay", "hifob_pay", "maf_pay", "oth_pay"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Band(Strict):
    """One band of a segmented ratio: amounts up to ``upto`` (or without end) at ``ratio``."""

    upto: Yuan | None = Field(None, description="本段上限(元); 不填表示以上全部")
    ratio: Ratio


RatioSpec = Union[Ratio, list[Band]]


class IncomeShare(Strict):
    """A threshold stated as a share of last year's per-capita disposable income."""

    income_share: Ratio = Field(description="上年居民人均可支配收入的比例, 如 0.25")


Threshold = Union[Yuan, IncomeShare]


class Assumption(Strict):
    """A number the source text does not state, filled in and marked so a reader can see it."""

    path: str
    note: str


class PackInfo(Strict):
    id: Code
    name: str = Field(min_length=1)
    admdvs: Admdvs = Field(description="医保区划代码(6 位)")
    version: str = Field(min_length=1)
    effective_from: date
    effective_to: date
    source: str = ""
    notes: str = ""


class Reference(Strict):
    year: int = Field(ge=2000, le=2100, description="参考数据所属年度(上年)")
    per_capita_disposable_income: Yuan = Field(description="上年居民人均可支配收入(元)")


class ItemClass(Strict):
    """A charge class (chrgitm_lv): 01 甲类, 02 乙类, 03 丙类/自费, or a region's own."""

    name: str
    in_scope: bool
    preselfpay_ratio: Ratio = Decimal(0)
    coshare: bool = Field(
        True, description="false: 政策范围内部分不按比例共付, 由基本医保统筹基金全额支付(不计入也不扣起付线, "
                          "计入年度最高支付限额), 如植入类医用耗材先行自付后的部分")


class CatalogEntry(Strict):
    med_list_codg: str = Field(min_length=1, max_length=60)
    name: str = ""
    chrgitm_lv: Code
    preselfpay_ratio: Ratio | None = None
    price_cap: Yuan | None = Field(None, description="最高支付限价(元/单位), 超出部分为超限价自费")


class Classification(Strict):
    classes: dict[Code, ItemClass]
    catalog: list[CatalogEntry] = []


class RepeatAdmission(Strict):
    """Deductible of the 2nd and later admissions of a year.

    factor: ``factor`` × the first deductible; schedule: amounts for the 1st, 2nd, 3rd, ...
    admission by level (the last one repeats); step: ``step`` less for each further admission,
    never below ``floor``.
    """

    mode: Literal["factor", "schedule", "step"]
    factor: Ratio | None = None
    schedule: dict[Code, list[Yuan]] | None = None
    step: Yuan | None = None
    floor: Yuan | None = None


class Referral(Strict):
    """医共体 referral: the deductible is counted continuously across the referral."""

    upward: Literal["difference", "full", "waive"] = "difference"
    same_or_downward: Literal["waive", "full"] = "waive"


class Waiver(Strict):
    """No deductible for these categories (optionally only at these levels)."""

    categories: list[Code] = Field(min_length=1)
    levels: list[Code] | None = None


class Deductible(Strict):
    by_level: dict[Code, Yuan]
    repeat: RepeatAdmission | None = None
    referral: Referral | None = None
    waive: list[Waiver] = []
    once_a_year_diseases: list[str] = Field(
        default=[], description="诊断编码前缀; 此类疾病(如透析、放化疗)每年只付一次起付线"
    )


class AgeBand(Strict):
    """Ratio points for ages ``from_age``–``to_age`` (completed years, both included; no ``to_age``: and above)."""

    from_age: int = Field(ge=0, le=150, description="起始年龄(周岁, 含)")
    to_age: int | None = Field(None, ge=0, le=150, description="截止年龄(周岁, 含); 不填表示及以上")
    points: Points


class AgeFormula(Strict):
    """Ratio points growing with age: ``per_year`` points per year above ``from_age``, at most ``max_points``
    (e.g. (75 + 0.2 × 年龄)%, 最高 90%: ratio 0.75, per_year 0.2, max_points 15)."""

    per_year: Annotated[Decimal, Field(ge=-10, le=10, description="每增加 1 岁调整的百分点")]
    from_age: int = Field(0, ge=0, le=150, description="从此年龄起计算")
    max_points: Points | None = Field(None, description="调整的上限(百分点)")


class FixedStandard(Strict):
    """单病种定额 (按病种定额): a negotiated standard per disease and level replaces item-by-item settlement.

    The whole bill up to the standard is settled at the rule's ratio with no deductible; the part of a bill
    above the standard is borne by the institution (hosp_part_amt). ``below_standard`` says what a bill
    below the standard is settled on: ``actual`` (the bill) or ``standard`` (the fund pays its share of the
    standard, never more than the bill).
    """

    standards: dict[str, dict[Code, Yuan]] = Field(
        min_length=1, description="病种(诊断编码前缀, 与 diseases 一致) → 机构等级 → 定额标准(元)")
    below_standard: Literal["actual", "standard"] = Field(
        "actual", description="实际费用低于定额标准时: actual 按实际费用结算; standard 基金按定额标准的比例支付(不超过实际费用)")


class PopulationGroup(Strict):
    """一老一小 and the like: a population within one basic rule with its own deductible, annual cap and ratio.

    A person belongs to the group when every stated selector holds: one of ``categories``, age (completed years)
    within ``from_age``–``to_age``. The rule's first matching group applies; a person in none gets the rule's own
    numbers. What a group does not state is the rule's."""

    id: Code
    name: str = ""
    categories: list[Code] | None = Field(None, description="人员类别(符合其一即可); 不填表示不限")
    from_age: int | None = Field(None, ge=0, le=150, description="起始年龄(周岁, 含); 不填表示不限")
    to_age: int | None = Field(None, ge=0, le=150, description="截止年龄(周岁, 含); 不填表示不限")
    deductible: dict[Code, Yuan] | None = Field(None, description="本人群各等级起付线(元), 须列出规则的全部等级")
    annual_cap: Yuan | None = Field(None, description="本人群年度最高支付限额(元); 不填沿用规则的限额")
    ratio_points: Points = Field(Decimal(0), description="本人群比例调整(百分点), 与其他加点相加")


class BasicRule(Strict):
    """基本医保统筹基金: one scheme × med_type (× disease list) combination."""

    id: Code
    name: str
    insutype: Insutype
    med_types: list[MedType] = Field(min_length=1)
    diseases: list[str] = Field(default=[], description="限定诊断编码前缀(如两病 I10, E11); 空表示不限")
    mode: Literal["per_admission", "annual"] = Field(
        description="per_admission: 起付线按次(住院); annual: 起付线与比例按年度累计(门诊统筹)"
    )
    deductible: Deductible
    ratio_by_level: dict[Code, RatioSpec]
    band_edges: Literal["absolute", "above_deductible"] = "absolute"
    retiree_points: Points = Decimal(0)
    retiree_share_factor: Annotated[Decimal, Field(ge=0, le=2)] | None = Field(
        None, description="退休人员个人负担为在职的倍数 X: 退休人员比例 = 1 − X × (1 − 在职比例), 如 0.6; "
                          "不能与 retiree_points 同时使用")
    category_points: dict[Code, Points] = {}
    age_points: list[AgeBand] | AgeFormula | None = Field(
        None, description="按年龄调整比例(百分点): 年龄段列表(须从 0 岁起连续覆盖)或按岁递增的公式; 年龄为结算日周岁")
    offsite_points: dict[Literal["filed", "unfiled"], Points] = Field(
        default={}, description="异地就医比例调整(百分点, 负数为降低): filed 已备案, unfiled 未备案; 本地就医不调整"
    )
    annual_cap: Yuan | None = None
    cap_group: Code | None = Field(None, description="共用年度最高支付限额的规则组; 默认为本规则自身")
    admission_group: Code = Field("inpatient", description="住院次数在此组内连续计数")
    fixed_standard: FixedStandard | None = Field(
        None, description="单病种定额: 按病种与等级的定额标准结算, 不设起付线, 超出标准部分由医疗机构承担")
    groups: list[PopulationGroup] = Field(
        default=[], description="人群(如一老一小): 按人员类别和/或年龄选择, 取第一个符合的人群, 覆盖起付线、年度限额, 可调整比例")
    fund_pay_type: FundPayType


class TierPart(Strict):
    base: list[AmountName] = Field(min_length=1)
    deductible: Threshold = Decimal(0)
    ratio: RatioSpec
    band_edges: Literal["absolute", "above_deductible"] = "absolute"


class Tilt(Strict):
    """倾斜支付 for a category: deductible scaled, ratio raised, cap replaced or removed."""

    categories: list[Code] = Field(min_length=1)
    deductible_factor: Ratio = Decimal(1)
    ratio_points: Points = Decimal(0)
    remove_cap: bool = False
    annual_cap: Yuan | None = None


class Tier(Strict):
    """A tier after 基本医保 whose payment is cumulative over the year (大病, 救助, 补充...)."""

    id: Code
    name: str
    pays_into: SetlField
    fund_pay_type: FundPayType
    insutypes: list[Insutype] | None = None
    med_types: list[MedType] | None = None
    categories: list[Code] | None = Field(None, description="享受人群; 不填表示全体参保人")
    exclusive_group: Code | None = Field(None, description="同组内只适用第一个符合条件的层次")
    parts: list[TierPart] = Field(min_length=1)
    threshold_basis: Literal["annual", "per_admission"] = Field(
        "annual", description="annual: 起付线与分段按年度累计(默认); per_admission: 按每次住院本次金额计算(如倾斜救助"
                              "'每次住院个人负担超过 3,500 元部分按 70% 救助'), 限额仍按年度累计")
    annual_cap: Yuan | None = None
    household_cap: Yuan | None = Field(
        None, gt=0, description="家庭年度限额(元): 同一户(hh_no)全体成员在本层次一年内合计最多支付的金额, 在每人的年度限额"
                                "之外再加的一道限额(如'低保家庭年度救助限额 6 万元'); 按结算先后计入, 结算时须有参保人的家庭编号")
    tilts: list[Tilt] = []


class Guarantee(Strict):
    """兜底: tops a visit up to a guaranteed overall reimbursement share for a category."""

    id: Code
    name: str
    pays_into: SetlField
    fund_pay_type: FundPayType
    categories: list[Code] = Field(min_length=1)
    insutypes: list[Insutype] | None = None
    med_types: list[MedType] | None = None
    share: Ratio
    of: Literal["medfee_sumamt", "inscp_scp_amt"] = "medfee_sumamt"


class PersonalAccount(Strict):
    insutypes: list[Insutype] = Field(min_length=1)
    covers: list[AmountName] = Field(min_length=1)


class MonitoringThreshold(Strict):
    """因病返贫致贫风险监测: a burden above a share of last year's per-capita income flags a person."""

    id: Code
    name: str
    measure: Literal["inscp_psn_part", "psn_part_amt"] = Field(
        description="inscp_psn_part: 政策范围内个人负担; psn_part_amt: 个人负担总额(含自费)")
    income_share: Ratio = Field(description="上年居民人均可支配收入的比例, 如 0.25")


class Monitoring(Strict):
    thresholds: list[MonitoringThreshold] = Field(min_length=1)
    catastrophic_share: Ratio = Field(
        Decimal("0.4"), description="灾难性卫生支出: 个人负担超过家庭年可支配收入的此比例")


# --- provider payment (DIP / DRG) and fund operation: optional sections --------------------


class ShareBand(Strict):
    """One band of 结余留用 / 超支分担: a gap up to ``upto`` × the institution's DIP amount, at ``share``."""

    upto: Ratio | None = Field(None, description="本段上限, 占按病种(组)应付总额的比例; 不填表示以上全部")
    share: Ratio = Field(description="结余: 机构留用的比例; 超支: 基金分担的比例")


class BudgetShare(Strict):
    """A budget stated as a share of what the basic pool paid item by item on the period's cases."""

    hifp_share: Decimal = Field(gt=0, le=10, description="本期病例按项目统筹基金支付额的倍数, 如 0.98")


class PointPayment(Strict):
    """Point-value settlement (点数法) parameters shared by DIP and DRG."""

    scale: Decimal = Field(gt=0, le=100000, description="分值(点数)标尺: 全部病例次均费用对应的分值, 如 1000")
    high_multiple: Decimal = Field(Decimal(2), gt=1, le=100, description="高倍率: 费用高于同级次均费用的倍数")
    low_fraction: Decimal = Field(Decimal("0.5"), gt=0, lt=1, description="低倍率: 费用低于同级次均费用的比例")
    med_types: list[MedType] = Field(default=["21"], min_length=1, description="纳入的医疗类别")
    level_coefficients: bool = Field(True, description="是否按机构等级系数调整分值")
    cap_at_cost: bool = Field(True, description="预算点值高于费用点值时按费用点值结算(结余归基金)")
    budgets: dict[str, Union[Yuan, BudgetShare]] = Field(
        default={}, description="各结算期的统筹基金预算(元), 键为期间, 如 2024 或 2024-01")
    surplus_bands: list[ShareBand] = Field(default=[], description="结余留用分段; 空表示全额留用")
    overspend_bands: list[ShareBand] = Field(default=[], description="超支分担分段; 空表示基金不分担")


class DipPayment(PointPayment):
    scale: Decimal = Field(Decimal(1000), gt=0, le=100000, description="病种分值标尺, 如 1000")
    min_cases: int = Field(15, ge=1, le=100000, description="核心病种的最少病例数")


class DrgPayment(PointPayment):
    scale: Decimal = Field(Decimal(100), gt=0, le=100000, description="DRG 点数标尺: 相对权重 1 对应的点数")


class Payment(Strict):
    dip: DipPayment | None = None
    drg: DrgPayment | None = None


class EmployeeContribution(Strict):
    employer_rate: Ratio = Field(description="单位缴费率(进统筹基金)")
    employee_rate: Ratio = Field(description="个人缴费率(进个人账户)")
    wage_base_monthly: Yuan = Field(description="在职职工月缴费基数(元)")


class ResidentContribution(Strict):
    individual: Yuan = Field(description="居民个人年缴费(元/人)")
    subsidy: Yuan = Field(description="各级财政年补助(元/人)")


class FundWarning(Strict):
    severe_months: Decimal = Field(Decimal(3), ge=0, description="可支付月数低于此值: 严重预警")
    warning_months: Decimal = Field(Decimal(6), ge=0, description="可支付月数低于此值: 预警")
    over_months: Decimal = Field(Decimal(15), ge=0, description="可支付月数高于此值: 结余过多")


class FundProjection(Strict):
    years: int = Field(5, ge=1, le=30)
    cost_growth: Decimal = Field(ge=-1, le=1, description="人均医疗费用年增长率")
    ageing: Decimal = Field(Decimal(0), ge=-1, le=1, description="老龄化带来的额外年支出增长率")
    contribution_growth: Decimal = Field(ge=-1, le=1, description="人均筹资年增长率")


class Fund(Strict):
    employee: EmployeeContribution
    resident: ResidentContribution
    assistance: dict[Code, Ratio] = Field(
        default={}, description="资助参保: 人员类别 → 医疗救助资助的个人缴费比例(1 表示全额资助)")
    opening_months: Decimal = Field(Decimal(9), ge=0, le=120,
                                    description="年初累计结余, 以当年月均统筹支出的月数表示")
    warning: FundWarning = FundWarning()
    projection: FundProjection


# --- 长期护理保险 long-term care (section ``ltc``; formulas in yibao.ltc) ------------------------

CareMode = Literal["institution", "home", "visit"]
CARE_MODE_NAMES = {"institution": "机构护理(院护)", "home": "居家护理(家护)", "visit": "上门巡护(巡护)"}
ItemClassName = Literal["care", "medical_care", "bed", "meals", "other"]
ITEM_CLASS_NAMES = {"care": "生活照料/护理服务", "medical_care": "医疗护理", "bed": "床位费",
                    "meals": "伙食费", "other": "其他"}


class ScaleItem(Strict):
    """One item of an assessment scale (e.g. Barthel 进食) and the scores an assessor may give."""

    code: Code
    name: str = Field(min_length=1)
    scores: list[int] = Field(min_length=1, description="允许的得分, 如 [0, 5, 10]")


class LevelRule(Strict):
    """A disability level reached when every stated score is at most its bound (first rule wins)."""

    level: Code
    adl_max: int | None = Field(None, ge=0, description="日常生活活动能力总分不高于此值")
    cognition_max: int | None = Field(None, ge=0, description="认知能力总分不高于此值")
    perception_max: int | None = Field(None, ge=0, description="感知觉与沟通总分不高于此值")


class Assessment(Strict):
    """失能评估: the scale, how scores give a level, how long a conclusion holds."""

    levels: dict[Code, str] = Field(min_length=1, description="失能等级代码 → 名称, 按由轻到重书写")
    adl: list[ScaleItem] = Field(min_length=1, description="日常生活活动能力(如 Barthel 指数 10 项)")
    cognition: list[ScaleItem] = []
    perception: list[ScaleItem] = []
    rules: list[LevelRule] = Field(min_length=1, description="按顺序取第一条满足的规则; 都不满足为 default_level")
    default_level: Code = Field(description="没有规则满足时的等级(通常为 0 基本正常)")
    validity_months: int = Field(ge=1, le=120, description="评估结论有效月数, 到期须重新评估")
    no_repeat_assessor: bool = Field(True, description="同一评估员不得连续两次评估同一人")


class Eligibility(Strict):
    insutypes: list[Code] = Field(min_length=1, description="参加长期护理保险的险种(如 310 职工、390 居民)")
    continuous_months: int = Field(0, ge=0, le=240, description="享受待遇前须连续参保的月数")
    waiting_days: int = Field(0, ge=0, le=3650, description="评估结论生效后的待遇等待期(天)")


class Benefit(Strict):
    """What one care mode pays for the listed levels."""

    id: Code
    name: str = Field(min_length=1)
    mode: CareMode
    levels: list[Code] = Field(min_length=1, description="享受此待遇的失能等级")
    ratio: Ratio = Field(description="基金支付比例")
    limit_per: Literal["day", "visit"] = Field(description="限额单位: 每护理日(day)或每次上门(visit)")
    limit: Yuan = Field(description="每日/每次纳入基金支付的最高费用(元)")
    monthly_cap: Yuan | None = Field(None, description="本待遇每月基金最高支付(元); 不填则只受总限额约束")
    items: list[ItemClassName] = Field(min_length=1, description="纳入支付的项目类别; 其余(如伙食费)个人自付")
    fund_pay_type: FundPayType = Field(description="上报的基金支付类型")


class LtcFunding(Strict):
    """How the LTC fund is financed (the income side of ``yibao fund``)."""

    employee_rate: Ratio = Field(description="职工: 按缴费基数的比例(单位与个人合计), 如 0.005")
    resident_per_capita: Yuan = Field(description="居民: 人均年筹资(元)")
    resident_subsidy_share: Ratio = Field(description="居民筹资中财政补助的比例")
    opening_months: Decimal = Field(Decimal(6), ge=0, le=120, description="年初结余, 以月均支出的月数表示")


class LongTermCare(Strict):
    """长期护理保险 (pack section ``ltc``)."""

    name: str = "长期护理保险"
    assessment: Assessment
    eligibility: Eligibility
    benefits: list[Benefit] = Field(min_length=1)
    monthly_cap: Yuan = Field(description="每人每月基金最高支付(元), 各护理方式合计")
    funding: LtcFunding | None = None


# --- 筹资 (financing): contribution rules of the enrolment domain (yibao.enrolment) ---------------


class BaseLimits(Strict):
    """职工缴费基数: the declared monthly wage clamped to [floor, ceiling] (often 60%–300% of the average)."""

    floor_monthly: Yuan = Field(description="月缴费基数下限(元)")
    ceiling_monthly: Yuan = Field(description="月缴费基数上限(元)")


class EmployeeAccount(Strict):
    """个人账户划入: in service a share of the employee's own contribution; retirees a fixed monthly amount."""

    in_service_share: Ratio = Field(Decimal(1), description="在职职工个人缴费计入个人账户的比例(2021 改革后通常 1)")
    retiree_monthly: Yuan = Field(Decimal(0), description="退休人员每月划入个人账户的定额(元)")
    family_mutual: bool = Field(True, description="家庭共济: 账户可支付登记的家庭成员的个人负担")


class Arrears(Strict):
    """欠费: months unpaid before benefits stop, and the waiting period after 补缴 / new enrolment."""

    suspend_after_months: int = Field(3, ge=0, le=24, description="连续欠费超过此月数, 暂停享受统筹基金待遇")
    waiting_months: int = Field(0, ge=0, le=12, description="中断后重新参保或补缴的待遇等待期(月)")


class EmployeeFinancing(Strict):
    base: BaseLimits
    employer_rate: Ratio = Field(description="单位缴费率")
    employee_rate: Ratio = Field(description="个人缴费率")
    account: EmployeeAccount = EmployeeAccount()
    arrears: Arrears = Arrears()
    sector_floor_flag: Ratio = Field(Decimal("0.5"), description="瞒报基数提示: 单位申报基数全在下限, 而行业平均"
                                     "工资高于下限的 (1 + 此比例) 倍时提示")


class FlexibleFinancing(Strict):
    """灵活就业人员参加职工医保: one rate on a base the person chooses within the limits."""

    rate: Ratio = Field(description="缴费率(个人全额承担)")
    account_share: Ratio = Field(Decimal(0), description="计入个人账户的比例(占缴费额)")


class ResidentYear(Strict):
    year: int = Field(ge=2000, le=2100)
    individual: Yuan = Field(description="居民个人年缴费标准(元/人)")
    fiscal: Yuan = Field(description="各级财政人均补助(元/人)")


class AssistanceRule(Strict):
    """资助参保: what medical assistance pays of a category's resident contribution, over a period."""

    category: Code
    kind: Literal["full", "fixed", "percentage", "none"]
    amount: Yuan | None = Field(None, description="fixed: 每人资助金额(元)")
    ratio: Ratio | None = Field(None, description="percentage: 资助占个人缴费的比例")
    valid_from: date
    valid_to: date


class Relief(Strict):
    """阶段性减征 (a factor on the employer rate) or 缓缴 (due date moved), over months of a period."""

    id: Code
    kind: Literal["reduce", "defer"]
    valid_from: date
    valid_to: date
    employer_factor: Ratio = Field(Decimal(1), description="reduce: 单位费率乘以此系数, 减半征收为 0.5")
    defer_until: date | None = Field(None, description="defer: 缓缴至此日期, 期间不计欠费")
    note: str = ""


class Financing(Strict):
    employee: EmployeeFinancing | None = None
    flexible: FlexibleFinancing | None = None
    resident: list[ResidentYear] = []
    assistance: list[AssistanceRule] = []
    reliefs: list[Relief] = []


class ChronicDisease(Strict):
    code: Code
    name: str = Field(min_length=1)
    kind: Literal["basic", "separate"] = Field(description="basic 基本病种 / separate 单独支付病种")


class Handling(Strict):
    """经办 facts the settlement reads (optional; a pack without it keeps today's behaviour)."""

    chronic_diseases: list[ChronicDisease] = Field(default=[], description="门诊慢特病病种目录")
    chronic_med_types: list[MedType] = Field(default=["14"], description="须有门诊慢特病认定的医疗类别")
    uncertified_chronic: Literal["ordinary_outpatient", "refuse"] = Field(
        "ordinary_outpatient", description="无有效认定的门诊慢特病就诊: 按普通门诊结算, 或拒绝结算")


class PolicyPack(Strict):
    """A region's dated benefit rules (医保待遇政策包)."""

    pack: PackInfo
    reference: Reference
    levels: dict[Code, str] = Field(description="定点机构等级代码 → 名称, 如 1: 一级/基层")
    categories: dict[Code, str] = Field(default={}, description="人员类别代码 → 名称, 如 dibao: 低保对象")
    application_categories: list[Code] = Field(
        default=[], description="须本人申请、经民政部门认定才进入的人员类别(如 illness_poverty 因病致贫重病患者); "
                                "只针对这些类别的救助层次是依申请救助")
    classification: Classification
    basic: list[BasicRule] = Field(min_length=1)
    tiers: list[Tier] = []
    guarantees: list[Guarantee] = []
    personal_account: PersonalAccount | None = None
    monitoring: Monitoring | None = None
    payment: Payment | None = None
    fund: Fund | None = None
    ltc: LongTermCare | None = None
    financing: Financing | None = None
    handling: Handling | None = None
    assumptions: list[Assumption] = []
