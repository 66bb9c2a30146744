"""REST for 经办 (``/api/v1/handling``): the item catalogue, cases, actions, overdue list and statistics."""

# no ``from __future__ import annotations``: FastAPI must see the local ``Caller`` type at definition time

from datetime import date, datetime
from typing import Annotated, Callable, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from yibao.handling import store
from yibao.handling.calendar import WorkCalendar
from yibao.handling.workflow import shipped_catalogue
from yibao.identifiers import Identifier, Text
from yibao.service.auth import Principal
from yibao.service.desk import Desk, request_hash
from yibao.service.transactions import Context
from yibao.settlement.statement import compact_json

CASE_ID = Path(pattern=r"^[A-Za-z0-9_\-]{1,40}$")


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Agent(_In):
    agent: Text = Field(min_length=1, max_length=80, description="代办人")
    authorisation: Identifier = Field(min_length=1, max_length=80, description="授权书编号")


class CaseIn(_In):
    item: Identifier = Field(min_length=1, max_length=40)
    psn_no: Identifier = Field(min_length=1, max_length=40)
    form: dict[str, str | int] = {}
    materials: list[Text] = Field([], max_length=30)
    channel: Literal["window", "online", "village", "hospital"]
    service_point: Text = Field(min_length=1, max_length=80)
    on_behalf: Agent | None = None


class ActionIn(_In):
    action: Literal["approve", "return", "reject", "resubmit"]
    version: int = Field(ge=1, description="办理时看到的案件版本; 已被他人办理则冲突(HDL024)")
    note: Text = Field("", max_length=400)
    missing: list[Text] = Field([], max_length=30, description="退回补正: 一次性告知的全部所缺材料")
    materials: list[Text] = Field([], max_length=30, description="补正: 补交的材料")
    on_behalf: Agent | None = None


class RatingIn(_In):
    score: int = Field(ge=1, le=5)


def json_response(data, status: int = 200) -> Response:
    return Response(data if isinstance(data, str) else compact_json(data), status_code=status,
                    media_type="application/json; charset=utf-8")


def router(desk: Desk, authenticate: Callable[[Request], Principal]) -> APIRouter:
    api = APIRouter(prefix="/api/v1/handling", tags=["经办 handling"])
    Caller = Annotated[Principal, Depends(authenticate)]
    catalogue, calendar = shipped_catalogue(), WorkCalendar.shipped()

    def write(who: Principal, what: dict, fn, status: int = 200) -> Response:
        ctx = Context(request_id="", opter=who.name, at=datetime.now())
        text, _ = desk.write(None, request_hash(what), lambda s: compact_json(fn(s, ctx)))
        return json_response(text, status)

    @api.get("/items", summary="事项清单与办事指南 / the service items")
    def items(who: Caller) -> Response:
        return json_response({"items": [i.model_dump() for i in catalogue.items]})

    @api.post("/cases", status_code=201, summary="受理 / accept an application")
    def accept(who: Caller, body: CaseIn) -> Response:
        return write(who, body.model_dump(mode="json"), lambda s, ctx: store.accept(
            s, who, ctx, catalogue, calendar, item_code=body.item, psn_no=body.psn_no, form=body.form,
            materials=body.materials, channel=body.channel, service_point=body.service_point,
            on_behalf=body.on_behalf.model_dump() if body.on_behalf else None), 201)

    @api.post("/cases/{case_id}/actions", summary="审核、复核、退回补正、不予办理、补正后重新提交 / act on a case")
    def act(who: Caller, case_id: Annotated[str, CASE_ID], body: ActionIn) -> Response:
        return write(who, {"case_id": case_id, **body.model_dump(mode="json")}, lambda s, ctx: store.act(
            s, who, ctx, catalogue, case_id=case_id, action=body.action, expected_version=body.version,
            note=body.note, missing=body.missing, materials=body.materials,
            on_behalf=body.on_behalf.model_dump() if body.on_behalf else None))

    @api.post("/cases/{case_id}/rating", summary="好差评 / rate a finished case")
    def rate(who: Caller, case_id: Annotated[str, CASE_ID], body: RatingIn) -> Response:
        return write(who, {"case_id": case_id, **body.model_dump()},
                     lambda s, ctx: store.rate(s, who, ctx, case_id=case_id, score=body.score))

    @api.get("/cases/{case_id}", summary="案件及办理记录 / a case with its history")
    def get(who: Caller, case_id: Annotated[str, CASE_ID]) -> Response:
        who.require("handling.read")
        return json_response(desk.read(lambda s: store.case_view(s, case_id)))

    @api.get("/overdue", summary="超期预警 / cases past their promised date")
    def overdue(who: Caller, on: date | None = None) -> Response:
        who.require("handling.read")
        return json_response({"overdue": desk.read(lambda s: store.overdue(s, on or date.today()))})

    @api.get("/statistics", summary="办件统计 / volume, on-time rate, handling days, 网办率, satisfaction")
    def statistics(who: Caller,
                   by: Annotated[Literal["item", "channel", "service_point", "month"], Query()] = "item") -> Response:
        who.require("handling.read")
        return json_response({"by": by, "rows": desk.read(lambda s: store.statistics(s, calendar, by))})

    return api
