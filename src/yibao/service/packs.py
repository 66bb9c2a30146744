"""The policy packs a running service settles with, chosen by insured region and settlement date.

Configured by ``YIBAO_PACKS`` (comma-separated shipped names or YAML paths). A pack's ``admdvs``
covers a region by its non-zero prefix (``370000`` covers every ``37xxxx``); the most specific
covering pack in force on the date wins. Two packs for the same region with overlapping dates are
refused at start, so the choice is never ambiguous.
"""

from __future__ import annotations

import os
from datetime import date

from yibao.errors import PolicyError, Problem
from yibao.policy.compiled import CompiledPack
from yibao.policy.loader import resolve_pack
from yibao.service.errors import NotFound, problem

DEFAULT_PACKS = ("shandong-2024", "jishou-2022", "sichuan-county-2020")


def region_prefix(admdvs: str) -> str:
    """``370000`` → ``37``, ``433100`` → ``4331``, ``433101`` → ``433101`` (pairs of zeros dropped)."""
    prefix = admdvs
    while len(prefix) > 2 and prefix.endswith("00"):
        prefix = prefix[:-2]
    return prefix


class PackSet:
    def __init__(self, packs: list[CompiledPack]):
        self.packs = packs
        problems = []
        for i, a in enumerate(packs):
            for b in packs[i + 1:]:
                same = a.pack.pack.admdvs == b.pack.pack.admdvs
                if same and a.effective_from <= b.effective_to and b.effective_from <= a.effective_to:
                    problems.append(Problem("SVC001", "YIBAO_PACKS",
                                            f"政策包 {a.id} 与 {b.id} 同属区划 {a.pack.pack.admdvs} 且有效期重叠"))
        if problems:
            raise PolicyError(problems, "YIBAO_PACKS")
        self._by_id = {(p.id, p.version): p for p in packs}
        # 家庭年度限额: only then does a settlement look for a household to lock (yibao.service.ledger)
        self.uses_households = any(p.uses_households for p in packs)

    @classmethod
    def load(cls, names: list[str] | None = None) -> "PackSet":
        if names is None:
            configured = os.environ.get("YIBAO_PACKS", "")
            names = [n.strip() for n in configured.split(",") if n.strip()] or list(DEFAULT_PACKS)
        return cls([CompiledPack(resolve_pack(n)) for n in names])

    def pick(self, admdvs: str, on: date) -> CompiledPack:
        best = None
        for p in self.packs:
            prefix = region_prefix(p.pack.pack.admdvs)
            if admdvs.startswith(prefix) and p.effective_from <= on <= p.effective_to:
                if best is None or len(prefix) > len(region_prefix(best.pack.pack.admdvs)):
                    best = p
        if best is None:
            raise problem(NotFound, "SVC002", "insuplc_admdvs",
                          f"区划 {admdvs} 在 {on} 没有生效的政策包(已加载: "
                          f"{', '.join(f'{p.id}[{p.pack.pack.admdvs}]' for p in self.packs)})")
        return best

    def catalogue_for(self, insured: CompiledPack, mdtrt_admdvs: str, on: date, offsite_status: str) -> CompiledPack:
        """The pack whose catalogue classifies a visit's fee lines: 异地就医 follows 就医地目录、参保地政策, so an
        offsite visit is classified by the loaded pack of the institution's area in force that day (its
        classes and catalogue; the store's imported catalogue versions are the 参保地's own), and settled by the
        insured's pack; a local visit, or one whose 就医地 has no pack loaded here, by the insured's pack."""
        if offsite_status == "local":
            return insured
        try:
            found = self.pick(mdtrt_admdvs, on)
        except NotFound:
            return insured
        return insured if found.id == insured.id else found

    def by_version(self, pack_id: str, version: str) -> CompiledPack | None:
        return self._by_id.get((pack_id, version))
