"""经办 REST face (``/api/v1/handling``): the catalogue, cases and their actions, statistics.

Every action carries the case ``version`` the caller last read: if another clerk moved the case
meanwhile, the answer is 409 HDL040 and nothing is written.
"""


from datetime import date, datetime
from typing import Annotated, Callable, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from yibao.handling import store
from yibao.handling.catalogue import catalogue
from yibao.handling.clearing import clearing_statement
from yibao.handling.clearing import issue as issue_clearing
from yibao.handling.clearing import issued as issued_clearing
from yibao.handling.stats import handling_stats
from yibao.handling.topup import reverse_topup, statement
from yibao.service.auth import Principal
from yibao.service.desk import Desk, request_hash
from yibao.service.rest import IdKey, json_response
from yibao.service.transactions import Context
from yibao.settlement.statement import compact_json

CASE_PATH = Path(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9]+$")
ITEM_PATH = Path(min_length=1, max_length=10, pattern=r"^[A-Za-z0-9]+$")


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AgentIn(_In):
    kind: Literal["proxy", "helper"] = Field(description="proxy 代办(亲属/受托人) / helper 帮办(工作人员)")
    name: str = Field(min_length=1, max_length=60)
    relation: str | None = Field(None, max_length=30)
    authorization_no: str | None = Field(None, max_length=60, description="授权委托书编号(代办必填)")


class ApplyIn(_In):
    item_code: str = Field(min_length=1, max_length=10)
    psn_no: str | None = Field(None, min_length=1, max_length=40)
    certno: str | None = Field(None, min_length=1, max_length=18)
    channel: str = Field(min_length=1, max_length=10, description="window 窗口 / online 网办 / village 村级服务点 / hospital 医院")
    service_point: str = Field(min_length=1, max_length=60)
    form: dict[str, str | int] = Field(default={}, max_length=30)
    materials: list[str] = Field(default=[], max_length=30)
    agent: AgentIn | None = None
    fee_items: list[dict] = Field(default=[], max_length=500, description="零星报销: 票据费用明细(同结算的 fee-items)")


class ActIn(_In):
    action: Literal["accept", "review", "recheck", "return", "refuse", "reject", "supplement", "withdraw", "rate"]
    version: int = Field(ge=1, le=10**6, description="你读到的案件版本; 案件已变则 409 HDL040")
    materials: list[str] = Field(default=[], max_length=30)
    notice: list[str] = Field(default=[], max_length=30, description="一次性告知: 所缺材料以外需补正的事项")
    reason: str | None = Field(None, max_length=500)
    rating: int | None = Field(None, ge=1, le=5)
    comment: str | None = Field(None, max_length=500)


class IssueIn(_In):
    note: str = Field("", max_length=200, description="更正原因(出具第 2 版起必填)")


class PaymentIn(_In):
    status: Literal["paid", "returned"] = Field(description="paid 已支付 / returned 退回")
    on: date = Field(description="支付或退回的日期")
    note: str = Field("", max_length=200, description="退回原因(退回时必填)")


