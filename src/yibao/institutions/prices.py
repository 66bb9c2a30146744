"""医疗服务价格: service-item prices by institution level as dated events (定价/调价 with the document behind
it), the price in force on a date, and 价格监测 — charges above the price in force, and price moves beyond the
threshold in ``procurement.yaml`` (a single change, or the month-on-month average an institution charges).

The price of (item, level) in force on a date is the latest event dated on or before it; events are
insert-only and recorded in date order, so last March's price list is what it was last March.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from sqlalchemy import Date, and_, cast, func, select
from sqlalchemy.orm import Session, aliased

from yibao.errors import Problem
from yibao.identifiers import identifier_problem
from yibao.institutions.agreements import LEVELS
from yibao.institutions.catalogue import CatalogueError
from yibao.institutions.models import InsPriceEvent, InsVbpProduct
from yibao.institutions.procurement import rules
from yibao.money import fen_to_yuan, round_half_up, yuan_to_fen
from yibao.service.auth import Principal
from yibao.service.transactions import Context, audit
from yibao.store.models import FeeItem, Institution, Settlement, Visit

PRICE_LEVELS = {k: v for k, v in LEVELS.items() if k != "0"}


def set_price(session: Session, who: Principal, ctx: Context, *, med_list_codg: str, level: str, price: Decimal | str,
              eff_date: date, doc_no: str, reason: str = "") -> dict:
    """定价/调价: the price of a service item at institutions of ``level`` from ``eff_date``."""
    who.require("catalogue.write")
    problems = []
    if not med_list_codg or len(med_list_codg) > 60 or identifier_problem(med_list_codg):
        problems.append(Problem("INS401", "med_list_codg", "项目编码须为 1 到 60 个字母、数字或 -_ 字符"))
    if level not in PRICE_LEVELS:
        problems.append(Problem("INS402", "level", f"机构等级须为 {'/'.join(PRICE_LEVELS)}, 实际为 {level!r}"))
    try:
        price_fen = yuan_to_fen(Decimal(str(price)))
        if price_fen <= 0:
            raise ValueError
    except (InvalidOperation, ValueError, TypeError):
        problems.append(Problem("INS403", "price", f"价格须为正数(元, 至多两位小数), 实际为 {price!r}"))
        price_fen = 0
    if not doc_no.strip() or len(doc_no) > 80:
        problems.append(Problem("INS404", "doc_no", "须填写定价/调价文件号(不超过 80 个字符)"))
    if not problems:
        last = session.scalar(select(func.max(InsPriceEvent.eff_date)).where(
            InsPriceEvent.med_list_codg == med_list_codg, InsPriceEvent.level == level))
        if last is not None and eff_date <= last:
            problems.append(Problem("INS405", "eff_date", f"项目 {med_list_codg} {PRICE_LEVELS[level]}价格已有 {last} 生效的记录; "
                                    "新价格须晚于它生效(更正请以新的生效日期记录)"))
    if problems:
        raise CatalogueError(problems)
    before = price_on(session, med_list_codg, level, eff_date)
    row = InsPriceEvent(med_list_codg=med_list_codg, level=level, price_fen=price_fen, eff_date=eff_date,
                        doc_no=doc_no.strip(), reason=reason.strip(), recorded_by=who.name, recorded_at=ctx.at)
    session.add(row)
    session.flush()
    audit(session, who, ctx, "price.set", "price_event", str(row.id),
          {"med_list_codg": med_list_codg, "level": level, "price_fen": price_fen, "eff_date": str(eff_date),
           "before_fen": before, "doc_no": row.doc_no})
    return {"id": row.id, "med_list_codg": med_list_codg, "level": level, "price": fen_to_yuan(price_fen),
            "before": None if before is None else fen_to_yuan(before), "eff_date": str(eff_date), "doc_no": row.doc_no}


def excess_fen(charged_fen: int, price_fen: int, cnt: Decimal) -> int:
    """超标准收费 of one fee line: (charged unit price − price in force) × count, half-up to the fen; 0 when the
    charge is within the price. The one definition for online price monitoring and the batch audit.

    >>> excess_fen(1200, 1000, Decimal("2")), excess_fen(1001, 1000, Decimal("0.5")), excess_fen(900, 1000, Decimal(3))
    (400, 1, 0)
    """
    return round_half_up((charged_fen - price_fen) * Decimal(cnt)) if charged_fen > price_fen else 0


def price_on(session: Session, med_list_codg: str, level: str, on: date) -> int | None:
    return session.scalar(select(InsPriceEvent.price_fen).where(
        InsPriceEvent.med_list_codg == med_list_codg, InsPriceEvent.level == level, InsPriceEvent.eff_date <= on)
        .order_by(InsPriceEvent.eff_date.desc(), InsPriceEvent.id.desc()).limit(1))


def price_list(session: Session, who: Principal, *, level: str, on: date) -> dict:
    """The price list in force on a date for one institution level."""
    who.require("institution.read")
    latest = (select(InsPriceEvent.med_list_codg, func.max(InsPriceEvent.eff_date).label("eff"))
              .where(InsPriceEvent.level == level, InsPriceEvent.eff_date <= on)
              .group_by(InsPriceEvent.med_list_codg).subquery())
    rows = session.execute(select(InsPriceEvent).join(latest, and_(
        latest.c.med_list_codg == InsPriceEvent.med_list_codg, latest.c.eff == InsPriceEvent.eff_date))
        .where(InsPriceEvent.level == level).order_by(InsPriceEvent.med_list_codg)).scalars().all()
    return {"level": level, "on": str(on), "items": [{"med_list_codg": r.med_list_codg, "price": fen_to_yuan(r.price_fen),
                                                       "eff_date": str(r.eff_date), "doc_no": r.doc_no} for r in rows]}


def _price_in_force_sql(level_col, on_col):
    """Correlated: the price of the fee line's item at the institution's level on the visit's day."""
    e = aliased(InsPriceEvent)
    return (select(e.price_fen).where(e.med_list_codg == FeeItem.med_list_codg, e.level == level_col,
                                      e.eff_date <= on_col)
            .order_by(e.eff_date.desc(), e.id.desc()).limit(1).correlate(FeeItem, Institution, Visit).scalar_subquery())


