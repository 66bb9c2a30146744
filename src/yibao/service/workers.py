"""Several server processes on one port, each with its own listening socket (``SO_REUSEPORT``).

uvicorn's ``--workers`` shares one listening socket, and whichever idle process wakes first
accepts: a burst of keep-alive connections (a HIS opening its pool, a load test) can land
almost all on one process, which then runs on one core while the others idle (seen: 16 of 16
connections on one of two workers, half the throughput). With a socket per process the kernel
spreads new connections over the processes by a hash of the connection's addresses. Linux only;
elsewhere ``yibao serve`` falls back to uvicorn's own workers. Each worker dies with the supervisor
(``PR_SET_PDEATHSIG``), even when the supervisor is killed with SIGKILL.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from typing import Any

APP = "yibao.service.app:create_app"


class WorkerFailed(RuntimeError):
    pass


def available() -> bool:
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def listening_socket(host: str, port: int, shared: bool = True) -> socket.socket:
    """``shared=False`` binds without SO_REUSEPORT: it fails when anything already listens on the port
    (with it, a second server of the same user would silently join the first one's group)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if shared:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(parent: int) -> None:
    """Have the kernel send this process SIGTERM (uvicorn's graceful stop) when its parent dies, however it
    dies: a supervisor killed with SIGKILL runs no clean-up, and its workers would otherwise live on as
    orphans holding the port (a restart then fails with SRV001). If the parent is already gone (it died
    before this call), stop now."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")
    except (OSError, AttributeError):  # no prctl: watch the parent instead
        threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGTERM)


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1)
    os.kill(os.getpid(), signal.SIGTERM)


def _worker(host: str, port: int, options: dict[str, Any], ready, parent: int | None = None) -> None:
    import uvicorn

    if parent is not None:
        die_with_parent(parent)
    sock = listening_socket(host, port)
    server = uvicorn.Server(uvicorn.Config(APP, factory=True, **options))

    def report_started() -> None:
        while not server.started and not server.should_exit:
            time.sleep(0.05)
        if server.started:
            ready.set()

    threading.Thread(target=report_started, daemon=True).start()
    server.run(sockets=[sock])


def serve(host: str, port: int, workers: int, **options: Any) -> None:
    """Run ``workers`` processes until SIGINT/SIGTERM; a process that dies is started again, unless it
    died before it was serving (then :class:`WorkerFailed`: a broken configuration, not a crash)."""
    listening_socket(host, port, shared=False).close()  # a port in use is reported here, before any process starts
    ctx = multiprocessing.get_context("spawn")
    procs: list[Any] = []
    stopping = False

    def start() -> Any:
        ready = ctx.Event()
        p = ctx.Process(target=_worker, args=(host, port, options, ready, os.getpid()), daemon=False)
        p.start()
        p.ready = ready
        return p

    def stop(_signum, _frame) -> None:
        nonlocal stopping
        stopping = True

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        procs = [start() for _ in range(workers)]
        while not stopping:
            time.sleep(0.2)
            for i, p in enumerate(procs):
                if not p.is_alive() and not stopping:
                    if not p.ready.is_set():
                        raise WorkerFailed(f"工作进程未能启动(退出码 {p.exitcode}), 请查看上方日志")
                    procs[i] = start()
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()  # uvicorn shuts down gracefully on SIGTERM
        deadline = time.monotonic() + 30
        for p in procs:
            p.join(max(0.1, deadline - time.monotonic()))
            if p.is_alive():
                p.kill()
                p.join()
        for s, handler in previous.items():
            signal.signal(s, handler)
