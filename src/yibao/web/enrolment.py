"""参保 on the web (issue #15's registry in the same application): find a person by 证件号码 (POST, shown
masked) and read their registry state today, every dated fact with who recorded it, their contributions and
months in arrears; the 欠费 worklist (职工/灵活就业 with unpaid months fallen due); and 应保尽保 — a roster
from another department (CSV: 证件号码, 区划, 类别) checked against the registry, never stored, its
not-enrolled list masked.

Every rule is :mod:`yibao.enrolment` (the fold of dated facts, the arrears count, the coverage report).
"""

from __future__ import annotations

import tempfile
from datetime import date
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select

from yibao.enrolment import coverage, registry as enrol_registry
from yibao.enrolment.facts import STATUS_NAMES
from yibao.enrolment.ledger import arrears_months
from yibao.enrolment.models import Contribution
from yibao.errors import YibaoError
from yibao.money import fen_to_yuan
from yibao.service import registry
from yibao.service.desk import Desk
from yibao.store.models import Person
from yibao.web import site
from yibao.web.forms import text
from yibao.web.site import nav_entry, render, require

nav_entry("/enrolment", "参保", "enrol.read", order=16)
MAX_ROSTER = 5 * 1024 * 1024
SCHEMES = {"employee": "职工", "flexible": "灵活就业", "resident": "居民"}
STATUS = {"paid": "已缴", "due": "未缴", "deferred": "缓缴"}


def arrears_list(session, on: date, limit: int = 200) -> list[dict]:
    """Persons with unpaid 职工/灵活就业 months fallen due by ``on``, most months first (names masked)."""
    psns = session.scalars(select(Contribution.psn_no).where(
        Contribution.status != "paid", Contribution.scheme.in_(("employee", "flexible")),
        Contribution.due_date < on).distinct()).all()
    out = []
    for psn_no in psns:
        n = arrears_months(session, psn_no, on)
        if n:
            p = session.get(Person, psn_no)
            out.append({"psn_no": psn_no, "psn_name": site.mask_name(p.psn_name) if p else "", "months": n})
    return sorted(out, key=lambda r: (-r["months"], r["psn_no"]))[:limit]


def person_record(session, who, p: Person, on: date) -> dict:
    contributions = [{"period": c.period, "scheme": SCHEMES.get(c.scheme, c.scheme), "base": fen_to_yuan(c.base_fen),
                      "total": fen_to_yuan(c.total_fen), "account": fen_to_yuan(c.account_fen),
                      "status": STATUS.get(c.status, c.status), "due_date": str(c.due_date)}
                     for c in session.scalars(select(Contribution).where(Contribution.psn_no == p.psn_no)
                                              .order_by(Contribution.period.desc(), Contribution.id.desc()).limit(36))]
    return {"psn_no": p.psn_no, "certno": site.mask_certno(p.certno), "psn_name": site.mask_name(p.psn_name),
            "state": enrol_registry.as_of(session, p.psn_no, on), "history": enrol_registry.history(session, who, p.psn_no),
            "contributions": contributions, "arrears": arrears_months(session, p.psn_no, on)}


def routes(router: APIRouter, desk: Desk) -> None:

    def page(request, status=200, **ctx):
        today = date.today()
        ctx.setdefault("errors", {})
        ctx.setdefault("person", None)
        ctx.setdefault("coverage", None)
        return render(request, "enrolment.html", status=status, today=str(today), status_names=STATUS_NAMES,
                      arrears=desk.read(lambda s: arrears_list(s, today)), **ctx)

    @router.get("/enrolment", response_class=HTMLResponse)
    def enrolment_page(request: Request):
        who = site.current(request, desk)
        require(who, "enrol.read")
        return page(request)

    @router.post("/enrolment/person", response_class=HTMLResponse)
    async def enrolment_person(request: Request):
        who = site.current(request, desk)
        require(who, "enrol.read")
        form = await request.form()
        site.check_csrf(who, form)
        certno = text(form, "certno", 18)
        if not certno:
            return page(request, 422, errors={"certno": "请填写证件号码 [WEB100]"})
        try:
            person = desk.read(lambda s: person_record(s, who, registry.person_by_certno(s, certno), date.today()))
        except YibaoError as exc:
            return page(request, 404 if exc.problems[0].code == "REG011" else 422,
                        errors={"certno": "; ".join(f"{p.message} [{p.code}]" for p in exc.problems)})
        return page(request, person=person)

    @router.post("/enrolment/coverage", response_class=HTMLResponse)
    async def enrolment_coverage(request: Request):
        who = site.current(request, desk)
        require(who, "enrol.read")
        form = await request.form()
        site.check_csrf(who, form)
        file = form.get("roster")
        raw = await file.read(MAX_ROSTER + 1) if file is not None and hasattr(file, "read") and file.filename else b""
        if not raw or len(raw) > MAX_ROSTER:
            return page(request, 422, errors={"roster": f"请选择不超过 {MAX_ROSTER // 1024 // 1024} MB 的 CSV 人口名单 [WEB101]"})
        today = date.today()
        with tempfile.TemporaryDirectory() as tmp:  # read where nothing else looks, gone when the page is answered
            path = Path(tmp) / "roster.csv"
            path.write_bytes(raw)
            try:
                roster = coverage.read_roster(path)
                report = desk.read(lambda s: coverage.report(s, roster, [today]))
            except YibaoError as exc:
                return page(request, 422, errors={"roster": "; ".join(f"{p.message} [{p.code}]" for p in exc.problems)})
        return page(request, coverage=report)
