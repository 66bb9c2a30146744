"""Where the store lives and how to connect: a URL, SQLite file in a data directory by default.

``YIBAO_DATABASE_URL`` (or the file named by ``YIBAO_DATABASE_URL_FILE``) selects the database
(``postgresql+psycopg://...`` in production);
otherwise the store is ``$YIBAO_DATA_DIR/yibao.db`` (default ``./yibao-data``). SQLite runs in
WAL mode with a busy timeout so readers never block the one writer and writers queue instead of
failing at once. Every SQLite transaction starts with ``BEGIN IMMEDIATE``: it takes the write lock
up front, so two read-then-write transactions serialise instead of one failing with "database is
locked" when it tries to upgrade its read lock (PostgreSQL uses row locks instead).

Personal data: engines hide bound parameters in error text (``hide_parameters``), log records are
scrubbed (:func:`yibao.privacy.install_log_scrubbing`), and a SQLite store is private to its owner:
its directory is made 0700 and the database file 0600 before SQLite first opens it (SQLite creates
its -wal and -shm files with the database file's mode; files of an older store are chmod-ed 0600).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import DBAPIError

from yibao.privacy import install_log_scrubbing


def default_url() -> str:
    url = os.environ.get("YIBAO_DATABASE_URL")
    if url:
        return url
    if os.environ.get("YIBAO_DATABASE_URL_FILE"):  # a file readable by the service only: no password in ps or env
        return Path(os.environ["YIBAO_DATABASE_URL_FILE"]).read_text(encoding="utf-8").strip()
    data_dir = Path(os.environ.get("YIBAO_DATA_DIR", "yibao-data"))
    return f"sqlite:///{data_dir / 'yibao.db'}"


PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL (None for memory databases)."""
    if "///" not in url:
        return None
    path = url.split("///", 1)[1].split("?", 1)[0]
    return None if not path or path == ":memory:" or path.startswith("file::memory:") else Path(path)


def private_sqlite_file(path: Path) -> None:
    """Create the database file 0600 (in a 0700 directory if new) before SQLite does, and tighten an older one."""
    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=PRIVATE_DIR, exist_ok=True)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE))
    for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal")):
        try:
            if name.stat().st_mode & 0o077:
                os.chmod(name, PRIVATE_FILE)
        except OSError:  # absent, or not ours to change
            pass


def make_engine(url: str | None = None, **kwargs) -> Engine:

    install_log_scrubbing()
    url = url or default_url()
    kwargs.setdefault("hide_parameters", True)  # error text never carries a certno or a name
    if url.startswith("sqlite"):
        path = sqlite_path(url)
        if path is not None:
            private_sqlite_file(path)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # pragma: no cover - exercised via every SQLite test
            dbapi_conn.isolation_level = None  # the driver must not BEGIN on its own; see _begin
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()
            if path is not None:
                private_sqlite_file(path)  # -wal/-shm left 0644 by an older version

        @event.listens_for(engine, "begin")
        def _begin(conn):  # pragma: no cover - exercised via every SQLite test
            # a long read (yibao db verify) takes a snapshot without the write lock: WAL readers never block writers
            conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(READ_SNAPSHOT) else "BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


READ_SNAPSHOT = "yibao_read_snapshot"


def read_snapshot(conn: Connection) -> Connection:
    """``conn`` reading one consistent snapshot of the whole store for as long as its transaction lasts, without
    holding up writers (PostgreSQL REPEATABLE READ; SQLite a deferred read transaction, not BEGIN IMMEDIATE)."""
    if conn.dialect.name == "postgresql":
        return conn.execution_options(isolation_level="REPEATABLE READ")
    return conn.execution_options(**{READ_SNAPSHOT: True})


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
