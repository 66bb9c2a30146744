"""The settlement service's question about an institution's agreement: is settlement refused on this date?

One indexed read of :class:`~yibao.institutions.models.InsStanding` (the projection of the agreement
events). Kept apart from :mod:`.store` so the settlement path imports no writer.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import bindparam, or_, select
from sqlalchemy.orm import Session

from yibao.errors import Problem
from yibao.institutions.agreements import SERVICES, refusal_problem
from yibao.institutions.models import InsAgreement, InsAgreementEvent, InsStanding
from yibao.service.errors import Conflict

_T = InsStanding.__table__
_REFUSED = (select(_T.c.status, _T.c.start_date, _T.c.reason)
            .where(_T.c.fixmedins_code == bindparam("code"), _T.c.start_date <= bindparam("on"),
                   or_(_T.c.end_date.is_(None), _T.c.end_date >= bindparam("on")))
            .order_by(_T.c.start_date.desc()).limit(1))


class SettlementRefused(Conflict):
    title = "机构协议暂停或解除, 不予结算"


def refuse_if_suspended(session: Session, fixmedins_code: str, on: date, path: str = "fixmedins_code",
                        med_type: str | None = None) -> None:
    """Raise INS101 (暂停) / INS102 (解除) when the institution's agreement refuses settlement on ``on``; with
    ``med_type`` (at registration) also INS103/INS104 when no agreement is in force or its scope lacks the service."""
    row = session.execute(_REFUSED, {"code": fixmedins_code, "on": on}).first()
    if row is not None:
        raise SettlementRefused(refusal_problem(fixmedins_code, row.status, row.start_date, row.reason, path))
    if med_type is not None:
        problem = _scope_problem(session, fixmedins_code, on, med_type)
        if problem is not None:
            raise SettlementRefused(problem)


_AGREEMENTS = select(InsAgreement.agreement_no, InsAgreement.valid_from, InsAgreement.valid_to, InsAgreement.scope).where(
    InsAgreement.fixmedins_code == bindparam("code"))
_E = InsAgreementEvent
_SCOPE = (select(_E.scope).where(_E.agreement_no == bindparam("no"), _E.kind.in_(("sign", "change")),
                                 _E.eff_date <= bindparam("on")).order_by(_E.eff_date.desc(), _E.id.desc()).limit(1))


def _scope_problem(session: Session, code: str, on: date, med_type: str) -> Problem | None:
    """An institution under agreement management (it has agreements in this store) is served only within the
    scope of the agreement in force; one that never signed here keeps its designated period alone."""
    rows = session.execute(_AGREEMENTS, {"code": code}).all()
    if not rows:
        return None
    current = [r for r in rows if r.valid_from <= on <= r.valid_to]
    if not current:
        spans = "; ".join(f"{r.valid_from}–{r.valid_to}" for r in rows)
        return Problem("INS103", "fixmedins_code", f"机构 {code} 在 {on} 没有生效的定点协议(协议期 {spans})")
    scope = session.execute(_SCOPE, {"no": current[0].agreement_no, "on": on}).scalar() or current[0].scope
    if med_type not in scope.get("services", []):
        names = "、".join(f"{s} {SERVICES.get(s, '')}" for s in scope.get("services", []))
        return Problem("INS104", "med_type", f"机构 {code} 的定点协议在 {on} 的服务范围({names})不含医疗类别 {med_type}")
    return None
