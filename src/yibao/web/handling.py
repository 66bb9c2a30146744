"""经办 worklist on the web (issue #16's service items, in the same application): open cases with
their deadline flag, a case's page (办事指南 facts, form, materials, events), and the next step's
action — 受理 / 审核 / 复核, 退回补正 with the 一次性告知 list, 不予受理 / 不予通过 with a reason.

Every rule is :mod:`yibao.handling.store` (who may act at which step, different people per step,
working-day deadlines, the version the clerk read): the page only passes the clerk's input through
and shows the engine's coded refusals beside the fields.
"""

from __future__ import annotations

from datetime import date, datetime

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from yibao.errors import YibaoError
from yibao.handling import store
from yibao.handling.catalogue import STEPS, catalogue
from yibao.handling.workflow import STATUS_ZH, STEP_OF_STATUS
from yibao.service.desk import Desk
from yibao.service.transactions import Context
from yibao.web import site
from yibao.web.forms import errors_of, text
from yibao.web.site import nav_entry, render, require

nav_entry("/handling", "经办", "handling.read", order=15)


def routes(router: APIRouter, desk: Desk) -> None:

    @router.get("/handling", response_class=HTMLResponse)
    def handling_list(request: Request, status: str = ""):
        who = site.current(request, desk)
        require(who, "handling.read")
        status = status if status in STATUS_ZH else ""
        rows = desk.read(lambda s: store.worklist(s, who, date.today(), status=status or None))
        return render(request, "handling.html", rows=rows, statuses=STATUS_ZH, chosen=status)

    def case_page(request, who, case_no: str, status=200, **ctx):
        try:
            case = desk.read(lambda s: store.case_record(s, who, case_no[:40], date.today()))
        except YibaoError as exc:
            raise site.NotFoundPage(exc.problems[0].message) from None
        step = STEP_OF_STATUS.get(case["status"])
        item = catalogue().item(case["item_code"])
        ctx["labels"] = {f.name: f.label for f in item.fields}
        ctx["material_names"] = {m.code: m.name for m in item.materials}
        ctx.setdefault("errors", {})
        ctx.setdefault("form", {})
        return render(request, "handling_case.html", status=status, c=case, step=step,
                      step_name=STEPS.get(step or "", ""), **ctx)

    @router.get("/handling/{case_no}", response_class=HTMLResponse)
    def handling_case(request: Request, case_no: str):
        who = site.current(request, desk)
        require(who, "handling.read")
        return case_page(request, who, case_no)

    @router.post("/handling/{case_no}", response_class=HTMLResponse)
    async def handling_act(request: Request, case_no: str):
        who = site.current(request, desk)
        require(who, "handling.read")
        form = await request.form()
        site.check_csrf(who, form)
        kind, reason = text(form, "action", 16), text(form, "reason", 500)
        notice = [line.strip() for line in text(form, "notice", 1000).splitlines() if line.strip()]
        try:
            version = int(text(form, "version", 10))
        except ValueError:
            version = 0
        now = datetime.now().replace(microsecond=0)
        try:
            desk.write(None, "", lambda s: store.act(s, who, Context("web", who.name, now), case_no=case_no[:40],
                                                     kind=kind, version=version, notice=notice or None,
                                                     reason=reason or None, packs=desk.packs))
        except YibaoError as exc:
            errs = errors_of(exc.problems, {"reason", "notice"})
            if "form" in errs:
                errs["action"] = errs.pop("form")
            return case_page(request, who, case_no, 409 if exc.problems[0].code == "HDL040" else 422, errors=errs,
                             form={"reason": reason, "notice": "\n".join(notice)})
        return RedirectResponse(f"{site.PREFIX}/handling/{case_no[:40]}", status_code=303)
