"""The national-platform face: ``POST /fsi/api/rsfComIfsService/callService`` keyed by ``infno``.

Request: the platform envelope (infno, msgid, mdtrtarea_admvs, insuplc_admdvs, recer_sys_code,
opter, fixmedins_code, inf_time, input). Answer: (infcode, err_msg, inf_refmsgid, output) with
HTTP 200, as the platform does: infcode 0 on success, -1 with a Chinese err_msg naming the
field otherwise. A HIS written against the platform needs only the URL changed. Writes
(2201/2401, 2204/2301, 2207/2304, 2208/2305) are idempotent by msgid; 1101, 2206/2303 and 3201
write nothing. The transaction time ``inf_time`` is the settlement time: it picks the pack.
"""

from __future__ import annotations

import json
import logging
import math
import time
import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Callable

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from yibao.errors import Problem, YibaoError, pydantic_problems
from yibao.identifiers import ChrgitmType, Identifier, Text, text_problem
from yibao.policy.model import Admdvs, Insutype, MedType, Yuan
from yibao.service import transactions as tx
from yibao.service.auth import Principal
from yibao.service.desk import Desk, request_hash
from yibao.service.body import DEFAULT_MAX_BODY, TooLarge, read_limited
from yibao.service.errors import ServiceError, TooManyRequests
from yibao.service.ratelimit import Guard
from yibao.settlement.request import FeeItemIn
from yibao.settlement.statement import compact_json

log = logging.getLogger("yibao.service")
PATH = "/fsi/api/rsfComIfsService/callService"


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Envelope(_Loose):
    infno: str = Field(pattern=r"^[0-9]{4}$", description="交易编号")
    msgid: Identifier = Field(min_length=1, max_length=64, description="发送方报文 ID")
    mdtrtarea_admvs: Admdvs = Field(description="就医地医保区划")
    insuplc_admdvs: Admdvs = Field(description="参保地医保区划")
    recer_sys_code: Identifier = Field(min_length=1, max_length=20, description="接收方系统代码")
    opter: Identifier = Field(min_length=1, max_length=40, description="经办人")
    opter_name: Text = Field("", max_length=60)
    fixmedins_code: Identifier = Field(min_length=1, max_length=40, description="定点医药机构编号")
    fixmedins_name: Text = Field("", max_length=120)
    infver: Identifier = Field("V1.0", max_length=10)
    inf_time: datetime = Field(description="交易时间")
    input: dict = Field(description="交易输入")


class PersonQuery(_Loose):
    mdtrt_cert_type: Identifier = Field("02", max_length=3)
    mdtrt_cert_no: Identifier | None = Field(None, max_length=50)
    certno: Identifier | None = Field(None, max_length=50)
    psn_no: Identifier | None = Field(None, max_length=40)


class Register(_Loose):
    psn_no: Identifier = Field(min_length=1, max_length=40)
    insutype: Insutype
    begntime: datetime
    med_type: MedType = "11"
    ipt_otp_no: Identifier = Field("", max_length=40)
    dise_codg: Identifier = Field("", max_length=40)
    referral_from_level: Identifier | None = Field(None, max_length=10)
    atddr_no: Identifier | None = Field(None, max_length=40, description="主治医生编码")


class Admission(Register):
    med_type: MedType = "21"
    ipt_no: Identifier = Field("", max_length=40)
    dscg_maindiag_code: Identifier = Field("", max_length=40)


class Diagnosis(_Loose):
    diag_code: Identifier = Field(min_length=1, max_length=40)
    maindiag_flag: str = Field("0", pattern="^[01]$")


class FeeLine(FeeItemIn):
    model_config = ConfigDict(extra="ignore")
    mdtrt_id: Identifier = Field(min_length=1, max_length=40)
    psn_no: Identifier | None = Field(None, max_length=40)
    fee_ocur_time: datetime | None = None
    med_chrgitm_type: ChrgitmType | None = None


class FeeUpload(_Loose):
    feedetail: list[FeeLine] = Field(min_length=1, max_length=5000)


class SettleData(_Loose):
    psn_no: Identifier = Field(min_length=1, max_length=40)
    mdtrt_id: Identifier = Field(min_length=1, max_length=40)
    medfee_sumamt: Decimal | None = Field(None, ge=0, le=Decimal("100000000"), decimal_places=2)
    acct_used_flag: str = Field("0", pattern="^[01]$")
    insutype: Insutype | None = None
    acct_mulaid_psn_no: Identifier | None = Field(None, min_length=1, max_length=40,
                                                  description="家庭共济: 支付本次个人负担的账户本人人员编号")


