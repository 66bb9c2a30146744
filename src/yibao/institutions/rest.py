"""两定机构 REST face (``/api/v1/institutions``): designation and agreements, assessment, monthly applications
and payments, advances, clearing, the catalogue in force, 集采, 双通道 and prices.

Every write is one transaction through the desk (an ``Idempotency-Key`` replays the first answer); an
institution's key acts only for its own ``fixmedins_code``. Amounts in answers are yuan (exact decimals).
"""


import tempfile
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path as FilePath
from typing import Annotated, Callable, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from yibao.institutions import applications as ap
from yibao.institutions import catalogue_store as cs
from yibao.institutions import prices, procurement, store, tariffs
from yibao.service.auth import Principal
from yibao.service.desk import Desk, request_hash
from yibao.service.rest import IdKey, json_response
from yibao.service.transactions import Context
from yibao.settlement.statement import compact_json

ID = Path(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_\-]+$")
CODE = Path(min_length=1, max_length=60, pattern=r"^[A-Za-z0-9_\-]+$")
MONTH = r"^[0-9]{4}-[0-9]{2}$"


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Scope(_In):
    levels: list[str] = Field(max_length=4)
    services: list[str] = Field(max_length=20)
    care_modes: list[str] = Field(default=[], max_length=10)


class DesignationIn(_In):
    fixmedins_code: str = Field(min_length=1, max_length=40)
    fixmedins_name: str = Field(min_length=1, max_length=120)
    kind: str = Field(min_length=1, max_length=10, description="hospital 定点医疗机构 / pharmacy 定点零售药店")
    admdvs: str = Field(min_length=6, max_length=6)
    scope: Scope


class EvaluateIn(_In):
    items: dict[str, bool] = Field(max_length=20, description="每个评估项 true/false")
    note: str = Field("", max_length=500)


class SignIn(_In):
    valid_from: date
    valid_to: date


class EventIn(_In):
    kind: Literal["change", "suspend", "resume", "terminate"]
    eff_date: date
    reason: str = Field("", max_length=500)
    scope: Scope | None = None
    case_id: int | None = Field(None, ge=1, le=2**31 - 1)


class AssessIn(_In):
    year: int = Field(ge=2000, le=2100)
    on: date | None = Field(None, description="考核日期: 监管认定与信用分按该日的状态(默认今天)")


class MonthIn(_In):
    month: str = Field(pattern=MONTH)
    fixmedins_code: str | None = Field(None, min_length=1, max_length=40)


class ActIn(_In):
    action: Literal["review", "reject", "approve", "order", "pay"]
    note: str = Field("", max_length=500)
    paid_on: date | None = None


class AdvanceIn(_In):
    fixmedins_code: str = Field(min_length=1, max_length=40)
    fund: str = Field(min_length=1, max_length=12)
    amount: Decimal = Field(gt=0, max_digits=14, decimal_places=2)
    offset_months: int = Field(ge=1, le=36)
    paid_on: date | None = None
    reason: str = Field(min_length=1, max_length=500)


class ClearingIn(_In):
    year: int = Field(ge=2000, le=2100)
    result: dict = Field(description="yibao dip|drg settle --json 的输出(或 settlement.json)")


class VbpIn(_In):
    batch: str = Field(min_length=1, max_length=40)
    year: int = Field(ge=2000, le=2100)
    fixmedins_code: str = Field(min_length=1, max_length=40)
    med_list_codg: str = Field(min_length=1, max_length=60)
    name: str = Field(min_length=1, max_length=200)
    contract_volume: Decimal = Field(gt=0, max_digits=16, decimal_places=4)
    selected_price: Decimal = Field(ge=0, max_digits=14, decimal_places=2)
    reference_price: Decimal = Field(ge=0, max_digits=14, decimal_places=2)
    period_from: date
    period_to: date


class DualIn(_In):
    med_list_codg: str = Field(min_length=1, max_length=60)
    fixmedins_code: str = Field(min_length=1, max_length=40)
    valid_from: date
    valid_to: date


