"""The one call site of the supervision rules (事前提醒 at pre-settle, 事中预警 at settle).

Calls ``yibao.supervision.online.precheck_values`` when that module is installed; without it,
or with ``YIBAO_ONLINE_AUDIT=off``, there is nothing to check and settlement goes ahead. The
rule set is loaded once per process and passed in.

The visit, its items and up to 365 days of the person's earlier settled visits (most recent
first) go straight from the store's rows into the online tables' value form: the store checked
every value on upload, and checking each again as claims-schema Decimal yuan cost more than the
rules themselves. Of the earlier visits' lines only those a rule can read are fetched
(``online.history_codes``: for the default rules, the listed exam and drug codes the current
visit also has), so a long history costs a few visit rows, not all their lines.
The rules read what batch reads: each line's 收费项目类别 (``med_chrgitm_type``, uploaded with 2204),
the visit's 主治医生 (``atddr_no``, 2201), the institutions of the earlier visits with their areas and
types (跨机构分解住院), and the baseline table a batch audit learned (``YIBAO_AUDIT_BASELINES``).
``tests/test_service_audit.py`` proves the values equal the checked path's and the hits the
library's; ``tests/test_service_audit_issue20.py`` that every issue-20 rule family flags through the
service what batch flags, with the same rule id and amount.
"""

from __future__ import annotations

import importlib
import os
from datetime import datetime, timedelta
from functools import lru_cache
from operator import attrgetter

from sqlalchemy import BigInteger, bindparam, cast, func, select
from sqlalchemy.orm import Session

from yibao.policy.loader import resolve_pack
from yibao.store.models import FeeItem, Institution, Person, Visit

HISTORY_DAYS = 365


@lru_cache(maxsize=1)
def _online():
    try:
        return importlib.import_module("yibao.supervision.online")
    except ImportError:
        return None


PACK_ENV = "YIBAO_AUDIT_PACK"


@lru_cache(maxsize=1)
def _ruleset():
    """The default rules; with ``YIBAO_AUDIT_PACK`` set to a policy pack, SV-PRICE-03 also judges that
    pack's catalogue caps, as ``yibao audit --pack`` does in batch."""
    rules = importlib.import_module("yibao.supervision.ruleset")
    rs = rules.load_ruleset("default")
    pack = os.environ.get(PACK_ENV)
    if pack:

        rs = rules.with_pack_caps(rs, resolve_pack(pack))
    return rs


def available() -> bool:
    if os.environ.get("YIBAO_ONLINE_AUDIT", "on").lower() in ("off", "0", "false", "no"):
        return False
    return _online() is not None and hasattr(_online(), "precheck_values")


BASELINES_ENV = "YIBAO_AUDIT_BASELINES"


def warm() -> None:
    """Load the rule set and translate its online rules before the first settlement needs them; read
    the baseline table a batch audit learned (``baselines.parquet``, path in ``YIBAO_AUDIT_BASELINES``)
    so the statistical rules judge online visits against the same medians and MADs batch used."""
    if available():
        _online().prepare(_ruleset())
        path = os.environ.get(BASELINES_ENV)
        if path:
            _online().set_baselines(_online().Baselines.read(path, _ruleset()))


def run(session: Session, stage: str, person: Person, person_row: dict, institution: Institution,
        visit: Visit, setl_time: datetime, items: list) -> dict:
    """``{"warnings": [...], "blocking": [...]}``; both empty when supervision is not installed.
    ``items``: the visit's fee-item rows as stored."""
    if not available():
        return {"warnings": [], "blocking": []}
    online, cols = _online(), _columns()
    insts = {institution.fixmedins_code: {
        "fixmedins_code": institution.fixmedins_code, "fixmedins_name": institution.fixmedins_name,
        "level": institution.level, "admdvs": institution.admdvs, "fixmedins_type": institution.fixmedins_type}}
    visits = [visit_values(visit, institution.level, setl_time, sum(i.det_item_fee_sumamt_fen for i in items))]
    lines = [item_values(i) for i in items]
    for v, its in history(session, visit, setl_time, online.history_codes(_ruleset(), stage, items)):
        visits.append(visit_values(v, v.inst_level or institution.level, v.endtime, v.medfee_fen))
        lines.extend(item_values(i, "item_") for i in its)
        # the earlier visits' institutions: 跨机构分解住院 compares their areas with this one's
        insts.setdefault(v.fixmedins_code, {"fixmedins_code": v.fixmedins_code, "fixmedins_name": v.inst_name,
                                            "level": v.inst_level, "admdvs": v.inst_admdvs,
                                            "fixmedins_type": v.inst_type})
    values = {"persons": [_pick(cols["persons"], person_row)],
              "institutions": [_pick(cols["institutions"], i) for i in insts.values()],
              "visits": visits, "fee_items": lines}
    return online.precheck_values(values, visit.mdtrt_id, stage=stage, ruleset=_ruleset()).to_dict()


@lru_cache(maxsize=1)
def _columns() -> dict[str, tuple[str, ...]]:
    return _online().value_columns()


def _pick(columns: tuple[str, ...], row: dict) -> tuple:
    """A row whose values are already in the online form (strings, integers), in column order."""
    return tuple(row.get(c) for c in columns)


