"""政策包: every shipped or uploaded pack as readable Chinese rules (tier by tier, effective dates, stated
assumptions), and a side-by-side difference of two packs.

An analyst uploads a pack (typically a reform: ``extends: shandong-2024`` and the numbers it changes); it is
validated exactly as ``yibao policy check`` validates a file, its coded problems shown beside the upload, and
kept insert-only as its YAML text (``web_packs``). ``extends`` may name only a shipped pack: an uploaded
text never reaches the server's files.

The page reads the validated pack model (:func:`yibao.policy.loader.load_pack`): what it shows is
what the engine compiles, never a second description of the rules. The difference compares the two
packs' documents field by field (dotted paths), so every changed number is listed, none interpreted.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from datetime import datetime
from decimal import Decimal
from functools import cache, lru_cache
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy import DateTime, String, Text, select
from sqlalchemy.orm import Mapped, mapped_column

from yibao.codes import INSUTYPE_NAMES as INSUTYPES, MED_TYPE_NAMES as MED_TYPES
from yibao.errors import Problem, YibaoError
from yibao.policy.loader import load_pack, pack_from_text, parse_yaml, shipped_pack_names
from yibao.policy.model import Band, IncomeShare, PolicyPack
from yibao.service.desk import Desk
from yibao.service.transactions import Context, audit
from yibao.store.base import Base
from yibao.web import site
from yibao.web.forms import text
from yibao.web.site import nav_entry, render, require

nav_entry("/packs", "政策包", "policy.read", order=40)
PACK_DIR = Path(__file__).resolve().parent.parent / "policy" / "packs"
MODES = {"per_admission": "按次起付", "annual": "年度起付"}


MAX_UPLOAD = 256 * 1024
NAME = re.compile(r"^[a-z0-9][a-z0-9-]{1,39}$")


class UploadedPack(Base):
    """A pack uploaded on the web, kept as the text that was validated (insert-only; a name is never reused)."""

    __tablename__ = "web_packs"
    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    yaml_text: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    uploaded_by: Mapped[str] = mapped_column(String(40))
    uploaded_at: Mapped[datetime] = mapped_column(DateTime)


def validate_upload(name: str, raw: bytes | None, taken: set[str]) -> tuple[PolicyPack | None, str, dict[str, str]]:
    """(pack, its text, errors by field): the name's shape and freshness, the file's size and encoding, then
    the pack exactly as a file is checked; ``extends`` only a shipped pack's name."""
    errors: dict[str, str] = {}
    if not NAME.match(name):
        errors["name"] = "名称须为 2–40 位小写字母、数字或连字符, 以字母或数字开头 [WEB061]"
    elif name in taken:
        errors["name"] = f"已有名为 {name} 的政策包; 上传的政策包不覆盖, 请换一个名称 [WEB062]"
    if not raw:
        errors["file"] = "请选择政策包 YAML 文件 [WEB063]"
        return None, "", errors
    if len(raw) > MAX_UPLOAD:
        errors["file"] = f"文件超过 {MAX_UPLOAD // 1024} KB [WEB063]"
        return None, "", errors
    try:
        body = raw.decode("utf-8")
    except UnicodeDecodeError:
        errors["file"] = "文件须为 UTF-8 编码的 YAML [WEB063]"
        return None, "", errors
    try:
        data = parse_yaml(body, name)
        parent = data.get("extends") if isinstance(data, dict) else None
        if parent is not None and parent not in shipped_pack_names():
            raise YibaoError(Problem("WEB064", "extends", f"上传的政策包只能继承内置政策包 ({', '.join(shipped_pack_names())}), 实际为 {parent!r}"))
        with tempfile.TemporaryDirectory() as empty:  # nothing beside it: extends resolves to shipped packs only
            pack = pack_from_text(body, name, Path(empty))
    except YibaoError as exc:
        errors["file"] = "; ".join(f"{p.path + ': ' if p.path else ''}{p.message} [{p.code}]" for p in exc.problems[:8])
        return None, body, errors
    return (None if errors else pack), body, errors


@lru_cache(maxsize=64)
def _parsed(name: str, sha256: str, body: str) -> PolicyPack:
    with tempfile.TemporaryDirectory() as empty:
        return pack_from_text(body, name, Path(empty))


def uploaded(desk: Desk) -> dict[str, tuple[PolicyPack, UploadedPack]]:
    """Name → (pack, its upload record), oldest first; each text parsed once per process."""
    rows = desk.read(lambda s: [(r.name, r.sha256, r.yaml_text, r.uploaded_by, r.uploaded_at)
                                for r in s.scalars(select(UploadedPack).order_by(UploadedPack.uploaded_at))])
    return {n: (_parsed(n, h, t), UploadedPack(name=n, sha256=h, uploaded_by=by, uploaded_at=at))
            for n, h, t, by, at in rows}


def every_pack(desk: Desk) -> dict[str, PolicyPack]:
    return shipped() | {n: p for n, (p, _) in uploaded(desk).items()}