class PriceIn(_In):
    med_list_codg: str = Field(min_length=1, max_length=60)
    level: str = Field(min_length=1, max_length=2)
    price: Decimal = Field(gt=0, max_digits=14, decimal_places=2)
    eff_date: date
    doc_no: str = Field(min_length=1, max_length=80)
    reason: str = Field("", max_length=500)


def router(desk: Desk, authenticate: Callable[[Request], Principal]) -> APIRouter:
    api = APIRouter(prefix="/api/v1/institutions", tags=["两定机构 institutions"])
    Caller = Annotated[Principal, Depends(authenticate)]

    def write(who: Principal, key: str | None, what: dict, fn, status: int = 200) -> Response:
        scope = None if key is None else f"rest:{who.name}:{key}"
        text, _ = desk.write(scope, request_hash(what), lambda s: compact_json(fn(s)))
        return json_response(text, status)

    def read(fn) -> Response:
        return json_response(compact_json(desk.read(fn)))

    def ctx(who: Principal, key: str | None) -> Context:
        return Context(request_id=key or "", opter=who.name, at=datetime.now().replace(microsecond=0))

    # --- designation and agreements -------------------------------------------------------------------

    @api.post("/designations", status_code=201, summary="定点申请 / apply for designation")
    def apply(who: Caller, body: DesignationIn, key: IdKey = None) -> Response:
        c, data = ctx(who, key), body.model_dump()
        return write(who, key, {"op": "ins.apply", **body.model_dump(mode="json")},
                     lambda s: store.apply_designation(s, who, c, **data), 201)

    @api.get("/designations", summary="定点申请清单 / applications")
    def designations(who: Caller, status: Annotated[str | None, Query(max_length=10)] = None,
                     fixmedins_code: Annotated[str | None, Query(max_length=40)] = None,
                     limit: Annotated[int, Query(ge=1, le=1000)] = 500) -> Response:
        return read(lambda s: store.designations(s, who, status=status, fixmedins_code=fixmedins_code, limit=limit))

    @api.get("/agreements", summary="协议清单及某日状态 / agreements on a date")
    def agreements(who: Caller, on: date | None = None, state: Annotated[str | None, Query(max_length=12)] = None,
                   fixmedins_code: Annotated[str | None, Query(max_length=40)] = None,
                   limit: Annotated[int, Query(ge=1, le=1000)] = 500) -> Response:
        return read(lambda s: store.agreements(s, who, on or date.today(), state=state, fixmedins_code=fixmedins_code,
                                               limit=limit))

    @api.get("/assessments", summary="年度考核结果 / assessment results")
    def assessments(who: Caller, year: Annotated[int | None, Query(ge=2000, le=2100)] = None,
                    fixmedins_code: Annotated[str | None, Query(max_length=40)] = None) -> Response:
        return read(lambda s: store.assessments(s, who, year=year, fixmedins_code=fixmedins_code))

    @api.get("/designations/{application_no}", summary="定点申请 / an application")
    def designation(who: Caller, application_no: Annotated[str, ID]) -> Response:
        return read(lambda s: store.designation(s, who, application_no))

    @api.post("/designations/{application_no}/evaluation", summary="专业评估 / evaluate")
    def evaluate(who: Caller, application_no: Annotated[str, ID], body: EvaluateIn, key: IdKey = None) -> Response:
        c = ctx(who, key)
        return write(who, key, {"op": "ins.evaluate", "no": application_no, **body.model_dump(mode="json")},
                     lambda s: store.evaluate(s, who, c, application_no=application_no, items=body.items, note=body.note))

    @api.post("/designations/{application_no}/agreement", status_code=201, summary="签订协议 / sign")
    def sign(who: Caller, application_no: Annotated[str, ID], body: SignIn, key: IdKey = None) -> Response:
        c = ctx(who, key)
        return write(who, key, {"op": "ins.sign", "no": application_no, **body.model_dump(mode="json")},
                     lambda s: store.sign(s, who, c, application_no=application_no, valid_from=body.valid_from,
                                          valid_to=body.valid_to), 201)

    @api.get("/agreements/{agreement_no}", summary="协议及某日状态 / an agreement on a date")
    def agreement(who: Caller, agreement_no: Annotated[str, ID], on: date | None = None) -> Response:
        return read(lambda s: store.agreement_record(s, who, agreement_no, on or date.today()))

    @api.post("/agreements/{agreement_no}/events", summary="协议变更/暂停/恢复/解除 / a dated event")
    def event(who: Caller, agreement_no: Annotated[str, ID], body: EventIn, key: IdKey = None) -> Response:
        c = ctx(who, key)
        scope = None if body.scope is None else body.scope.model_dump()
        return write(who, key, {"op": "ins.event", "no": agreement_no, **body.model_dump(mode="json")},
                     lambda s: store.record_event(s, who, c, agreement_no=agreement_no, kind=body.kind,
                                                  eff_date=body.eff_date, reason=body.reason, scope=scope,
                                                  case_id=body.case_id))

    # --- payments ----------------------------------------------------------------------------------

    @api.post("/payments/months", status_code=201, summary="月度结算申请 / build a month's applications")
    def build(who: Caller, body: MonthIn, key: IdKey = None) -> Response:
        c = ctx(who, key)
        return write(who, key, {"op": "ins.month", **body.model_dump(mode="json")},
                     lambda s: ap.build_month(s, who, c, month=body.month, fixmedins_code=body.fixmedins_code), 201)

    @api.get("/payments/applications", summary="结算申请与拨付时限预警 / applications with deadline flags")
    def applications(who: Caller, month: Annotated[str | None, Query(pattern=r"^[0-9]{4}-[0-9A-Z]{2}$")] = None,
                     fixmedins_code: Annotated[str | None, Query(max_length=40)] = None,
                     status: Annotated[str | None, Query(max_length=10)] = None, warnings: bool = False,
                     limit: Annotated[int, Query(ge=1, le=1000)] = 500) -> Response:
        return read(lambda s: ap.worklist(s, who, date.today(), month=month, fixmedins_code=fixmedins_code,
                                          status=status, warnings_only=warnings, limit=limit))

    @api.get("/payments/ledger", summary="拨付台账 / payments posted to the fund ledger")
    def ledger(who: Caller, year: Annotated[int | None, Query(ge=2000, le=2100)] = None,
               fixmedins_code: Annotated[str | None, Query(max_length=40)] = None,
               fund: Annotated[str | None, Query(max_length=12)] = None,
               limit: Annotated[int, Query(ge=1, le=5000)] = 1000) -> Response:
        return read(lambda s: ap.payments(s, who, year=year, fixmedins_code=fixmedins_code, fund=fund, limit=limit))

    @api.get("/payments/applications/{app_no}", summary="一份结算申请 / an application")
    def application(who: Caller, app_no: Annotated[str, ID]) -> Response:
        return read(lambda s: ap.application(s, who, app_no, date.today()))

    @api.post("/payments/applications/{app_no}/actions", summary="初审/退回/审批/支付指令/拨付 / act")
    def act(who: Caller, app_no: Annotated[str, ID], body: ActIn, key: IdKey = None) -> Response:
        c = ctx(who, key)
        return write(who, key, {"op": "ins.act", "no": app_no, **body.model_dump(mode="json")},
                     lambda s: ap.act(s, who, c, app_no=app_no, action=body.action, note=body.note,
                                      paid_on=body.paid_on))

    @api.post("/payments/advances", status_code=201, summary="预付金 / pay an advance")
    def advance(who: Caller, body: AdvanceIn, key: IdKey = None) -> Response:
        c, data = ctx(who, key), body.model_dump()
        return write(who, key, {"op": "ins.advance", **body.model_dump(mode="json")},
                     lambda s: ap.grant_advance(s, who, c, **data), 201)

    @api.post("/payments/clearing", status_code=201, summary="DIP/DRG 年终清算 / year-end clearing")
    def clearing(who: Caller, body: ClearingIn, key: IdKey = None) -> Response:
        c = ctx(who, key)
        return write(who, key, {"op": "ins.clearing", **body.model_dump(mode="json")},
                     lambda s: ap.post_clearing(s, who, c, year=body.year, result=body.result), 201)

    # --- catalogue, 集采, 双通道, prices ----------------------------------------------------------------

    @api.get("/catalogue/versions", summary="目录版本 / catalogue versions")
    def versions(who: Caller) -> Response:
        return read(lambda s: cs.versions(s, who))

    @api.post("/catalogue/versions", status_code=201, summary="导入目录版本(请求体为 CSV 文本) / import a version")
    async def import_version(who: Caller, request: Request, kind: Annotated[str, Query(max_length=12)],
                             version: Annotated[str, Query(min_length=1, max_length=40)], effective_from: date,
                             default_preselfpay: Annotated[Decimal, Query(ge=0, lt=1)] = Decimal("0.10"),
                             key: IdKey = None) -> Response:
        body = await request.body()
        c = ctx(who, key)

        def run(s):
            with tempfile.TemporaryDirectory(prefix="yibao-cat-") as tmp:
                path = FilePath(tmp) / f"{version}.csv"
                path.write_bytes(body)
                return cs.import_version(s, who, c, path, kind=kind, version=version, effective_from=effective_from,
                                         default_preselfpay=default_preselfpay)

        from anyio import to_thread

        return await to_thread.run_sync(lambda: write(who, key, {"op": "ins.catalogue", "kind": kind, "version": version,
                                                                 "from": str(effective_from), "sha": request_hash(body.hex())},
                                                      run, 201))

    @api.get("/catalogue/entries/{med_list_codg}", summary="某日生效目录中的编码 / a code in force")
    def entry(who: Caller, med_list_codg: Annotated[str, CODE], on: date | None = None) -> Response:
        return read(lambda s: cs.entry_on(s, who, med_list_codg, on or date.today()))

    @api.get("/catalogue/visits/{mdtrt_id}/limits", summary="限定支付范围审核 / limit conditions of a visit")
    def limits(who: Caller, mdtrt_id: Annotated[str, ID]) -> Response:
        return read(lambda s: cs.limit_hits(s, who, mdtrt_id))

    @api.post("/vbp", status_code=201, summary="集采中选产品 / a selected product")
    def vbp(who: Caller, body: VbpIn, key: IdKey = None) -> Response:
        c, data = ctx(who, key), body.model_dump()
        return write(who, key, {"op": "ins.vbp", **body.model_dump(mode="json")},
                     lambda s: procurement.add_product(s, who, c, **data), 201)

    @api.post("/dual-channel", status_code=201, summary="双通道药品与药店 / a dual-channel drug at a pharmacy")
    def dual(who: Caller, body: DualIn, key: IdKey = None) -> Response:
        c, data = ctx(who, key), body.model_dump()
        return write(who, key, {"op": "ins.dual", **body.model_dump(mode="json")},
                     lambda s: procurement.add_dual_channel(s, who, c, **data), 201)

    @api.get("/dual-channel/{med_list_codg}", summary="双通道药店 / pharmacies of a dual-channel drug")
    def dual_list(who: Caller, med_list_codg: Annotated[str, CODE], on: date | None = None) -> Response:
        return read(lambda s: procurement.dual_channel_pharmacies(s, who, med_list_codg, on or date.today()))

    @api.post("/prices", status_code=201, summary="定价/调价 / set a price from a date")
    def set_price(who: Caller, body: PriceIn, key: IdKey = None) -> Response:
        c, data = ctx(who, key), body.model_dump()
        return write(who, key, {"op": "ins.price", **body.model_dump(mode="json")},
                     lambda s: prices.set_price(s, who, c, **data), 201)

    @api.get("/prices", summary="某日生效的价格表 / the price list in force")
    def price_list(who: Caller, level: Annotated[str, Query(max_length=2)], on: date | None = None) -> Response:
        return read(lambda s: prices.price_list(s, who, level=level, on=on or date.today()))

    @api.get("/prices/monitor", summary="价格监测 / price monitoring")
    def monitor(who: Caller, begndate: date, enddate: date) -> Response:
        return read(lambda s: prices.monitor(s, who, begndate=begndate, enddate=enddate))

    # --- one institution ----------------------------------------------------------------------------

    async def _import_file(who, request, key, kind: str, version: str, effective_from: date) -> Response:
        body = await request.body()
        c = ctx(who, key)

        def run(s):
            with tempfile.TemporaryDirectory(prefix="yibao-tariff-") as tmp:
                path = FilePath(tmp) / f"{kind}.csv"
                path.write_bytes(body)
                return tariffs.import_file(s, who, c, path, kind=kind, version=version, effective_from=effective_from)

        from anyio import to_thread

        return await to_thread.run_sync(lambda: write(who, key, {"op": f"ins.{kind}.file", "version": version,
                                                                 "from": str(effective_from), "sha": request_hash(body.hex())},
                                                      run, 201))

    @api.post("/prices/files", status_code=201, summary="导入价格表(请求体为 CSV 文本) / import a price table")
    async def import_prices(who: Caller, request: Request, version: Annotated[str, Query(min_length=1, max_length=80)],
                            effective_from: date, key: IdKey = None) -> Response:
        return await _import_file(who, request, key, "price", version, effective_from)

    @api.post("/vbp/files", status_code=201, summary="导入集采中选产品清单(CSV 文本) / import a 集采 list")
    async def import_vbp(who: Caller, request: Request, version: Annotated[str, Query(min_length=1, max_length=80)],
                         effective_from: date, key: IdKey = None) -> Response:
        return await _import_file(who, request, key, "vbp", version, effective_from)

    @api.get("/tariff-files", summary="已导入的价格表与集采清单 / imported price tables and 集采 lists")
    def tariff_files(who: Caller, kind: Literal["price", "vbp"] | None = None) -> Response:
        return read(lambda s: tariffs.files(s, who, kind))

    @api.get("/vbp", summary="全部机构的集采执行进度 / 集采 usage of every institution")
    def vbp_usage(who: Caller, year: Annotated[int, Query(ge=2000, le=2100)],
                  batch: Annotated[str | None, Query(max_length=40)] = None) -> Response:
        return read(lambda s: tariffs.vbp_usage(s, who, year=year, batch=batch))

    @api.get("/{fixmedins_code}/agreements", summary="机构的协议与考核 / an institution's agreements")
    def institution_agreements(who: Caller, fixmedins_code: Annotated[str, ID], on: date | None = None) -> Response:
        return read(lambda s: store.institution_agreements(s, who, fixmedins_code, on or date.today()))

    @api.post("/{fixmedins_code}/assessments", status_code=201, summary="年度考核 / annual assessment")
    def assess(who: Caller, fixmedins_code: Annotated[str, ID], body: AssessIn, key: IdKey = None) -> Response:
        c = ctx(who, key)
        return write(who, key, {"op": "ins.assess", "code": fixmedins_code, **body.model_dump(mode="json")},
                     lambda s: store.assess(s, who, c, fixmedins_code=fixmedins_code, year=body.year, on=body.on), 201)

    @api.get("/{fixmedins_code}/statement", summary="机构年度对账(分) / an institution's year")
    def statement(who: Caller, fixmedins_code: Annotated[str, ID], year: Annotated[int, Query(ge=2000, le=2100)]) -> Response:
        return read(lambda s: ap.institution_year(s, who, fixmedins_code, year))

    @api.get("/{fixmedins_code}/vbp", summary="集采进度与结余留用 / progress and retention")
    def vbp_progress(who: Caller, fixmedins_code: Annotated[str, ID], year: Annotated[int, Query(ge=2000, le=2100)]) -> Response:
        return read(lambda s: procurement.progress(s, who, fixmedins_code, year))

    @api.post("/{fixmedins_code}/vbp/retention", status_code=201, summary="结余留用申请 / retention application")
    def retain(who: Caller, fixmedins_code: Annotated[str, ID], body: AssessIn, key: IdKey = None) -> Response:
        c = ctx(who, key)
        return write(who, key, {"op": "ins.retain", "code": fixmedins_code, **body.model_dump(mode="json")},
                     lambda s: procurement.post_retention(s, who, c, fixmedins_code=fixmedins_code, year=body.year))

    return api
