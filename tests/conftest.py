"""Hypothesis runs derandomized and without an example database, so CI is deterministic.

Set HYPOTHESIS_PROFILE=dev for random exploration (still no deadline: packs are compiled per example).
"""

import os

import pytest
from hypothesis import settings

settings.register_profile("ci", derandomize=True, database=None, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session")
def pg_url():
    """A real PostgreSQL for store tests: ``YIBAO_TEST_PG_URL`` if set, else a throwaway cluster.

    No PostgreSQL installed is a test error (``.ci/run`` installs it), never a skip.
    """
    import os

    from yibao.store.throwaway import throwaway_postgres

    given = os.environ.get("YIBAO_TEST_PG_URL")
    if given:
        yield given
        return
    with throwaway_postgres() as url:
        yield url
