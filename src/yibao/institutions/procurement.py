"""集采 and 双通道: selected products with their agreed volumes, progress read from the settlements, 结余留用
per institution (rules in ``procurement.yaml``), and 谈判药品 dispensed at designated pharmacies.

>>> r = rules()
>>> retention(contract=Decimal(1000), used=Decimal(1200), selected_fen=150, reference_fen=480, r=r)
(330000, 165000)
>>> retention(contract=Decimal(1000), used=Decimal(900), selected_fen=150, reference_fen=480, r=r)
(297000, 0)
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from importlib import resources

import yaml
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from yibao.errors import Problem
from yibao.institutions.agreements import Event, scope_on
from yibao.institutions.applications import _new_app, app_record
from yibao.institutions.catalogue import CatalogueError
from yibao.institutions.in_force import versions_in_force
from yibao.institutions.models import (
    InsAgreement,
    InsAgreementEvent,
    InsCatalogueEntry,
    InsDualChannel,
    InsSettleApp,
    InsVbpProduct,
)
from yibao.institutions.payments import PaymentConflict
from yibao.money import fen_to_yuan, round_half_up, yuan_to_fen
from yibao.service.auth import Principal
from yibao.service.transactions import Context, audit
from yibao.store.models import FeeItem, Institution, Settlement, Visit


class Rules(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    retention_share: Decimal = Field(ge=0, le=1)
    min_completion: Decimal = Field(ge=0, le=2)
    price_move_threshold: Decimal = Field(gt=0, le=10)


@lru_cache(maxsize=1)
def rules() -> Rules:
    text = resources.files("yibao.institutions").joinpath("procurement.yaml").read_text(encoding="utf-8")
    return Rules.model_validate(yaml.safe_load(text))


def retention(*, contract: Decimal, used: Decimal, selected_fen: int, reference_fen: int, r: Rules) -> tuple[int, int]:
    """(savings, retained) in fen for one product at one institution."""
    savings = round_half_up(Decimal(max(0, reference_fen - selected_fen)) * min(used, contract))
    done = contract > 0 and used >= r.min_completion * contract
    return savings, round_half_up(savings * r.retention_share) if done else 0


def _amount(text, path: str, problems: list[Problem]) -> int:
    try:
        fen = yuan_to_fen(Decimal(str(text)))
        if fen < 0:
            raise ValueError
        return fen
    except (InvalidOperation, ValueError, TypeError):
        problems.append(Problem("INS320", path, f"须为非负金额(元, 至多两位小数), 实际为 {text!r}"))
        return 0


def add_product(session: Session, who: Principal, ctx: Context, *, batch: str, year: int, fixmedins_code: str,
                med_list_codg: str, name: str, contract_volume: Decimal | str, selected_price, reference_price,
                period_from: date, period_to: date) -> dict:
    """集采中选产品 at an institution: its agreed volume (约定采购量) for the period and the two prices."""
    who.require("catalogue.write")
    problems: list[Problem] = []
    selected = _amount(selected_price, "selected_price", problems)
    reference = _amount(reference_price, "reference_price", problems)
    try:
        volume = Decimal(str(contract_volume))
        if not volume.is_finite() or volume <= 0:
            raise InvalidOperation
    except (InvalidOperation, ValueError):
        problems.append(Problem("INS321", "contract_volume", f"约定采购量须为正数, 实际为 {contract_volume!r}"))
        volume = Decimal(0)
    if period_to < period_from:
        problems.append(Problem("INS322", "period_to", f"执行期止 {period_to} 早于执行期起 {period_from}"))
    if session.get(Institution, fixmedins_code) is None:
        problems.append(Problem("INS220", "fixmedins_code", f"定点机构 {fixmedins_code} 不存在"))
    if not batch.strip() or not name.strip():
        problems.append(Problem("INS323", "batch", "采购批次与产品名称须填写"))
    if problems:
        raise CatalogueError(problems)
    row = InsVbpProduct(batch=batch.strip(), year=year, fixmedins_code=fixmedins_code, med_list_codg=med_list_codg,
                        name=name.strip(), contract_volume=volume, selected_price_fen=selected,
                        reference_price_fen=reference, period_from=period_from, period_to=period_to,
                        recorded_by=who.name, recorded_at=ctx.at)
    session.add(row)
    session.flush()
    audit(session, who, ctx, "vbp.add", "vbp_product", str(row.id),
          {"fixmedins_code": fixmedins_code, "med_list_codg": med_list_codg, "contract_volume": str(volume)})
    return {"id": row.id, "batch": row.batch, "med_list_codg": med_list_codg, "contract_volume": str(volume)}


def _used(session: Session, p: InsVbpProduct) -> Decimal:
    """Volume of the product in the institution's valid settlements whose visit began in the period."""

    start = datetime.combine(p.period_from, datetime.min.time())
    end = datetime.combine(p.period_to, datetime.max.time())
    total = session.scalar(select(func.coalesce(func.sum(FeeItem.cnt), 0)).join(
        Settlement, Settlement.mdtrt_id == FeeItem.mdtrt_id).join(Visit, Visit.mdtrt_id == FeeItem.mdtrt_id).where(
        Settlement.fixmedins_code == p.fixmedins_code, Settlement.status == "valid",
        FeeItem.med_list_codg == p.med_list_codg, Visit.begntime >= start, Visit.begntime <= end))
    return Decimal(total)


