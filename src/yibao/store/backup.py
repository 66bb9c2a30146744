"""``yibao db backup`` / ``restore``: a consistent copy of the store while it runs, and its way back.

SQLite: the online backup API (pages copied under a read transaction, so writers keep going and
the copy is one point in time). PostgreSQL: ``pg_dump -Fc`` (one snapshot) and ``pg_restore
--single-transaction`` (all or nothing), the client binaries found in ``YIBAO_PG_BIN``, the newest
``/usr/lib/postgresql/*/bin`` or on PATH; a password travels in ``PGPASSWORD``, never on the
command line. Backup files are created 0600. A restore goes only into an empty database, and is
verified (chains and ledger, :func:`yibao.store.chain.verify`) before it is reported done.

The store keys file (:mod:`yibao.store.keys`) is deliberately not in the backup: keep it apart, or
whoever holds a backup holds the 证件号 too.
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

from sqlalchemy import inspect
from sqlalchemy.engine import make_url

from yibao.errors import Problem, YibaoError
from yibao.store import chain
from yibao.store.database import (
    PRIVATE_FILE,
    make_engine,
    private_sqlite_file,
    sqlite_path,
)


class BackupError(YibaoError):
    title = "备份/恢复失败"


def pg_tool(name: str) -> str:
    given = os.environ.get("YIBAO_PG_BIN")
    for cand in ([given] if given else []) + sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                                                      key=lambda p: int(Path(p).parent.name.split(".")[0])
                                                      if Path(p).parent.name.split(".")[0].isdigit() else 0,
                                                      reverse=True):
        if (Path(cand) / name).exists():
            return str(Path(cand) / name)
    found = shutil.which(name)
    if found:
        return found
    raise BackupError(Problem("BAK001", name, f"未找到 PostgreSQL 客户端程序 {name}: 请安装 Debian 软件包 "
                                             "postgresql-client 或设置 YIBAO_PG_BIN"))


def _pg_args(url: str) -> tuple[list[str], dict[str, str]]:
    u = make_url(url)
    args = ["-h", u.host or "localhost", "-p", str(u.port or 5432), "-d", u.database or ""]
    if u.username:
        args += ["-U", u.username]
    env = {**os.environ}
    if u.password:
        env["PGPASSWORD"] = str(u.password)
    return args, env


def _private_new_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        raise BackupError(Problem("BAK002", str(path), "备份文件已存在: 请换一个文件名(不覆盖已有备份)"))
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE))


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def backup(url: str, out: Path) -> dict:
    """Write a point-in-time copy of the store at ``url`` to ``out`` (mode 0600)."""
    _private_new_file(out)
    try:
        if url.startswith("sqlite"):
            path = sqlite_path(url)
            if path is None or not path.exists():
                raise BackupError(Problem("BAK003", "--url", f"SQLite 结算库 {path} 不存在"))
            src, dst = sqlite3.connect(path), sqlite3.connect(out)
            try:
                src.backup(dst)
            finally:
                dst.close()
                src.close()
            kind = "sqlite"
        else:
            args, env = _pg_args(url)
            done = subprocess.run([pg_tool("pg_dump"), "-Fc", "-f", str(out), *args], env=env,
                                  capture_output=True, text=True)
            if done.returncode:
                raise BackupError(Problem("BAK004", "pg_dump", (done.stderr.strip().splitlines() or ["?"])[-1]))
            kind = "pg_dump -Fc"
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    return {"file": str(out), "format": kind, "bytes": out.stat().st_size, "sha256": sha256_of(out)}


def _is_empty(url: str) -> bool:
    if url.startswith("sqlite"):
        path = sqlite_path(url)
        if path is None or not path.exists() or path.stat().st_size == 0:
            return True
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return not inspect(conn).get_table_names()
    finally:
        engine.dispose()


def restore(source: Path, url: str) -> dict:
    """Load a backup into the empty database at ``url``, all or nothing."""
    if not source.is_file():
        raise BackupError(Problem("BAK005", str(source), "备份文件不存在"))
    if not _is_empty(url):
        raise BackupError(Problem("BAK010", "--url", "目标数据库不是空库: 恢复只写入新建的空库, 以免覆盖现有数据"))
    if url.startswith("sqlite"):
        path = sqlite_path(url)
        if path is None:
            raise BackupError(Problem("BAK006", "--url", "恢复目标须是 SQLite 文件, 不能是内存库"))
        with open(source, "rb") as fh:
            if fh.read(16) != b"SQLite format 3\x00":
                raise BackupError(Problem("BAK007", str(source), "不是 SQLite 备份文件(用 yibao db backup 在 SQLite 上生成)"))
        private_sqlite_file(path)
        src, dst = sqlite3.connect(f"file:{source}?mode=ro", uri=True), sqlite3.connect(path)
        try:
            src.backup(dst)
        finally:
            dst.close()
            src.close()
    else:
        args, env = _pg_args(url)
        done = subprocess.run([pg_tool("pg_restore"), "--single-transaction", "--exit-on-error", "--no-owner",
                               *args, str(source)], env=env, capture_output=True, text=True)
        if done.returncode:
            raise BackupError(Problem("BAK008", "pg_restore", (done.stderr.strip().splitlines() or ["?"])[-1]))

    chain.forget_lanes()
    return {"file": str(source), "sha256": sha256_of(source)}
