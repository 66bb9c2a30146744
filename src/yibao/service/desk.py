"""One request, one transaction: the unit of work both faces use, with idempotent replay.

A write runs inside one transaction that first looks up and finally stores its answer under the request's scope key
(platform: fixmedins_code + msgid; REST: caller + Idempotency-Key) with a hash of the request.
Sending the same key again replays the stored answer byte for byte and changes nothing; the same
key with a different request is refused. A failed request stores nothing, so it may be corrected
and resent under the same key. Two identical requests racing: the loser's insert of the key fails,
it rolls back everything it did and replays the winner's answer.

The first lookup runs before any row lock. A duplicate that then waits on a lock the first request holds
(PostgreSQL: the person-year balance, the visit) would, once let through, see the first one's work and fail
(``SET050 已结算``) although its answer is stored by then; so every write that locks rows calls
:func:`recheck` right after taking them, which looks the key up again (a fresh statement: it sees what
committed while it waited) and replays the stored answer.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from datetime import datetime
from typing import Any, Callable, TypeVar

from sqlalchemy import Engine, bindparam, insert, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from yibao.service.errors import Conflict, problem
from yibao.service.limits import Limits
from yibao.service.packs import PackSet
from yibao.store.models import IdempotencyRecord

try:
    import fcntl
except ImportError:  # Windows: threads of one process only
    fcntl = None

T = TypeVar("T")
_RECORDS = IdempotencyRecord.__table__
_LOOKUP = select(_RECORDS.c.request_hash, _RECORDS.c.response).where(_RECORDS.c.scope_key == bindparam("k"))
_RECORD = insert(_RECORDS)
RETRY_SQLSTATES = {"40001", "40P01"}  # serialization failure, deadlock (PostgreSQL)


class _WriterLock:
    """This process's threads queue on a thread lock, and processes on an ``flock`` of a file beside
    the database: the kernel wakes the next waiter the moment the lock is released, where SQLite's
    busy handler would poll with sleeps. (Without ``fcntl`` only the thread lock.)"""

    def __init__(self, path: str | None):
        self._threads = threading.Lock()
        self._path = path
        self._fd: int | None = None

    def __enter__(self) -> None:
        self._threads.acquire()
        try:
            if self._path is not None and fcntl is not None:
                if self._fd is None:
                    self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
                fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self._threads.release()
            raise

    def __exit__(self, *exc) -> None:
        try:
            if self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._threads.release()

    def __del__(self) -> None:
        if self._fd is not None:
            os.close(self._fd)


def sqlite_writer_lock(engine: Engine) -> _WriterLock:
    database = engine.url.database
    in_file = bool(database) and database != ":memory:" and not database.startswith("file::memory:")
    return _WriterLock(database + "-writer.lock" if in_file else None)


def request_hash(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class Replay(Exception):
    """Raised inside a write when its scope key was answered meanwhile: the desk rolls back and replays."""

    def __init__(self, answer: str):
        super().__init__("replay")
        self.answer = answer


SCOPE_MAX = 200  # idempotency_records.scope_key
_SCOPE = "yibao.scope"  # session.info key: (scope_key, request_hash) of the write in progress


def recheck(session: Session) -> None:
    """After a write has taken its row locks: if another request with the same scope key committed while
    this one waited, stop here and answer as that one did (:class:`Replay`); a different request under the
    same key is refused (IDM001)."""
    scope = session.info.get(_SCOPE)
    if scope is not None:
        replay = Desk._stored(session, *scope)
        if replay is not None:
            raise Replay(replay)


class Desk:
    def __init__(self, engine: Engine, packs: PackSet, limits: Limits | None = None):
        self.engine = engine
        self.packs = packs
        self.limits = limits or Limits.load()  # plausibility limits (YIBAO_LIMITS), checked by the writes
        self.sessions = sessionmaker(engine, expire_on_commit=False)
        # SQLite has one writer: queue writers on a lock rather than in SQLite's busy handler, which
        # sleeps in growing steps (up to 100 ms a time) and makes latency jump
        self._writer = sqlite_writer_lock(engine) if engine.dialect.name == "sqlite" else contextlib.nullcontext()

    def read(self, fn: Callable[[Session], T]) -> T:
        with self.sessions() as session, session.begin():
            return fn(session)

    def write(self, scope_key: str | None, req_hash: str, fn: Callable[[Session], str]) -> tuple[str, bool]:
        """Run ``fn`` (which returns the answer text) once per scope key; (answer, replayed)."""
        if scope_key is not None and len(scope_key) > SCOPE_MAX:  # the column's width: a digest stands in
            scope_key = scope_key[:8] + "#" + hashlib.sha256(scope_key.encode("utf-8")).hexdigest()
        with self._writer:
            for attempt in range(3):
                try:
                    with self.sessions() as session, session.begin():
                        if scope_key is not None:
                            replay = self._stored(session, scope_key, req_hash)
                            if replay is not None:
                                return replay, True
                            session.info[_SCOPE] = (scope_key, req_hash)
                        answer = fn(session)
                        if scope_key is not None:
                            session.connection().execute(_RECORD, {"scope_key": scope_key, "request_hash": req_hash,
                                                                   "response": answer, "created_at": datetime.now()})
                    return answer, False
                except Replay as replay:  # rolled back on leaving the block above
                    return replay.answer, True
                except IntegrityError:
                    if scope_key is not None:  # an identical request committed first: answer as it did
                        with self.sessions() as session, session.begin():
                            replay = self._stored(session, scope_key, req_hash)
                        if replay is not None:
                            return replay, True
                    raise problem(Conflict, "DB001", "", "与同时进行的另一笔请求冲突(数据已存在), 请查询后再办理") from None
                except OperationalError as exc:
                    if getattr(exc.orig, "sqlstate", None) in RETRY_SQLSTATES and attempt < 2:
                        continue
                    raise
        raise AssertionError("unreachable")

    @staticmethod
    def _stored(session: Session, scope_key: str, req_hash: str) -> str | None:
        rec = session.execute(_LOOKUP, {"k": scope_key}).first()
        if rec is None:
            return None
        if rec.request_hash != req_hash:
            raise problem(Conflict, "IDM001", "msgid",
                          f"报文ID/幂等键 {scope_key.rsplit(':', 1)[-1]} 已用于另一笔不同的请求, 不能重复使用")
        return rec.response
