"""政策模拟 on the web: pick a baseline pack, a reform pack and a claims set, run
:func:`yibao.simulation.comparison.simulate` as a background job with a progress bar, then the tables, the
charts and the Excel download it wrote.

Claims sets are the directories under ``YIBAO_CLAIMS_DIR`` (each as ``yibao synth`` or a real export
writes it); a user picks one by name, never a path. A job runs in a thread of the service process
(one at a time per service: the simulation is DuckDB-heavy and the service shares the machine), its
outputs in a private temporary directory that lives as long as the process. Jobs are kept in memory:
a restart forgets them (the outputs are reproducible from the same inputs).
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
import threading
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse

from yibao.batch.run import open_claims
from yibao.errors import YibaoError
from yibao.policy.compiled import CompiledPack
from yibao.policy.loader import resolve_pack
from yibao.service.desk import Desk
from yibao.service.transactions import Context, audit
from yibao.simulation.comparison import simulate
from yibao.web import site
from yibao.web.forms import text
from yibao.web.packs import PACK_DIR, shipped
from yibao.web.site import nav_entry, render, require

nav_entry("/simulate", "政策模拟", "simulation.run", order=60)
ENV = "YIBAO_CLAIMS_DIR"
FILES = {"xlsx": ("simulation.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
         "fund_by_tier": ("chart_fund_by_tier.png", "image/png"),
         "change_by_group": ("chart_change_by_group.png", "image/png"),
         "burden_deciles": ("chart_burden_deciles.png", "image/png"),
         "catastrophic": ("chart_catastrophic.png", "image/png")}


@dataclass
class Job:
    id: str
    owner: str
    baseline: str
    reform: str
    claims: str
    started: datetime
    out: Path
    step: int = 0
    total: int = 4
    note: str = "排队"
    status: str = "running"  # running | done | failed
    error: str = ""
    result: dict = field(default_factory=dict)

    @property
    def percent(self) -> int:
        return 100 if self.status == "done" else int(100 * self.step / max(self.total, 1))


JOBS: dict[str, Job] = {}
_RUNNING = threading.Lock()


def claims_sets() -> dict[str, Path]:
    root = os.environ.get(ENV, "").strip()
    if not root or not Path(root).is_dir():
        return {}
    return {p.name: p for p in sorted(Path(root).iterdir()) if p.is_dir() and (p / "visits.parquet").exists()}


def _run(job: Job) -> None:

    def note(description: str, done: int, total: int) -> None:
        job.note, job.step, job.total = description, done, total

    with _RUNNING:
        try:
            base = CompiledPack(resolve_pack(str(PACK_DIR / f"{job.baseline}.yaml")))
            ref = CompiledPack(resolve_pack(str(PACK_DIR / f"{job.reform}.yaml")))
            run = open_claims(claims_sets()[job.claims])
            simulate(run, base, ref, job.out, progress=note)
            job.result = json.loads((job.out / "simulation.json").read_text(encoding="utf-8"))
            job.status = "done"
        except YibaoError as exc:
            job.status, job.error = "failed", "; ".join(f"{p.message} [{p.code}]" for p in exc.problems[:5])
        except Exception as exc:  # noqa: BLE001 - the job reports, the service keeps running
            job.status, job.error = "failed", f"模拟失败({exc.__class__.__name__}), 请联系管理员查看服务日志"


def routes(router: APIRouter, desk: Desk) -> None:

    def form_page(request, status=200, **ctx):
        ctx.setdefault("errors", {})
        ctx.setdefault("form", {})
        mine = sorted((j for j in JOBS.values() if j.owner == request.state.web_user.name),
                      key=lambda j: j.started, reverse=True)
        claims = list(claims_sets())
        return render(request, "simulate.html", status=status, claims=claims, jobs=mine[:10], env=ENV,
                      pack_options=[("", "请选择")] + [(p, p) for p in shipped()],
                      claim_options=[("", "请选择")] + [(c, c) for c in claims], **ctx)

    @router.get("/simulate", response_class=HTMLResponse)
    def simulate_form(request: Request):
        who = site.current(request, desk)
        require(who, "simulation.run")
        return form_page(request)

    @router.post("/simulate", response_class=HTMLResponse)
    async def simulate_start(request: Request):
        who = site.current(request, desk)
        require(who, "simulation.run")
        form = await request.form()
        site.check_csrf(who, form)
        values = {k: text(form, k, 100) for k in ("baseline", "reform", "claims")}
        errors = {}
        packs = shipped()
        if values["baseline"] not in packs:
            errors["baseline"] = "请选择基线政策包 [WEB070]"
        if values["reform"] not in packs:
            errors["reform"] = "请选择改革政策包 [WEB070]"
        elif values["reform"] == values["baseline"]:
            errors["reform"] = "改革政策包须与基线不同 [WEB071]"
        if values["claims"] not in claims_sets():
            errors["claims"] = "请选择理赔数据集 [WEB072]"
        if _RUNNING.locked():
            errors["form"] = "已有一个模拟在运行, 请稍后再试 [WEB073]"
        if errors:
            return form_page(request, 422, errors=errors, form=values)
        job = Job(secrets.token_hex(8), who.name, values["baseline"], values["reform"], values["claims"],
                  datetime.now().replace(microsecond=0), Path(tempfile.mkdtemp(prefix="yibao-sim-")) / "out")
        JOBS[job.id] = job
        desk.write(None, "", lambda s: audit(s, who, Context("web", who.name, job.started), "web.simulate", "job",
                                             job.id, values))
        threading.Thread(target=_run, args=(job,), name=f"yibao-sim-{job.id}", daemon=True).start()
        return RedirectResponse(f"{site.PREFIX}/simulate/jobs/{job.id}", status_code=303)

    def own_job(who, job_id: str) -> Job:
        job = JOBS.get(job_id[:32])
        if job is None or job.owner != who.name:
            raise site.NotFoundPage("没有这个模拟任务")
        return job

    @router.get("/simulate/jobs/{job_id}", response_class=HTMLResponse)
    def job_page(request: Request, job_id: str):
        who = site.current(request, desk)
        require(who, "simulation.run")
        job = own_job(who, job_id)
        groups = [g for g in job.result.get("groups", []) if g["dimension"] in ("overall", "insutype", "category")]
        return render(request, "simulation_job.html", job=job, groups=groups)

    @router.get("/simulate/jobs/{job_id}/progress", response_class=HTMLResponse)
    def job_progress(request: Request, job_id: str):
        """The progress fragment htmx polls; once the job ends it tells htmx to reload the page."""
        who = site.current(request, desk)
        require(who, "simulation.run")
        job = own_job(who, job_id)
        response = render(request, "_sim_progress.html", job=job)
        if job.status != "running":
            response.headers["HX-Refresh"] = "true"
        return response

    @router.get("/simulate/jobs/{job_id}/files/{name}")
    def job_file(request: Request, job_id: str, name: str):
        who = site.current(request, desk)
        require(who, "simulation.run")
        job = own_job(who, job_id)
        if job.status != "done" or name not in FILES:
            raise site.NotFoundPage("没有这个文件")
        filename, media = FILES[name]
        return FileResponse(job.out / filename, media_type=media, filename=filename if name == "xlsx" else None)