@cache
def shipped() -> dict[str, PolicyPack]:
    """File stem → validated pack, for every pack shipped in the package."""
    return {p.stem: load_pack(p) for p in sorted(PACK_DIR.glob("*.yaml"))}


def pct(r: Decimal) -> str:
    return f"{(Decimal(r) * 100).normalize():f}%"


def ratio_text(spec) -> str:
    """0.85 → 85%; bands → ``≤ 5,000 元 50%; 以上 60%``."""
    if isinstance(spec, list):
        return "; ".join(f"≤ {site.yuan(b.upto)} 元 {pct(b.ratio)}" if b.upto is not None else f"以上 {pct(b.ratio)}"
                         for b in spec if isinstance(b, Band))
    return pct(spec)


def threshold_text(t) -> str:
    if isinstance(t, IncomeShare):
        return f"上年居民人均可支配收入的 {pct(t.income_share)}"
    return f"{site.yuan(t)} 元"


def flatten(value, prefix: str = "") -> dict[str, str]:
    """A pack document as ``path → value`` (lists of items with an id keyed by that id)."""
    out: dict[str, str] = {}
    if isinstance(value, dict):
        for k, v in value.items():
            out |= flatten(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(value, list):
        if value and all(isinstance(v, dict) and "id" in v for v in value):
            for v in value:
                out |= flatten(v, f"{prefix}[{v['id']}]")
        elif value and all(not isinstance(v, (dict, list)) for v in value):
            out[prefix] = ", ".join(str(v) for v in value)
        else:
            for i, v in enumerate(value):
                out |= flatten(v, f"{prefix}[{i}]")
    else:
        out[prefix] = "" if value is None else str(value)
    return out


def difference(a: PolicyPack, b: PolicyPack) -> list[tuple[str, str, str]]:
    """(path, value in a, value in b) for every path whose value differs (— where absent)."""
    fa, fb = flatten(a.model_dump(mode="json")), flatten(b.model_dump(mode="json"))
    return [(k, fa.get(k, "—"), fb.get(k, "—")) for k in sorted(fa.keys() | fb.keys()) if fa.get(k) != fb.get(k)]


def routes(router: APIRouter, desk: Desk) -> None:
    helpers = {"insutypes": INSUTYPES, "med_types": MED_TYPES, "modes": MODES, "ratio_text": ratio_text,
               "threshold_text": threshold_text, "pct": pct}

    def list_page(request, who, a="", b="", status=200, errors=None, form=None):
        packs = shipped()
        ups = uploaded(desk)
        everything = packs | {n: p for n, (p, _) in ups.items()}
        errors = dict(errors or {})
        diff = None
        if a or b:
            if a not in everything:
                errors["a"] = "请选择政策包 A [WEB060]"
            if b not in everything:
                errors["b"] = "请选择政策包 B [WEB060]"
            if "a" not in errors and "b" not in errors:
                diff = difference(everything[a], everything[b])
        return render(request, "packs.html", status=422 if errors and status == 200 else status, packs=packs,
                      uploads=ups, names=list(everything), a=a, b=b, diff=diff, errors=errors, form=form or {},
                      may_upload=who.role in site.PERMISSIONS["policy.upload"])

    @router.get("/packs", response_class=HTMLResponse)
    def pack_list(request: Request, a: str = "", b: str = ""):
        who = site.current(request, desk)
        require(who, "policy.read")
        return list_page(request, who, a[:40], b[:40])

    @router.post("/packs", response_class=HTMLResponse)
    async def pack_upload(request: Request):
        who = site.current(request, desk)
        require(who, "policy.upload")
        form = await request.form()
        site.check_csrf(who, form)
        name = text(form, "name", 41)
        file = form.get("file")
        raw = await file.read(MAX_UPLOAD + 1) if file is not None and hasattr(file, "read") and file.filename else None
        taken = set(shipped()) | set(uploaded(desk))
        pack, body, errors = validate_upload(name, raw, taken)
        if errors:
            return list_page(request, who, status=422, errors=errors, form={"name": name})
        now = datetime.now().replace(microsecond=0)

        def store(s):
            s.add(UploadedPack(name=name, yaml_text=body, sha256=hashlib.sha256(body.encode()).hexdigest(),
                               uploaded_by=who.name, uploaded_at=now))
            audit(s, who, Context("web", who.name, now), "web.pack_upload", "pack", name,
                  {"pack": pack.pack.name, "version": pack.pack.version, "bytes": len(raw)})
            return ""
        desk.write(None, "", store)
        return RedirectResponse(f"{site.PREFIX}/packs/{name}", status_code=303)

    @router.get("/packs/{name}", response_class=HTMLResponse)
    def pack_page(request: Request, name: str):
        who = site.current(request, desk)
        require(who, "policy.read")
        pack = every_pack(desk).get(name[:40])
        if pack is None:
            raise site.NotFoundPage(f"没有名为 {name[:40]} 的政策包")
        return render(request, "pack.html", name=name, p=pack, **helpers)
