"""Alembic environment: the store's own tables plus any domain's tables on the same Base.

Several heads are expected (the service's history and, on its own branch, supervision's case
tables); ``yibao db upgrade`` runs ``upgrade heads``.
"""

from __future__ import annotations

import importlib
import importlib.util

from alembic import context
from sqlalchemy import pool

from yibao.store import models  # noqa: F401  (registers the tables on Base.metadata)
from yibao.store.base import Base
from yibao.store.database import make_engine

# Other domains' tables on the same Base, imported when present so autogenerate and checks see them.
for _module in ("yibao.supervision.cases", "yibao.ltc.store", "yibao.enrolment.models", "yibao.handling.models", "yibao.web.users", "yibao.web.monitoring", "yibao.web.packs", "yibao.institutions.models"):  # (yibao.store.models holds the trust branch's columns)
    if importlib.util.find_spec(_module.rsplit(".", 1)[0]) and importlib.util.find_spec(_module):
        importlib.import_module(_module)

target_metadata = Base.metadata


def run_migrations_offline() -> None:
    context.configure(url=context.config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata,
                      literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(context.config.get_main_option("sqlalchemy.url"), poolclass=pool.NullPool)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


def _run(connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True,
                      compare_type=True)
    # SQLite rebuilds a table to change it (batch mode): foreign keys must be off while a referenced table is
    # copied and swapped (SQLite's own procedure), set outside the transaction, checked before it commits
    sqlite = connection.dialect.name == "sqlite" and not connection.in_transaction()
    if sqlite:
        connection.connection.dbapi_connection.execute("PRAGMA foreign_keys=OFF")
    try:
        with context.begin_transaction():
            context.run_migrations()
            if sqlite:
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise RuntimeError(f"foreign keys broken by the migration: {broken[:5]}")
    finally:
        if sqlite:
            connection.connection.dbapi_connection.execute("PRAGMA foreign_keys=ON")


if hasattr(context, "config"):  # run by Alembic (importing this file elsewhere, e.g. doctest collection, does nothing)
    if context.is_offline_mode():
        run_migrations_offline()
    else:
        run_migrations_online()
