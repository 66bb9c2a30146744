"""``yibao db upgrade``: Alembic with the migrations shipped inside the package, no alembic.ini needed."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from yibao.store import chain
from yibao.store.database import default_url, make_engine

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(url: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("version_locations", str(MIGRATIONS / "versions"))
    cfg.set_main_option("sqlalchemy.url", (url or default_url()).replace("%", "%%"))
    return cfg


def upgrade(url: str | None = None, target: str = "heads") -> None:
    """Bring the database to every head (the service's and other domains' branches)."""

    command.upgrade(alembic_config(url), target)
    chain.forget_lanes()  # a migration may have re-sealed rows this process's audit lanes end on


def current_heads(url: str | None = None) -> set[str]:
    from alembic.runtime.migration import MigrationContext

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return set(MigrationContext.configure(conn).get_current_heads())
    finally:
        engine.dispose()
