"""One workflow for every service item (经办事项): 受理 → 审核 → 复核 → 办结, back for 补正, or refused.

The item catalogue (``items.yaml``) is data: guide, form fields, steps. The engine here is pure —
no database, no web: it checks a form against its item, and decides whether an action may move a
case from one state to another, by whom. The store (:mod:`yibao.handling.store`) records what it
decides.

States: ``accepted`` 已受理(待审核), ``reviewed`` 已审核(待复核), ``returned`` 退回补正(待补正),
``closed`` 办结 (approved), ``rejected`` 不予受理/不予批准. ``closed`` and ``rejected`` are final:
no action leaves them (a rating, 好差评, is recorded on a final case without moving it).

Separation of duties: the persons who accept, review and recheck one case are three different
people (two for items without recheck); nobody can close a case alone where two steps are required.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from importlib import resources
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from yibao.errors import Problem, YibaoError

STATES = {"accepted": "已受理", "reviewed": "已审核", "returned": "退回补正", "closed": "办结", "rejected": "不予办理"}
FINAL = frozenset({"closed", "rejected"})
CHANNELS = {"window": "窗口", "online": "网办", "village": "村级服务点", "hospital": "医院"}
ACTIONS = {"approve": "通过", "return": "退回补正", "reject": "不予办理", "resubmit": "补正后重新提交"}
STEP_NAMES = {"accept": "受理", "review": "审核", "recheck": "复核"}


class HandlingError(YibaoError):
    title = "经办业务"


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Guide(_M):
    conditions: str
    materials: list[str] = Field(min_length=1)
    legal_basis: str
    promised_days: int = Field(ge=1, le=365)
    channels: list[Literal["window", "online", "village", "hospital"]] = Field(min_length=1)


class FormField(_M):
    name: str = Field(pattern=r"^[a-z_]+$")
    label: str
    type: Literal["text", "code", "date", "choice", "money", "int", "year", "admdvs"]
    required: bool = True
    choices: list[str] | None = None


class Item(_M):
    code: str = Field(pattern=r"^[a-z_]+$")
    name: str
    guide: Guide
    fields: list[FormField]
    steps: list[Literal["accept", "review", "recheck"]] = Field(min_length=2)


class Catalogue(_M):
    items: list[Item]

    def item(self, code: str) -> Item:
        for it in self.items:
            if it.code == code:
                return it
        raise HandlingError(Problem("HDL001", "item", f"没有事项 {code!r}; 事项清单: {', '.join(i.code for i in self.items)}"))


def shipped_catalogue() -> Catalogue:
    text = (resources.files("yibao.handling") / "items.yaml").read_text(encoding="utf-8")
    return Catalogue.model_validate(yaml.safe_load(text))


_CODE = re.compile(r"^[0-9A-Za-z._+*/\-]{1,40}$")


def check_form(item: Item, form: dict, materials: list[str]) -> tuple[dict, list[str]]:
    """The form as stored (values normalised) and the materials still missing; bad fields raise HDL010–HDL012."""
    problems: list[Problem] = []
    known = {f.name for f in item.fields}
    for name in sorted(set(form) - known):
        problems.append(Problem("HDL010", f"form.{name}", f"事项“{item.name}”没有字段 {name!r}"))
    out = {}
    for f in item.fields:
        value = form.get(f.name)
        if value in (None, ""):
            if f.required:
                problems.append(Problem("HDL011", f"form.{f.name}", f"缺少必填项“{f.label}”"))
            continue
        text = str(value).strip()
        why = _field_problem(f, text)
        if why:
            problems.append(Problem("HDL012", f"form.{f.name}", f"“{f.label}” {why}"))
        else:
            out[f.name] = text
    if problems:
        raise HandlingError(problems)
    missing = [m for m in item.guide.materials if m not in set(materials)]
    return out, missing


def _field_problem(f: FormField, text: str) -> str | None:
    if f.type == "date":
        try:
            date.fromisoformat(text)
        except ValueError:
            return f"应为日期 YYYY-MM-DD, 实际为 {text!r}"
    elif f.type == "choice":
        if text not in (f.choices or []):
            return f"应为 {f.choices} 之一, 实际为 {text!r}"
    elif f.type == "money":
        try:
            value = Decimal(text)
        except InvalidOperation:
            return f"应为金额(元), 实际为 {text!r}"
        if not value.is_finite() or value < 0 or value != value.quantize(Decimal("0.01")) or value >= 10**9:
            return "应为不小于 0、最多两位小数、小于 10 亿元的金额"
    elif f.type in ("int", "year"):
        if not re.fullmatch(r"[0-9]{1,4}", text) or (f.type == "year" and not 2000 <= int(text) <= 2100):
            return f"应为{'年度' if f.type == 'year' else '整数'}, 实际为 {text!r}"
    elif f.type == "admdvs":
        if not re.fullmatch(r"[0-9]{6}", text):
            return "应为 6 位医保区划代码"
    elif f.type == "code":
        if not _CODE.fullmatch(text):
            return "编码只能由字母、数字与 . _ - + * / 组成(最多 40 位)"
    elif f.type == "text":
        if len(text) > 400 or any(ord(ch) < 32 for ch in text):
            return "文字不超过 400 字, 不含控制字符"
    return None


@dataclass(frozen=True)
class Acted:
    """Who acted at which step of a case (from its history)."""

    step: str  # accept / review / recheck
    actor: str


@dataclass(frozen=True)
class Move:
    to: str  # the state after the action
    step: str | None  # the step this action performs (accept/review/recheck), None for resubmit


def next_step(item: Item, state: str) -> str | None:
    """The step a case in ``state`` waits for."""
    if state == "accepted":
        return "review"
    if state == "reviewed":
        return "recheck"
    return None


def decide(item: Item, state: str, action: str, actor: str, history: list[Acted]) -> Move:
    """Whether ``actor`` may take ``action`` on a case of ``item`` in ``state``, and where it goes (HDL020–HDL023)."""
    if action not in ACTIONS:
        raise HandlingError(Problem("HDL020", "action", f"未知的操作 {action!r}; 可用: {', '.join(ACTIONS)}"))
    if state in FINAL:
        raise HandlingError(Problem("HDL021", "action", f"案件已{STATES[state]}, 不能再{ACTIONS[action]}"))
    if action == "resubmit":
        if state != "returned":
            raise HandlingError(Problem("HDL021", "action", f"只有退回补正的案件可以重新提交, 本案件为{STATES[state]}"))
        return Move("accepted", None)
    if state == "returned":
        raise HandlingError(Problem("HDL021", "action", "案件待补正: 须先补正后重新提交"))
    step = next_step(item, state)
    assert step is not None
    done = {a.actor for a in history if a.step in ("accept", "review", "recheck")}
    if actor in done:
        raise HandlingError(Problem("HDL022", "actor",
                                    f"{actor} 已在本案件的其他环节办理过; 同一案件的受理、审核、复核须由不同人员办理"))
    if action == "return":
        return Move("returned", step)
    if action == "reject":
        return Move("rejected", step)
    last = item.steps[-1]
    return Move("closed" if step == last else "reviewed", step)
