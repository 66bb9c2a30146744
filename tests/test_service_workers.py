"""``yibao serve --workers N``: a listening socket per process, so connections spread over the processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from yibao.service.auth import key_hash
from yibao.service.bench import child_pids, yibao_executable
from yibao.store.migrate import upgrade
from yibao.store.throwaway import free_port

ADMIN_K = f"t:admin=sha256:{key_hash('k')}"  # the key "k" for principal t, by hash (plaintext is refused)

pytestmark = [pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_REUSEPORT balancing is Linux's"),
              pytest.mark.slow]


def _workers(pid: int) -> list[int]:
    """The server's uvicorn processes (multiprocessing may add a helper that listens on nothing)."""
    return [c for c in child_pids(pid) if _listening(c)]


def _sockets(pid: int) -> set[str]:
    out = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            out.add(target[8:-1])
    return out


def _tcp(state: str, port: int) -> set[str]:
    """Socket inodes of loopback TCP sockets on ``port`` in ``state`` (0A listening, 01 established)."""
    out = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        f = line.split()
        if int(f[1].split(":")[1], 16) == port and f[3] == state:
            out.add(f[9])
    return out


PORT = [0]  # the port of the server under test


def _listening(pid: int) -> bool:
    try:
        return bool(_sockets(pid) & _tcp("0A", PORT[0]))
    except OSError:
        return False


def _wait_for(predicate, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("timed out")


def _healthy() -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{PORT[0]}/api/v1/health", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def test_connections_spread_over_workers_and_a_dead_worker_is_replaced(tmp_path):
    url = f"sqlite:///{tmp_path}/yibao.db"
    upgrade(url)
    PORT[0] = free_port()
    env = {**os.environ, "YIBAO_DATABASE_URL": url, "YIBAO_PACKS": "shandong-2024", "YIBAO_API_KEYS": ADMIN_K}
    exe = yibao_executable()
    server = subprocess.Popen([exe, "serve", "--port", str(PORT[0]), "--workers", "2"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_for(lambda: len(_workers(server.pid)) == 2 and _healthy())
        workers = _workers(server.pid)

        # 16 keep-alive connections, as a HIS pool or the load test opens them: every worker gets some
        conns = [socket.create_connection(("127.0.0.1", PORT[0])) for _ in range(16)]
        for c in conns:
            c.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert c.recv(4096).startswith(b"HTTP/1.1 200")
        established = _tcp("01", PORT[0])
        per_worker = {w: len(_sockets(w) & established) for w in workers}
        assert sum(per_worker.values()) == 16, per_worker
        assert all(n >= 1 for n in per_worker.values()), per_worker  # all 16 on one: p = 2^-15
        for c in conns:
            c.close()

        # a worker that dies is started again, and the port keeps answering
        os.kill(workers[0], signal.SIGKILL)
        _wait_for(lambda: len(_workers(server.pid)) == 2 and workers[0] not in _workers(server.pid))
        _wait_for(_healthy)

        # a second server on the same port is refused instead of joining the first one's group
        second = subprocess.run([exe, "serve", "--port", str(PORT[0]), "--workers", "2"], env=env,
                                capture_output=True, text=True, timeout=60)
        assert second.returncode == 2 and "SRV001" in second.stderr
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=40)
    assert server.returncode == 0
    assert not _healthy()


def test_a_worker_that_cannot_start_stops_the_server_with_a_coded_error(tmp_path):
    PORT[0] = free_port()
    env = {**os.environ, "YIBAO_DATABASE_URL": f"sqlite:///{tmp_path}/yibao.db", "YIBAO_PACKS": "shandong-2024",
           "YIBAO_API_KEYS": ADMIN_K, "YIBAO_FAULT": "app:start"}  # every worker exits while starting
    exe = yibao_executable()
    done = subprocess.run([exe, "serve", "--port", str(PORT[0]), "--workers", "2"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "SRV002" in done.stderr and "工作进程未能启动" in done.stderr
    assert not _healthy()


def test_an_unusable_database_url_is_refused_before_any_worker_starts():
    env = {**os.environ, "YIBAO_DATABASE_URL": "nosuchdb://nowhere/x", "YIBAO_PACKS": "shandong-2024",
           "YIBAO_API_KEYS": ADMIN_K}
    exe = yibao_executable()
    done = subprocess.run([exe, "serve", "--port", str(free_port()), "--workers", "2"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "DB002" in done.stderr and "Traceback" not in done.stderr


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _port_free(port: int) -> bool:
    from yibao.service.workers import listening_socket

    try:
        listening_socket("127.0.0.1", port, shared=False).close()
        return True
    except OSError:
        return False


def test_killing_the_supervisor_with_sigkill_takes_its_workers_down(tmp_path):
    """No clean-up runs in a SIGKILLed supervisor: its workers must still die and free the port, so a
    restart is not refused with SRV001 (before: orphans kept serving on the port)."""
    url = f"sqlite:///{tmp_path}/yibao.db"
    upgrade(url)
    PORT[0] = free_port()
    env = {**os.environ, "YIBAO_DATABASE_URL": url, "YIBAO_PACKS": "shandong-2024", "YIBAO_API_KEYS": ADMIN_K}
    server = subprocess.Popen([yibao_executable(), "serve", "--port", str(PORT[0]), "--workers", "2"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: list[int] = []
    try:
        _wait_for(lambda: len(_workers(server.pid)) == 2 and _healthy())
        workers = _workers(server.pid)
        server.kill()
        server.wait(timeout=10)
        _wait_for(lambda: not any(_alive(w) for w in workers), seconds=30)
        _wait_for(lambda: _port_free(PORT[0]), seconds=10)
        assert not _healthy()
    finally:
        for w in workers:  # a failed run must not leave them behind either
            if _alive(w):
                os.kill(w, signal.SIGKILL)
        if server.poll() is None:
            server.kill()
            server.wait(timeout=10)
