"""定点协议管理 as pure rules: what an agreement's scope may hold, which dated event may follow which,
and the refusal intervals (暂停 / 解除) the events add up to. No storage here: :mod:`.store` loads the
events, asks these functions, and writes what they return.

An agreement's life is a list of dated events in date order: ``sign`` first, then any of ``change``
(a new scope from its date), ``suspend`` (暂停协议: settlement refused from its date), ``resume``
(恢复: refused up to the day before), ``terminate`` (解除/终止协议: refused from its date, for good).

>>> from datetime import date
>>> evs = [Event("sign", date(2026, 1, 1)), Event("suspend", date(2026, 3, 10), reason="欺诈骗保"),
...        Event("resume", date(2026, 6, 1)), Event("terminate", date(2026, 9, 1), reason="解除协议")]
>>> [(i.status, str(i.start), str(i.end)) for i in refusals(evs)]
[('suspended', '2026-03-10', '2026-05-31'), ('terminated', '2026-09-01', 'None')]
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from yibao.errors import Problem, YibaoError

KINDS = {"hospital": "定点医疗机构", "pharmacy": "定点零售药店"}
LEVELS = {"1": "一级/基层", "2": "二级", "3": "三级", "0": "未定级/药店"}
SERVICES = {  # 医疗类别 (med_type) an agreement may cover
    "11": "普通门诊", "14": "门诊慢特病", "21": "普通住院", "52": "生育住院", "41": "定点药店购药",
    "9901": "门诊两病", "22": "外伤住院",
}
CARE_MODES = {
    "day_surgery": "日间手术", "internet": "互联网+医疗服务", "dual_channel": "双通道药品供应",
    "offsite": "异地就医直接结算", "family_doctor": "家庭医生签约服务", "chronic_signing": "门诊慢特病定点签约",
}
EVALUATION_ITEMS = {  # 专业评估: each must be true to sign (医疗机构医疗保障定点管理暂行办法 第八、九条)
    "licence": "取得执业许可或营业执照",
    "operating_3m": "正式运营满 3 个月",
    "staff": "配备医保管理人员与内部管理制度",
    "his": "信息系统与医保信息平台对接并测试通过",
    "pricing": "价格公示与收费管理规范",
    "records": "药品耗材进销存台账完整",
}
EVENT_KINDS = {"sign": "签订协议", "change": "协议变更", "suspend": "暂停协议", "resume": "恢复协议",
               "terminate": "解除协议"}
REFUSAL_CODES = {"suspended": "INS101", "terminated": "INS102"}


class AgreementError(YibaoError):
    title = "定点协议办理失败"
    status = 422


class AgreementConflict(AgreementError):
    title = "定点协议状态冲突"
    status = 409


class AgreementNotFound(AgreementError):
    title = "未找到"
    status = 404


@dataclass(frozen=True)
class Event:
    kind: str
    eff_date: date
    scope: dict | None = None
    reason: str = ""


@dataclass(frozen=True)
class Interval:
    """Settlement refused from ``start`` to ``end`` inclusive (``end`` None: open), and why."""

    status: str  # suspended | terminated
    start: date
    end: date | None
    reason: str
    event_index: int  # the event that opened it

    def covers(self, on: date) -> bool:
        return self.start <= on and (self.end is None or on <= self.end)


def scope_problems(scope: dict, kind: str, path: str = "scope") -> list[Problem]:
    """A scope names known levels, services (med_type) and care modes; at least one level and one service."""
    problems: list[Problem] = []
    if kind not in KINDS:
        problems.append(Problem("INS001", "kind", f"机构类别须为 {'/'.join(KINDS)}({'/'.join(KINDS.values())}), 实际为 {kind!r}"))
    if not isinstance(scope, dict):
        return problems + [Problem("INS005", path, "协议范围须为映射: levels, services, care_modes")]
    extra = sorted(set(scope) - {"levels", "services", "care_modes"})
    if extra:
        problems.append(Problem("INS005", path, f"协议范围只含 levels, services, care_modes; 未知键 {extra}"))
    for key, known, code, what in (("levels", LEVELS, "INS002", "机构等级"), ("services", SERVICES, "INS003", "服务类别(医疗类别)"),
                                   ("care_modes", CARE_MODES, "INS004", "服务方式")):
        values = scope.get(key, [])
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            problems.append(Problem(code, f"{path}.{key}", f"{what}须为文本列表"))
            continue
        for i, v in enumerate(values):
            if v not in known:
                problems.append(Problem(code, f"{path}.{key}[{i}]", f"未知{what} {v!r}; 可用: "
                                        + ", ".join(f"{k} {n}" for k, n in known.items())))
        if key != "care_modes" and not values:
            problems.append(Problem("INS005", f"{path}.{key}", f"协议范围须至少含一个{what}"))
    return problems


def evaluation_result(items: dict) -> tuple[bool, list[Problem]]:
    """(passed, problems): every evaluation item answered true/false, none unknown; passed when all true."""
    problems = [Problem("INS012", f"items.{k}", f"未知评估项 {k!r}") for k in items if k not in EVALUATION_ITEMS]
    problems += [Problem("INS012", f"items.{k}", f"缺少评估项 {k}({name}): 须填 true 或 false")
                 for k, name in EVALUATION_ITEMS.items() if not isinstance(items.get(k), bool)]
    return (not problems and all(items[k] for k in EVALUATION_ITEMS)), problems


def refusals(events: list[Event]) -> list[Interval]:
    """The refusal intervals of an agreement's events (taken in the order given: date order)."""
    out: list[Interval] = []
    open_: Interval | None = None
    for i, ev in enumerate(events):
        if ev.kind == "suspend" and open_ is None:
            open_ = Interval("suspended", ev.eff_date, None, ev.reason, i)
        elif ev.kind == "resume" and open_ is not None and open_.status == "suspended":
            out.append(Interval(open_.status, open_.start, ev.eff_date - timedelta(days=1), open_.reason, open_.event_index))
            open_ = None
        elif ev.kind == "terminate":
            if open_ is not None:
                if open_.status == "terminated":
                    continue
                out.append(Interval(open_.status, open_.start, ev.eff_date - timedelta(days=1), open_.reason,
                                    open_.event_index))
            open_ = Interval("terminated", ev.eff_date, None, ev.reason, i)
    if open_ is not None:
        out.append(open_)
    return [iv for iv in out if iv.end is None or iv.end >= iv.start]