def visit_values(v, level: str, setl_time: datetime | None, medfee_fen: int) -> tuple:
    """A stored visit (``v``: a Visit or a row with its columns) as the online ``visits`` tuple."""
    online = _online()
    return _pick(_columns()["visits"], {
        "mdtrt_id": v.mdtrt_id, "psn_no": v.psn_no, "insutype": v.insutype, "med_type": v.med_type,
        "fixmedins_code": v.fixmedins_code, "level": level, "begntime": online.time_value(v.begntime),
        "endtime": online.time_value(v.endtime or setl_time), "setl_time": online.time_value(setl_time),
        "dise_codg": v.dise_codg, "referral_from_level": v.referral_from_level, "acct_balance": 0.0,
        "atddr_no": v.atddr_no,
        "medfee_sumamt": online.amount_value(medfee_fen)})


@lru_cache(maxsize=2)
def _item_getters(prefix: str) -> tuple:
    """Per online ``fee_items`` column, how to read it off a stored fee-item row whose columns carry
    ``prefix`` (None for a column the store does not keep)."""
    online = _online()

    def col(name):
        return attrgetter(prefix + name)

    def conv(to, name):
        get = col(name)
        return lambda i: to(get(i))

    known = {"feedetl_sn": col("feedetl_sn"), "med_list_codg": col("med_list_codg"), "chrgitm_lv": col("chrgitm_lv"),
             "mdtrt_id": attrgetter("mdtrt_id"),  # the joined history row has one, the visit's
             "pric": conv(online.amount_value, "pric_fen"), "cnt": conv(online.count_value, "cnt"),
             "det_item_fee_sumamt": conv(online.amount_value, "det_item_fee_sumamt_fen"),
             "preselfpay_ratio": conv(online.count_value, "preselfpay_ratio"),
             "fee_ocur_time": conv(online.time_value, "fee_ocur_time"),
             "med_chrgitm_type": col("med_chrgitm_type")}
    return tuple(known.get(c, lambda i: None) for c in _columns()["fee_items"])


def item_values(i, prefix: str = "") -> tuple:
    """A stored fee item (a FeeItem, or a row with its columns named ``prefix`` + column) as the
    online ``fee_items`` tuple."""
    return tuple(get(i) for get in _item_getters(prefix))


_VISITS = Visit.__table__
_ITEMS = FeeItem.__table__
_INSTS = Institution.__table__
_MEDFEE = (select(cast(func.sum(_ITEMS.c.det_item_fee_sumamt_fen), BigInteger))  # PostgreSQL's sum of bigint: numeric
           .where(_ITEMS.c.mdtrt_id == _VISITS.c.mdtrt_id).correlate(_VISITS).scalar_subquery())
# built once (a statement caches its own compiled form): one row per earlier visit and wanted line
_EARLIER = (select(_VISITS.c.mdtrt_id, _VISITS.c.psn_no, _VISITS.c.insutype, _VISITS.c.med_type,
                   _VISITS.c.fixmedins_code, _VISITS.c.begntime, _VISITS.c.endtime, _VISITS.c.dise_codg,
                   _VISITS.c.referral_from_level, _VISITS.c.atddr_no, _INSTS.c.level.label("inst_level"),
                   _INSTS.c.admdvs.label("inst_admdvs"), _INSTS.c.fixmedins_name.label("inst_name"),
                   _INSTS.c.fixmedins_type.label("inst_type"), _MEDFEE.label("medfee_fen"),
                   *[c.label("item_" + c.name) for c in _ITEMS.c if c.name != "mdtrt_id"])
            .join(_INSTS, _INSTS.c.fixmedins_code == _VISITS.c.fixmedins_code, isouter=True)
            .join(_ITEMS, (_ITEMS.c.mdtrt_id == _VISITS.c.mdtrt_id)
                  & _ITEMS.c.med_list_codg.in_(bindparam("codes", expanding=True)), isouter=True)
            .where(_VISITS.c.psn_no == bindparam("psn_no"), _VISITS.c.mdtrt_id != bindparam("mdtrt_id"),
                   _VISITS.c.status == "settled", _VISITS.c.begntime >= bindparam("since"))
            .order_by(_VISITS.c.begntime.desc(), _VISITS.c.mdtrt_id, _ITEMS.c.feedetl_sn))


def history(session: Session, visit: Visit, setl_time: datetime,
            codes: frozenset[str] = frozenset()) -> list[tuple[object, list]]:
    """The person's settled visits of the last :data:`HISTORY_DAYS` days, most recent first, each
    with its fee lines whose code is in ``codes`` (the only earlier lines the rules can read, see
    ``online.history_codes``), in one round trip: ``[(visit row, [item row, ...]), ...]``. A visit
    row carries ``medfee_fen`` (all its lines) and ``inst_level``; an item row carries the item's
    columns as ``item_`` + column."""
    since = setl_time - timedelta(days=HISTORY_DAYS)
    out: list[tuple[object, list]] = []
    for row in session.execute(_EARLIER, {"psn_no": visit.psn_no, "mdtrt_id": visit.mdtrt_id, "since": since,
                                          "codes": sorted(codes)}):
        if not out or out[-1][0].mdtrt_id != row.mdtrt_id:
            out.append((row, []))
        if row.item_feedetl_sn is not None:
            out[-1][1].append(row)
    return out


def person_row(p: Person, insutype: str, categories: frozenset[str], age: int) -> dict:
    return {"psn_no": p.psn_no, "certno": p.certno, "psn_name": p.psn_name, "gend": p.gend, "age": age,
            "insutype": insutype, "retiree": p.retiree, "categories": sorted(categories), "admdvs": p.admdvs,
            "hh_no": p.hh_no, "hh_income": None}