def progress(session: Session, who: Principal, fixmedins_code: str, year: int) -> dict:
    """集采执行进度 and 结余留用 of an institution's selected products for a year."""
    who.require("institution.read", fixmedins_code)
    r = rules()
    out = []
    for p in session.scalars(select(InsVbpProduct).where(InsVbpProduct.fixmedins_code == fixmedins_code,
                                                        InsVbpProduct.year == year).order_by(InsVbpProduct.id)):
        used = _used(session, p)
        contract = Decimal(p.contract_volume)
        savings, retained = retention(contract=contract, used=used, selected_fen=p.selected_price_fen,
                                      reference_fen=p.reference_price_fen, r=r)
        out.append({"id": p.id, "batch": p.batch, "med_list_codg": p.med_list_codg, "name": p.name,
                    "contract_volume": str(contract), "used_volume": str(used),
                    "completion": str((used / contract).quantize(Decimal("0.0001"))),
                    "selected_price": fen_to_yuan(p.selected_price_fen), "reference_price": fen_to_yuan(p.reference_price_fen),
                    "savings_fen": savings, "retained_fen": retained})
    return {"fixmedins_code": fixmedins_code, "year": year, "retention_share": str(r.retention_share),
            "min_completion": str(r.min_completion), "products": out,
            "retained_fen": sum(x["retained_fen"] for x in out)}


def post_retention(session: Session, who: Principal, ctx: Context, *, fixmedins_code: str, year: int) -> dict:
    """结余留用 of the year as an application of the basic fund (kind retention), paid through the same steps."""

    who.require("payment.apply", fixmedins_code)
    month = f"{year}-RT"
    if session.scalar(select(InsSettleApp.app_no).where(InsSettleApp.fixmedins_code == fixmedins_code,
                                                        InsSettleApp.month == month, InsSettleApp.status != "rejected")):
        raise PaymentConflict(Problem("INS324", "year", f"机构 {fixmedins_code} 的 {year} 年度结余留用已申请"))
    p = progress(session, who, fixmedins_code, year)
    if p["retained_fen"] <= 0:
        raise PaymentConflict(Problem("INS325", "year", f"机构 {fixmedins_code} 的 {year} 年度没有可留用的集采结余"))
    row = _new_app(session, who, ctx, code=fixmedins_code, month=month, fund="basic", kind="retention", setl_cnt=0,
                   revs_cnt=0, settled=0, reversed_=0, adjustment=p["retained_fen"], offsets=[],
                   note="集采结余留用 " + ", ".join(f"{x['med_list_codg']} {x['retained_fen']}分" for x in p["products"]))
    audit(session, who, ctx, "payment.retention", "settle_app", row.app_no,
          {"fixmedins_code": fixmedins_code, "year": year, "retained_fen": p["retained_fen"]})
    return {**app_record(row, ctx.at.date()), "products": p["products"]}


# --- 双通道 -------------------------------------------------------------------------------------------------


def add_dual_channel(session: Session, who: Principal, ctx: Context, *, med_list_codg: str, fixmedins_code: str,
                     valid_from: date, valid_to: date) -> dict:
    """A 谈判药品 at a designated pharmacy: the drug must be in the drug catalogue in force, the pharmacy's
    agreement must cover 双通道 on ``valid_from``."""
    who.require("catalogue.write")
    problems: list[Problem] = []
    if valid_to < valid_from:
        problems.append(Problem("INS322", "valid_to", f"有效期止 {valid_to} 早于有效期起 {valid_from}"))
    ids = versions_in_force(session, valid_from)
    if session.scalar(select(InsCatalogueEntry.med_list_codg).where(
            InsCatalogueEntry.med_list_codg == med_list_codg, InsCatalogueEntry.version_id.in_(ids or (-1,)))) is None:
        problems.append(Problem("INS313", "med_list_codg", f"{valid_from} 生效的目录中没有药品 {med_list_codg}"))
    covered = False
    for a in session.scalars(select(InsAgreement).where(InsAgreement.fixmedins_code == fixmedins_code)):
        events = [Event(e.kind, e.eff_date, e.scope, e.reason) for e in session.scalars(
            select(InsAgreementEvent).where(InsAgreementEvent.agreement_no == a.agreement_no)
            .order_by(InsAgreementEvent.eff_date, InsAgreementEvent.id))]
        scope = scope_on(events, valid_from)
        if a.valid_from <= valid_from <= a.valid_to and scope and "dual_channel" in scope.get("care_modes", []):
            covered = True
    if not covered:
        problems.append(Problem("INS326", "fixmedins_code", f"机构 {fixmedins_code} 在 {valid_from} 的定点协议不含双通道药品供应"))
    if problems:
        raise CatalogueError(problems)
    row = InsDualChannel(med_list_codg=med_list_codg, fixmedins_code=fixmedins_code, valid_from=valid_from,
                         valid_to=valid_to, recorded_by=who.name, recorded_at=ctx.at)
    session.add(row)
    session.flush()
    audit(session, who, ctx, "dual_channel.add", "dual_channel", str(row.id),
          {"med_list_codg": med_list_codg, "fixmedins_code": fixmedins_code})
    return {"id": row.id, "med_list_codg": med_list_codg, "fixmedins_code": fixmedins_code,
            "valid_from": str(valid_from), "valid_to": str(valid_to)}


def dual_channel_pharmacies(session: Session, who: Principal, med_list_codg: str, on: date) -> dict:
    who.require("institution.read")
    rows = session.scalars(select(InsDualChannel.fixmedins_code).where(
        InsDualChannel.med_list_codg == med_list_codg, InsDualChannel.valid_from <= on, InsDualChannel.valid_to >= on)
        .order_by(InsDualChannel.fixmedins_code)).all()
    return {"med_list_codg": med_list_codg, "on": str(on), "pharmacies": list(dict.fromkeys(rows))}