class ReverseData(_Loose):
    psn_no: Identifier = Field(min_length=1, max_length=40)
    mdtrt_id: Identifier = Field(min_length=1, max_length=40)
    setl_id: Identifier = Field(min_length=1, max_length=40)


class TotalsData(_Loose):
    insutype: Insutype | None = None
    clr_type: Identifier = Field("11", max_length=6)
    setl_optins: Identifier = Field("", max_length=6)
    stmt_begndate: date
    stmt_enddate: date
    medfee_sumamt: Yuan  # finite, two decimals, under 10 万亿: a declared 1e30 is refused, not compared
    fund_pay_sumamt: Yuan
    acct_pay: Yuan
    acct_mulaid_pay: Yuan | None = None  # 家庭共济账户支付: compared when the institution declares it
    fixmedins_setl_cnt: int = Field(ge=0, le=10**12)


def _data(env: Envelope, model: type[BaseModel], key: str | None = "data") -> Any:
    """``input.<key>`` (or the whole ``input`` when key is None) checked against ``model``."""
    raw = env.input if key is None else env.input.get(key)
    try:
        return model.model_validate(raw if raw is not None else {})
    except ValidationError as exc:
        raise ServiceError(pydantic_problems(exc, "FSI020", "input" if key is None else f"input.{key}")) from None


def _ctx(env: Envelope) -> tx.Context:
    return tx.Context(request_id=env.msgid, opter=env.opter, at=env.inf_time.replace(tzinfo=None))


def h1101(desk: Desk, who: Principal, env: Envelope) -> dict:
    q = _data(env, PersonQuery)
    return desk.read(lambda s: tx.person_info(s, who, certno=q.certno or q.mdtrt_cert_no, psn_no=q.psn_no,
                                              on=env.inf_time.date()))


def h2201(s, who: Principal, env: Envelope, desk: Desk) -> dict:
    d = _data(env, Register)
    return {"data": tx.register_visit(s, who, _ctx(env), fixmedins_code=env.fixmedins_code, psn_no=d.psn_no,
                                      insutype=d.insutype, med_type=d.med_type, begntime=d.begntime,
                                      dise_codg=d.dise_codg, ipt_otp_no=d.ipt_otp_no,
                                      referral_from_level=d.referral_from_level,
                                      insuplc_admdvs=env.insuplc_admdvs, atddr_no=d.atddr_no)}


def h2401(s, who: Principal, env: Envelope, desk: Desk) -> dict:
    d = _data(env, Admission, "mdtrtinfo")
    raw_diag = env.input.get("diseinfo") or []
    try:
        diags = [Diagnosis.model_validate(x) for x in raw_diag] if isinstance(raw_diag, list) else None
    except ValidationError as exc:
        raise ServiceError(pydantic_problems(exc, "FSI020", "input.diseinfo")) from None
    if diags is None:
        raise ServiceError(Problem("FSI020", "input.diseinfo", "必须是列表"))
    main = next((x.diag_code for x in diags if x.maindiag_flag == "1"), d.dscg_maindiag_code or d.dise_codg)
    out = tx.register_visit(s, who, _ctx(env), fixmedins_code=env.fixmedins_code, psn_no=d.psn_no,
                            insutype=d.insutype, med_type=d.med_type, begntime=d.begntime, dise_codg=main,
                            ipt_otp_no=d.ipt_no, referral_from_level=d.referral_from_level,
                            insuplc_admdvs=env.insuplc_admdvs, atddr_no=d.atddr_no)
    return {"result": {**out, "ipt_no": out.pop("ipt_otp_no")}}


def h2204(s, who: Principal, env: Envelope, desk: Desk) -> dict:
    lines = _data(env, FeeUpload, None).feedetail
    ids = {line.mdtrt_id for line in lines}
    if len(ids) != 1:
        raise ServiceError(Problem("FSI021", "input.feedetail.mdtrt_id", f"一次上传只能属于一个就诊, 实际含 {sorted(ids)}"))
    psns = {line.psn_no for line in lines if line.psn_no}
    if len(psns) > 1:
        raise ServiceError(Problem("FSI021", "input.feedetail.psn_no", "一次上传只能属于一个参保人"))
    return tx.upload_items(s, who, _ctx(env), desk.packs, mdtrt_id=ids.pop(), items=lines,
                           psn_no=next(iter(psns), None), limits=desk.limits)


