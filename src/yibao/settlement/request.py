"""The settlement request as people write it (JSON, amounts in yuan), checked and turned into fen.

This is the edge between users and the engine: every field is validated here with Chinese
messages naming the field, and nothing reaches the engine unless the whole request is valid.
See ``docs/settle-request.md`` for the format with examples.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from yibao.errors import Problem, RequestError, pydantic_problems
from yibao.identifiers import Identifier
from yibao.money import mul_rate, yuan_to_fen
from yibao.policy.model import Code, Insutype, MedType, Ratio, Yuan
from yibao.settlement.model import Accumulators, ClassifiedAmounts, FeeItem, Person, Visit


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PersonIn(_In):
    psn_no: Identifier = Field(min_length=1, max_length=40, description="人员编号")
    insutype: Insutype = Field(description="险种类型: 310 职工 / 390 居民 ...")
    categories: list[Code] = Field(default=[], description="人员类别, 如 dibao")
    retiree: bool = Field(False, description="是否退休")
    age: int | None = Field(None, ge=0, le=150)
    gend: str | None = Field(None, pattern=r"^[0129]$")
    hh_no: Identifier | None = Field(None, max_length=40, description="家庭编号: 政策包有家庭年度限额(household_cap)时必填")


# What the store holds exactly (fee_items.cnt NUMERIC(16,4), preselfpay_ratio NUMERIC(9,6)): a finer value would
# be rounded on the way in, and a settlement computed from the stored line would then differ from the one
# classified at upload (or by ``yibao settle``) from the value as sent. So it is refused everywhere alike.
CNT_DECIMALS = 4
RATIO_DECIMALS = 6


class FeeItemIn(_In):
    feedetl_sn: Identifier = Field(min_length=1, max_length=40)
    med_list_codg: Identifier = Field(min_length=1, max_length=60)
    chrgitm_lv: Code | None = None
    pric: Yuan | None = None
    cnt: Annotated[Decimal, Field(gt=0, le=100000)] = Decimal(1)
    det_item_fee_sumamt: Yuan
    preselfpay_ratio: Ratio | None = None

    @field_validator("cnt")
    @classmethod
    def _cnt_exact(cls, value: Decimal) -> Decimal:
        if value.is_finite() and -value.normalize().as_tuple().exponent > CNT_DECIMALS:
            raise ValueError(f"数量 cnt 最多 {CNT_DECIMALS} 位小数, 实际为 {value}")
        return value

    @field_validator("preselfpay_ratio")
    @classmethod
    def _ratio_exact(cls, value: Decimal | None) -> Decimal | None:
        if value is not None and -value.normalize().as_tuple().exponent > RATIO_DECIMALS:
            raise ValueError(f"先行自付比例 preselfpay_ratio 最多 {RATIO_DECIMALS} 位小数, 实际为 {value}")
        return value

    @model_validator(mode="after")
    def _amount_matches(self) -> "FeeItemIn":
        if self.pric is not None:
            expected = mul_rate(yuan_to_fen(self.pric), self.cnt)
            if expected != yuan_to_fen(self.det_item_fee_sumamt):
                raise ValueError(
                    f"明细金额 det_item_fee_sumamt={self.det_item_fee_sumamt} 与 单价×数量 "
                    f"{self.pric}×{self.cnt}={Decimal(expected) / 100:.2f} 不符"
                )
        return self


class AmountsIn(_In):
    """The four classified amounts, when the bill's lines are not sent."""

    fulamt_ownpay_amt: Yuan = Decimal(0)
    overlmt_selfpay: Yuan = Decimal(0)
    preselfpay_amt: Yuan = Decimal(0)
    inscp_scp_amt: Yuan
    inscp_full: Yuan = Field(Decimal(0), description="政策范围内金额中不按比例共付、由统筹基金全额支付的部分"
                                                     "(政策包 coshare: false 的类别, 如植入类医用耗材), 不超过 inscp_scp_amt")

    @model_validator(mode="after")
    def _full_within_scope(self):
        if self.inscp_full > self.inscp_scp_amt:
            raise ValueError(f"inscp_full={self.inscp_full} 不能大于政策范围内金额 inscp_scp_amt={self.inscp_scp_amt}")
        return self


