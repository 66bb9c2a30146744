"""What 经办 facts change in settlement (read by :func:`yibao.service.transactions.settle`).

门诊慢特病: when the pack lists its diseases (``handling.chronic_diseases``), a visit of one of
``handling.chronic_med_types`` needs a 门诊慢特病 certification valid on the settlement date; without
one it is settled as ordinary outpatient (11) or refused (HDL060), as ``uncertified_chronic`` says.
A pack without the section keeps the old behaviour (any diagnosis settles as 门诊慢特病).

Each rule is here twice, once per visit for the service and once as SQL for the batch engine, side by side.
The batch engine imports this module for the SQL only: the store's models are imported where a function reads
them, so ``yibao batch settle`` starts without SQLAlchemy (about 0.25 s of every run).
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

import pyarrow as pa

from yibao.errors import Problem
from yibao.policy.model import PolicyPack
from yibao.service.errors import ServiceError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

ORDINARY_OUTPATIENT = "11"
KINDS = ("chronic", "offsite_filing")  # the 经办 facts settlement reads
# the facts a claims directory carries for batch settlement (handling_facts.parquet, :mod:`yibao.handling.export`)
FACTS_SCHEMA = pa.schema([
    pa.field("psn_no", pa.string(), nullable=False), pa.field("kind", pa.string(), nullable=False),
    pa.field("code", pa.string()), pa.field("valid_from", pa.date32(), nullable=False),
    pa.field("valid_to", pa.date32(), nullable=False), pa.field("mdtrt_admdvs", pa.string()),
])


def settled_med_type(session: Session, pack: PolicyPack, psn_no: str, med_type: str, on: date) -> tuple[str, str | None]:
    """The 医疗类别 to settle a visit with, and a warning when it is not the one registered."""
    from yibao.handling.models import facts_on

    h = pack.handling
    if h is None or not h.chronic_diseases or med_type not in h.chronic_med_types:
        return med_type, None
    if facts_on(session, psn_no, "chronic", on):
        return med_type, None
    if h.uncertified_chronic == "refuse":
        raise ServiceError(Problem("HDL060", "med_type",
                                   f"参保人 {psn_no} 在 {on} 没有有效的门诊慢特病认定, 不能按门诊慢特病({med_type})结算"))
    return ORDINARY_OUTPATIENT, f"无有效门诊慢特病认定, 按普通门诊({ORDINARY_OUTPATIENT})结算"


def same_area(filed: str, admdvs: str) -> bool:
    """A 备案's 就医地 covers an institution's area: a province code (``370000``) its province, a city
    (``370200``) its city, a county code that county only."""
    if filed.endswith("0000"):
        return admdvs[:2] == filed[:2]
    if filed.endswith("00"):
        return admdvs[:4] == filed[:4]
    return admdvs == filed


def same_area_sql(filed: str, admdvs: str) -> str:
    """:func:`same_area` as a SQL expression over two columns, for batch settlement (tested equal on every kind
    of code: tests/test_batch_handling.py)."""
    return (f"(CASE WHEN right({filed}, 4) = '0000' THEN left({admdvs}, 2) = left({filed}, 2) "
            f"WHEN right({filed}, 2) = '00' THEN left({admdvs}, 4) = left({filed}, 4) ELSE {admdvs} = {filed} END)")


def certified_visits_sql(visits: str = "visits", facts: str = "handling_facts") -> str:
    """SQL: the mdtrt_id of visits whose person holds a 门诊慢特病 certification valid on the settlement day
    (what :func:`settled_med_type` asks online). Joins only, so DuckDB and Spark run the same text."""
    return (f"SELECT DISTINCT v.mdtrt_id FROM {visits} v JOIN {facts} f ON f.psn_no = v.psn_no AND f.kind = 'chronic' "
            f"AND f.valid_from <= CAST(v.setl_time AS DATE) AND f.valid_to >= CAST(v.setl_time AS DATE)")


def filed_visits_sql(visits: str = "visits", institutions: str = "institutions", facts: str = "handling_facts") -> str:
    """SQL: the mdtrt_id of visits covered by a 异地就医备案 valid on the visit's start day for the institution's
    area (what :func:`offsite_status` asks online)."""
    return (f"SELECT DISTINCT v.mdtrt_id FROM {visits} v JOIN {institutions} i ON i.fixmedins_code = v.fixmedins_code "
            f"JOIN {facts} f ON f.psn_no = v.psn_no AND f.kind = 'offsite_filing' "
            f"AND f.valid_from <= CAST(v.begntime AS DATE) AND f.valid_to >= CAST(v.begntime AS DATE) "
            f"AND {same_area_sql('f.mdtrt_admdvs', 'i.admdvs')}")


def offsite_status_sql(insuplc_admdvs: str, mdtrt_admdvs: str, filed: str) -> str:
    """:func:`offsite_status` as SQL; ``filed`` is a column that is NULL unless the visit is in
    :func:`filed_visits_sql`."""
    return (f"(CASE WHEN left({insuplc_admdvs}, 4) = left({mdtrt_admdvs}, 4) THEN 'local' "
            f"WHEN {filed} IS NOT NULL THEN 'filed' ELSE 'unfiled' END)")


def chronic_kinds_sql(pack: PolicyPack) -> str | None:
    """The pack's 门诊慢特病 med_types as a SQL list, or None when certifications do not matter."""
    h = pack.handling
    if h is None or not h.chronic_diseases:
        return None
    return ", ".join(f"'{m}'" for m in h.chronic_med_types)


def settled_med_type_sql(pack: PolicyPack, med_type: str, certified: str) -> str:
    """:func:`settled_med_type` as SQL; ``certified`` is NULL unless the visit is in :func:`certified_visits_sql`.
    Where the pack refuses an uncertified visit the med_type is kept and batch validation refuses it (BAT015)."""
    kinds = chronic_kinds_sql(pack)
    if kinds is None or pack.handling.uncertified_chronic == "refuse":
        return med_type
    return f"(CASE WHEN {med_type} IN ({kinds}) AND {certified} IS NULL THEN '{ORDINARY_OUTPATIENT}' ELSE {med_type} END)"


def offsite_status(session: Session, psn_no: str, insuplc_admdvs: str, mdtrt_admdvs: str, on: date) -> str:
    """异地就医 status of a visit, what the pack's ``offsite_points`` read: ``local`` when the institution is in the
    insured's 统筹区 (the same city), ``filed`` when a 异地就医备案 valid on the visit date covers the institution's
    area, ``unfiled`` otherwise (an expired 备案 included)."""
    from yibao.handling.models import facts_on

    if insuplc_admdvs[:4] == mdtrt_admdvs[:4]:
        return "local"
    for f in facts_on(session, psn_no, "offsite_filing", on):
        if same_area(str((f.detail or {}).get("mdtrt_admdvs", "")), mdtrt_admdvs):
            return "filed"
    return "unfiled"
