"""两定机构 on the web (issue #18's pages): the agreements with their state on a day and the designation
applications, the annual assessment results, and 费用拨付 — the monthly settlement applications per fund with
their 30-working-day deadline flag, worked step by step (初审 → 审批 → 支付指令 → 拨付), and the fund ledger.

Every rule is :mod:`yibao.institutions` (who may take which step, the approver never the reviewer, the
deadline from the holiday calendar): the page passes the clerk's choice through and shows the engine's
coded refusal beside the action. An institution's user sees only its own.
"""

from __future__ import annotations

from datetime import date, datetime

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from yibao.errors import YibaoError
from yibao.institutions import applications, store
from yibao.institutions.assessment import CONSEQUENCES
from yibao.fund.outflows import KINDS as LEDGER_KINDS
from yibao.institutions.payments import ACTION_ZH, STATUS_ZH, STEPS
from yibao.service.auth import PERMISSIONS
from yibao.service.desk import Desk
from yibao.service.errors import status_of
from yibao.service.transactions import Context
from yibao.web import site
from yibao.web.forms import text
from yibao.web.site import nav_entry, render, require

nav_entry("/institutions", "两定机构", "institution.read", order=17)
nav_entry("/institutions/payments", "费用拨付", "institution.read", order=18)

# the next steps open from each status, in the order the buttons show
NEXT = {status: [a for a, (before, _after, _perm) in STEPS.items() if before == status] for status in STATUS_ZH}


def _on(value: str) -> date:
    try:
        return date.fromisoformat(value) if value else date.today()
    except ValueError:
        return date.today()


def routes(router: APIRouter, desk: Desk) -> None:

    @router.get("/institutions", response_class=HTMLResponse)
    def institutions_page(request: Request, on: str = ""):
        who = site.current(request, desk)
        require(who, "institution.read")
        day = _on(on)

        def read(s):
            return {"agreements": store.agreements(s, who, day), "designations": store.designations(s, who, limit=100),
                    "assessments": store.assessments(s, who)}
        data = desk.read(read)
        return render(request, "institutions.html", on=str(day), consequences=CONSEQUENCES, **data)

    def payments_page(request, who, status_code=200, errors=None, month="", state="", warnings=""):
        today = date.today()
        month = month if len(month) == 7 and month[4] == "-" and month.replace("-", "").isdigit() else ""
        state = state if state in STATUS_ZH else ""

        def read(s):
            return {"work": applications.worklist(s, who, today, month=month or None, status=state or None,
                                                  warnings_only=warnings == "1", limit=200),
                    "ledger": applications.payments(s, who, limit=50)}
        data = desk.read(read)
        # the steps this user's role may take (the engine still decides: e.g. the approver is never the reviewer)
        mine = {st: [a for a in steps if who.role in PERMISSIONS[STEPS[a][2]]] for st, steps in NEXT.items()}
        return render(request, "ins_payments.html", status=status_code, statuses=STATUS_ZH, next_steps=mine,
                      action_names=ACTION_ZH, ledger_kinds=LEDGER_KINDS, month=month,
                      chosen=state, warnings=warnings == "1", errors=errors or {}, **data)

    @router.get("/institutions/payments", response_class=HTMLResponse)
    def payments_list(request: Request, month: str = "", status: str = "", warnings: str = ""):
        who = site.current(request, desk)
        require(who, "institution.read")
        return payments_page(request, who, month=month, state=status, warnings=warnings)

    @router.post("/institutions/payments/{app_no}", response_class=HTMLResponse)
    async def payment_act(request: Request, app_no: str):
        who = site.current(request, desk)
        require(who, "institution.read")
        form = await request.form()
        site.check_csrf(who, form)
        action, note = text(form, "action", 16), text(form, "note", 500)
        now = datetime.now().replace(microsecond=0)
        try:
            desk.write(None, "", lambda s: applications.act(s, who, Context("web", who.name, now), app_no=app_no[:40],
                                                            action=action, note=note))
        except YibaoError as exc:
            message = "; ".join(f"{p.message} [{p.code}]" for p in exc.problems)
            return payments_page(request, who, status_of(exc), errors={app_no[:40]: message})
        return RedirectResponse(f"{site.PREFIX}/institutions/payments", status_code=303)
