"""经办 worklist on the web (issue #16's service items, in the same application): open cases with
their deadline flag, a case's page (办事指南 facts, form, materials, events), and the next step's
action — 受理 / 审核 / 复核, 退回补正 with the 一次性告知 list, 不予受理 / 不予通过 with a reason.

Every rule is :mod:`yibao.handling.store` (who may act at which step, different people per step,
working-day deadlines, the version the clerk read): the page only passes the clerk's input through
and shows the engine's coded refusals beside the fields.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from yibao.errors import Problem, YibaoError
from yibao.handling import store
from yibao.handling.catalogue import CHANNELS, STEPS, catalogue
from yibao.handling.store import AGENT_KINDS
from yibao.money import fen_to_yuan, mul_rate, yuan_to_fen
from yibao.handling.workflow import STATUS_ZH, STEP_OF_STATUS
from yibao.service.desk import Desk
from yibao.service.transactions import Context
from yibao.web import site
from yibao.web.forms import errors_of, text
from yibao.web.site import nav_entry, render, require

nav_entry("/handling", "经办", "handling.read", order=15)

# what a problem's path names → the form control it is shown beside
_APPLY_FIELDS = {"channel", "service_point", "materials", "person", "fee_items", "agent_kind", "agent_name",
                 "agent_relation", "agent_authorization_no"}


def apply_errors(problems: list[Problem], fields: set[str]) -> dict[str, str]:
    """The engine's coded problems keyed by the control they belong beside (``form`` when none)."""
    out: dict[str, str] = {}
    for p in problems:
        path = p.path
        if path.startswith("form."):
            key = path[5:]
        elif path.startswith("agent."):
            key = "agent_" + path[6:]
        elif path.startswith(("materials", "fee_items")):
            key = path.split("[")[0].split(".")[0]
        elif path in ("psn_no", "certno"):
            key = "person"
        else:
            key = path
        key = key if key in fields | _APPLY_FIELDS else "form"
        text_ = f"{p.message} [{p.code}]"
        out[key] = f"{out[key]}; {text_}" if key in out else text_
    return out


def receipt_lines(raw: str, errors: dict[str, str]) -> list[dict]:
    """零星报销 receipt lines typed one per row as ``编码,收费等级,单价,数量``; the line amount is
    单价 × 数量 rounded to the fen as the settlement engine rounds it, so the clerk never types it."""
    lines = []
    for n, row in enumerate([r for r in raw.splitlines() if r.strip()], start=1):
        parts = [x.strip() for x in row.replace("，", ",").split(",")]
        if len(parts) != 4:
            errors["fee_items"] = f"第 {n} 行须为 编码,收费等级,单价,数量 四项, 实际为 {row.strip()!r} [WEB090]"
            return []
        code, level, price, count = parts
        try:
            amount = mul_rate(yuan_to_fen(Decimal(price)), Decimal(count))
        except (InvalidOperation, ValueError, ArithmeticError):
            errors["fee_items"] = f"第 {n} 行的单价或数量不是数字: {row.strip()!r} [WEB090]"
            return []
        lines.append({"feedetl_sn": f"R{n:03d}", "med_list_codg": code, "chrgitm_lv": level or None, "pric": price,
                      "cnt": count, "det_item_fee_sumamt": str(fen_to_yuan(amount))})
    return lines


def routes(router: APIRouter, desk: Desk) -> None:

    @router.get("/handling", response_class=HTMLResponse)
    def handling_list(request: Request, status: str = ""):
        who = site.current(request, desk)
        require(who, "handling.read")
        status = status if status in STATUS_ZH else ""
        rows = desk.read(lambda s: store.worklist(s, who, date.today(), status=status or None))
        return render(request, "handling.html", rows=rows, statuses=STATUS_ZH, chosen=status)

    def apply_page(request, item_code: str, status=200, errors=None, form=None):
        items = catalogue().items
        item = next((i for i in items if i.code == item_code), None)
        return render(request, "handling_apply.html", status=status, items=items, item=item, channels=CHANNELS,
                      agent_kinds=AGENT_KINDS, errors=errors or {}, form=form or {})

    @router.get("/handling/apply", response_class=HTMLResponse)
    def handling_apply_form(request: Request, item: str = ""):
        who = site.current(request, desk)
        require(who, "handling.apply")
        return apply_page(request, item[:10])

    @router.post("/handling/apply", response_class=HTMLResponse)
    async def handling_apply(request: Request):
        who = site.current(request, desk)
        require(who, "handling.apply")
        raw = await request.form()
        site.check_csrf(who, raw)
        item_code = text(raw, "item", 10)
        item = next((i for i in catalogue().items if i.code == item_code), None)
        if item is None:
            return apply_page(request, "", 422, errors={"form": "请选择服务事项 [HDL001]"})
        values = {f.name: text(raw, "f_" + f.name, 200) for f in item.fields}
        shown = {"certno": text(raw, "certno", 18), "channel": text(raw, "channel", 16),
                 "service_point": text(raw, "service_point", 60), "materials": raw.getlist("materials"),
                 "receipts": text(raw, "receipts", 4000), **{"f_" + k: v for k, v in values.items()},
                 **{k: text(raw, k, 60) for k in ("agent_kind", "agent_name", "agent_relation", "agent_authorization_no")}}
        errors: dict[str, str] = {}
        lines = receipt_lines(shown["receipts"], errors) if item.effect == "manual_reimbursement" else []
        if not shown["certno"]:
            errors["person"] = "请填写申请人的证件号码 [HDL002]"
        agent = None
        if shown["agent_kind"]:
            agent = {"kind": shown["agent_kind"], "name": shown["agent_name"], "relation": shown["agent_relation"],
                     "authorization_no": shown["agent_authorization_no"]}
        if not errors:
            now = datetime.now().replace(microsecond=0)
            try:
                case, _ = desk.write(None, "", lambda s: store.apply_for(
                    s, who, Context("web", who.name, now), item_code=item.code, certno=shown["certno"],
                    channel=shown["channel"], service_point=shown["service_point"],
                    form={k: v for k, v in values.items() if v}, materials=[str(m)[:32] for m in shown["materials"]],
                    agent=agent, packs=desk.packs, fee_items=lines or None))
            except YibaoError as exc:
                errors = apply_errors(exc.problems, {f.name for f in item.fields})
            else:
                return RedirectResponse(f"{site.PREFIX}/handling/{case['case_no']}", status_code=303)
        shown["certno"] = ""  # an ID number is never sent back into a page
        return apply_page(request, item.code, 422, errors=errors, form=shown)

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