class VisitIn(_In):
    mdtrt_id: Identifier = Field(min_length=1, max_length=40, description="就诊 ID")
    med_type: MedType = Field(description="医疗类别: 11 普通门诊, 14 门诊慢特病, 21 普通住院, 52 生育住院")
    level: Code = Field(description="定点机构等级(政策包中声明的代码)")
    setl_time: Union[datetime, date] = Field(description="结算日期/时间")
    fixmedins_code: Identifier = Field("", max_length=40)
    dise_codg: Identifier = Field("", max_length=40, description="主诊断编码")
    referral_from_level: Code | None = Field(None, description="医共体内转诊: 转出机构等级")
    offsite_status: Literal["local", "filed", "unfiled"] = Field(
        "local", description="异地就医: local 本地, filed 异地已备案, unfiled 异地未备案")
    acct_balance: Yuan = Field(Decimal(0), description="本次可用个人账户余额(元)")
    items: list[FeeItemIn] | None = None
    amounts: AmountsIn | None = None
    medfee_sumamt: Yuan | None = Field(None, description="医疗费总额(可选; 给出时须与明细或分类金额合计一致)")

    @model_validator(mode="after")
    def _one_source(self) -> "VisitIn":
        if (self.items is None) == (self.amounts is None):
            raise ValueError("须给出费用明细 items 或四项分类金额 amounts 之一(且只给一个)")
        if self.items is not None:
            seen: set[str] = set()
            for item in self.items:
                if item.feedetl_sn in seen:
                    raise ValueError(f"费用明细流水号 feedetl_sn {item.feedetl_sn!r} 重复")
                seen.add(item.feedetl_sn)
        if self.medfee_sumamt is not None:
            if self.items is not None:
                total = sum(yuan_to_fen(i.det_item_fee_sumamt) for i in self.items)
            else:
                a = self.amounts
                assert a is not None
                total = sum(yuan_to_fen(x) for x in (a.fulamt_ownpay_amt, a.overlmt_selfpay,
                                                      a.preselfpay_amt, a.inscp_scp_amt))
            if total != yuan_to_fen(self.medfee_sumamt):
                raise ValueError(f"医疗费总额 medfee_sumamt={self.medfee_sumamt} 与明细合计 {Decimal(total) / 100:.2f} 不符")
        return self


class AccumulatorsIn(_In):
    year: int = Field(ge=2000, le=2100)
    values: dict[str, int] = Field(default={}, description="累计值(金额为分, 次数为整数), 来自上一次结算输出")

    @model_validator(mode="after")
    def _non_negative(self) -> "AccumulatorsIn":
        bad = [k for k, v in self.values.items() if v < 0]
        if bad:
            raise ValueError(f"累计值不能为负数: {bad}")
        return self


