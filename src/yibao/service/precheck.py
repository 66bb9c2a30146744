"""The one call site of the supervision rules (事前提醒 at pre-settle, 事中预警 at settle).

Calls ``yibao.supervision.online.precheck`` (interface agreed in the supervision brief) when that
module is installed; without it, or with ``YIBAO_ONLINE_AUDIT=off``, there is nothing to check
and settlement goes ahead. The rule set is loaded once per process and passed in. Rows are
passed as the claims schema names them, amounts as Decimal yuan, with up to 365 days of the
person's earlier settled visits as history, most recent first.
"""

from __future__ import annotations

import importlib
import os
from datetime import datetime, timedelta
from functools import lru_cache

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from yibao.money import fen_to_yuan
from yibao.store.models import FeeItem, Institution, Person, Visit

HISTORY_DAYS = 365


@lru_cache(maxsize=1)
def _online():
    try:
        return importlib.import_module("yibao.supervision.online")
    except ImportError:
        return None


@lru_cache(maxsize=1)
def _ruleset():
    return importlib.import_module("yibao.supervision.ruleset").load_ruleset("default")


def available() -> bool:
    if os.environ.get("YIBAO_ONLINE_AUDIT", "on").lower() in ("off", "0", "false", "no"):
        return False
    return _online() is not None and hasattr(_online(), "precheck")


def warm() -> None:
    """Load the rule set and translate its online rules before the first settlement needs them."""
    if available():
        _online().prepare(_ruleset())


def run(session: Session, stage: str, person: Person, person_row: dict, institution: Institution,
        visit: Visit, setl_time: datetime, items: list[FeeItem]) -> dict:
    """``{"warnings": [...], "blocking": [...]}``; both empty when supervision is not installed."""
    if not available():
        return {"warnings": [], "blocking": []}
    inst_row = {"fixmedins_code": institution.fixmedins_code, "fixmedins_name": institution.fixmedins_name,
                "level": institution.level, "admdvs": institution.admdvs}
    medfee = sum(i.det_item_fee_sumamt_fen for i in items)
    result = _online().precheck(person_row, inst_row, visit_row(visit, institution.level, setl_time, medfee),
                                [item_row(i) for i in items], history(session, visit, institution, setl_time),
                                stage=stage, params=_ruleset())
    return result.to_dict()


def visit_row(v, level: str, setl_time: datetime | None, medfee_fen: int) -> dict:
    """``v``: a Visit, or a row with its columns."""
    return {"mdtrt_id": v.mdtrt_id, "psn_no": v.psn_no, "insutype": v.insutype, "med_type": v.med_type,
            "fixmedins_code": v.fixmedins_code, "level": level, "begntime": v.begntime,
            "endtime": v.endtime or setl_time, "setl_time": setl_time, "dise_codg": v.dise_codg,
            "oprn_oprt_code": None, "referral_from_level": v.referral_from_level,
            "acct_balance": fen_to_yuan(0), "medfee_sumamt": fen_to_yuan(medfee_fen)}


def item_row(i: FeeItem) -> dict:
    return {"feedetl_sn": i.feedetl_sn, "mdtrt_id": i.mdtrt_id, "med_list_codg": i.med_list_codg,
            "chrgitm_lv": i.chrgitm_lv, "pric": None if i.pric_fen is None else fen_to_yuan(i.pric_fen),
            "cnt": i.cnt, "det_item_fee_sumamt": fen_to_yuan(i.det_item_fee_sumamt_fen),
            "preselfpay_ratio": i.preselfpay_ratio, "fee_ocur_time": i.fee_ocur_time}


_VISITS = Visit.__table__
_ITEMS = FeeItem.__table__
# built once (a statement caches its own compiled form): columns, not ORM objects, for rows only read
_EARLIER = (select(_VISITS, Institution.__table__.c.level.label("inst_level"))
            .join(Institution.__table__, Institution.__table__.c.fixmedins_code == _VISITS.c.fixmedins_code,
                  isouter=True)
            .where(_VISITS.c.psn_no == bindparam("psn_no"), _VISITS.c.mdtrt_id != bindparam("mdtrt_id"),
                   _VISITS.c.status == "settled", _VISITS.c.begntime >= bindparam("since"))
            .order_by(_VISITS.c.begntime.desc()))
_EARLIER_ITEMS = (select(_ITEMS).where(_ITEMS.c.mdtrt_id.in_(bindparam("ids", expanding=True)))
                  .order_by(_ITEMS.c.mdtrt_id, _ITEMS.c.feedetl_sn))


def history(session: Session, visit: Visit, inst: Institution, setl_time: datetime) -> list[tuple[dict, list[dict]]]:
    """Two queries however long the history: earlier visits with their institutions' levels, then all their items."""
    since = setl_time - timedelta(days=HISTORY_DAYS)
    earlier = session.execute(_EARLIER, {"psn_no": visit.psn_no, "mdtrt_id": visit.mdtrt_id, "since": since}).all()
    if not earlier:
        return []
    items: dict[str, list] = {}
    for row in session.execute(_EARLIER_ITEMS, {"ids": [v.mdtrt_id for v in earlier]}):
        items.setdefault(row.mdtrt_id, []).append(row)
    out = []
    for v in earlier:
        mine = items.get(v.mdtrt_id, [])
        out.append((visit_row(v, v.inst_level or inst.level, v.endtime, sum(i.det_item_fee_sumamt_fen for i in mine)),
                    [item_row(i) for i in mine]))
    return out


def person_row(p: Person, insutype: str, categories: frozenset[str], age: int) -> dict:
    return {"psn_no": p.psn_no, "certno": p.certno, "psn_name": p.psn_name, "gend": p.gend, "age": age,
            "insutype": insutype, "retiree": p.retiree, "categories": sorted(categories), "admdvs": p.admdvs,
            "hh_no": p.hh_no, "hh_income": None}
