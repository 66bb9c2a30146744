"""REST face of the enrolment registry (``/api/v1/enrolment``): same desk, keys and errors as the service.

The national platform publishes no 参保登记 interface for 定点机构 (enrolment is 经办 business),
so these are REST only; 1101 (人员信息获取) already answers from the projection they maintain.
Writes accept an ``Idempotency-Key`` like every other write.
"""

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Callable, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from yibao.enrolment import ledger
from yibao.enrolment import registry as er
from yibao.enrolment.certificate import certificate_view, render_certificate
from yibao.errors import Problem
from yibao.money import yuan_to_fen
from yibao.service import registry
from yibao.service.errors import ServiceError
from yibao.service.auth import Principal
from yibao.service.desk import Desk, request_hash
from yibao.service.transactions import Context
from yibao.settlement.statement import compact_json

IdKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]
PSN = Path(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_\-]+$")
Insu = Literal["310", "390", "410"]
Admdvs = Annotated[str, Field(pattern=r"^[0-9]{6}$")]
Day = Annotated[date, Field(ge=date(1900, 1, 1), le=date(2200, 12, 31))]  # a real business date
EndDay = Annotated[date, Field(ge=date(1900, 1, 1), le=date(9999, 12, 31), description="9999-12-31 表示长期有效")]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RegisterIn(_In):
    psn_no: str | None = Field(None, max_length=40, description="已有人员; 新人员给出 certno 与 psn_name")
    certno: str | None = Field(None, min_length=1, max_length=18)
    psn_name: str | None = Field(None, min_length=1, max_length=60)
    gend: Literal["1", "2"] | None = None
    insutype: Insu
    insuplc_admdvs: Admdvs
    begndate: Day
    psn_type: str = Field("", max_length=6)
    reason: str = Field("参保登记", max_length=200)


class StatusIn(_In):
    insutype: Insu
    eff_date: Day = Field(description="新状态开始的日期")
    reason: str = Field(min_length=1, max_length=200)


class ChangeIn(StatusIn):
    psn_type: str | None = Field(None, max_length=6)


class TransferIn(_In):
    insutype: Insu
    eff_date: Day = Field(description="转入地参保开始日期; 转出地参保止于前一日")
    to_admdvs: Admdvs
    reason: str = Field("转移接续", max_length=200)


class TransferInIn(_In):
    insutype: Insu
    eff_date: Day = Field(description="本地参保开始日期")
    insuplc_admdvs: Admdvs
    from_admdvs: Admdvs
    carried_months: int = Field(ge=0, le=1200, description="转出地参保凭证上的连续参保月数")
    psn_type: str = Field("", max_length=6)


class CategoryIn(_In):
    category: str = Field(min_length=1, max_length=40)
    action: Literal["grant", "revoke"] = "grant"
    valid_from: Day
    valid_to: EndDay
    dept: str = Field(min_length=1, max_length=20, description="认定部门: 民政 / 乡村振兴 / 残联 …")
    recognised_on: Day | None = None
    reason: str = Field("", max_length=200)


class WageLine(_In):
    psn_no: str = Field(min_length=1, max_length=40)
    wage: Decimal = Field(ge=0, le=Decimal("10000000"), decimal_places=2, description="月工资(元)")


class DeclareIn(_In):
    emp_no: str = Field(min_length=1, max_length=40)
    sector: str = Field("", max_length=20)
    insuplc_admdvs: Admdvs
    period: str = Field(pattern=r"^(19|2[0-1])[0-9]{2}-(0[1-9]|1[0-2])$", description="所属期 YYYY-MM")
    paid: bool = True
    lines: list[WageLine] = Field(min_length=1, max_length=5000)


class FamilyPayIn(_In):
    member_psn_no: str = Field(min_length=1, max_length=40)
    amount: Decimal = Field(gt=0, le=Decimal("1000000"), decimal_places=2)
    on: Day
    ref: str = Field("", max_length=60)


class HouseholdIn(_In):
    member_psn_no: str = Field(min_length=1, max_length=40)
    relation: str = Field(min_length=1, max_length=20)
    valid_from: Day
    valid_to: EndDay = date(9999, 12, 31)
    action: Literal["grant", "revoke"] = "grant"
    reason: str = Field("", max_length=200)


