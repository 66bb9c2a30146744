"""Real outflows (基金实际支出): what the funds paid institutions, read from the payment ledger the
institutions domain posts to (``ins_fund_ledger``: applications paid, advances, 集采结余留用), by month,
fund and kind. ``yibao fund outflows`` prints it; amounts are integer fen inside."""

from __future__ import annotations

from sqlalchemy import extract, func, select
from sqlalchemy.orm import Session

from yibao.institutions.models import InsFundLedger
from yibao.institutions.payments import FUNDS

KINDS = {"payment": "结算拨付", "advance": "预付金", "retention": "集采结余留用"}


def outflows(session: Session, year: int) -> list[dict]:
    """Rows (month, fund, kind, entries, amount_fen) of the year, by the date each was posted."""
    rows = session.execute(
        select(extract("month", InsFundLedger.posted_on).label("m"), InsFundLedger.fund, InsFundLedger.kind,
               func.count(), func.sum(InsFundLedger.amount_fen))
        .where(extract("year", InsFundLedger.posted_on) == year)
        .group_by("m", InsFundLedger.fund, InsFundLedger.kind).order_by("m", InsFundLedger.fund, InsFundLedger.kind))
    return [{"month": f"{year}-{int(m):02d}", "fund": fund, "fund_name": FUNDS.get(fund, (fund,))[0], "kind": kind,
             "kind_name": KINDS.get(kind, kind), "entries": int(n), "amount_fen": int(total)}
            for m, fund, kind, n, total in rows]
