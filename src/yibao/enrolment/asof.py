"""A person's registry facts read as of a date, for the settlement service.

Kept apart from :mod:`yibao.enrolment.registry` (which records facts through the service's transactions) so the
service can read the fold without importing what writes it: 退休 on a visit's date is the 人员类别 of the fact in
force that day, not the person's flag as it stands when the visit is settled.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from yibao.enrolment import facts as F
from yibao.enrolment.models import EnrolmentFact

RETIRED = "1102"


def fact_of(r: EnrolmentFact) -> F.EnrolFact:
    return F.EnrolFact(r.id, r.psn_no, r.insutype, r.eff_date, r.status, r.admdvs, r.kind, r.reason,
                       r.psn_type, r.carried_months)


def psn_type_on(session: Session, psn_no: str, insutype: str, on: date) -> str | None:
    """人员类别 (1101 在职, 1102 退休, ...) of the fact in force on ``on``; None when the registry holds no fact
    with a 人员类别 for that person and scheme (rows loaded before the registry: the person's flag decides)."""
    rows = session.scalars(select(EnrolmentFact).where(EnrolmentFact.psn_no == psn_no,
                                                       EnrolmentFact.insutype == insutype)).all()
    st = F.state_on([fact_of(r) for r in rows], on)
    return st.psn_type if st is not None and st.psn_type else None


def retiree_on(session: Session, psn_no: str, insutype: str, on: date, default: bool) -> bool:
    """退休 on ``on`` as the registry's dated facts say; ``default`` (the person's flag) when they say nothing."""
    psn_type = psn_type_on(session, psn_no, insutype, on)
    return default if psn_type is None else psn_type == RETIRED
