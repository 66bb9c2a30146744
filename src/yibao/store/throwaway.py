"""A throwaway PostgreSQL server on loopback, for the tests and the load benchmark.

The tests must run against a real PostgreSQL, and ``make test`` must need nothing started by
hand: this starts a private cluster in a temporary directory (``initdb`` + ``pg_ctl``, as the
``postgres`` user when run as root, since PostgreSQL refuses to run as root), yields its URL
and removes it afterwards. A missing PostgreSQL is an error, never a silent skip.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


class PostgresMissing(RuntimeError):
    pass


def postgres_bindir() -> Path:
    configured = os.environ.get("YIBAO_PG_BIN")
    candidates = [configured] if configured else sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for cand in candidates:
        if cand and (Path(cand) / "initdb").exists():
            return Path(cand)
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise PostgresMissing(
        "未找到 PostgreSQL (initdb); 请安装 Debian 软件包 postgresql 或设置 YIBAO_PG_BIN"
        " (PostgreSQL server binaries not found: apt-get install postgresql)"
    )


def free_port() -> int:
    """A loopback port nobody listens on now (for servers started by tests and benchmarks)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def throwaway_postgres(*, durable: bool = False) -> Iterator[str]:
    """Yield a ``postgresql+psycopg://`` URL of a fresh database; ``durable=False`` turns fsync off."""
    bindir = postgres_bindir()
    as_root = os.geteuid() == 0
    root = Path(tempfile.mkdtemp(prefix="yibao-pg-"))
    data = root / "data"
    if as_root:
        shutil.chown(root, "postgres", "postgres")
    prefix = ["runuser", "-u", "postgres", "--"] if as_root else []

    def run(*args: str) -> None:
        subprocess.run([*prefix, *args], check=True, capture_output=True, text=True)

    port = free_port()
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c max_connections=200"
    if not durable:
        options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    started = False
    try:
        run(str(bindir / "initdb"), "-D", str(data), "-U", "yibao", "--auth=trust", "-E", "UTF8", "--locale=C")
        run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-o", options, "-w", "start")
        started = True
        run(str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "yibao", "yibao")
        yield f"postgresql+psycopg://yibao@127.0.0.1:{port}/yibao"
    finally:
        if started:
            subprocess.run(
                [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                capture_output=True,
            )
        shutil.rmtree(root, ignore_errors=True)
