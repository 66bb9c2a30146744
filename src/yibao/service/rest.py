"""The REST/JSON face (``/api/v1``): the same service layer as the platform face, with OpenAPI docs.

Writes accept an ``Idempotency-Key`` header (replayed like a platform msgid). Errors are JSON
problem bodies (``application/problem+json``) with a 4xx status naming the field in Chinese.
Amounts are yuan with two decimals; ``setl_time`` (default: now) is the transaction time that
picks the policy pack.
"""


from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Callable, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from yibao.identifiers import ChrgitmType, Identifier
from yibao.policy.model import Insutype, MedType
from yibao.service import registry
from yibao.service import transactions as tx
from yibao.service.auth import Principal
from yibao.service.desk import Desk, request_hash
from yibao.service.ratelimit import Guard
from yibao.service.statement_page import render_html
from yibao.service.statement_pdf import render_pdf
from yibao.settlement.request import FeeItemIn
from yibao.settlement.statement import compact_json
from yibao.store.models import AuditLog, Person

IdKey = Annotated[str | None, Header(alias="Idempotency-Key", min_length=1, max_length=100, pattern=r"^[\x21-\x7e]+$",
                                     description="幂等键(可见 ASCII 字符, 最多 100 个): 同一键重发返回第一次的结果")]
ID_PATTERN = r"^[A-Za-z0-9_\-]+$"  # ids this service issues and path segments: a subset of yibao.identifiers
ID_PATH = Path(min_length=1, max_length=40, pattern=ID_PATTERN)
CODE_PATTERN = r"^[0-9A-Za-z._+*/\-]+$"  # yibao.identifiers.Identifier, for query parameters


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RegisterIn(_In):
    fixmedins_code: Identifier = Field(min_length=1, max_length=40)
    psn_no: Identifier = Field(min_length=1, max_length=40)
    insutype: Insutype
    med_type: MedType = "11"
    begntime: datetime
    dise_codg: Identifier = Field("", max_length=40)
    ipt_otp_no: Identifier = Field("", max_length=40)
    referral_from_level: Identifier | None = Field(None, max_length=10)
    atddr_no: Identifier | None = Field(None, max_length=40, description="主治医生编码")


class FeeLineIn(FeeItemIn):
    fee_ocur_time: datetime | None = None
    med_chrgitm_type: ChrgitmType | None = None


class UploadIn(_In):
    items: list[FeeLineIn] = Field(min_length=1, max_length=5000)
    at: datetime | None = Field(None, description="上传时间(取政策包用); 默认现在")


class SettleIn(_In):
    medfee_sumamt: Decimal | None = Field(None, ge=0, le=Decimal("100000000"), decimal_places=2)
    acct_used: bool = False
    acct_mulaid_psn_no: Identifier | None = Field(None, min_length=1, max_length=40,
                                                  description="家庭共济: 支付本次个人负担的账户本人人员编号")
    setl_time: datetime | None = Field(None, description="结算时间(取政策包和累计年度); 默认现在")


class ReverseIn(_In):
    at: datetime | None = None


class CertnoIn(_In):
    certno: str = Field(min_length=18, max_length=18, pattern=r"^[0-9]{17}[0-9Xx]$", description="18 位身份证号")
    on: date | None = None


def json_response(text: str, status: int = 200) -> Response:
    return Response(text, status_code=status, media_type="application/json; charset=utf-8")