def _settle(write: bool) -> Callable:
    def handler(s, who: Principal, env: Envelope, desk: Desk) -> dict:
        d = _data(env, SettleData)
        return tx.settle(s, who, _ctx(env), desk.packs, mdtrt_id=d.mdtrt_id, psn_no=d.psn_no,
                         medfee_sumamt=d.medfee_sumamt, acct_used=d.acct_used_flag == "1", write=write,
                         limits=desk.limits, mulaid_psn_no=d.acct_mulaid_psn_no)
    return handler


def h2208(s, who: Principal, env: Envelope, desk: Desk) -> dict:
    d = _data(env, ReverseData)
    return tx.reverse(s, who, _ctx(env), setl_id=d.setl_id, mdtrt_id=d.mdtrt_id, psn_no=d.psn_no)


def h3201(desk: Desk, who: Principal, env: Envelope) -> dict:
    d = _data(env, TotalsData)
    declared = {"medfee_sumamt": d.medfee_sumamt, "fund_pay_sumamt": d.fund_pay_sumamt, "acct_pay": d.acct_pay,
                "acct_mulaid_pay": d.acct_mulaid_pay, "fixmedins_setl_cnt": d.fixmedins_setl_cnt}
    out = desk.read(lambda s: tx.totals(s, who, fixmedins_code=env.fixmedins_code, begndate=d.stmt_begndate,
                                        enddate=d.stmt_enddate, insutype=d.insutype, declared=declared))
    return {"stmtinfo": {"setl_optins": d.setl_optins or env.insuplc_admdvs, "stmt_rslt": out["stmt_rslt"],
                         "stmt_rslt_dscr": out["stmt_rslt_dscr"], **out["totals"]}}


# infno → (writes?, handler). Reads take (desk, who, env); writes (session, who, env, desk).
WRITES: dict[str, Callable] = {"2201": h2201, "2401": h2401, "2204": h2204, "2301": h2204,
                               "2207": _settle(True), "2304": _settle(True), "2208": h2208, "2305": h2208}
READS: dict[str, Callable] = {"1101": h1101, "3201": h3201,
                              "2206": lambda desk, who, env: desk.read(lambda s: _settle(False)(s, who, env, desk)),
                              "2303": lambda desk, who, env: desk.read(lambda s: _settle(False)(s, who, env, desk))}
INFNOS = sorted(WRITES.keys() | READS.keys())


def answer(infcode: int, output: Any, err_msg: str | None) -> dict:
    now = datetime.now().strftime("%Y%m%d%H%M%S")
    return {"infcode": infcode, "inf_refmsgid": f"YB{now}{uuid.uuid4().hex[:12]}", "refmsg_time": now,
            "respond_time": now, "err_msg": err_msg, "warn_msg": None, "output": output}


def failure(problems: list[Problem]) -> dict:
    return answer(-1, {}, "; ".join(str(p) for p in problems))


