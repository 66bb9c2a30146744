"""结算台: find a person by 证件号 (POST, shown masked), register a visit, enter or upload fee lines,
pre-settle with the audit's warnings beside the lines they concern, settle, print, reverse with a reason.

Every step calls :mod:`yibao.service.transactions` inside one :class:`~yibao.service.desk.Desk`
transaction, as the API does; a step that fails re-renders its form with the message beside the
field and writes nothing. The reversal's reason goes into the audit log in the reversal's own
transaction (action ``web.reverse_reason``).
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import select

from yibao.codes import INSUTYPE_NAMES as INSUTYPES, MED_TYPE_NAMES as MED_TYPES
from yibao.errors import YibaoError
from yibao.service import registry
from yibao.service import transactions as tx
from yibao.service.desk import Desk
from yibao.service.statement_page import render_html
from yibao.service.statement_pdf import render_pdf
from yibao.store.models import Institution, Person
from yibao.web import fees, site
from yibao.web.forms import errors_of, problems_of, text, when
from yibao.web.site import nav_entry, render, require

ID_OK = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")

nav_entry("/desk", "结算台", "settle", order=10)


def _ctx(who) -> tx.Context:
    return tx.Context(request_id="web", opter=who.name, at=datetime.now().replace(microsecond=0))


def _valid_id(value: str) -> bool:
    return 0 < len(value) <= 40 and set(value) <= ID_OK


def routes(router: APIRouter, desk: Desk) -> None:

    def institutions(who) -> list[Institution]:
        def q(s):
            rows = list(s.scalars(select(Institution).order_by(Institution.fixmedins_code).limit(500)))
            return [r for r in rows if who.role != "institution" or r.fixmedins_code == who.fixmedins_code]
        return desk.read(q)

    def person_view(s, who, p: Person) -> dict:
        info = tx.person_info(s, who, psn_no=p.psn_no, on=datetime.now().date())
        base = info["baseinfo"]  # the desk shows identity masked whatever the role (一窗受理, screens face the queue)
        return {"psn_no": p.psn_no, "certno": site.mask_certno(p.certno), "psn_name": site.mask_name(p.psn_name),
                "gend": {"1": "男", "2": "女"}.get(base["gend"] or "", ""), "age": base["age"],
                "insuinfo": info["insuinfo"], "idetinfo": info["idetinfo"],
                "insutype_options": [(e["insutype"], f"{INSUTYPES.get(e['insutype'], '')}({e['insutype']})")
                                     for e in info["insuinfo"]]}

    def desk_page(request, who, status=200, **ctx):
        ctx.setdefault("errors", {})
        ctx.setdefault("person", None)
        ctx.setdefault("form", {})
        ctx["med_types"] = list(MED_TYPES.items())
        inst_options = [(i.fixmedins_code, f"{i.fixmedins_name}({i.fixmedins_code})") for i in institutions(who)]
        return render(request, "desk.html", status=status, inst_options=inst_options,
                      insutypes=INSUTYPES, now=datetime.now().strftime("%Y-%m-%dT%H:%M"), **ctx)

    @router.get("/desk", response_class=HTMLResponse)
    def desk_home(request: Request):
        who = site.current(request, desk)
        require(who, "settle")
        return desk_page(request, who)

    @router.post("/desk/person", response_class=HTMLResponse)
    async def find_person(request: Request):
        who = site.current(request, desk)
        require(who, "person.read")
        form = await request.form()
        site.check_csrf(who, form)
        certno = text(form, "certno", 40).upper()
        if len(certno) != 18:
            return desk_page(request, who, 422, errors={"certno": "证件号码应为 18 位身份证号 [WEB030]"})
        try:
            def q(s):
                registry.check_certno(certno)
                return person_view(s, who, registry.person_by_certno(s, certno))
            person = desk.read(q)
        except YibaoError as exc:
            return desk_page(request, who, 422 if exc.problems[0].code != "REG011" else 404,
                             errors=errors_of(exc.problems, {"certno"}) | {"certno": exc.problems[0].message
                                                                         + f" [{exc.problems[0].code}]"})
        return desk_page(request, who, person=person)

    REGISTER_FIELDS = {"fixmedins_code", "insutype", "med_type", "begntime", "dise_codg", "psn_no"}

    @router.post("/desk/visits", response_class=HTMLResponse)
    async def register(request: Request):
        who = site.current(request, desk)
        require(who, "visit.write")
        form = await request.form()
        site.check_csrf(who, form)
        values = {k: text(form, k, 40) for k in REGISTER_FIELDS}
        errors: dict[str, str] = {}
        begntime = when(text(form, "begntime"), "begntime", errors)
        if values["insutype"] not in INSUTYPES:
            errors["insutype"] = "请选择险种 [WEB031]"
        if not values["med_type"].isdigit() or not 2 <= len(values["med_type"]) <= 6:
            errors["med_type"] = "请选择医疗类别 [WEB031]"
        if not _valid_id(values["fixmedins_code"]):
            errors["fixmedins_code"] = "请选择定点机构 [WEB031]"
        if not _valid_id(values["psn_no"]):
            errors["form"] = "请先查找参保人 [WEB032]"
        person = None
        if _valid_id(values["psn_no"]):
            try:
                person = desk.read(lambda s: person_view(s, who, registry.person(s, values["psn_no"])))
            except YibaoError as exc:
                errors["form"] = exc.problems[0].message
        if not errors:
            try:
                out = desk.write(None, "", lambda s: tx.register_visit(
                    s, who, _ctx(who), fixmedins_code=values["fixmedins_code"], psn_no=values["psn_no"],
                    insutype=values["insutype"], med_type=values["med_type"], begntime=begntime,
                    dise_codg=values["dise_codg"]))[0]
                return RedirectResponse(f"{site.PREFIX}/desk/visits/{out['mdtrt_id']}", status_code=303)
            except YibaoError as exc:
                errors = errors_of(exc.problems, REGISTER_FIELDS - {"psn_no"})
        return desk_page(request, who, 422, person=person, form=values, errors=errors)

    def visit_page(request, who, mdtrt_id: str, status=200, **ctx):
        if not _valid_id(mdtrt_id):
            raise site.NotFoundPage("没有这个就诊")
        try:
            visit = desk.read(lambda s: tx.visit_record(s, who, mdtrt_id))
        except YibaoError as exc:
            if exc.problems[0].code.startswith("AUT"):
                raise site.Refused(exc.problems[0].message) from None
            raise site.NotFoundPage(exc.problems[0].message) from None
        person = desk.read(lambda s: person_view(s, who, registry.person(s, visit["psn_no"])))
        ctx.setdefault("errors", {})
        ctx.setdefault("line", {})
        ctx.setdefault("result", None)
        result = ctx["result"]
        hits: dict[str, list[dict]] = {}
        general: list[dict] = []
        if result:
            for kind in ("blocking", "warnings"):
                for h in result.get(kind, []):
                    h = dict(h, kind=kind)
                    for sn in h.get("feedetl_sns") or []:
                        hits.setdefault(sn, []).append(h)
                    if not h.get("feedetl_sns"):
                        general.append(h)
        setl_default = ctx.pop("setl_time", None) or _settle_default(visit)
        return render(request, "visit.html", status=status, visit=visit, person=person, hits=hits, general=general,
                      med_types=MED_TYPES, insutypes=INSUTYPES, setl_time=setl_default, **ctx)

    def _settle_default(visit: dict) -> str:
        """Now, unless no pack is in force now for the visit (demo data of a past year): then the visit's time."""
        return visit["begntime"].replace(" ", "T")[:16] if visit["begntime"][:4] != str(datetime.now().year) \
            else datetime.now().strftime("%Y-%m-%dT%H:%M")

    @router.get("/desk/visits/{mdtrt_id}", response_class=HTMLResponse)
    def visit(request: Request, mdtrt_id: str):
        who = site.current(request, desk)
        require(who, "settle")
        return visit_page(request, who, mdtrt_id)

    def upload(who, mdtrt_id: str, lines) -> None:
        """Lines are classified under the pack in force at the same time the settle form defaults to."""
        visit = desk.read(lambda s: tx.visit_record(s, who, mdtrt_id))
        c = tx.Context(request_id="web", opter=who.name, at=datetime.fromisoformat(_settle_default(visit)))
        desk.write(None, "", lambda s: tx.upload_items(s, who, c, desk.packs, mdtrt_id=mdtrt_id, items=lines))

    @router.post("/desk/visits/{mdtrt_id}/lines", response_class=HTMLResponse)
    async def add_line(request: Request, mdtrt_id: str):
        who = site.current(request, desk)
        require(who, "visit.write")
        form = await request.form()
        site.check_csrf(who, form)
        values = {c: text(form, c, 60) for c in fees.COLUMNS}
        try:
            upload(who, mdtrt_id, [fees.line_from_form(form)])
        except (ValidationError, YibaoError) as exc:
            return visit_page(request, who, mdtrt_id, 422, line=values,
                              errors=errors_of(problems_of(exc), set(fees.COLUMNS)))
        return RedirectResponse(f"{site.PREFIX}/desk/visits/{mdtrt_id}", status_code=303)

    @router.post("/desk/visits/{mdtrt_id}/upload", response_class=HTMLResponse)
    async def upload_file(request: Request, mdtrt_id: str):
        who = site.current(request, desk)
        require(who, "visit.write")
        form = await request.form()
        site.check_csrf(who, form)
        file = form.get("file")
        if file is None or not hasattr(file, "read") or not file.filename:
            return visit_page(request, who, mdtrt_id, 422, errors={"file": "请选择 CSV 或 Excel 文件 [WEB020]"})
        lines, problems = fees.parse(file.filename, await file.read(fees.MAX_BYTES + 1))
        if not problems:
            try:
                upload(who, mdtrt_id, lines)
            except YibaoError as exc:
                problems = exc.problems
        if problems:
            message = "; ".join(f"{p.path.removeprefix('file:')}: {p.message} [{p.code}]" for p in problems[:20])
            return visit_page(request, who, mdtrt_id, 422, errors={"file": "文件未导入(一行也没有写入)。" + message})
        return RedirectResponse(f"{site.PREFIX}/desk/visits/{mdtrt_id}", status_code=303)

    SETTLE_FIELDS = {"setl_time", "medfee_sumamt", "mdtrt_id"}

    @router.post("/desk/visits/{mdtrt_id}/presettle", response_class=HTMLResponse)
    @router.post("/desk/visits/{mdtrt_id}/settle", response_class=HTMLResponse)
    async def settle(request: Request, mdtrt_id: str):
        write = request.url.path.endswith("/settle")
        who = site.current(request, desk)
        require(who, "settle")
        form = await request.form()
        site.check_csrf(who, form)
        errors: dict[str, str] = {}
        raw_time = text(form, "setl_time")
        at = when(raw_time, "setl_time", errors)
        acct_used = form.get("acct_used") == "1"
        if errors:
            return visit_page(request, who, mdtrt_id, 422, errors=errors, setl_time=raw_time)
        c = tx.Context(request_id="web", opter=who.name, at=at)
        try:
            if write:
                out = desk.write(None, "", lambda s: tx.settle(s, who, c, desk.packs, mdtrt_id=mdtrt_id,
                                                               acct_used=acct_used))[0]
                return RedirectResponse(f"{site.PREFIX}/desk/settlements/{out['setlinfo']['setl_id']}", status_code=303)
            out = desk.read(lambda s: tx.settle(s, who, c, desk.packs, mdtrt_id=mdtrt_id, acct_used=acct_used,
                                                write=False))
        except YibaoError as exc:
            fields = SETTLE_FIELDS | {"insuplc_admdvs"}
            errs = errors_of(exc.problems, fields)
            if "insuplc_admdvs" in errs:  # no pack in force at that time: the time is what to change
                errs["setl_time"] = errs.pop("insuplc_admdvs")
            if "mdtrt_id" in errs:
                errs["form"] = errs.pop("mdtrt_id")
            return visit_page(request, who, mdtrt_id, 422, errors=errs, setl_time=raw_time)
        return visit_page(request, who, mdtrt_id, result=out, setl_time=raw_time, acct_used=acct_used)

    def settlement_parts(who, setl_id: str):
        def parts(s):
            row, record = tx.settlement_record(s, who, setl_id)
            p = s.get(Person, row.psn_no)
            inst = registry.institution(s, row.fixmedins_code)
            return (record, {"certno": site.mask_certno(p.certno) if p else None,
                             "psn_name": site.mask_name(p.psn_name) if p else None},
                    {"fixmedins_code": inst.fixmedins_code, "fixmedins_name": inst.fixmedins_name})
        if not _valid_id(setl_id):
            raise site.NotFoundPage("没有这笔结算")
        try:
            return desk.read(parts)
        except YibaoError as exc:
            if exc.problems[0].code.startswith("AUT"):
                raise site.Refused(exc.problems[0].message) from None
            raise site.NotFoundPage(exc.problems[0].message) from None

    def settlement_page(request, who, setl_id: str, status=200, **ctx):
        record, person, inst = settlement_parts(who, setl_id)
        ctx.setdefault("errors", {})
        return render(request, "settlement.html", status=status, record=record, info=record["setlinfo"],
                      person=person, inst=inst, insutypes=INSUTYPES, med_types=MED_TYPES,
                      can_reverse=site.allowed(who, "reverse"), **ctx)

    @router.get("/desk/settlements/{setl_id}", response_class=HTMLResponse)
    def settlement(request: Request, setl_id: str):
        who = site.current(request, desk)
        require(who, "settlement.read")
        return settlement_page(request, who, setl_id)

    @router.get("/desk/settlements/{setl_id}/statement.html", response_class=HTMLResponse)
    def statement_html(request: Request, setl_id: str):
        who = site.current(request, desk)
        require(who, "settlement.read")
        return HTMLResponse(render_html(*settlement_parts(who, setl_id)))

    @router.get("/desk/settlements/{setl_id}/statement.pdf")
    def statement_pdf(request: Request, setl_id: str):
        who = site.current(request, desk)
        require(who, "settlement.read")
        return Response(render_pdf(*settlement_parts(who, setl_id)), media_type="application/pdf",
                        headers={"Content-Disposition": f'inline; filename="statement-{setl_id}.pdf"'})

    @router.post("/desk/settlements/{setl_id}/reverse", response_class=HTMLResponse)
    async def reverse(request: Request, setl_id: str):
        who = site.current(request, desk)
        require(who, "reverse")
        form = await request.form()
        site.check_csrf(who, form)
        reason = text(form, "reason", 200)
        if len(reason) < 2:
            return settlement_page(request, who, setl_id, 422, errors={"reason": "请填写撤销原因(至少 2 个字) [WEB040]"},
                                   reason=reason)
        c = _ctx(who)

        def undo(s):
            out = tx.reverse(s, who, c, setl_id=setl_id)
            tx.audit(s, who, c, "web.reverse_reason", "settlement", setl_id, {"reason": reason})
            return out
        try:
            desk.write(None, "", undo)
        except YibaoError as exc:
            return settlement_page(request, who, setl_id, 409 if exc.problems[0].code.startswith("REV") else 422,
                                   errors={"reason": f"{exc.problems[0].message} [{exc.problems[0].code}]"},
                                   reason=reason)
        return RedirectResponse(f"{site.PREFIX}/desk/settlements/{setl_id}?reversed=1", status_code=303)
