"""返贫监测 on the web: screen a claims set under a pack's monitoring thresholds
(:func:`yibao.monitoring.screen.monitor`, the same screening as ``yibao monitor``), list the alerts with
masked IDs, drill down to a person-year, record the follow-up (核实 → 帮扶 → 销号), export Excel.

A screening runs in the request (seconds at county size) and is kept in memory under a random id;
the follow-up is stored (``web_followups``, append-only: the latest row of a person-year is its
status), so it survives restarts and re-screenings.
"""

from __future__ import annotations

import secrets
import tempfile
from datetime import datetime
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from sqlalchemy import DateTime, Integer, String, Text, select
from sqlalchemy.orm import Mapped, mapped_column

from yibao.batch.run import open_claims
from yibao.errors import YibaoError
from yibao.monitoring.screen import monitor
from yibao.policy.compiled import CompiledPack
from yibao.policy.loader import resolve_pack
from yibao.service.desk import Desk
from yibao.service.transactions import Context, audit
from yibao.store.base import Base
from yibao.web import site
from yibao.web.forms import text
from yibao.web.packs import PACK_DIR, shipped
from yibao.web.simulate import claims_sets
from yibao.web.site import nav_entry, render, require

nav_entry("/monitoring", "返贫监测", "monitoring.read", order=70)
STATUS_ZH = {"verifying": "核实", "helping": "帮扶", "closed": "销号"}
NEXT = {None: {"verifying"}, "verifying": {"helping", "closed"}, "helping": {"closed"}, "closed": set()}
RUNS: dict[str, dict] = {}  # run id → {"result": dict, "out": Path, "pack": str, "claims": str}


class Followup(Base):
    __tablename__ = "web_followups"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    psn_no: Mapped[str] = mapped_column(String(40), index=True)
    yr: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(40))
    at: Mapped[datetime] = mapped_column(DateTime)


def statuses(session, keys: set[tuple[str, int]]) -> dict[tuple[str, int], str]:
    out: dict[tuple[str, int], str] = {}
    psns = {k[0] for k in keys}
    if not psns:
        return out
    for f in session.scalars(select(Followup).where(Followup.psn_no.in_(psns)).order_by(Followup.id)):
        out[(f.psn_no, f.yr)] = f.status
    return out


