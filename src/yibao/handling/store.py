"""Cases of service items in the store: one row a case (its state and version), one row per action.

Every action is checked by the pure engine (:func:`yibao.handling.workflow.decide`) against the
case's state and history, then written with the case's ``version`` raised in the same
``UPDATE … WHERE version = :expected`` — two clerks acting on one case at once: one wins, the other
gets HDL024 and nothing of theirs is written. Actions land in the audit log; nothing is deleted.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date, datetime

from sqlalchemy import JSON, Date, DateTime, ForeignKey, Integer, String, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from yibao.errors import Problem
from yibao.handling.calendar import WorkCalendar
from yibao.handling.workflow import (
    ACTIONS,
    CHANNELS,
    FINAL,
    STATES,
    Acted,
    Catalogue,
    HandlingError,
    check_form,
    decide,
)
from yibao.service import registry
from yibao.service.auth import Principal
from yibao.service.errors import Conflict, NotFound, problem
from yibao.service.transactions import Context, audit, new_id
from yibao.store.base import Base


class HandlingCase(Base):
    __tablename__ = "hd_cases"

    case_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    item_code: Mapped[str] = mapped_column(String(40), index=True)
    psn_no: Mapped[str] = mapped_column(String(40), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    version: Mapped[int] = mapped_column(Integer)
    form: Mapped[dict] = mapped_column(JSON)
    missing: Mapped[list] = mapped_column(JSON)  # 一次性告知: every material still missing
    channel: Mapped[str] = mapped_column(String(16))
    service_point: Mapped[str] = mapped_column(String(80))
    accepted_on: Mapped[date] = mapped_column(Date)
    due_on: Mapped[date] = mapped_column(Date)
    closed_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    rating: Mapped[int | None] = mapped_column(Integer, nullable=True)  # 好差评 1–5, after the case ends


class HandlingEvent(Base):
    __tablename__ = "hd_case_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("hd_cases.case_id"), index=True)
    at: Mapped[datetime] = mapped_column(DateTime)
    actor: Mapped[str] = mapped_column(String(80))
    role: Mapped[str] = mapped_column(String(20))
    step: Mapped[str | None] = mapped_column(String(16), nullable=True)  # accept / review / recheck
    action: Mapped[str] = mapped_column(String(16))
    from_status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    to_status: Mapped[str] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(String(400))
    on_behalf: Mapped[dict | None] = mapped_column(JSON, nullable=True)  # 帮办代办: agent and authorisation


TABLES = [HandlingCase.__table__, HandlingEvent.__table__]


def _case(session: Session, case_id: str) -> HandlingCase:
    row = session.get(HandlingCase, case_id)
    if row is None:
        raise problem(NotFound, "HDL002", "case_id", f"没有案件 {case_id}")
    return row


def _event(session: Session, who: Principal, ctx: Context, case_id: str, step, action, before, after, note="",
           on_behalf=None) -> None:
    session.add(HandlingEvent(case_id=case_id, at=ctx.at, actor=who.name, role=who.role, step=step, action=action,
                              from_status=before, to_status=after, note=note, on_behalf=on_behalf))


def _on_behalf(agent: dict | None) -> dict | None:
    """帮办代办: who acted for the applicant, under which authorisation (both required when given)."""
    if agent is None:
        return None
    name, proof = str(agent.get("agent", "")).strip(), str(agent.get("authorisation", "")).strip()
    if not name or not proof:
        raise HandlingError(Problem("HDL013", "on_behalf", "帮办代办须写明代办人(agent)和授权书编号(authorisation)"))
    return {"agent": name[:80], "authorisation": proof[:80]}


def accept(session: Session, who: Principal, ctx: Context, catalogue: Catalogue, calendar: WorkCalendar, *,
           item_code: str, psn_no: str, form: dict, materials: list[str], channel: str, service_point: str,
           on_behalf: dict | None = None) -> dict:
    """受理: the form checked whole; missing materials → 退回补正 at once with the 一次性告知 list."""
    who.require("handling.accept")
    item = catalogue.item(item_code)
    if channel not in item.guide.channels:
        raise HandlingError(Problem("HDL014", "channel", f"事项“{item.name}”不能经 {CHANNELS.get(channel, channel)} 办理; "
                                    f"可用: {'、'.join(CHANNELS[c] for c in item.guide.channels)}"))
    registry.person(session, psn_no)
    clean, missing = check_form(item, form, materials)
    agent = _on_behalf(on_behalf)
    accepted_on = ctx.at.date()
    due = calendar.add_working_days(accepted_on, item.guide.promised_days)
    case_id = new_id("HC")
    status = "returned" if missing else "accepted"
    session.add(HandlingCase(case_id=case_id, item_code=item.code, psn_no=psn_no, status=status, version=1, form=clean,
                             missing=missing, channel=channel, service_point=service_point[:80],
                             accepted_on=accepted_on, due_on=due))
    session.flush()
    _event(session, who, ctx, case_id, "accept", "accept", None, status,
           "一次性告知: " + "、".join(missing) if missing else "", agent)
    audit(session, who, ctx, "handling.accept", "hd_case", case_id, {"item": item.code, "psn_no": psn_no, "status": status})
    return case_view(session, case_id)


def act(session: Session, who: Principal, ctx: Context, catalogue: Catalogue, *, case_id: str, action: str,
        expected_version: int, note: str = "", missing: list[str] | None = None, materials: list[str] | None = None,
        on_behalf: dict | None = None) -> dict:
    """审核 / 复核 / 退回补正 / 不予办理 / 补正后重新提交 — one move of one case, or a coded refusal."""
    case = _case(session, case_id)
    item = catalogue.item(case.item_code)
    if case.version != expected_version:  # someone acted since this clerk looked: say so before anything else
        raise _stale(case_id, case.version, expected_version)
    if action == "resubmit":
        who.require("handling.accept")
    else:
        who.require("handling.review" if case.status == "accepted" else "handling.recheck")
    history = [Acted(e.step, e.actor) for e in session.scalars(
        select(HandlingEvent).where(HandlingEvent.case_id == case_id, HandlingEvent.step.is_not(None)))]
    move = decide(item, case.status, action, who.name, history)
    if action == "reject" and not note.strip():
        raise HandlingError(Problem("HDL015", "note", "不予办理须写明理由"))
    left = list(case.missing)
    if action == "return":
        left = [m for m in (missing or []) if m]
        if not left:
            raise HandlingError(Problem("HDL016", "missing", "退回补正须一次性告知所缺的全部材料(missing 不能为空)"))
    if action == "resubmit":
        brought = set(materials or [])
        left = [m for m in case.missing if m not in brought]
        if left:
            raise HandlingError(Problem("HDL017", "materials", f"仍缺材料: {'、'.join(left)}"))
    closed_on = ctx.at.date() if move.to in FINAL else None
    done = session.execute(update(HandlingCase).where(HandlingCase.case_id == case_id,
                                                      HandlingCase.version == expected_version)
                           .values(status=move.to, version=expected_version + 1, missing=left, closed_on=closed_on))
    if done.rowcount != 1:  # another transaction moved it between our read and this write
        raise _stale(case_id, expected_version + 1, expected_version)
    _event(session, who, ctx, case_id, move.step, action, case.status, move.to,
           note or ("一次性告知: " + "、".join(left) if action == "return" else ""), _on_behalf(on_behalf))
    audit(session, who, ctx, f"handling.{action}", "hd_case", case_id, {"from": case.status, "to": move.to})
    session.expire_all()
    return case_view(session, case_id)


def _stale(case_id: str, current: int, expected: int):
    return problem(Conflict, "HDL024", "version",
                   f"案件 {case_id} 已被他人办理(当前版本 {current}, 提交的是 {expected}); 请刷新后重试")


def rate(session: Session, who: Principal, ctx: Context, *, case_id: str, score: int) -> dict:
    """好差评: once, after the case ended."""
    who.require("handling.accept")
    case = _case(session, case_id)
    if case.status not in FINAL:
        raise HandlingError(Problem("HDL018", "case_id", "案件办结后才能评价"))
    if case.rating is not None:
        raise problem(Conflict, "HDL019", "case_id", "案件已评价")
    if not 1 <= score <= 5:
        raise HandlingError(Problem("HDL025", "score", "评价为 1(非常不满意)到 5(非常满意)"))
    case.rating = score
    audit(session, who, ctx, "handling.rate", "hd_case", case_id, {"score": score})
    return case_view(session, case_id)


def case_view(session: Session, case_id: str) -> dict:
    case = _case(session, case_id)
    events = session.scalars(select(HandlingEvent).where(HandlingEvent.case_id == case_id).order_by(HandlingEvent.id))
    return {"case_id": case.case_id, "item": case.item_code, "psn_no": case.psn_no, "status": case.status,
            "status_name": STATES[case.status], "version": case.version, "form": case.form, "missing": case.missing,
            "channel": case.channel, "service_point": case.service_point, "accepted_on": case.accepted_on.isoformat(),
            "due_on": case.due_on.isoformat(), "closed_on": case.closed_on.isoformat() if case.closed_on else None,
            "rating": case.rating,
            "events": [{"at": e.at.isoformat(timespec="seconds"), "actor": e.actor, "role": e.role, "step": e.step,
                        "action": ACTIONS.get(e.action, "受理" if e.action == "accept" else e.action),
                        "from": e.from_status, "to": e.to_status, "note": e.note, "on_behalf": e.on_behalf}
                       for e in events]}


def overdue(session: Session, on: date) -> list[dict]:
    """Cases not ended whose promised date has passed (超期预警), oldest first."""
    rows = session.scalars(select(HandlingCase).where(HandlingCase.status.not_in(FINAL), HandlingCase.due_on < on)
                           .order_by(HandlingCase.due_on))
    return [{"case_id": c.case_id, "item": c.item_code, "status": STATES[c.status], "due_on": c.due_on.isoformat()}
            for c in rows]


def statistics(session: Session, calendar: WorkCalendar, by: str = "item") -> list[dict]:
    """办件量, 按时办结率, 平均办理工作日, 网办率, 满意度 — by item, channel, service_point or month."""
    groups: dict[str, list[HandlingCase]] = defaultdict(list)
    for c in session.scalars(select(HandlingCase)):
        key = {"item": c.item_code, "channel": c.channel, "service_point": c.service_point,
               "month": c.accepted_on.strftime("%Y-%m")}[by]
        groups[key].append(c)
    out = []
    for key, cases in sorted(groups.items()):
        ended = [c for c in cases if c.closed_on is not None]
        days = [calendar.working_days_between(c.accepted_on, c.closed_on) for c in ended]
        on_time = sum(1 for c in ended if c.closed_on <= c.due_on)
        ratings = [c.rating for c in cases if c.rating is not None]
        channels = Counter(c.channel for c in cases)
        out.append({by: key, "cases": len(cases), "ended": len(ended),
                    "on_time_rate": round(on_time / len(ended), 4) if ended else None,
                    "avg_working_days": round(sum(days) / len(days), 2) if days else None,
                    "online_rate": round(channels["online"] / len(cases), 4),
                    "satisfaction": round(sum(ratings) / len(ratings), 2) if ratings else None})
    return out
