"""经办 worklists on the web (issue #16's service items, in the same application): the worklist by
status with the overdue warning, 受理 of a new application (the item's own form fields, materials,
channel), and a case's page with 审核 / 复核 / 退回补正 / 不予办理 / 补正后重新提交.

Every rule is :mod:`yibao.handling` (the form check, 一次性告知, different people per step, working-day
deadlines, optimistic versions): the page only renders and passes the clerk's input through, and
shows the engine's coded refusals beside the fields.
"""

from __future__ import annotations

from datetime import date, datetime

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy import select

from yibao.errors import YibaoError
from yibao.handling import store
from yibao.handling.calendar import WorkCalendar
from yibao.handling.store import HandlingCase
from yibao.handling.workflow import ACTIONS, CHANNELS, FINAL, STATES, shipped_catalogue
from yibao.service.desk import Desk
from yibao.service.transactions import Context
from yibao.web import site
from yibao.web.forms import errors_of, text
from yibao.web.site import nav_entry, render, require

nav_entry("/handling", "经办", "handling.read", order=15)


def routes(router: APIRouter, desk: Desk) -> None:
    catalogue, calendar = shipped_catalogue(), WorkCalendar.shipped()
    items = {i.code: i for i in catalogue.items}

    def worklist(request, status=200, **ctx):
        who = request.state.web_user
        chosen = ctx.pop("item_code", "") or ""
        state = ctx.pop("state", "")

        def q(s):
            cond = [HandlingCase.status == state] if state in STATES else [HandlingCase.status.not_in(FINAL)]
            return list(s.scalars(select(HandlingCase).where(*cond).order_by(HandlingCase.due_on).limit(200)))
        rows = desk.read(q)
        ctx.setdefault("errors", {})
        ctx.setdefault("form", {})
        return render(request, "handling.html", status=status, rows=rows, items=items, item=items.get(chosen),
                      states=STATES, channels=CHANNELS, today=date.today(), state=state,
                      can_accept=site.allowed(who, "handling.accept"), **ctx)

    @router.get("/handling", response_class=HTMLResponse)
    def handling_home(request: Request, item: str = "", state: str = ""):
        who = site.current(request, desk)
        require(who, "handling.read")
        return worklist(request, item_code=item if item in items else "", state=state)

    @router.post("/handling", response_class=HTMLResponse)
    async def handling_accept(request: Request):
        who = site.current(request, desk)
        require(who, "handling.accept")
        form = await request.form()
        site.check_csrf(who, form)
        code = text(form, "item", 40)
        if code not in items:
            return worklist(request, 422, errors={"item": "请选择事项 [WEB090]"})
        item = items[code]
        values = {f.name: text(form, f"f_{f.name}", 100) for f in item.fields}
        values = {k: v for k, v in values.items() if v != ""}
        materials = [m for m in form.getlist("materials") if m in item.guide.materials]
        fields = {"psn_no": text(form, "psn_no", 40), "channel": text(form, "channel", 16),
                  "service_point": text(form, "service_point", 80)}
        now = datetime.now().replace(microsecond=0)
        try:
            case = desk.write(None, "", lambda s: store.accept(
                s, who, Context("web", who.name, now), catalogue, calendar, item_code=code, psn_no=fields["psn_no"],
                form=values, materials=materials, channel=fields["channel"], service_point=fields["service_point"]
                or "网上经办"))[0]
        except YibaoError as exc:
            names = {"psn_no", "channel", "service_point"} | {f"f_{f.name}" for f in item.fields}
            errs = errors_of(exc.problems, names | {f.name for f in item.fields})
            errs = {(f"f_{k}" if k in {f.name for f in item.fields} else k): v for k, v in errs.items()}
            return worklist(request, 422, item_code=code, errors=errs,
                            form=fields | {f"f_{k}": v for k, v in values.items()} | {"materials": materials})
        return RedirectResponse(f"{site.PREFIX}/handling/{case['case_id']}", status_code=303)

    def case_page(request, case_id: str, status=200, **ctx):
        try:
            case = desk.read(lambda s: store.case_view(s, case_id[:40]))
        except YibaoError as exc:
            raise site.NotFoundPage(exc.problems[0].message) from None
        ctx.setdefault("errors", {})
        ctx.setdefault("form", {})
        item = items.get(case["item"])
        return render(request, "handling_case.html", status=status, c=case, item=item, actions=ACTIONS,
                      final=case["status"] in FINAL, states=STATES, channels=CHANNELS,
                      labels={f.name: f.label for f in item.fields} if item else {}, **ctx)

    @router.get("/handling/{case_id}", response_class=HTMLResponse)
    def handling_case(request: Request, case_id: str):
        who = site.current(request, desk)
        require(who, "handling.read")
        return case_page(request, case_id)

    @router.post("/handling/{case_id}", response_class=HTMLResponse)
    async def handling_act(request: Request, case_id: str):
        who = site.current(request, desk)
        require(who, "handling.read")
        form = await request.form()
        site.check_csrf(who, form)
        action, note = text(form, "action", 16), text(form, "note", 400)
        missing = [m for m in form.getlist("missing") if m]
        materials = [m for m in form.getlist("materials") if m]
        try:
            version = int(text(form, "version", 10))
        except ValueError:
            version = 0
        now = datetime.now().replace(microsecond=0)
        try:
            desk.write(None, "", lambda s: store.act(s, who, Context("web", who.name, now), catalogue,
                                                     case_id=case_id[:40], action=action, expected_version=version,
                                                     note=note, missing=missing, materials=materials))
        except YibaoError as exc:
            errs = errors_of(exc.problems, {"note", "missing", "materials", "action"})
            if exc.problems[0].code.startswith("AUT"):
                errs = {"action": f"{exc.problems[0].message} [{exc.problems[0].code}]"}
            return case_page(request, case_id, 409 if exc.problems[0].code == "HDL024" else 422, errors=errs,
                             form={"note": note})
        return RedirectResponse(f"{site.PREFIX}/handling/{case_id[:40]}", status_code=303)
