"""How much of a request body the service will read: a bound set before anything is parsed.

``YIBAO_MAX_BODY_BYTES`` (``yibao serve --max-body-bytes``; default 4 MiB: a 2204 of 5,000 fee lines is about
1.3 MB). A body declared larger (``Content-Length``) is refused before one byte of it is read; a body sent
without a length is read until it passes the bound, then refused. REST answers ``413`` with a problem body
(``REQ413``); the platform face answers as the platform does, HTTP 200 with ``infcode = -1`` (``FSI006``),
and reads the body only after the caller's key was checked (see :mod:`yibao.service.platform`), so a caller
without a key costs no reading and no parsing at all.
"""

from __future__ import annotations

import json
import os

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from yibao.errors import Problem, YibaoError

DEFAULT_MAX_BODY = 4 * 1024 * 1024
ENV = "YIBAO_MAX_BODY_BYTES"


class TooLarge(Exception):
    """The body passed the bound."""


def max_body_from_env() -> int:
    text = os.environ.get(ENV, "").strip()
    if not text:
        return DEFAULT_MAX_BODY
    if not text.isdigit() or not 1024 <= int(text) <= 1 << 30:
        raise YibaoError(Problem("SRV004", ENV, f"应为 1024 到 1073741824 之间的字节数, 实际为 {text!r}"))
    return int(text)


def declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def read_limited(request: Request, limit: int) -> bytes:
    """The whole body, or :class:`TooLarge` as soon as it is known to pass ``limit`` bytes."""
    declared = declared_length(request.scope)
    if declared is not None and declared > limit:
        raise TooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def too_large_problem(limit: int) -> Problem:
    return Problem("REQ413", "body", f"请求体超过 {limit} 字节的上限(YIBAO_MAX_BODY_BYTES)")


class BodyLimit:
    """ASGI middleware: every request's body read whole, up to ``limit`` bytes, before the app sees it
    (FastAPI reads REST bodies whole anyway); past the bound a 413 problem answer. Paths in ``own`` read
    their body themselves (the platform face: after authentication) and are passed through untouched."""

    def __init__(self, app: ASGIApp, limit: int, own: frozenset[str] = frozenset()):
        self.app, self.limit, self.own = app, limit, own

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.own:
            await self.app(scope, receive, send)
            return
        declared = declared_length(scope)
        if declared is not None and declared > self.limit:
            await self._refuse(send)
            return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await self._refuse(send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body, sent = b"".join(chunks), False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, send: Send) -> None:
        p = too_large_problem(self.limit)
        payload = json.dumps({"type": "about:blank", "title": "请求体过大", "status": 413, "detail": str(p),
                              "problems": [{"code": p.code, "path": p.path, "message": p.message}]},
                             ensure_ascii=False).encode("utf-8")
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/problem+json"),
                                (b"content-length", str(len(payload)).encode()), (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": payload})
