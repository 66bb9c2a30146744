"""The settlement service's question about an institution's agreement: is settlement refused on this date?

One indexed read of :class:`~yibao.institutions.models.InsStanding` (the projection of the agreement
events). Kept apart from :mod:`.store` so the settlement path imports no writer.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import bindparam, or_, select
from sqlalchemy.orm import Session

from yibao.institutions.agreements import refusal_problem
from yibao.institutions.models import InsStanding
from yibao.service.errors import Conflict

_T = InsStanding.__table__
_REFUSED = (select(_T.c.status, _T.c.start_date, _T.c.reason)
            .where(_T.c.fixmedins_code == bindparam("code"), _T.c.start_date <= bindparam("on"),
                   or_(_T.c.end_date.is_(None), _T.c.end_date >= bindparam("on")))
            .order_by(_T.c.start_date.desc()).limit(1))


class SettlementRefused(Conflict):
    title = "机构协议暂停或解除, 不予结算"


def refuse_if_suspended(session: Session, fixmedins_code: str, on: date, path: str = "fixmedins_code") -> None:
    """Raise INS101 (暂停) / INS102 (解除) when the institution's agreement refuses settlement on ``on``."""
    row = session.execute(_REFUSED, {"code": fixmedins_code, "on": on}).first()
    if row is not None:
        raise SettlementRefused(refusal_problem(fixmedins_code, row.status, row.start_date, row.reason, path))