def router(desk: Desk, authenticate: Callable[[Request], Principal], guard: Guard | None = None) -> APIRouter:
    api = APIRouter(prefix="/api/v1", tags=["REST"])
    Caller = Annotated[Principal, Depends(authenticate)]

    def ctx(who: Principal, key: str | None, at: datetime | None) -> tx.Context:
        return tx.Context(request_id=key or "", opter=who.name, at=(at or datetime.now()).replace(tzinfo=None))

    def write(who: Principal, key: str | None, what: dict, fn, status: int = 200) -> Response:
        # an institution's key by its code (a retry under a rotated API key is the same request), staff by name
        owner = f"inst:{who.fixmedins_code}" if who.role == "institution" else f"user:{who.name}"
        scope = None if key is None else f"rest:{owner}:{key}"
        text, _ = desk.write(scope, request_hash(what), lambda s: compact_json(fn(s)))
        return json_response(text, status)

    @api.get("/health", summary="存活检查 / liveness")
    async def health() -> dict:  # on the event loop: never queued behind the threadpool's work (--threads)
        return {"status": "ok", "packs": [f"{p.id}@{p.version}" for p in desk.packs.packs]}

    @api.get("/persons/{psn_no}", summary="参保人信息(1101) / person, enrollments, categories")
    def get_person(who: Caller, psn_no: Annotated[str, ID_PATH], on: date | None = None) -> Response:
        return json_response(compact_json(desk.read(lambda s: tx.person_info(s, who, psn_no=psn_no, on=on or date.today()))))

    @api.post("/persons/lookup", summary="按证件号码查参保人(证件号不进 URL 与日志) / person by ID number")
    def lookup_person(who: Caller, body: CertnoIn) -> Response:
        return json_response(compact_json(desk.read(
            lambda s: tx.person_info(s, who, certno=body.certno, on=body.on or date.today()))))

    @api.post("/visits", status_code=201, summary="就诊登记(2201/2401) / register a visit")
    def register(who: Caller, body: RegisterIn, key: IdKey = None) -> Response:
        c = ctx(who, key, None)
        return write(who, key, {"op": "register", **body.model_dump(mode="json")},
                     lambda s: tx.register_visit(s, who, c, **body.model_dump()), 201)

    @api.get("/visits/{mdtrt_id}", summary="就诊及费用明细 / a visit with its fee items")
    def get_visit(who: Caller, mdtrt_id: Annotated[str, ID_PATH]) -> Response:
        return json_response(compact_json(desk.read(lambda s: tx.visit_record(s, who, mdtrt_id))))

    @api.post("/visits/{mdtrt_id}/fee-items", summary="上传费用明细(2204/2301) / upload fee items")
    def upload(who: Caller, mdtrt_id: Annotated[str, ID_PATH], body: UploadIn, key: IdKey = None) -> Response:
        c = ctx(who, key, body.at)
        return write(who, key, {"op": "upload", "mdtrt_id": mdtrt_id, **body.model_dump(mode="json")},
                     lambda s: tx.upload_items(s, who, c, desk.packs, mdtrt_id=mdtrt_id, items=body.items,
                                               limits=desk.limits))

    @api.post("/visits/{mdtrt_id}/presettle", summary="预结算(2206/2303), 不写入 / pre-settle, writes nothing")
    def presettle(who: Caller, mdtrt_id: Annotated[str, ID_PATH], body: SettleIn) -> Response:
        c = ctx(who, None, body.setl_time)
        return json_response(compact_json(desk.read(lambda s: tx.settle(
            s, who, c, desk.packs, mdtrt_id=mdtrt_id, medfee_sumamt=body.medfee_sumamt, acct_used=body.acct_used,
            write=False, limits=desk.limits, mulaid_psn_no=body.acct_mulaid_psn_no))))

    @api.post("/visits/{mdtrt_id}/settle", summary="结算(2207/2304) / settle")
    def settle(who: Caller, mdtrt_id: Annotated[str, ID_PATH], body: SettleIn, key: IdKey = None) -> Response:
        if guard is not None:  # per institution (staff: per user), 429 past the rate
            guard.settlement(who.fixmedins_code if who.role == "institution" else f"user:{who.name}")
        c = ctx(who, key, body.setl_time)
        return write(who, key, {"op": "settle", "mdtrt_id": mdtrt_id, **body.model_dump(mode="json")},
                     lambda s: tx.settle(s, who, c, desk.packs, mdtrt_id=mdtrt_id, medfee_sumamt=body.medfee_sumamt,
                                         acct_used=body.acct_used, limits=desk.limits,
                                         mulaid_psn_no=body.acct_mulaid_psn_no))

    @api.post("/settlements/{setl_id}/reverse", summary="撤销结算(2208/2305), 后结先撤 / reverse, latest first")
    def reverse(who: Caller, setl_id: Annotated[str, ID_PATH], body: ReverseIn | None = None,
                key: IdKey = None) -> Response:
        at = body.at if body else None
        c = ctx(who, key, at)
        return write(who, key, {"op": "reverse", "setl_id": setl_id},
                     lambda s: tx.reverse(s, who, c, setl_id=setl_id))

    @api.get("/settlements", summary="查询结算(新的在前, 分页) / search settlements, newest first")
    def list_settlements(
            who: Caller,
            psn_no: Annotated[str | None, Query(min_length=1, max_length=40, pattern=CODE_PATTERN, description="人员编号")] = None,
            fixmedins_code: Annotated[str | None, Query(min_length=1, max_length=40, pattern=CODE_PATTERN,
                                                        description="机构编码; 机构调用方默认且只能是本机构")] = None,
            mdtrt_id: Annotated[str | None, Query(min_length=1, max_length=40, pattern=CODE_PATTERN, description="就诊 ID")] = None,
            begndate: Annotated[date | None, Query(description="结算日期起(含)")] = None,
            enddate: Annotated[date | None, Query(description="结算日期止(含)")] = None,
            setl_stas: Annotated[Literal["valid", "reversed"] | None,
                                 Query(description="valid 有效 / reversed 已撤销")] = None,
            limit: Annotated[int, Query(ge=1, le=500, description="每页条数")] = 100,
            cursor: Annotated[str | None, Query(max_length=100, description="上一页的 next_cursor")] = None,
    ) -> Response:
        return json_response(compact_json(desk.read(lambda s: tx.settlement_list(
            s, who, psn_no=psn_no, fixmedins_code=fixmedins_code, mdtrt_id=mdtrt_id, begndate=begndate,
            enddate=enddate, status=setl_stas, limit=limit, cursor=cursor))))

    @api.get("/settlements/{setl_id}", summary="结算信息 / a settlement with its explanation")
    def get_settlement(who: Caller, setl_id: Annotated[str, ID_PATH]) -> Response:
        return json_response(compact_json(desk.read(lambda s: tx.settlement_record(s, who, setl_id)[1])))

    def statement_parts(who: Principal, setl_id: str) -> tuple[dict, dict, dict]:
        """The settlement, its person as ``who`` may see them (masked by role) and its institution."""
        def parts(s) -> tuple[dict, dict, dict]:
            row, record = tx.settlement_record(s, who, setl_id)
            p = s.get(Person, row.psn_no)
            certno, name = who.identity(p.certno, p.psn_name) if p else (None, None)
            inst = registry.institution(s, row.fixmedins_code)
            return (record, {"certno": certno, "psn_name": name},
                    {"fixmedins_code": inst.fixmedins_code, "fixmedins_name": inst.fixmedins_name})
        return desk.read(parts)

    @api.get("/settlements/{setl_id}/statement.html", response_class=HTMLResponse,
             summary="结算单(HTML, 可打印) / printable statement")
    def statement(who: Caller, setl_id: Annotated[str, ID_PATH]) -> HTMLResponse:
        return HTMLResponse(render_html(*statement_parts(who, setl_id)))

    @api.get("/settlements/{setl_id}/statement.pdf", response_class=Response,
             responses={200: {"content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}},
                              "description": "A4 PDF, 字体 STSong-Light(阅读器自带, 不嵌入)"}},
             summary="结算单(PDF, 存档) / statement as PDF, byte-identical on every fetch")
    def statement_pdf(who: Caller, setl_id: Annotated[str, ID_PATH]) -> Response:
        body = render_pdf(*statement_parts(who, setl_id))  # rendered outside the read transaction
        return Response(body, media_type="application/pdf",
                        headers={"Content-Disposition": f'inline; filename="statement-{setl_id}.pdf"'})

    @api.get("/totals", summary="对总账(3201) / totals of an institution's valid settlements")
    def totals(who: Caller, fixmedins_code: Annotated[str, Query(min_length=1, max_length=40, pattern=CODE_PATTERN)],
               begndate: date, enddate: date, insutype: Insutype | None = None) -> Response:
        return json_response(compact_json(desk.read(lambda s: tx.totals(
            s, who, fixmedins_code=fixmedins_code, begndate=begndate, enddate=enddate, insutype=insutype))))

    @api.get("/audit", summary="审计日志(只增不改) / append-only audit log")
    def audit_log(who: Caller, after_id: Annotated[int, Query(ge=0, le=2**62)] = 0,
                  limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> Response:
        who.require("audit.read")

        def rows(s):
            q = select(AuditLog).where(AuditLog.id > after_id).order_by(AuditLog.id).limit(limit)
            return [{"id": r.id, "at": r.at.isoformat(), "actor": r.actor, "role": r.role, "action": r.action,
                     "request_id": r.request_id, "entity": r.entity, "entity_id": r.entity_id, "detail": r.detail}
                    for r in s.scalars(q)]
        return json_response(compact_json(desk.read(rows)))

    return api