def monitor(session: Session, who: Principal, *, begndate: date, enddate: date) -> dict:
    """价格监测 over the valid settlements of visits begun in [begndate, enddate]:

    - ``over_price``: fee lines whose unit price is above the price in force for the institution's level on
      the visit's day (excess = (charged − price) × count);
    - ``price_moves``: price events in the period changing the previous price by more than the threshold;
    - ``charge_moves``: an institution's average charged unit price of an item, month on month, moving more
      than the threshold;
    - ``over_vbp_price``: lines of a 集采 selected product (``ins_vbp_products``, entered or imported from a 集采
      list) at its institution within its period charged above the 中选价 (excess as for ``over_price``).
    """
    who.require("institution.read")
    if enddate < begndate:
        raise CatalogueError(Problem("INS406", "enddate", f"结束日期 {enddate} 早于开始日期 {begndate}"))
    threshold = rules().price_move_threshold
    start, end = datetime.combine(begndate, datetime.min.time()), datetime.combine(enddate, datetime.max.time())
    day = func.date(Visit.begntime) if session.get_bind().dialect.name == "sqlite" else cast(Visit.begntime, Date)
    price = _price_in_force_sql(Institution.level, day)
    lines = session.execute(
        select(FeeItem.mdtrt_id, FeeItem.feedetl_sn, FeeItem.med_list_codg, FeeItem.pric_fen, FeeItem.cnt,
               Institution.fixmedins_code, Institution.level, Visit.begntime, price.label("price_fen"))
        .join(Visit, Visit.mdtrt_id == FeeItem.mdtrt_id)
        .join(Settlement, and_(Settlement.mdtrt_id == Visit.mdtrt_id, Settlement.status == "valid"))
        .join(Institution, Institution.fixmedins_code == Visit.fixmedins_code)
        .where(Visit.begntime >= start, Visit.begntime <= end, FeeItem.pric_fen.is_not(None))
        .order_by(Institution.fixmedins_code, FeeItem.mdtrt_id, FeeItem.feedetl_sn)).all()
    over = []
    monthly: dict[tuple[str, str, str], list[Decimal]] = {}
    for r in lines:
        if r.price_fen is not None and r.pric_fen > r.price_fen:
            excess = excess_fen(r.pric_fen, r.price_fen, Decimal(r.cnt))
            over.append({"fixmedins_code": r.fixmedins_code, "level": r.level, "mdtrt_id": r.mdtrt_id,
                         "feedetl_sn": r.feedetl_sn, "med_list_codg": r.med_list_codg, "charged_fen": r.pric_fen,
                         "price_fen": r.price_fen, "cnt": str(r.cnt), "excess_fen": excess,
                         "date": r.begntime.date().isoformat()})
        key = (r.fixmedins_code, r.med_list_codg, r.begntime.strftime("%Y-%m"))
        acc = monthly.setdefault(key, [Decimal(0), Decimal(0)])
        acc[0] += r.pric_fen * Decimal(r.cnt)
        acc[1] += Decimal(r.cnt)
    charge_moves = []
    by_item: dict[tuple[str, str], list[tuple[str, Decimal]]] = {}
    for (code, item, month), (amount, cnt) in sorted(monthly.items()):
        if cnt:
            by_item.setdefault((code, item), []).append((month, amount / cnt))
    for (code, item), months in by_item.items():
        for (m0, p0), (m1, p1) in zip(months, months[1:]):
            change = p1 / p0 - 1
            if abs(change) > threshold:
                charge_moves.append({"fixmedins_code": code, "med_list_codg": item, "from_month": m0, "to_month": m1,
                                     "from_avg_fen": str(p0.quantize(Decimal("0.01"))),
                                     "to_avg_fen": str(p1.quantize(Decimal("0.01"))),
                                     "change": str(change.quantize(Decimal("0.0001")))})
    moves = []
    events = session.scalars(select(InsPriceEvent).where(InsPriceEvent.eff_date <= enddate)
                             .order_by(InsPriceEvent.med_list_codg, InsPriceEvent.level, InsPriceEvent.eff_date,
                                       InsPriceEvent.id)).all()
    for prev, ev in zip(events, events[1:]):
        if (prev.med_list_codg, prev.level) != (ev.med_list_codg, ev.level) or ev.eff_date < begndate:
            continue
        change = Decimal(ev.price_fen) / prev.price_fen - 1
        if abs(change) > threshold:
            moves.append({"med_list_codg": ev.med_list_codg, "level": ev.level, "eff_date": str(ev.eff_date),
                          "from_fen": prev.price_fen, "to_fen": ev.price_fen, "change": str(change.quantize(Decimal("0.0001"))),
                          "doc_no": ev.doc_no})
    vbp = _over_vbp_price(session, start, end)
    return {"begndate": str(begndate), "enddate": str(enddate), "threshold": str(threshold),
            "over_vbp_price": vbp, "over_vbp_price_fen": sum(o["excess_fen"] for o in vbp),
            "over_price": over, "over_price_fen": sum(o["excess_fen"] for o in over),
            "price_moves": moves, "charge_moves": charge_moves}