def routes(router: APIRouter, desk: Desk) -> None:

    def monitored_packs() -> list[str]:
        return [n for n, p in shipped().items() if p.monitoring is not None]

    def form_page(request, status=200, **ctx):
        ctx.setdefault("errors", {})
        ctx.setdefault("form", {})
        claims = list(claims_sets())
        return render(request, "monitoring.html", status=status, claims=claims,
                      pack_options=[("", "请选择")] + [(p, p) for p in monitored_packs()],
                      claim_options=[("", "请选择")] + [(c, c) for c in claims], **ctx)

    @router.get("/monitoring", response_class=HTMLResponse)
    def monitoring_form(request: Request):
        who = site.current(request, desk)
        require(who, "monitoring.read")
        return form_page(request)

    @router.post("/monitoring", response_class=HTMLResponse)
    async def monitoring_run(request: Request):

        who = site.current(request, desk)
        require(who, "monitoring.read")
        form = await request.form()
        site.check_csrf(who, form)
        values = {k: text(form, k, 100) for k in ("pack", "claims")}
        errors = {}
        if values["pack"] not in monitored_packs():
            errors["pack"] = "请选择有监测一节的政策包 [WEB080]"
        if values["claims"] not in claims_sets():
            errors["claims"] = "请选择理赔数据集 [WEB081]"
        if not errors:
            out = Path(tempfile.mkdtemp(prefix="yibao-mon-")) / "out"
            try:
                pack = CompiledPack(resolve_pack(str(PACK_DIR / f"{values['pack']}.yaml")))
                result = monitor(open_claims(claims_sets()[values["claims"]]), pack, out_dir=out)
            except YibaoError as exc:
                errors["form"] = "; ".join(f"{p.message} [{p.code}]" for p in exc.problems[:5])
            else:
                run_id = secrets.token_hex(8)
                RUNS[run_id] = {"result": result.to_dict(), "out": out, **values}
                now = datetime.now().replace(microsecond=0)
                desk.write(None, "", lambda s: audit(s, who, Context("web", who.name, now), "web.monitor", "run",
                                                     run_id, values | {"flagged": len(result.people)}))
                return RedirectResponse(f"{site.PREFIX}/monitoring/runs/{run_id}", status_code=303)
        return form_page(request, 422, errors=errors, form=values)

    def the_run(run_id: str) -> dict:
        run = RUNS.get(run_id[:32])
        if run is None:
            raise site.NotFoundPage("没有这次筛查(服务重启后须重新筛查)")
        return run

    @router.get("/monitoring/runs/{run_id}", response_class=HTMLResponse)
    def run_page(request: Request, run_id: str):
        who = site.current(request, desk)
        require(who, "monitoring.read")
        run = the_run(run_id)
        people = run["result"]["people"]
        state = desk.read(lambda s: statuses(s, {(p["psn_no"], p["yr"]) for p in people}))
        return render(request, "monitoring_run.html", run=run, run_id=run_id, r=run["result"], people=people,
                      state=state, status_zh=STATUS_ZH)

    @router.get("/monitoring/runs/{run_id}/monitoring.xlsx")
    def run_xlsx(request: Request, run_id: str):
        who = site.current(request, desk)
        require(who, "monitoring.read")
        path = the_run(run_id)["out"] / "monitoring.xlsx"
        return FileResponse(path, filename="monitoring.xlsx",
                            media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")

    def person_page(request, who, run_id: str, psn_no: str, yr: int, status=200, **ctx):
        run = the_run(run_id)
        person = next((p for p in run["result"]["people"] if p["psn_no"] == psn_no and p["yr"] == yr), None)
        if person is None:
            raise site.NotFoundPage("本次筛查没有这个人员年度")
        history = desk.read(lambda s: list(s.scalars(select(Followup).where(
            Followup.psn_no == psn_no, Followup.yr == yr).order_by(Followup.id))))
        current = history[-1].status if history else None
        ctx.setdefault("errors", {})
        ctx.setdefault("form", {})
        return render(request, "monitoring_person.html", status=status, run_id=run_id, p=person, history=history,
                      current=current, moves=[(s, STATUS_ZH[s]) for s in ("verifying", "helping", "closed")
                                              if s in NEXT[current]], status_zh=STATUS_ZH, **ctx)

    @router.get("/monitoring/runs/{run_id}/people/{psn_no}/{yr}", response_class=HTMLResponse)
    def person(request: Request, run_id: str, psn_no: str, yr: int):
        who = site.current(request, desk)
        require(who, "monitoring.read")
        return person_page(request, who, run_id, psn_no[:40], yr)

    @router.post("/monitoring/runs/{run_id}/people/{psn_no}/{yr}", response_class=HTMLResponse)
    async def follow(request: Request, run_id: str, psn_no: str, yr: int):
        who = site.current(request, desk)
        require(who, "monitoring.read")
        form = await request.form()
        site.check_csrf(who, form)
        psn_no = psn_no[:40]
        to, note = text(form, "to", 16), text(form, "note", 500)
        person_page(request, who, run_id, psn_no, yr)  # the alert must exist in this screening
        errors = {}
        if len(note) < 2:
            errors["note"] = "请填写办理情况(至少 2 个字) [WEB082]"
        now = datetime.now().replace(microsecond=0)

        def do(s):
            last = s.scalars(select(Followup).where(Followup.psn_no == psn_no, Followup.yr == yr)
                             .order_by(Followup.id.desc()).limit(1)).first()
            current = last.status if last else None
            if to not in NEXT[current]:
                return f"不能从「{STATUS_ZH.get(current, '待核实')}」转为「{STATUS_ZH.get(to, to)}」 [WEB083]"
            s.add(Followup(psn_no=psn_no, yr=yr, status=to, note=note, actor=who.name, at=now))
            audit(s, who, Context("web", who.name, now), f"web.followup_{to}", "person_year", f"{psn_no}/{yr}",
                  {"note": note})
            return None
        if not errors:
            refused = desk.write(None, "", do)[0]
            if refused:
                errors["to"] = refused
        if errors:
            return person_page(request, who, run_id, psn_no, yr, 422, errors=errors, form={"note": note})
        return RedirectResponse(f"{site.PREFIX}/monitoring/runs/{run_id}/people/{psn_no}/{yr}", status_code=303)
