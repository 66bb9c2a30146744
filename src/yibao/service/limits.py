"""Plausibility limits: how large a fee line, a visit and a person's day may be, and how fine a quantity or
price, before the service will store or settle it.

The numbers are data (``limits.yaml`` beside this module; ``YIBAO_LIMITS`` names a replacement file), checked
at the door: each line at upload (2204/2301, REST fee-items), the visit's total at upload and again at
settlement, the person's settled total of the day at settlement (2206/2207). A request past a limit is
refused with a ``LIM`` code naming the field and the limit, and nothing is written. They keep a typing slip
(a 4.99×10¹⁶-yuan visit) from being paid and every stored amount far inside 64 bits: with a visit under 10 万亿
yuan (10¹⁵ fen), a year of daily maxima stays under 4×10¹⁷ fen.

>>> lim = Limits.model_validate({"max_line_amount": "100.00", "max_price": "50.00", "max_cnt": 10,
...     "cnt_decimals": 2, "price_decimals": 2, "max_visit_amount": "150.00", "max_day_amount": "200.00"})
>>> [p.code for p in lim.line_problems(pric=Decimal("60.00"), cnt=Decimal("1.005"), amount_fen=6030, path="x")]
['LIM002', 'LIM004']
>>> lim.visit_problem(15001, "medfee_sumamt").code
'LIM010'
"""

from __future__ import annotations

import os
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from yibao.errors import PolicyError, Problem, pydantic_problems
from yibao.money import fen_to_yuan, yuan_to_fen
from yibao.policy.model import Yuan
from yibao.settlement.request import CNT_DECIMALS

DEFAULT_FILE = Path(__file__).with_name("limits.yaml")
ENV = "YIBAO_LIMITS"


def _yuan(value: Decimal) -> Decimal:
    return fen_to_yuan(yuan_to_fen(value))  # 1000000.0 as YAML reads it → 1000000.00


def decimals(value: Decimal) -> int:
    """Decimal places a value needs (``1.50`` → 1, ``100`` → 0)."""
    return max(0, -value.normalize().as_tuple().exponent)


class Limits(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_line_amount: Yuan
    max_price: Yuan
    max_cnt: Decimal = Field(gt=0, le=100000)
    cnt_decimals: int = Field(ge=0, le=CNT_DECIMALS)  # the store keeps 4
    price_decimals: int = Field(ge=0, le=2)  # the store keeps fen
    max_visit_amount: Yuan
    max_day_amount: Yuan

    @classmethod
    def load(cls, path: str | Path | None = None) -> "Limits":
        path = Path(path or os.environ.get(ENV) or DEFAULT_FILE)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise PolicyError(Problem("LIM090", str(path), f"无法读取合理性上限文件: {exc}")) from None
        try:
            return cls.model_validate(data if data is not None else {})
        except ValidationError as exc:
            raise PolicyError(pydantic_problems(exc, "LIM090"), str(path)) from None

    def line_problems(self, *, pric: Decimal | None, cnt: Decimal, amount_fen: int, path: str) -> list[Problem]:
        out = []
        if amount_fen > yuan_to_fen(self.max_line_amount):
            out.append(Problem("LIM001", f"{path}.det_item_fee_sumamt",
                               f"明细金额 {fen_to_yuan(amount_fen)} 超过单条上限 {_yuan(self.max_line_amount)} 元"))
        if pric is not None and pric > self.max_price:
            out.append(Problem("LIM002", f"{path}.pric", f"单价 {pric} 超过上限 {_yuan(self.max_price)} 元"))
        if pric is not None and decimals(pric) > self.price_decimals:
            out.append(Problem("LIM005", f"{path}.pric", f"单价 {pric} 超过 {self.price_decimals} 位小数"))
        if cnt > self.max_cnt:
            out.append(Problem("LIM003", f"{path}.cnt", f"数量 {cnt} 超过单条上限 {self.max_cnt}"))
        if decimals(cnt) > self.cnt_decimals:
            out.append(Problem("LIM004", f"{path}.cnt", f"数量 {cnt} 超过 {self.cnt_decimals} 位小数"))
        return out

    def visit_problem(self, total_fen: int, path: str) -> Problem | None:
        if total_fen > yuan_to_fen(self.max_visit_amount):
            return Problem("LIM010", path, f"本次就诊医疗费总额 {fen_to_yuan(total_fen)} 超过上限 "
                                           f"{_yuan(self.max_visit_amount)} 元")
        return None

    def day_problem(self, settled_fen: int, this_fen: int, day, path: str) -> Problem | None:
        if settled_fen + this_fen > yuan_to_fen(self.max_day_amount):
            return Problem("LIM011", path, f"参保人 {day} 已结算医疗费 {fen_to_yuan(settled_fen)} 加本次 "
                                           f"{fen_to_yuan(this_fen)} 超过当日上限 {_yuan(self.max_day_amount)} 元")
        return None


@lru_cache(maxsize=1)
def configured() -> Limits:
    """The limits of this process (``YIBAO_LIMITS`` or the shipped file), read once."""
    return Limits.load()
