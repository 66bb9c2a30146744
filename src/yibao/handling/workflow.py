"""The workflow engine: one state machine for every service item, pure (no store, no web).

    submitted 待受理 ──accept──▶ accepted 待审核 ──review──▶ reviewed 待复核 ──recheck──▶ completed 办结
        │  ▲                       │                          │        (two-step items: review → 办结)
        │  └──supplement── returned 退回补正 ◀── return (一次性告知 list, at any step) ──┘
        ├──refuse──▶ refused 不予受理 (with reason)
        └─ review/recheck may reject ──▶ rejected 不予通过 (with reason);  withdraw ──▶ withdrawn 撤回

Final states (completed, refused, rejected, withdrawn) admit no move; only a completed case can be
rated (好差评) once. Separation of duties: whoever acted at one step of a case (accept, review,
recheck — including returning or refusing at it) may never act at another step of the same case.
Accepting needs every required material (else the case must be returned with the 一次性告知 list);
the deadline is the item's promised working days counted from the day of the last acceptance.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date

from yibao.errors import Problem
from yibao.handling.calendar import Calendar
from yibao.handling.catalogue import STEPS, HandlingError, Item, missing_materials

STATUS_ZH = {"submitted": "待受理", "accepted": "待审核", "reviewed": "待复核", "returned": "退回补正",
             "completed": "办结", "refused": "不予受理", "rejected": "不予通过", "withdrawn": "撤回"}
FINAL = frozenset({"completed", "refused", "rejected", "withdrawn"})
ACTION_ZH = {"accept": "受理", "review": "审核通过", "recheck": "复核通过", "return": "退回补正",
             "refuse": "不予受理", "reject": "不予通过", "supplement": "补正材料", "withdraw": "撤回申请",
             "rate": "好差评"}
# the step a status waits for: who acts on a case in this status acts at that step
STEP_OF_STATUS = {"submitted": "accept", "accepted": "review", "reviewed": "recheck"}
RATINGS = {1: "非常差", 2: "差", 3: "一般", 4: "好", 5: "非常好"}
WARN_DAYS = 2  # 即将超期: this many working days or fewer left


@dataclass(frozen=True)
class CaseState:
    item_code: str
    status: str = "submitted"
    materials: tuple[str, ...] = ()
    step_actors: tuple[tuple[str, str], ...] = ()  # (step, actor) pairs, in order
    accepted_on: date | None = None
    deadline: date | None = None
    completed_on: date | None = None
    notice: tuple[dict, ...] = ()  # the last 一次性告知 list
    reason: str | None = None
    rating: int | None = None

    def actors_at(self, step: str) -> set[str]:
        return {a for s, a in self.step_actors if s == step}


@dataclass(frozen=True)
class Action:
    kind: str  # a key of ACTION_ZH
    actor: str
    on: date
    materials: tuple[str, ...] = ()  # supplement: materials brought now
    notice: tuple[str, ...] = ()  # return: extra items of the 一次性告知 list besides missing materials
    reason: str | None = None  # refuse / reject
    rating: int | None = None
    comment: str | None = field(default=None)


def _fail(code: str, path: str, message: str) -> HandlingError:
    return HandlingError(Problem(code, path, message))


def apply(item: Item, state: CaseState, action: Action, cal: Calendar) -> CaseState:
    """The case after ``action``, or a coded refusal (HDL02x) leaving ``state`` as it was."""
    if action.kind not in ACTION_ZH:
        raise _fail("HDL020", "action", f"未知的办理动作 {action.kind!r}")
    if action.kind == "rate":
        return _rate(state, action)
    if state.status in FINAL:
        raise _fail("HDL021", "status", f"案件已{STATUS_ZH[state.status]}, 不能再{ACTION_ZH[action.kind]}")
    if action.kind == "withdraw":
        return replace(state, status="withdrawn")
    if action.kind == "supplement":
        if state.status != "returned":
            raise _fail("HDL022", "action", f"案件{STATUS_ZH[state.status]}, 只有退回补正的案件可以补正材料")
        return replace(state, status="submitted", materials=tuple(dict.fromkeys(state.materials + action.materials)))
    step = STEP_OF_STATUS.get(state.status)
    if step is None:  # returned: waiting for the applicant
        raise _fail("HDL022", "action", f"案件{STATUS_ZH[state.status]}, 须先补正材料")
    allowed = {"accept": {"accept", "return", "refuse"}, "review": {"review", "return", "reject"},
               "recheck": {"recheck", "return", "reject"}}[step]
    if action.kind not in allowed:
        raise _fail("HDL022", "action", f"案件{STATUS_ZH[state.status]}, 此时不能{ACTION_ZH[action.kind]}")
    for other, actor in state.step_actors:
        if actor == action.actor and other != step:
            raise _fail("HDL023", "actor", f"{action.actor} 已在本案{STEPS[other]}环节办理, 不得再办理{STEPS[step]}环节(不相容岗位分离)")
    acted = replace(state, step_actors=state.step_actors + ((step, action.actor),))
    if action.kind == "accept":
        missing = missing_materials(item, list(state.materials))
        if missing:
            names = "、".join(m["name"] for m in missing)
            raise _fail("HDL024", "materials", f"材料不全, 不能受理, 应退回补正并一次性告知: {names}")
        deadline = cal.add_working_days(action.on, item.promised_days)
        return replace(acted, status="accepted", accepted_on=action.on, deadline=deadline, notice=())
    if action.kind == "return":
        notice = tuple(missing_materials(item, list(state.materials))) + tuple(
            {"code": "note", "name": n} for n in action.notice if n.strip())
        if not notice:
            raise _fail("HDL025", "notice", "退回补正须一次性告知所缺材料或需补正的事项")
        return replace(acted, status="returned", notice=notice)
    if action.kind in ("refuse", "reject"):
        if not (action.reason or "").strip():
            raise _fail("HDL026", "reason", f"{ACTION_ZH[action.kind]}须写明理由")
        return replace(acted, status="refused" if action.kind == "refuse" else "rejected", reason=action.reason.strip())
    # review / recheck: approve this step
    last = item.steps[-1] == step
    if last:
        return replace(acted, status="completed", completed_on=action.on)
    return replace(acted, status="reviewed")


def _rate(state: CaseState, action: Action) -> CaseState:
    if state.status != "completed":
        raise _fail("HDL027", "rating", "只有办结的案件可以评价")
    if state.rating is not None:
        raise _fail("HDL027", "rating", "本案已评价, 不能重复评价")
    if action.rating not in RATINGS:
        raise _fail("HDL027", "rating", "评价须为 1(非常差) 至 5(非常好)")
    return replace(state, rating=action.rating)


def timeliness(state: CaseState, today: date, cal: Calendar) -> dict:
    """on time / overdue / warning, and working days left (negative when overdue)."""
    if state.deadline is None:
        return {"deadline": None, "days_left": None, "flag": None}
    end = state.completed_on if state.status == "completed" else today
    left = cal.working_days_between(end, state.deadline)
    if state.status == "completed":
        flag = "按时办结" if end <= state.deadline else "超期办结"
    elif state.status in FINAL:
        flag = None
    elif end > state.deadline:
        flag = "已超期"
    elif left <= WARN_DAYS:
        flag = "即将超期"
    else:
        flag = "正常"
    out = {"deadline": state.deadline.isoformat(), "days_left": left, "flag": flag}
    if cal.provisional(state.deadline):
        out["provisional"] = True  # 日历未含该年: 截止日按周一至周五及固定日期节日预估
    return out
