"""Where the store lives and how to connect: a URL, SQLite file in a data directory by default.

``YIBAO_DATABASE_URL`` (or the file named by ``YIBAO_DATABASE_URL_FILE``) selects the database
(``postgresql+psycopg://...`` in production);
otherwise the store is ``$YIBAO_DATA_DIR/yibao.db`` (default ``./yibao-data``). SQLite runs in
WAL mode with a busy timeout so readers never block the one writer and writers queue instead of
failing at once. Every SQLite transaction starts with ``BEGIN IMMEDIATE``: it takes the write lock
up front, so two read-then-write transactions serialise instead of one failing with "database is
locked" when it tries to upgrade its read lock (PostgreSQL uses row locks instead).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from collections.abc import Iterator

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import DBAPIError


def default_url() -> str:
    url = os.environ.get("YIBAO_DATABASE_URL")
    if url:
        return url
    if os.environ.get("YIBAO_DATABASE_URL_FILE"):  # a file readable by the service only: no password in ps or env
        return Path(os.environ["YIBAO_DATABASE_URL_FILE"]).read_text(encoding="utf-8").strip()
    data_dir = Path(os.environ.get("YIBAO_DATA_DIR", "yibao-data"))
    return f"sqlite:///{data_dir / 'yibao.db'}"


def make_engine(url: str | None = None, **kwargs) -> Engine:
    url = url or default_url()
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # pragma: no cover - exercised via every SQLite test
            dbapi_conn.isolation_level = None  # the driver must not BEGIN on its own; see _begin
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn):  # pragma: no cover - exercised via every SQLite test
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


@contextlib.contextmanager
def pipelined(conn: Connection) -> Iterator[None]:
    """A block of statements whose results nobody reads until its end, sent in one round trip (psycopg
    pipeline mode on PostgreSQL; nothing to gain on SQLite, which is in process). An error may surface only
    when the block ends: it is raised as SQLAlchemy's exception (IntegrityError, ...) like any other, still
    inside the caller's transaction, which then rolls back as a whole."""
    if conn.dialect.name != "postgresql" or conn.dialect.driver != "psycopg":
        yield
        return
    dbapi = conn.dialect.loaded_dbapi
    try:
        with conn.connection.dbapi_connection.pipeline():
            yield
    except dbapi.Error as exc:
        raise DBAPIError.instance(None, None, exc, dbapi.Error, dialect=conn.dialect) from exc
