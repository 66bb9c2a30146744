"""The FastAPI application: both faces over one :class:`~yibao.service.desk.Desk`.

``create_app()`` reads its configuration from the environment (``YIBAO_DATABASE_URL`` or
``YIBAO_DATA_DIR``, ``YIBAO_PACKS``, ``YIBAO_API_KEYS_FILE`` / ``YIBAO_API_KEYS``, ``YIBAO_THREADS``), so
``uvicorn --factory yibao.service.app:create_app`` and ``yibao serve`` start the same thing.
Request bodies are bounded (``YIBAO_MAX_BODY_BYTES``, :mod:`yibao.service.body`); failed authentication
locks out, settlements are rate-limited per institution (:mod:`yibao.service.ratelimit`).
Every error becomes a platform answer (infcode -1) or a 4xx JSON problem; logs carry ids, never
ID numbers or names.
"""

from __future__ import annotations

import gc
import logging
import os
from contextlib import asynccontextmanager

from anyio import to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from yibao.enrolment import api as enrolment_api
from yibao.errors import Problem, YibaoError, format_loc, translate
from yibao.ltc import rest as ltc_rest
from yibao.handling import rest as handling_rest
from yibao.institutions import rest as institutions_rest
from yibao.service import platform, precheck, rest
from yibao.service.auth import KeyRing, Principal, key_hash
from yibao.service.body import BodyLimit, max_body_from_env
from yibao.service.desk import Desk
from yibao.service.errors import TooManyRequests, Unauthorized, status_of
from yibao.service.limits import Limits
from yibao.service.packs import PackSet
from yibao.service.ratelimit import Guard, GuardConfig
from yibao.service.transactions import fault_point
from yibao.store.database import make_engine
from yibao.web.app import install as install_web

log = logging.getLogger("yibao.service")


def problem_response(status: int, title: str, problems: list[Problem]) -> JSONResponse:
    return JSONResponse(
        {"type": "about:blank", "title": title, "status": status,
         "detail": "; ".join(str(p) for p in problems),
         "problems": [{"code": p.code, "path": p.path, "message": p.message} for p in problems]},
        status_code=status, media_type="application/problem+json")


def threads_from_env() -> int | None:
    """``YIBAO_THREADS``: how many requests one process runs at once in its threadpool (unset: anyio's 40)."""
    text = os.environ.get("YIBAO_THREADS", "").strip()
    if not text:
        return None
    if not text.isdigit() or not 1 <= int(text) <= 64:
        raise YibaoError(Problem("SRV003", "YIBAO_THREADS", f"应为 1 到 64 的整数, 实际为 {text!r}"))
    return int(text)


def create_app(url: str | None = None, packs: PackSet | None = None, keys: KeyRing | None = None,
               threads: int | None = None, max_body: int | None = None, limits: Limits | None = None,
               guard: Guard | None = None) -> FastAPI:
    """``threads``: requests run at once per process (default ``YIBAO_THREADS``, else anyio's 40). Every
    request's database work runs in a thread and holds the GIL between round trips; with many threads a
    thread back from PostgreSQL waits for the GIL behind the others, up to the 5 ms switch interval each
    time, so a settlement's dozen round trips stretch and the process burns CPU switching. ``yibao serve``
    passes 1 and gets concurrency from processes instead (docs/service.md has the measurements)."""
    threads = threads or threads_from_env()
    max_body = max_body or max_body_from_env()
    # one connection per request in flight: requests run in the threadpool (``threads``, else 40 per worker), and
    # a load of N concurrent clients puts about N / workers on each; 10 kept + 20 overflow covers 16 on 1 worker
    engine = make_engine(url, pool_size=10, max_overflow=20)
    desk = Desk(engine, packs or PackSet.load(), limits)
    ring = keys if keys is not None else KeyRing.from_env()
    if not len(ring):
        log.warning("no API keys configured (YIBAO_API_KEYS_FILE / YIBAO_API_KEYS): every call will be refused")

    guard = guard or Guard(GuardConfig.from_env())

    def authenticate(request: Request) -> Principal:
        """The caller, from the headers alone; refused (429) while its address or key is locked out."""
        header = request.headers.get("authorization", "")
        key = header[7:].strip() if header.lower().startswith("bearer ") else request.headers.get("x-api-key")
        address = request.client.host if request.client else "-"
        key_id = key_hash(key)[:16] if key else None  # never the key itself
        guard.refuse_locked(address, key_id)
        try:
            return ring.authenticate(key)
        except Unauthorized:
            guard.failed(address, key_id)
            raise

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        fault_point("app:start")
        if threads:
            to_thread.current_default_thread_limiter().total_tokens = threads
        precheck.warm()
        # everything loaded so far (packs, rules, libraries) lives as long as the process: moving it out of the
        # collector's reach spares each worker full collections that otherwise stall every request in flight
        gc.collect()
        gc.freeze()
        yield

    app = FastAPI(
        lifespan=lifespan,
        title="yibao 医保结算服务 / settlement service",
        version="1",
        description="国家医保平台形态的交易接口(/fsi/api/rsfComIfsService/callService)与 REST 接口(/api/v1)。"
                    " 认证: Authorization: Bearer <API 密钥> 或 X-API-Key。",
    )
    app.state.desk = desk
    app.include_router(platform.router(desk, authenticate, max_body, guard))
    app.include_router(rest.router(desk, authenticate, guard))
    app.include_router(ltc_rest.router(desk, authenticate))  # 长期护理保险
    app.include_router(enrolment_api.router(desk, authenticate))  # 参保与筹资
    app.include_router(handling_rest.router(desk, authenticate))  # 经办
    app.include_router(institutions_rest.router(desk, authenticate))  # 两定机构
    install_web(app, desk)  # the web front door (/web): same desk, roles and audit log

    @app.exception_handler(YibaoError)
    async def _yibao(_request: Request, exc: YibaoError):
        response = problem_response(status_of(exc), exc.title, exc.problems)
        if isinstance(exc, TooManyRequests):
            response.headers["Retry-After"] = str(exc.retry_after)
        return response

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError):
        problems = [Problem("REQ010", "body" if e.get("type") == "json_invalid" else format_loc(e.get("loc", ())),
                            translate(e)) for e in exc.errors()]
        return problem_response(422, "请求有误", problems)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException):
        message = {400: "请求体无法解析(不是合法的 JSON, 或嵌套过深)", 404: "没有这个地址",
                   405: "该地址不支持此方法"}.get(exc.status_code, str(exc.detail))
        return problem_response(exc.status_code, "请求有误", [Problem(f"HTTP{exc.status_code}", "", message)])

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception):  # a bug: say so without a stack trace
        log.exception("unexpected error")
        return problem_response(500, "内部错误", [Problem("SVC500", "", "服务内部错误, 已记录日志; 请联系运维")])

    # outermost: a body past the bound is refused before any of it reaches the app (the platform face bounds
    # its own body after checking the key)
    app.add_middleware(BodyLimit, limit=max_body, own=frozenset({platform.PATH}))
    return app
