"""What a domain's commands need to work on the store: a session per command (one transaction when it writes,
a coded error printed and exit status 2 on a user error, the engine disposed) and the request context a
transaction records (who, when, an id)."""

from __future__ import annotations

import uuid
from contextlib import contextmanager
from datetime import datetime

from sqlalchemy.orm import Session

from yibao.console import fail
from yibao.errors import YibaoError
from yibao.service.auth import Principal
from yibao.service.transactions import Context
from yibao.store.database import default_url, make_engine


def command_context(who: Principal) -> Context:
    return Context(request_id="cli-" + uuid.uuid4().hex[:12], opter=who.name, at=datetime.now().replace(microsecond=0))


@contextmanager
def command_session(url: str | None, write: bool = True):
    engine = make_engine(url or default_url())
    try:
        with Session(engine) as s:
            try:
                if write:
                    with s.begin():
                        yield s
                else:
                    yield s
            except YibaoError as exc:
                fail(exc)
    finally:
        engine.dispose()