def router(desk: Desk, authenticate: Callable[[Request], Principal], max_body: int = DEFAULT_MAX_BODY,
           guard: Guard | None = None) -> APIRouter:
    api = APIRouter(tags=["国家平台接口 national platform"])

    @api.post(PATH, summary="国家医保平台交易(按 infno 分发) / platform transaction keyed by infno",
              response_description="infcode / err_msg / inf_refmsgid / output",
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/json": {"schema": Envelope.model_json_schema()}}}})
    async def call_service(request: Request) -> Response:
        started = time.perf_counter()
        try:  # the key first, from the headers: a caller without one costs no reading and no parsing
            who = authenticate(request)
            body = await read_limited(request, max_body)
            text, env = await run_in_threadpool(_handle, desk, who, body, guard)
        except TooManyRequests as exc:  # not a business answer: the caller must wait (HTTP 429, Retry-After)
            return Response(compact_json(failure(exc.problems)), status_code=429,
                            headers={"Retry-After": str(exc.retry_after)}, media_type="application/json; charset=utf-8")
        except YibaoError as exc:
            text, env = compact_json(failure(exc.problems)), None
        except TooLarge:
            text, env = compact_json(failure([Problem("FSI006", "", f"报文超过 {max_body} 字节的上限")])), None
        if env is not None:
            log.info("fsi infno=%s msgid=%s fixmedins=%s ms=%.1f", env.infno, env.msgid, env.fixmedins_code,
                     (time.perf_counter() - started) * 1000)
        return Response(text, media_type="application/json; charset=utf-8")

    return api


MAX_DEPTH = 12  # the deepest real envelope (input.feedetail[i].field) is 4


def hostile(data: Any) -> Problem | None:
    """The first string (key or value) holding a character no field accepts (NUL, bidi override, zero-width,
    lone surrogate, ...: :func:`yibao.identifiers.text_problem`), a number beyond 18 digits either side of the
    point, NaN or infinity (FSI007), or nesting deeper than :data:`MAX_DEPTH`,
    anywhere in the envelope, ignored fields included: such a string would otherwise reach the request hash
    (a surrogate cannot be encoded), the store (PostgreSQL refuses NUL) or a log."""
    stack: list[tuple[Any, str, int]] = [(data, "", 0)]
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, dict):
            if depth >= MAX_DEPTH:
                return Problem("FSI005", path, f"嵌套超过 {MAX_DEPTH} 层")
            for key, item in value.items():
                where = f"{path}.{key}" if path else str(key)
                if isinstance(key, str) and (why := text_problem(key)):
                    return Problem("FSI004", path or "报文", f"字段名{why}")
                stack.append((item, where, depth + 1))
        elif isinstance(value, list):
            if depth >= MAX_DEPTH:
                return Problem("FSI005", path, f"嵌套超过 {MAX_DEPTH} 层")
            stack.extend((item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value))
        elif isinstance(value, str) and (why := text_problem(value)):
            return Problem("FSI004", path, why)
        elif isinstance(value, (Decimal, float, int)) and not isinstance(value, bool) and not _plausible_number(value):
            return Problem("FSI007", path, f"数值 {value} 超出范围(绝对值须在 1e-18 到 1e18 之间, 且为有限数)")
    return None


def _plausible_number(value: Decimal | float | int) -> bool:
    """No field holds more than 18 digits either side of the point; beyond that a number is refused before any
    model sees it (turning ``1E+9999999`` into an ``int`` alone costs seconds of CPU)."""
    if isinstance(value, int):
        return -10**18 <= value <= 10**18
    if isinstance(value, float):
        return math.isfinite(value) and (value == 0 or 1e-18 <= abs(value) <= 1e18)
    return value.is_finite() and (value.is_zero() or -18 <= value.adjusted() <= 18)


SETTLES = {"2207", "2304"}


def _handle(desk: Desk, who: Principal, body: bytes, guard: Guard | None = None) -> tuple[str, Envelope | None]:
    """The answer text and the envelope (None when unreadable); :class:`TooManyRequests` past the settlement
    rate of the institution."""
    try:
        data = json.loads(body, parse_float=Decimal)
    except RecursionError:
        return compact_json(failure([Problem("FSI005", "", f"报文嵌套过深(最多 {MAX_DEPTH} 层)")])), None
    except (ValueError, UnicodeDecodeError):  # ValueError also: an integer of more than 4,300 digits
        return compact_json(failure([Problem("FSI001", "", "报文不是合法的 JSON")])), None
    if not isinstance(data, dict):
        return compact_json(failure([Problem("FSI001", "", "报文顶层必须是 JSON 对象")])), None
    bad = hostile(data)
    if bad is not None:
        return compact_json(failure([bad])), None
    try:
        env = Envelope.model_validate(data)
    except ValidationError as exc:
        return compact_json(failure(pydantic_problems(exc, "FSI002"))), None
    try:
        who.require_own(env.fixmedins_code)  # before any replay: an institution sees only its own answers
        if env.infno in READS:
            return compact_json(answer(0, READS[env.infno](desk, who, env), None)), env
        if env.infno not in WRITES:
            raise ServiceError(Problem("FSI003", "infno", f"不支持的交易编号 {env.infno}; 支持: {', '.join(INFNOS)}"))
        handler = WRITES[env.infno]
        if guard is not None and env.infno in SETTLES:
            guard.settlement(env.fixmedins_code)
        # institution + msgid, as the platform keys it: a retry under a rotated API key is still the same request
        scope = f"fsi:{env.fixmedins_code}:{env.msgid}"
        digest = request_hash({"infno": env.infno, "input": data.get("input"), "fixmedins_code": env.fixmedins_code,
                               "insuplc_admdvs": env.insuplc_admdvs, "mdtrtarea_admvs": env.mdtrtarea_admvs})
        text, _ = desk.write(scope, digest, lambda s: compact_json(answer(0, handler(s, who, env, desk), None)))
        return text, env
    except TooManyRequests:
        raise
    except YibaoError as exc:
        return compact_json(failure(exc.problems)), env