def state_on(events: list[Event], on: date, valid_from: date, valid_to: date) -> str:
    """in_force | suspended | terminated | not_started | expired, on a date."""
    for iv in refusals(events):
        if iv.covers(on):
            return iv.status
    if on < valid_from:
        return "not_started"
    if on > valid_to:
        return "expired"
    return "in_force"


def scope_on(events: list[Event], on: date) -> dict | None:
    """The scope in force on a date: the signing scope, or the latest change dated on or before it."""
    scope = None
    for ev in events:
        if ev.kind in ("sign", "change") and ev.eff_date <= on:
            scope = ev.scope
    return scope


def next_event_problems(events: list[Event], new: Event, valid_from: date, valid_to: date) -> list[Problem]:
    """Why ``new`` may not follow ``events`` (empty when it may)."""
    if new.kind not in EVENT_KINDS or new.kind == "sign":
        return [Problem("INS020", "kind", f"协议事项须为 change/suspend/resume/terminate, 实际为 {new.kind!r}")]
    problems: list[Problem] = []
    last = events[-1].eff_date if events else valid_from
    if new.eff_date < last:
        problems.append(Problem("INS022", "eff_date", f"生效日期 {new.eff_date} 早于该协议最近一条记录的日期 {last}"
                                "(协议事实按日期顺序记录; 更正请记录新的事实)"))
    if not valid_from <= new.eff_date <= valid_to:
        problems.append(Problem("INS021", "eff_date", f"生效日期 {new.eff_date} 不在协议有效期 {valid_from}–{valid_to} 内"))
    if new.kind in ("suspend", "terminate") and not new.reason.strip():
        problems.append(Problem("INS026", "reason", f"{EVENT_KINDS[new.kind]}须写明原因"))
    current = refusals(events)
    open_ = next((iv for iv in current if iv.end is None), None)
    if open_ is not None and open_.status == "terminated":
        problems.append(Problem("INS025", "agreement_no", f"协议已于 {open_.start} 解除, 不能再办理{EVENT_KINDS[new.kind]}"))
    elif new.kind == "suspend" and open_ is not None:
        problems.append(Problem("INS023", "agreement_no", f"协议自 {open_.start} 起已暂停, 须先恢复"))
    elif new.kind == "resume" and open_ is None:
        problems.append(Problem("INS024", "agreement_no", "协议未处于暂停状态, 无需恢复"))
    return problems


def refusal_problem(code: str, status: str, start: date, reason: str, path: str = "fixmedins_code") -> Problem:
    what = "暂停" if status == "suspended" else "解除"
    return Problem(REFUSAL_CODES[status], path,
                   f"机构 {code} 的医保定点服务协议自 {start} 起{what}(原因: {reason}), {what}期间不予医保结算")
