"""政策包: every shipped pack as readable Chinese rules (tier by tier, effective dates, stated
assumptions), and a side-by-side difference of two packs.

The page reads the validated pack model (:func:`yibao.policy.loader.load_pack`): what it shows is
what the engine compiles, never a second description of the rules. The difference compares the two
packs' documents field by field (dotted paths), so every changed number is listed, none interpreted.
"""

from __future__ import annotations

from decimal import Decimal
from functools import cache
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from yibao.policy.loader import load_pack
from yibao.policy.model import Band, IncomeShare, PolicyPack
from yibao.service.desk import Desk
from yibao.web import site
from yibao.web.site import nav_entry, render, require

nav_entry("/packs", "政策包", "policy.read", order=40)
PACK_DIR = Path(__file__).resolve().parent.parent / "policy" / "packs"
INSUTYPES = {"310": "职工基本医疗保险", "390": "城乡居民基本医疗保险", "320": "公务员医疗补助",
             "330": "大额医疗费用补助", "392": "城乡居民大病保险", "510": "生育保险"}
MED_TYPES = {"11": "普通门诊", "14": "门诊慢特病", "21": "普通住院", "52": "生育住院"}
MODES = {"per_admission": "按次起付", "annual": "年度起付"}


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

    @router.get("/packs", response_class=HTMLResponse)
    def pack_list(request: Request, a: str = "", b: str = ""):
        who = site.current(request, desk)
        require(who, "policy.read")
        packs = shipped()
        errors: dict[str, str] = {}
        diff = None
        if a or b:
            if a not in packs:
                errors["a"] = "请选择政策包 A [WEB060]"
            if b not in packs:
                errors["b"] = "请选择政策包 B [WEB060]"
            if not errors:
                diff = difference(packs[a], packs[b])
        return render(request, "packs.html", status=422 if errors else 200, packs=packs, a=a, b=b, diff=diff,
                      errors=errors)

    @router.get("/packs/{name}", response_class=HTMLResponse)
    def pack_page(request: Request, name: str):
        who = site.current(request, desk)
        require(who, "policy.read")
        pack = shipped().get(name)
        if pack is None:
            raise site.NotFoundPage(f"没有名为 {name[:40]} 的政策包")
        return render(request, "pack.html", name=name, p=pack, **helpers)