def router(desk: Desk, authenticate: Callable[[Request], Principal]) -> APIRouter:
    api = APIRouter(prefix="/api/v1/handling", tags=["经办 handling"])
    Caller = Annotated[Principal, Depends(authenticate)]

    def write(who: Principal, key: str | None, what: dict, fn, status: int = 200) -> Response:
        scope = None if key is None else f"rest:{who.name}:{key}"
        text, _ = desk.write(scope, request_hash(what), lambda s: compact_json(fn(s)))
        return json_response(text, status)

    def ctx(who: Principal, key: str | None) -> Context:
        return Context(request_id=key or "", opter=who.name, at=datetime.now())

    @api.get("/items", summary="服务事项清单 / the service-item catalogue")
    def items(who: Caller) -> dict:
        return {"version": catalogue().version, "items": [i.guide() for i in catalogue().items]}

    @api.get("/items/{item_code}", summary="办事指南 / one item's guide")
    def guide(who: Caller, item_code: Annotated[str, ITEM_PATH]) -> dict:
        return catalogue().item(item_code).guide()

    @api.post("/cases", status_code=201, summary="申请(受理前) / file an application")
    def apply_for(who: Caller, body: ApplyIn, key: IdKey = None) -> Response:
        c = ctx(who, key)
        data = body.model_dump()
        agent = data.pop("agent")
        return write(who, key, {"op": "handling.apply", **body.model_dump(mode="json")},
                     lambda s: store.apply_for(s, who, c, agent=agent, packs=desk.packs, **data), 201)

    @api.get("/cases", summary="待办件(未办结, 含超期预警) / open cases with deadline flags")
    def worklist(who: Caller, status: Annotated[str | None, Query(max_length=16)] = None,
                 item_code: Annotated[str | None, Query(max_length=10)] = None, overdue: bool = False,
                 limit: Annotated[int, Query(ge=1, le=500)] = 200) -> Response:
        return json_response(compact_json(desk.read(lambda s: store.worklist(
            s, who, date.today(), status=status, item_code=item_code, overdue_only=overdue, limit=limit))))

    @api.get("/cases/{case_no}", summary="案件详情与办理记录 / a case with its events")
    def get_case(who: Caller, case_no: Annotated[str, CASE_PATH]) -> Response:
        return json_response(compact_json(desk.read(lambda s: store.case_record(s, who, case_no, date.today()))))

    @api.post("/cases/{case_no}/actions", summary="办理: 受理/审核/复核/退回补正/不予受理/补正/评价 / act on a case")
    def act(who: Caller, case_no: Annotated[str, CASE_PATH], body: ActIn, key: IdKey = None) -> Response:
        c = ctx(who, key)
        data = body.model_dump()
        kind = data.pop("action")
        return write(who, key, {"op": "handling.act", "case_no": case_no, **body.model_dump(mode="json")},
                     lambda s: store.act(s, who, c, case_no=case_no, kind=kind, packs=desk.packs, **data))

    @api.post("/payments/{payment_no}/status", summary="支付单: 登记已支付或退回 / record a payment order paid or returned")
    def payment_status(who: Caller, payment_no: Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9]+$")],
                       body: PaymentIn, key: IdKey = None) -> Response:
        c = ctx(who, key)
        return write(who, key, {"op": "handling.payment", "payment_no": payment_no, **body.model_dump(mode="json")},
                     lambda s: store.record_payment(s, who, c, payment_no=payment_no, **body.model_dump()))

    @api.post("/topups/{topup_no}/reverse", status_code=201, summary="撤销补差(须为该年度最近一次变动) / reverse a 补差")
    def topup_reverse(who: Caller, topup_no: Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9]+$")],
                      key: IdKey = None) -> Response:

        c = ctx(who, key)
        return write(who, key, {"op": "handling.topup_reverse", "topup_no": topup_no},
                     lambda s: statement(reverse_topup(s, who, c, topup_no)), 201)

    @api.post("/clearing/{month}/issue", status_code=201, summary="出具(冻结)月度清算单; 更正出新版本 / issue the statement")
    def clearing_issue(who: Caller, month: Annotated[str, Path(pattern=r"^[0-9]{4}-[0-9]{2}$")], body: IssueIn,
                       key: IdKey = None) -> Response:
        c = ctx(who, key)
        return write(who, key, {"op": "handling.clearing_issue", "month": month, **body.model_dump(mode="json")},
                     lambda s: issue_clearing(s, who, c, month, body.note), 201)

    @api.get("/clearing/{month}/issued", summary="已出具的清算单各版本 / the issued versions")
    def clearing_issued(who: Caller, month: Annotated[str, Path(pattern=r"^[0-9]{4}-[0-9]{2}$")]) -> Response:
        return json_response(compact_json(desk.read(lambda s: issued_clearing(s, who, month))))

    @api.get("/clearing/{month}", summary="异地就医月度清算单(就医地垫付 / 参保地清算) / inter-region clearing")
    def clearing(who: Caller, month: Annotated[str, Path(pattern=r"^[0-9]{4}-[0-9]{2}$")]) -> Response:
        return json_response(compact_json(desk.read(lambda s: clearing_statement(s, who, month))))

    @api.get("/stats", summary="经办统计 / volume, on-time rate, days, 网办率, satisfaction")
    def stats(who: Caller, begndate: date, enddate: date,
              by: Literal["item", "channel", "service_point", "month"] = "item") -> Response:
        return json_response(compact_json(desk.read(lambda s: handling_stats(
            s, who, begndate=begndate, enddate=enddate, by=by))))

    return api