def _over_vbp_price(session: Session, start: datetime, end: datetime) -> list[dict]:
    p = InsVbpProduct
    day = func.date(Visit.begntime) if session.get_bind().dialect.name == "sqlite" else cast(Visit.begntime, Date)
    rows = session.execute(
        select(FeeItem.mdtrt_id, FeeItem.feedetl_sn, FeeItem.med_list_codg, FeeItem.pric_fen, FeeItem.cnt,
               Visit.fixmedins_code, Visit.begntime, p.batch, p.selected_price_fen)
        .join(Visit, Visit.mdtrt_id == FeeItem.mdtrt_id)
        .join(Settlement, and_(Settlement.mdtrt_id == Visit.mdtrt_id, Settlement.status == "valid"))
        .join(p, and_(p.fixmedins_code == Visit.fixmedins_code, p.med_list_codg == FeeItem.med_list_codg,
                      p.period_from <= day, p.period_to >= day))
        .where(Visit.begntime >= start, Visit.begntime <= end, FeeItem.pric_fen > p.selected_price_fen)
        .order_by(Visit.fixmedins_code, FeeItem.mdtrt_id, FeeItem.feedetl_sn, p.id)).all()
    out, seen = [], set()
    for r in rows:
        if (r.mdtrt_id, r.feedetl_sn) in seen:  # one line, one finding (the first product row if batches overlap)
            continue
        seen.add((r.mdtrt_id, r.feedetl_sn))
        out.append({"fixmedins_code": r.fixmedins_code, "mdtrt_id": r.mdtrt_id, "feedetl_sn": r.feedetl_sn,
                    "med_list_codg": r.med_list_codg, "batch": r.batch, "charged_fen": r.pric_fen,
                    "selected_price_fen": r.selected_price_fen, "cnt": str(r.cnt),
                    "excess_fen": excess_fen(r.pric_fen, r.selected_price_fen, Decimal(r.cnt)),
                    "date": r.begntime.date().isoformat()})
    return out
