"""How server processes share the work: ``yibao serve --threads`` (requests one process runs at once)
and the SQLite writer lock that queues writers across processes.

The default of ``yibao serve`` is 1 thread (concurrency from processes, see docs/service.md); an app
built without it keeps anyio's threadpool, which the in-process concurrency tests rely on.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from yibao.errors import YibaoError
from yibao.service.app import create_app
from yibao.service.auth import KeyRing
from yibao.service.desk import sqlite_writer_lock
from yibao.store.database import make_engine


def peak_concurrency(tmp_path, monkeypatch, threads: int | None, env: str | None = None) -> int:
    if env is None:
        monkeypatch.delenv("YIBAO_THREADS", raising=False)
    else:
        monkeypatch.setenv("YIBAO_THREADS", env)
    app = create_app(f"sqlite:///{tmp_path}/t.db", keys=KeyRing([]), threads=threads)
    lock, running, peak = threading.Lock(), [0], [0]

    def slow() -> dict:  # a sync endpoint runs in the threadpool, as every transaction does
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.1)
        with lock:
            running[0] -= 1
        return {}

    app.add_api_route("/slow", slow)
    with TestClient(app) as client, ThreadPoolExecutor(4) as pool:
        assert all(r.status_code == 200 for r in pool.map(lambda _: client.get("/slow"), range(4)))
    app.state.desk.engine.dispose()
    return peak[0]


def test_one_thread_runs_requests_one_at_a_time(tmp_path, monkeypatch):
    assert peak_concurrency(tmp_path, monkeypatch, threads=1) == 1


def test_the_environment_sets_it_for_worker_processes(tmp_path, monkeypatch):
    assert peak_concurrency(tmp_path, monkeypatch, threads=None, env="2") == 2


def test_without_a_setting_the_threadpool_runs_them_together(tmp_path, monkeypatch):
    assert peak_concurrency(tmp_path, monkeypatch, threads=None) == 4


def test_liveness_answers_while_the_only_thread_is_busy(tmp_path, monkeypatch):
    monkeypatch.delenv("YIBAO_THREADS", raising=False)
    app = create_app(f"sqlite:///{tmp_path}/t.db", keys=KeyRing([]), threads=1)
    busy, release = threading.Event(), threading.Event()

    def slow() -> dict:
        busy.set()
        release.wait(10)  # holds the only thread until the health check has been answered
        return {}

    app.add_api_route("/slow", slow)
    with TestClient(app) as client, ThreadPoolExecutor(1) as pool:
        pending = pool.submit(client.get, "/slow")
        assert busy.wait(5)
        assert client.get("/api/v1/health").status_code == 200
        assert not pending.done()  # answered while /slow still held the thread: it did not queue behind it
        release.set()
        assert pending.result().status_code == 200
    app.state.desk.engine.dispose()


@pytest.mark.parametrize("bad", ["0", "abc", "65"])
def test_a_bad_setting_is_refused_with_its_name(tmp_path, monkeypatch, bad):
    monkeypatch.setenv("YIBAO_THREADS", bad)
    with pytest.raises(YibaoError) as exc:
        create_app(f"sqlite:///{tmp_path}/t.db", keys=KeyRing([]))
    assert exc.value.problems[0].code == "SRV003" and exc.value.problems[0].path == "YIBAO_THREADS"


def test_sqlite_writers_of_two_processes_queue_on_the_lock_file(tmp_path):
    """Two engines on one file stand for two server processes: each has its own descriptor of the
    lock file, so the second writer waits in the kernel until the first releases."""
    url = f"sqlite:///{tmp_path}/store.db"
    first, second = sqlite_writer_lock(make_engine(url)), sqlite_writer_lock(make_engine(url))
    assert (tmp_path / "store.db-writer.lock").exists() is False  # created on first use
    released, acquired = [], []
    held = threading.Event()

    def hold() -> None:
        with first:
            held.set()
            time.sleep(0.3)
            released.append(time.perf_counter())

    t = threading.Thread(target=hold)
    t.start()
    held.wait()
    with second:
        acquired.append(time.perf_counter())
    t.join()
    assert (tmp_path / "store.db-writer.lock").exists()
    assert acquired[0] >= released[0]  # waited for the release (how soon after is the bench's business)


def test_an_in_memory_sqlite_store_needs_no_lock_file():
    lock = sqlite_writer_lock(make_engine("sqlite://"))
    with lock:
        pass
    assert lock._path is None
