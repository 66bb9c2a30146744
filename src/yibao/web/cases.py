"""智能监管工作台: hits by rule and by institution, the case list with filters, a case's detail (its fee
lines, the rule's text, its event trail) and the workflow with separation of duties.

The workflow is :mod:`yibao.supervision.cases` (one definition of the legal moves); this page adds who
may make each move. 初审 (``case.verify``: reviewer) assigns and takes a case into 核实; 复核
(``case.decide``: rechecker) confirms or excludes it, and never the same user who took it into 核实;
追回 (``case.recover``: auditor) records the amount recovered, never the user who confirmed it. Every
move is also written to the service's audit log (``web.case_*``) in the move's own transaction.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy import func, select

from yibao.errors import Problem, YibaoError
from yibao.money import fen_to_yuan, yuan_to_fen
from yibao.service.desk import Desk
from yibao.service.transactions import Context, audit
from yibao.store.models import FeeItem
from yibao.supervision import cases as sv
from yibao.supervision.library import RULES
from yibao.supervision.model import CaseError
from yibao.web import site
from yibao.web.forms import errors_of, text
from yibao.web.site import nav_entry, render, require

nav_entry("/cases", "智能监管", "case.read", order=30)
PAGE = 50
MOVES = {  # target status → (permission, button label)
    "verifying": ("case.verify", "开始核实"),
    "confirmed": ("case.decide", "认定违规"),
    "excluded": ("case.decide", "排除疑点"),
    "recovered": ("case.recover", "登记追回"),
}


def _who_moved_to(events, status: str) -> str | None:
    return next((e.actor for e in reversed(events) if e.action == "status" and e.to_status == status), None)


def duty_problem(events, to: str, actor: str) -> Problem | None:
    """Separation of duties: who verified does not decide; who confirmed does not record the recovery."""
    if to in ("confirmed", "excluded") and _who_moved_to(events, "verifying") == actor:
        return Problem("WEB050", "to", "您本人发起了核实, 认定或排除须由另一位复核人员办理(岗位分离)")
    if to == "recovered" and _who_moved_to(events, "confirmed") == actor:
        return Problem("WEB051", "to", "您本人认定了违规, 追回须由另一位稽核人员登记(岗位分离)")
    return None


def routes(router: APIRouter, desk: Desk) -> None:

    @router.get("/cases", response_class=HTMLResponse)
    def case_list(request: Request, status: str = "", rule_id: str = "", fixmedins_code: str = "", page: int = 1):
        who = site.current(request, desk)
        require(who, "case.read")
        status = status if status in sv.STATUS_ZH else ""
        rule_id, fixmedins_code = rule_id[:32], fixmedins_code[:64]
        page = max(1, min(page, 10_000))

        def q(s):
            cond = []
            if status:
                cond.append(sv.Case.status == status)
            if rule_id:
                cond.append(sv.Case.rule_id == rule_id)
            if fixmedins_code:
                cond.append(sv.Case.fixmedins_code == fixmedins_code)
            rows = list(s.scalars(select(sv.Case).where(*cond).order_by(sv.Case.id.desc())
                                  .offset((page - 1) * PAGE).limit(PAGE + 1)))
            total = s.scalar(select(func.count()).select_from(sv.Case).where(*cond))
            by_rule = s.execute(select(sv.Case.rule_id, sv.Case.rule_name, func.count(), func.sum(sv.Case.amount_fen))
                                .group_by(sv.Case.rule_id, sv.Case.rule_name).order_by(func.count().desc())).all()
            by_inst = s.execute(select(sv.Case.fixmedins_code, func.count(), func.sum(sv.Case.amount_fen))
                                .group_by(sv.Case.fixmedins_code).order_by(func.count().desc()).limit(20)).all()
            institutions, _ = sv.credit_scores(s)
            return rows, total, by_rule, by_inst, institutions
        rows, total, by_rule, by_inst, credit = desk.read(q)
        return render(request, "cases.html", rows=rows[:PAGE], more=len(rows) > PAGE, total=total, page=page,
                      by_rule=by_rule, by_inst=by_inst, credit=credit, status_zh=sv.STATUS_ZH,
                      filters={"status": status, "rule_id": rule_id, "fixmedins_code": fixmedins_code},
                      yuan_of=fen_to_yuan)

    def detail_page(request, who, case_id: int, status=200, **ctx):
        def q(s):
            case = sv.get(s, case_id)
            lines = list(s.scalars(select(FeeItem).where(FeeItem.mdtrt_id == case.mdtrt_id)
                                   .order_by(FeeItem.feedetl_sn))) if case.mdtrt_id else []
            return case, sv.events(s, case_id), lines
        try:
            case, events, lines = desk.read(q)
        except CaseError as exc:
            raise site.NotFoundPage(exc.problems[0].message) from None
        rule = RULES.get(case.rule_id)
        moves = [(to, label) for to, (action, label) in MOVES.items()
                 if to in sv.TRANSITIONS.get(case.status, set()) and site.allowed(who, action)]
        ctx.setdefault("errors", {})
        ctx.setdefault("form", {})
        return render(request, "case.html", status=status, case=case, events=events, lines=lines, rule=rule,
                      moves=moves, can_assign=site.allowed(who, "case.verify") and case.status in ("suspect", "verifying"),
                      status_zh=sv.STATUS_ZH, yuan_of=fen_to_yuan, **ctx)

    @router.get("/cases/{case_id}", response_class=HTMLResponse)
    def case_detail(request: Request, case_id: int):
        who = site.current(request, desk)
        require(who, "case.read")
        return detail_page(request, who, case_id)

    @router.post("/cases/{case_id}/move", response_class=HTMLResponse)
    async def case_move(request: Request, case_id: int):
        who = site.current(request, desk)
        form = await request.form()
        site.check_csrf(who, form)
        to, note, amount_text = text(form, "to", 16), text(form, "note", 500), text(form, "amount", 20)
        if to not in MOVES:
            return detail_page(request, who, case_id, 422, errors={"form": "未知的办理动作 [WEB052]"})
        require(who, MOVES[to][0])
        values = {"note": note, "amount": amount_text}
        amount = None
        if to == "recovered":
            try:
                amount = yuan_to_fen(amount_text)
            except (ValueError, ArithmeticError):
                return detail_page(request, who, case_id, 422, form=values,
                                   errors={"amount": "追回金额应为元, 最多两位小数, 如 120.50 [WEB053]"})
        now = datetime.now().replace(microsecond=0)

        def do(s):
            problem = duty_problem(sv.events(s, case_id), to, who.name)
            if problem:
                raise CaseError(problem)
            sv.move(s, case_id, to, who.name, note=note, amount_fen=amount)
            audit(s, who, Context("web", who.name, now), f"web.case_{to}", "case", str(case_id),
                  {"note": note, "amount_fen": amount})
        try:
            desk.write(None, "", do)
        except YibaoError as exc:
            errs = errors_of(exc.problems, {"note", "amount", "to"})
            return detail_page(request, who, case_id, 409 if exc.problems[0].code in ("CAS010", "WEB050", "WEB051")
                               else 422, form=values, errors=errs)
        return RedirectResponse(f"{site.PREFIX}/cases/{case_id}", status_code=303)

    @router.post("/cases/{case_id}/assign", response_class=HTMLResponse)
    async def case_assign(request: Request, case_id: int):
        who = site.current(request, desk)
        require(who, "case.verify")
        form = await request.form()
        site.check_csrf(who, form)
        assignee = text(form, "assignee", 64)
        if not assignee:
            return detail_page(request, who, case_id, 422, errors={"assignee": "请填写承办人用户名 [WEB054]"})
        now = datetime.now().replace(microsecond=0)

        def do(s):
            sv.assign(s, case_id, assignee, who.name)
            audit(s, who, Context("web", who.name, now), "web.case_assign", "case", str(case_id), {"assignee": assignee})
        try:
            desk.write(None, "", do)
        except YibaoError as exc:
            return detail_page(request, who, case_id, 422, errors=errors_of(exc.problems, {"assignee"}))
        return RedirectResponse(f"{site.PREFIX}/cases/{case_id}", status_code=303)
