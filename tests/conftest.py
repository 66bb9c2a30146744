"""Hypothesis runs derandomized and without an example database, so CI is deterministic.

Set HYPOTHESIS_PROFILE=dev for random exploration (still no deadline: packs are compiled per example);
``make test-fast`` uses the ``fast`` profile: at most 10 examples for every property test, including those
that ask for more with their own ``@settings`` (CI runs their full counts).

Safe under pytest-xdist (``make test-fast`` runs a worker per core): each worker has its own store-keys file, its own
throwaway PostgreSQL and Spark session (session fixtures are per worker), and reports the personal data its
log records carry to the controller, which fails the run.
"""

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings

# The store keys (chain key, 证件号 keys; yibao.store.keys) of this test run: one throwaway file, made by the
# first migration and removed at the end, never the developer's own yibao-data/store-keys.json.
# Under xdist a worker inherits the controller's environment, so each worker sets its own file (two workers
# creating one keys file would race).
_KEYS_DIR = Path(tempfile.mkdtemp(prefix="yibao-test-keys-"))
if os.environ.get("PYTEST_XDIST_WORKER") or "YIBAO_STORE_KEYS_FILE" not in os.environ:
    os.environ["YIBAO_STORE_KEYS_FILE"] = str(_KEYS_DIR / "store-keys.json")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # an xdist worker starts with COLUMNS=80 in its environment; the commands' rich console would fix its width
    # at 80 when imported, and tests that widen it for one call (CliRunner's env={"COLUMNS": ...}) would wrap
    os.environ.pop("COLUMNS", None)
    os.environ.pop("LINES", None)

settings.register_profile("ci", derandomize=True, database=None, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None)
settings.register_profile("fast", derandomize=True, database=None, deadline=None, max_examples=10)  # make test-fast
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
FAST = os.environ.get("HYPOTHESIS_PROFILE") == "fast"


def sized(visits: int) -> int:
    """A differential test's region: a fifth of it in the fast lane (the same code paths, fewer visits), all of it
    in ``make test``."""
    return visits // 5 if FAST else visits


def _capped(given: settings) -> settings:
    """The fast profile's example count as a ceiling on a test's own settings (never raised)."""
    return settings(given, max_examples=min(given.max_examples, settings.default.max_examples))


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


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory):
    """The store migrated once on SQLite; each test gets a copy of the file."""
    from yibao.store.migrate import upgrade

    sqlite_path = tmp_path_factory.mktemp("store") / "template.db"
    upgrade(f"sqlite:///{sqlite_path}")
    return sqlite_path


