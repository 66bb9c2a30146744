"""Errors the service answers with: each a :class:`~yibao.errors.YibaoError` with an HTTP status.

The platform face turns any of them into ``infcode = -1`` with the Chinese message; the REST
face into a JSON problem body with this status. Nothing else reaches a client.
"""

from __future__ import annotations

from yibao.errors import Problem, YibaoError


class ServiceError(YibaoError):
    title = "业务办理失败"
    status = 422


class NotFound(ServiceError):
    title = "未找到"
    status = 404


class Conflict(ServiceError):
    title = "状态冲突"
    status = 409


class Unauthorized(ServiceError):
    title = "未认证"
    status = 401


class Forbidden(ServiceError):
    title = "无权限"
    status = 403


class TooManyRequests(ServiceError):
    """Too many failed authentications or settlements in the window: come back after ``retry_after`` seconds."""

    title = "请求过于频繁"
    status = 429

    def __init__(self, problems, retry_after: int):
        super().__init__(problems)
        self.retry_after = retry_after


def status_of(exc: YibaoError) -> int:
    return getattr(exc, "status", 422)


def problem(cls: type[ServiceError], code: str, path: str, message: str) -> ServiceError:
    return cls(Problem(code, path, message))
