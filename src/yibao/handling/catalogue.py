"""The service-item catalogue (事项清单): each item's guide, form and steps, loaded from YAML.

An item is data, so a bureau adds or changes one without code. ``validate_form`` checks an
application against the item's fields and answers every problem at once with a coded Chinese
message (HDL codes); ``missing_materials`` is the 一次性告知 list of what is still to be brought.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from importlib import resources
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from yibao.errors import Problem, YibaoError, pydantic_problems
from yibao.service.registry import check_certno

CHANNELS = {"window": "窗口", "online": "网办", "village": "村级服务点", "hospital": "医院"}
STEPS = {"accept": "受理", "review": "审核", "recheck": "复核"}
FieldType = Literal["text", "date", "yuan", "int", "certno", "admdvs", "enum", "disease", "category"]


class HandlingError(YibaoError):
    """A 经办 request that cannot be done: unknown item, bad form, wrong step, conflict..."""

    title = "经办业务办理失败"
    status = 422


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Material(_Strict):
    code: str = Field(pattern=r"^[a-z_]{1,32}$")
    name: str = Field(min_length=1)
    required: bool = True


class FormField(_Strict):
    name: str = Field(pattern=r"^[a-z_]{1,32}$")
    label: str = Field(min_length=1)
    type: FieldType
    required: bool = True
    options: list[str] | None = None
    min: int | None = None
    max: int | None = None

    @model_validator(mode="after")
    def _enum_has_options(self) -> "FormField":
        if (self.type == "enum") != bool(self.options):
            raise ValueError("enum 字段必须且只有 enum 字段给出 options")
        return self


class Item(_Strict):
    code: str = Field(pattern=r"^[A-Z]{2,10}$")
    name: str = Field(min_length=1)
    category: str
    legal_basis: list[str] = Field(min_length=1)
    conditions: list[str] = Field(min_length=1)
    materials: list[Material] = Field(min_length=1)
    promised_days: int = Field(ge=1, le=60, description="承诺办结时限(工作日)")
    channels: list[Literal["window", "online", "village", "hospital"]] = Field(min_length=1)
    steps: list[Literal["accept", "review", "recheck"]] = Field(min_length=2)
    fields: list[FormField]
    effect: str | None = None

    @model_validator(mode="after")
    def _steps_in_order(self) -> "Item":
        if self.steps not in (["accept", "review"], ["accept", "review", "recheck"]):
            raise ValueError("steps 须为 [accept, review] 或 [accept, review, recheck]")
        return self

    def guide(self) -> dict:
        """The 办事指南 as shown to an applicant."""
        return {"code": self.code, "name": self.name, "category": self.category, "legal_basis": self.legal_basis,
                "conditions": self.conditions,
                "materials": [{"code": m.code, "name": m.name, "required": m.required} for m in self.materials],
                "promised_days": self.promised_days, "channels": [CHANNELS[c] for c in self.channels],
                "steps": [STEPS[s] for s in self.steps],
                "fields": [f.model_dump(exclude_none=True) for f in self.fields]}


class Catalogue(_Strict):
    version: str
    items: list[Item] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> "Catalogue":
        codes = [i.code for i in self.items]
        if len(codes) != len(set(codes)):
            raise ValueError("事项编码重复")
        return self

    def item(self, code: str, path: str = "item_code") -> Item:
        for it in self.items:
            if it.code == code:
                return it
        known = ", ".join(f"{i.code}({i.name})" for i in self.items)
        raise HandlingError(Problem("HDL001", path, f"未知的服务事项 {code!r}; 可办事项: {known}"))


def parse_catalogue(data: Any, source: str = "") -> Catalogue:
    try:
        return Catalogue.model_validate(data)
    except ValidationError as exc:
        raise HandlingError(pydantic_problems(exc, "HDL000"), source) from None


@lru_cache(maxsize=1)
def catalogue() -> Catalogue:
    text = resources.files("yibao.handling").joinpath("items.yaml").read_text(encoding="utf-8")
    return parse_catalogue(yaml.safe_load(text), "items.yaml")


_ADMDVS = re.compile(r"^[1-9][0-9]{5}$")


def validate_form(item: Item, form: dict[str, Any], diseases: dict[str, str] | None = None,
                  categories: dict[str, str] | None = None) -> dict[str, Any]:
    """The form's values normalised (dates ISO, yuan as 2-decimal strings), or every problem at once.

    ``diseases`` is the pack's 门诊慢特病 list (code → name); a ``disease`` field must name one of them.
    ``categories`` is the pack's 人员类别 list; a ``category`` field must name one of them.
    """
    problems: list[Problem] = []
    out: dict[str, Any] = {}
    known = {f.name for f in item.fields}
    for extra in sorted(set(form) - known):
        problems.append(Problem("HDL011", f"form.{extra}", f"事项 {item.name} 没有字段 {extra}"))
    for f in item.fields:
        path = f"form.{f.name}"
        raw = form.get(f.name)
        if raw is None or raw == "":
            if f.required:
                problems.append(Problem("HDL010", path, f"{f.label} 为必填项"))
            continue
        try:
            out[f.name] = _value(f, raw, diseases, categories)
        except ValueError as exc:
            problems.append(Problem(exc.args[0], path, f"{f.label}: {exc.args[1]}"))
    if "valid_from" in out and "valid_to" in out and out["valid_to"] < out["valid_from"]:
        problems.append(Problem("HDL016", "form.valid_to", "截止日期不得早于开始日期"))
    if problems:
        raise HandlingError(problems, item.code)
    return out


def _value(f: FormField, raw: Any, diseases: dict[str, str] | None, categories: dict[str, str] | None = None) -> Any:
    text = str(raw).strip()
    if f.type == "text":
        if len(text) > 100:
            raise ValueError("HDL012", "不得超过 100 个字符")
        return text
    if f.type == "date":
        try:
            return date.fromisoformat(text).isoformat()
        except ValueError:
            raise ValueError("HDL012", f"{text!r} 不是 YYYY-MM-DD 日期") from None
    if f.type == "yuan":
        try:
            amount = Decimal(text)
        except InvalidOperation:
            raise ValueError("HDL012", f"{text!r} 不是金额") from None
        if not amount.is_finite() or amount < 0 or amount > Decimal("10000000") or amount != amount.quantize(Decimal("0.01")):
            raise ValueError("HDL012", "金额须为 0 至 10000000 元、最多两位小数")
        return str(amount.quantize(Decimal("0.01")))
    if f.type == "int":
        if not re.fullmatch(r"-?[0-9]{1,9}", text):
            raise ValueError("HDL012", f"{text!r} 不是整数")
        n = int(text)
        if (f.min is not None and n < f.min) or (f.max is not None and n > f.max):
            raise ValueError("HDL012", f"须在 {f.min} 至 {f.max} 之间")
        return n
    if f.type == "admdvs":
        if not _ADMDVS.fullmatch(text):
            raise ValueError("HDL012", f"{text!r} 不是 6 位医保区划代码")
        return text
    if f.type == "certno":

        try:
            check_certno(text)
        except YibaoError:
            raise ValueError("HDL012", "证件号码格式或校验位不正确") from None
        return text
    if f.type == "enum":
        if text not in (f.options or []):
            raise ValueError("HDL013", f"{text!r} 不在可选值 {'/'.join(f.options or [])} 中")
        return text
    if f.type == "category":
        if not categories or text not in categories:
            known = "/".join(f"{k}({v})" for k, v in (categories or {}).items())
            raise ValueError("HDL013", f"{text!r} 不是所用政策包的人员类别" + (f"; 可选 {known}" if known else ""))
        return text
    # disease
    if diseases is None:
        raise ValueError("HDL014", "所用政策包未列出门诊慢特病病种, 无法认定")
    if text not in diseases:
        raise ValueError("HDL015", f"{text!r} 不在本统筹区门诊慢特病病种目录内")
    return text


def missing_materials(item: Item, provided: list[str]) -> list[dict]:
    """一次性告知: every required material not yet provided, named as the guide names it."""
    have = set(provided)
    return [{"code": m.code, "name": m.name} for m in item.materials if m.required and m.code not in have]


def unknown_materials(item: Item, provided: list[str]) -> list[Problem]:
    known = {m.code for m in item.materials}
    return [Problem("HDL017", f"materials[{i}]", f"事项 {item.name} 的材料清单里没有 {code!r}")
            for i, code in enumerate(provided) if code not in known]