@pytest.fixture(scope="session")
def _pg_template(pg_url):
    """The store migrated once on PostgreSQL, as a TEMPLATE database each test copies."""
    from sqlalchemy import create_engine, text

    from yibao.store.migrate import upgrade

    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text("DROP DATABASE IF EXISTS yibao_template"))
        conn.execute(text("CREATE DATABASE yibao_template"))
    upgrade(pg_url.rsplit("/", 1)[0] + "/yibao_template")
    yield admin
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request, tmp_path):
    """A freshly migrated, empty store on each backend (PostgreSQL only started when asked for)."""
    import shutil
    import uuid

    from sqlalchemy import text

    if request.param == "sqlite":
        path = tmp_path / "yibao.db"
        shutil.copy(request.getfixturevalue("_sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    pg_url = request.getfixturevalue("pg_url")
    admin = request.getfixturevalue("_pg_template")
    name = "t_" + uuid.uuid4().hex[:12]
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name} TEMPLATE yibao_template"))
    yield pg_url.rsplit("/", 1)[0] + "/" + name
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE {name} WITH (FORCE)"))


# Cases marked ``slow`` here, in one table, rather than in their files (most are files other issues are changing):
# each takes a second or more, and what it checks the fast lane still checks on a smaller input in the test named
# beside it. CI runs them.
_SHIPPED = "tests/test_batch.py::test_duckdb_matches_scalar_on_shipped_packs[shandong-2024-{}]"
_CHANGES = "tests/test_kernel.py::test_kernel_equals_scalar_when_persons_change_within_the_year[{}]"
SLOW_CASES = {
    _SHIPPED.format("offsite"): "test_batch_offsite.py, test_offsite.py",
    _SHIPPED.format("dbz"): "test_fixed_standard.py::test_batch_equals_scalar_with_the_institutions_part",
    _SHIPPED.format("age"): "test_age_points.py::test_batch_pays_by_age_and_refuses_an_unknown_age",
    _SHIPPED.format("implant"): "test_coshare_exempt.py::test_claims_path_equals_scalar",
    _SHIPPED.format("groups"): "test_population_groups.py::test_batch_equals_scalar_across_groups",
    _SHIPPED.format("retiree"): "test_retiree_share.py::test_kernel_denominator_holds_the_factor_and_agrees",
    _CHANGES.format("jishou-2022"): "the same test on shandong-2024; batch = scalar on this pack in test_batch.py",
    _CHANGES.format("sichuan-county-2020"): "the same as jishou-2022",
    "tests/test_bench_serve_client.py::test_paced_run_keeps_to_its_schedule[aiohttp]": "the same test with httpx",
}


def pytest_collection_modifyitems(config, items):
    """Lanes: tests that need PostgreSQL or Spark are marked by the fixtures they use.

    ``make test`` runs everything (CI); ``make test-fast`` leaves out ``postgres``, ``spark``, ``browser`` and
    ``slow`` for a short lane while editing.
    """
    # a case renamed away would silently rejoin the fast lane: when its test runs with its other cases, say so
    cases: dict[str, set[str]] = {}
    for item in items:
        cases.setdefault(item.nodeid.split("[")[0], set()).add(item.nodeid)
    gone = sorted(n for n in SLOW_CASES if len(cases.get(n.split("[")[0], ())) > 1 and n not in cases[n.split("[")[0]])
    if gone:
        raise pytest.UsageError("tests/conftest.py SLOW_CASES names cases that no longer exist: " + ", ".join(gone))
    for item in items:
        if item.nodeid in SLOW_CASES:
            item.add_marker(pytest.mark.slow)
        if FAST:
            test = getattr(item, "obj", None)
            # a @given test keeps its settings on the wrapper hypothesis runs (read when the test runs); a
            # rule-based state machine on its ``TestCase`` class
            if isinstance(getattr(test, "_hypothesis_internal_use_settings", None), settings):
                test._hypothesis_internal_use_settings = _capped(test._hypothesis_internal_use_settings)
            machine = getattr(item, "cls", None)
            if isinstance(getattr(machine, "settings", None), settings):
                machine.settings = _capped(machine.settings)
        names = set(getattr(item, "fixturenames", ()))
        if "pg_url" in names:
            item.add_marker(pytest.mark.postgres)
        if "spark" in names:
            item.add_marker(pytest.mark.spark)
        if "browser" in names or "page" in names:
            item.add_marker(pytest.mark.browser)


def pytest_unconfigure(config):
    shutil.rmtree(_KEYS_DIR, ignore_errors=True)


# --- personal data never in the logs of the whole run -------------------------------------------------
# Every log record that reaches the root logger during the run is kept (after yibao.privacy scrubbed it), and
# every 证件号 and name a Person was made with is remembered; at the end none of them may appear in any record.

import logging  # noqa: E402

from sqlalchemy import event  # noqa: E402

from yibao.store.models import Person  # noqa: E402

_IDENTITIES: set[str] = set()
_LOGGED: list[str] = []


class _KeepAll(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            _LOGGED.append(logging.Formatter("%(name)s %(message)s").format(record))
        except Exception:  # noqa: BLE001 - an unformattable record carries nothing to check
            pass


@event.listens_for(Person, "init")
def _remember_identity(target, args, kwargs) -> None:
    for key in ("certno", "psn_name"):
        if kwargs.get(key):
            _IDENTITIES.add(str(kwargs[key]))


logging.getLogger().addHandler(_KeepAll(level=logging.DEBUG))


_WORKER_LEAKS: list[tuple[str, str]] = []


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """xdist's controller: a worker's leaks (its own exit status does not reach the run's)."""
    _WORKER_LEAKS.extend(tuple(x) for x in getattr(node, "workeroutput", {}).get("personal_data_leaks", ()))


def pytest_sessionfinish(session, exitstatus):
    leaks = sorted({(who, line) for line in _LOGGED for who in _IDENTITIES if who in line} | set(_WORKER_LEAKS))
    if leaks and hasattr(session.config, "workeroutput"):  # an xdist worker: the controller reports them
        session.config.workeroutput["personal_data_leaks"] = [list(x) for x in leaks[:10]]
    if leaks:
        print(f"\n个人信息出现在日志中 (personal data in {len(leaks)} log records):")
        for who, line in leaks[:10]:
            print(f"  {who[:1]}…: {line[:200]}")
        session.exitstatus = 1


@pytest.fixture
def sample_api(store_url):
    """A sample region (3 persons, 2 institutions) in a fresh store, the service on it, and
    ``call(principal, method, path, body)`` for its JSON API as one of the sample principals."""
    from fastapi.testclient import TestClient
    from sqlalchemy.orm import Session

    from yibao.service import sample
    from yibao.service.app import create_app
    from yibao.store.database import make_engine

    engine = make_engine(store_url)
    with Session(engine) as s, s.begin():
        sample.seed(s, 3)
    keys = sample.make_keys()
    app = create_app(store_url, keys=keys.ring)
    with TestClient(app) as client:
        def call(who: str, method: str, path: str, body=None):
            return client.request(method, path, json=body, headers={"X-API-Key": keys.keys[who]})
        yield call, engine
    app.state.desk.engine.dispose()
    engine.dispose()
