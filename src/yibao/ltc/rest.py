"""REST for long-term care (``/api/v1/ltc``): assessments, care institutions, records, monthly settlement."""

# no ``from __future__ import annotations``: FastAPI must see the local ``Caller`` type at definition time


from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Callable, Literal

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from yibao.identifiers import Identifier, Text
from yibao.ltc import store
from yibao.money import yuan_to_fen
from yibao.service.auth import Principal
from yibao.service.desk import Desk, request_hash
from yibao.service.transactions import Context
from yibao.settlement.statement import compact_json

Code = Annotated[Identifier, Field(min_length=1, max_length=40)]
MONTH = Annotated[str, Field(pattern=r"^20[0-9]{2}-(0[1-9]|1[0-2])$", description="结算月 YYYY-MM")]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AssessmentIn(_In):
    psn_no: Code
    assessor: Code
    effective: date = Field(description="评估结论生效日")
    scores: dict[Literal["adl", "cognition", "perception"], dict[Code, int]]


class InstitutionIn(_In):
    fixmedins_code: Code
    fixmedins_name: Text = Field(min_length=1, max_length=200)
    admdvs: str = Field(pattern=r"^[0-9]{6}$")
    modes: list[Literal["institution", "home", "visit"]] = Field(min_length=1)
    beds: int = Field(0, ge=0, le=100000)
    designated_from: date
    designated_to: date


class RecordIn(_In):
    srv_id: Code
    psn_no: Code
    srv_date: date
    days: int = Field(1, ge=1, le=31)
    mode: Literal["institution", "home", "visit"]
    item_class: Literal["care", "medical_care", "bed", "meals", "other"]
    amount: Decimal = Field(ge=0, le=Decimal("1000000"), decimal_places=2, description="金额(元)")
    srv_level: Code | None = None


class UploadIn(_In):
    fixmedins_code: Code
    month: MONTH
    records: list[RecordIn] = Field(min_length=1, max_length=5000)


class SettleIn(_In):
    psn_no: Code
    month: MONTH


class ReverseIn(_In):
    reason: Text = Field(min_length=1, max_length=400)


def router(desk: Desk, authenticate: Callable[[Request], Principal]) -> APIRouter:
    api = APIRouter(prefix="/api/v1/ltc", tags=["长期护理保险 LTC"])
    Caller = Annotated[Principal, Depends(authenticate)]

    def write(who: Principal, what: dict, fn, status: int = 200) -> Response:
        ctx = Context(request_id="", opter=who.name, at=datetime.now())
        text, _ = desk.write(None, request_hash(what), lambda s: compact_json(fn(s, ctx)))
        return Response(text, status_code=status, media_type="application/json; charset=utf-8")

    @api.post("/assessments", status_code=201, summary="失能评估结论 / record an assessment")
    def assess(who: Caller, body: AssessmentIn) -> Response:
        def fn(s, ctx):
            pack = store.pack_for(s, desk.packs, body.psn_no, body.effective)
            return store.record_assessment(s, who, ctx, pack.pack.ltc, psn_no=body.psn_no, scores=body.scores,
                                           assessor=body.assessor, effective=body.effective)
        return write(who, body.model_dump(mode="json"), fn, 201)

    @api.post("/institutions", status_code=201, summary="定点护理机构 / designate a care institution")
    def designate(who: Caller, body: InstitutionIn) -> Response:
        return write(who, body.model_dump(mode="json"),
                     lambda s, ctx: store.designate_institution(s, who, ctx, **body.model_dump()), 201)

    @api.post("/records", summary="上传护理服务记录(一个机构一个月) / upload care records")
    def upload(who: Caller, body: UploadIn) -> Response:
        rows = [{**r.model_dump(exclude={"amount"}), "amount_fen": yuan_to_fen(r.amount)} for r in body.records]
        return write(who, body.model_dump(mode="json"),
                     lambda s, ctx: store.upload_records(s, who, ctx, fixmedins_code=body.fixmedins_code,
                                                         month=body.month, records=rows))

    @api.post("/settlements", status_code=201, summary="按人按月结算 / settle a person-month")
    def settle(who: Caller, body: SettleIn) -> Response:
        return write(who, body.model_dump(mode="json"),
                     lambda s, ctx: store.settle(s, who, ctx, desk.packs, psn_no=body.psn_no, month=body.month), 201)

    @api.post("/settlements/{setl_id}/reverse", summary="撤销长护结算 / reverse")
    def reverse(who: Caller, setl_id: Annotated[str, Path(pattern=r"^[A-Za-z0-9_\-]{1,40}$")], body: ReverseIn) -> Response:
        return write(who, {"setl_id": setl_id, **body.model_dump()},
                     lambda s, ctx: store.reverse(s, who, ctx, setl_id=setl_id, reason=body.reason))

    @api.get("/settlements/{setl_id}", summary="长护结算单 / statement of a person-month")
    def get(who: Caller, setl_id: Annotated[str, Path(pattern=r"^[A-Za-z0-9_\-]{1,40}$")]) -> Response:
        return Response(compact_json(desk.read(lambda s: store.statement(s, who, setl_id))),
                        media_type="application/json; charset=utf-8")

    return api
