"""The catalogue version in force on a date, as the settlement engine sees it: :func:`pack_in_force` gives the
engine a pack whose ``catalog`` (code → classification rule) is the pack's own example entries overlaid with
every kind's version in force (甲/乙/丙, 先行自付 share, 支付标准 as the per-unit cap). Versions never change
once imported, so their rules are cached per process. Imports no writer (the settlement path uses it).
"""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict
from datetime import date
from decimal import Decimal

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from yibao.institutions.catalogue import item_rule
from yibao.institutions.models import InsCatalogueEntry, InsCatalogueVersion
from yibao.policy.compiled import CompiledPack, ItemRule

# --- the version in force ----------------------------------------------------------------------------------

_V = InsCatalogueVersion.__table__
_IN_FORCE = (select(_V.c.kind, _V.c.id, _V.c.sha256, _V.c.default_preselfpay).where(_V.c.effective_from <= bindparam("on"))
             .order_by(_V.c.kind, _V.c.effective_from.desc(), _V.c.id.desc()))
# A version's rules follow from its file (sha256) and its 乙类 default share alone, so they are cached under those
# (the same key in two stores means the same rules), and a pack overlaid with them is cached per (pack, keys).
_RULES: OrderedDict[tuple, dict[str, ItemRule]] = OrderedDict()
_PACKS: OrderedDict[tuple, tuple[CompiledPack, CompiledPack]] = OrderedDict()
_LOCK = threading.Lock()  # the caches are shared by a server's request threads


def _in_force(session: Session, on: date) -> list[tuple[int, tuple]]:
    seen: dict[str, tuple[int, tuple]] = {}
    for kind, vid, sha, share in session.execute(_IN_FORCE, {"on": on}):
        seen.setdefault(kind, (vid, (sha, str(Decimal(share).normalize()))))
    return [seen[k] for k in sorted(seen)]


def versions_in_force(session: Session, on: date) -> tuple[int, ...]:
    """The id of each kind's version in force on ``on`` (the latest effective on or before it)."""
    return tuple(vid for vid, _ in _in_force(session, on))


def version_rules(session: Session, version_id: int, key: tuple) -> dict[str, ItemRule]:
    rules = _RULES.get(key)
    if rules is None:
        share = Decimal(key[1])
        e = InsCatalogueEntry.__table__
        rules = {code: item_rule(lv, None if pre is None else Decimal(pre), share, std)
                 for code, lv, pre, std in session.execute(select(e.c.med_list_codg, e.c.chrgitm_lv, e.c.preselfpay_ratio,
                                                                  e.c.pay_std_fen).where(e.c.version_id == version_id))}
        with _LOCK:
            _RULES[key] = rules
            while len(_RULES) > 8:
                _RULES.popitem(last=False)
    return rules


def pack_in_force(session: Session, pack: CompiledPack, on: date) -> CompiledPack:
    """``pack`` classifying with the catalogue versions in force on ``on`` (their entries over the pack's own
    example entries); the pack itself when no version is in force."""
    found = _in_force(session, on)
    if not found:
        return pack
    key = (id(pack), tuple(k for _, k in found))
    cached = _PACKS.get(key)
    if cached is not None and cached[0] is pack:
        return cached[1]
    overlaid = copy.copy(pack)
    overlaid.catalog = dict(pack.catalog)
    for vid, k in found:
        overlaid.catalog.update(version_rules(session, vid, k))
    overlaid.catalogue_versions = tuple(vid for vid, _ in found)
    with _LOCK:
        _PACKS[key] = (pack, overlaid)
        while len(_PACKS) > 16:
            _PACKS.popitem(last=False)
    return overlaid