class SettleRequest(_In):
    """One visit (``visit``) or one person's visits of a year in order (``visits``)."""

    person: PersonIn
    visit: VisitIn | None = None
    visits: list[VisitIn] | None = Field(None, min_length=1)
    accumulators: AccumulatorsIn | None = None
    household_accumulators: AccumulatorsIn | None = Field(
        None, description="本户本年度此前的家庭累计(hhcap:<层次>, hhpaid:<层次>, 分); 不填为本户本年度第一笔")

    @model_validator(mode="after")
    def _one_shape(self) -> "SettleRequest":
        if (self.visit is None) == (self.visits is None):
            raise ValueError("须给出 visit(单次就诊)或 visits(同一参保人本年度按顺序的多次就诊)之一")
        visits = self.visit_list()
        years = {_date(v.setl_time).year for v in visits}
        if len(years) > 1:
            raise ValueError(f"visits 中的就诊须属同一年度, 实际含 {sorted(years)}")
        dates = [_date(v.setl_time) for v in visits]
        if dates != sorted(dates):
            raise ValueError("visits 须按结算时间先后排列")
        if self.accumulators is not None and self.accumulators.year not in years:
            raise ValueError(f"累计信息年度 {self.accumulators.year} 与就诊年度 {sorted(years)} 不一致")
        if self.household_accumulators is not None and self.household_accumulators.year not in years:
            raise ValueError(f"家庭累计信息年度 {self.household_accumulators.year} 与就诊年度 {sorted(years)} 不一致")
        return self

    def visit_list(self) -> list[VisitIn]:
        return [self.visit] if self.visit is not None else list(self.visits or [])


def _date(value: date | datetime) -> date:
    return value.date() if isinstance(value, datetime) else value


def parse_request(data: Any, source: str = "") -> SettleRequest:
    if not isinstance(data, dict):
        raise RequestError(Problem("REQ003", "", "请求的顶层必须是 JSON 对象"), source)
    try:
        return SettleRequest.model_validate(data)
    except ValidationError as exc:
        raise RequestError(pydantic_problems(exc, "REQ010"), source) from None


def load_request(path: str | Path) -> SettleRequest:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RequestError(Problem("REQ001", "", "文件不存在"), str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RequestError(Problem("REQ001", "", f"无法读取文件: {exc}"), str(path)) from None
    try:
        data = json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError as exc:
        raise RequestError(Problem("REQ002", f"第 {exc.lineno} 行第 {exc.colno} 列",
                                   f"JSON 格式错误: {exc.msg}"), str(path)) from None
    return parse_request(data, str(path))


def to_person(p: PersonIn) -> Person:
    return Person(p.psn_no, p.insutype, frozenset(p.categories), p.retiree, p.age, p.gend, p.hh_no)


def to_visit(v: VisitIn) -> Visit:
    items = None
    amounts = None
    if v.items is not None:
        items = tuple(
            FeeItem(
                feedetl_sn=i.feedetl_sn,
                med_list_codg=i.med_list_codg,
                det_item_fee_sumamt=yuan_to_fen(i.det_item_fee_sumamt),
                cnt=i.cnt,
                pric=None if i.pric is None else yuan_to_fen(i.pric),
                chrgitm_lv=i.chrgitm_lv,
                preselfpay_ratio=i.preselfpay_ratio,
            )
            for i in v.items
        )
    else:
        a = v.amounts
        assert a is not None
        amounts = ClassifiedAmounts(
            yuan_to_fen(a.fulamt_ownpay_amt), yuan_to_fen(a.overlmt_selfpay),
            yuan_to_fen(a.preselfpay_amt), yuan_to_fen(a.inscp_scp_amt), yuan_to_fen(a.inscp_full),
        )
    return Visit(
        mdtrt_id=v.mdtrt_id,
        med_type=v.med_type,
        level=v.level,
        setl_date=_date(v.setl_time),
        fixmedins_code=v.fixmedins_code,
        dise_codg=v.dise_codg,
        referral_from_level=v.referral_from_level,
        offsite_status=v.offsite_status,
        items=items,
        amounts=amounts,
        acct_balance=yuan_to_fen(v.acct_balance),
    )


def to_accumulators(req: SettleRequest) -> Accumulators:
    if req.accumulators is not None:
        return Accumulators(req.accumulators.year, dict(req.accumulators.values))
    return Accumulators(_date(req.visit_list()[0].setl_time).year)


def to_household(req: SettleRequest) -> Accumulators | None:
    """The household's year so far (家庭年度限额), when the request states it; None: the engine starts it empty."""
    if req.household_accumulators is None:
        return None
    return Accumulators(req.household_accumulators.year, dict(req.household_accumulators.values))