def router(desk: Desk, authenticate: Callable[[Request], Principal]) -> APIRouter:
    api = APIRouter(prefix="/api/v1/enrolment", tags=["参保登记 / enrolment"])
    Caller = Annotated[Principal, Depends(authenticate)]

    def write(who: Principal, key: str | None, what: dict, fn) -> Response:
        ctx = Context(request_id=key or "", opter=who.name, at=datetime.now().replace(microsecond=0))
        scope = None if key is None else f"rest:{who.name}:{key}"
        text, _ = desk.write(scope, request_hash(what), lambda s: compact_json(fn(s, ctx)))
        return Response(text, media_type="application/json; charset=utf-8")

    def read(fn) -> Response:
        return Response(compact_json(desk.read(fn)), media_type="application/json; charset=utf-8")

    def known(s, admdvs: str, on: date) -> set[str]:
        return set(desk.packs.pick(admdvs, on).categories)

    def financing(admdvs: str, on: date):
        fin = desk.packs.pick(admdvs, on).pack.financing
        if fin is None:
            raise ServiceError(Problem("ENR050", "financing", f"参保地 {admdvs} 在 {on} 生效的政策包没有筹资规则"))
        return fin

    @api.post("/contributions/employer", summary="职工缴费申报(入缴费台账) / an employer's monthly declaration")
    def declare(who: Caller, body: DeclareIn, key: IdKey = None) -> Response:
        period = date.fromisoformat(body.period + "-01")
        return write(who, key, {"op": "declare", **body.model_dump(mode="json")}, lambda s, c: ledger.declare_employer(
            s, who, c, financing(body.insuplc_admdvs, period), emp_no=body.emp_no, sector=body.sector,
            admdvs=body.insuplc_admdvs, period=period, lines=[(x.psn_no, yuan_to_fen(x.wage)) for x in body.lines],
            paid=body.paid))

    @api.post("/{psn_no}/family-pay", summary="家庭共济: 从本人账户支付登记成员的费用 / pay a family member from the account")
    def family_pay(who: Caller, psn_no: Annotated[str, PSN], body: FamilyPayIn, key: IdKey = None) -> Response:
        def run(s, c):
            p = registry.person(s, psn_no)
            return ledger.family_pay(s, who, c, financing(p.admdvs, body.on), holder_psn_no=psn_no,
                                     member_psn_no=body.member_psn_no, amount_fen=yuan_to_fen(body.amount),
                                     on=body.on, ref=body.ref)
        return write(who, key, {"op": "family_pay", "psn_no": psn_no, **body.model_dump(mode="json")}, run)

    @api.get("/{psn_no}/account", summary="个人账户对账单 / account statement")
    def account(who: Caller, psn_no: Annotated[str, PSN], begndate: Annotated[date, Query(ge=date(1900, 1, 1), le=date(9999, 12, 31))],
                enddate: Annotated[date, Query(ge=date(1900, 1, 1), le=date(9999, 12, 31))]) -> Response:
        who.require("enrol.read")
        return read(lambda s: ledger.account_statement(s, psn_no, begndate, enddate))

    @api.post("", summary="参保登记 / enrol a new or existing person")
    def register(who: Caller, body: RegisterIn, key: IdKey = None) -> Response:
        return write(who, key, {"op": "enrol", **body.model_dump(mode="json")}, lambda s, c: er.register(
            s, who, c, insutype=body.insutype, admdvs=body.insuplc_admdvs, begndate=body.begndate,
            psn_type=body.psn_type, reason=body.reason, psn_no=body.psn_no, certno=body.certno,
            psn_name=body.psn_name, gend=body.gend))

    def status_route(action: str):
        def route(who: Caller, body: StatusIn, psn_no: Annotated[str, PSN], key: IdKey = None) -> Response:
            return write(who, key, {"op": action, "psn_no": psn_no, **body.model_dump(mode="json")},
                         lambda s, c: er.change_status(s, who, c, psn_no=psn_no, insutype=body.insutype,
                                                       action=action, eff_date=body.eff_date, reason=body.reason))
        return route

    for action, title in (("suspend", "暂停参保"), ("terminate", "终止参保"), ("resume", "恢复参保")):
        api.add_api_route(f"/{{psn_no}}/{action}", status_route(action), methods=["POST"],
                          summary=f"{title} / {action}", name=f"enrol_{action}")

    @api.post("/{psn_no}/change", summary="参保信息变更(如在职转退休) / change attributes")
    def change(who: Caller, psn_no: Annotated[str, PSN], body: ChangeIn, key: IdKey = None) -> Response:
        return write(who, key, {"op": "change", "psn_no": psn_no, **body.model_dump(mode="json")},
                     lambda s, c: er.change(s, who, c, psn_no=psn_no, insutype=body.insutype, eff_date=body.eff_date,
                                            reason=body.reason, psn_type=body.psn_type))

    @api.post("/{psn_no}/transfer", summary="转移接续 / transfer to another region, months carried")
    def transfer(who: Caller, psn_no: Annotated[str, PSN], body: TransferIn, key: IdKey = None) -> Response:
        return write(who, key, {"op": "transfer", "psn_no": psn_no, **body.model_dump(mode="json")},
                     lambda s, c: er.transfer(s, who, c, psn_no=psn_no, insutype=body.insutype,
                                              eff_date=body.eff_date, to_admdvs=body.to_admdvs, reason=body.reason))

    @api.post("/{psn_no}/transfer-in", summary="转移接续(外地转入) / arrival from another region, months carried")
    def transfer_in(who: Caller, psn_no: Annotated[str, PSN], body: TransferInIn, key: IdKey = None) -> Response:
        return write(who, key, {"op": "transfer_in", "psn_no": psn_no, **body.model_dump(mode="json")},
                     lambda s, c: er.transfer_in(s, who, c, psn_no=psn_no, insutype=body.insutype,
                                                 eff_date=body.eff_date, admdvs=body.insuplc_admdvs,
                                                 carried_months=body.carried_months, from_admdvs=body.from_admdvs,
                                                 psn_type=body.psn_type))

    @api.post("/{psn_no}/categories", summary="人员类别认定/退出 / grant or revoke a category")
    def category(who: Caller, psn_no: Annotated[str, PSN], body: CategoryIn, key: IdKey = None) -> Response:
        def run(s, c):
            p = registry.person(s, psn_no)
            return er.record_category(s, who, c, psn_no=psn_no, category=body.category, action=body.action,
                                      valid_from=body.valid_from, valid_to=body.valid_to, dept=body.dept,
                                      known=known(s, p.admdvs, body.valid_from), recognised_on=body.recognised_on,
                                      reason=body.reason)
        return write(who, key, {"op": "category", "psn_no": psn_no, **body.model_dump(mode="json")}, run)

    @api.post("/{psn_no}/household", summary="家庭共济成员 / link a family member to the account holder")
    def household(who: Caller, psn_no: Annotated[str, PSN], body: HouseholdIn, key: IdKey = None) -> Response:
        return write(who, key, {"op": "household", "psn_no": psn_no, **body.model_dump(mode="json")},
                     lambda s, c: er.link_household(s, who, c, holder_psn_no=psn_no, member_psn_no=body.member_psn_no,
                                                    relation=body.relation, valid_from=body.valid_from,
                                                    valid_to=body.valid_to, action=body.action, reason=body.reason))

    @api.get("/{psn_no}", summary="某日的参保状态与人员类别(事实折叠) / state as of a date")
    def state(who: Caller, psn_no: Annotated[str, PSN], on: Annotated[date | None, Query(ge=date(1900, 1, 1), le=date(2200, 12, 31))] = None) -> Response:
        who.require("enrol.read")
        return read(lambda s: (registry.person(s, psn_no), er.as_of(s, psn_no, on or date.today()))[1])

    @api.get("/{psn_no}/facts", summary="全部参保事实(谁、何时、为何) / every fact with who and why")
    def facts(who: Caller, psn_no: Annotated[str, PSN]) -> Response:
        return read(lambda s: er.history(s, who, psn_no))

    @api.get("/{psn_no}/certificate.pdf", response_class=Response,
             responses={200: {"content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}},
                              "description": "A4 PDF, 字体 STSong-Light(阅读器自带)"}},
             summary="参保证明(PDF) / certificate of enrolment")
    def certificate(who: Caller, psn_no: Annotated[str, PSN], on: Annotated[date | None, Query(ge=date(1900, 1, 1), le=date(2200, 12, 31))] = None) -> Response:
        view = desk.read(lambda s: certificate_view(s, who, psn_no, on or date.today()))
        return Response(render_certificate(view), media_type="application/pdf",
                        headers={"Content-Disposition": f'inline; filename="certificate-{psn_no}.pdf"'})

    return api
