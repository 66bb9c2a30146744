"""Command-line commands of this domain, registered under ``yibao`` by ``yibao.cli``.

``yibao db upgrade`` migrates the store; ``yibao serve`` starts the HTTP service;
``yibao service load`` puts a synthetic region into the store; ``yibao service key`` issues an
API key; ``yibao bench serve`` is the load benchmark.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from yibao.console import fail, out
from yibao.errors import Problem, YibaoError
from yibao.policy.loader import resolve_pack
from yibao.service import workers as procs
from yibao.service.auth import KeyRing, add_key
from yibao.service.errors import ServiceError
from yibao.service.limits import Limits
from yibao.service.packs import PackSet
from yibao.service.ratelimit import GuardConfig
from yibao.service.registry import load_region
from yibao.store.commands import db_app  # verify, backup, restore, rotate-key live with the store
from yibao.store.database import default_url, make_engine
from yibao.synth import generate


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add this domain's commands to the ``yibao`` app and its benchmarks to ``yibao bench``."""
    service_app = typer.Typer(help="结算服务的数据与密钥 / service data and keys", no_args_is_help=True)
    app.add_typer(db_app, name="db")
    app.add_typer(service_app, name="service")

    @db_app.command("upgrade")
    def db_upgrade(url: Optional[str] = typer.Option(None, help="数据库 URL; 默认 YIBAO_DATABASE_URL 或 YIBAO_DATA_DIR/yibao.db")):
        """创建或迁移结算库到最新版本(所有分支) / create or migrate the store (alembic upgrade heads)."""
        from yibao.store.migrate import current_heads, upgrade

        target = url or default_url()
        try:
            upgrade(target)
        except Exception as exc:  # connection refused, permissions: say it plainly
            _fail("DB001", f"数据库迁移失败 ({_safe(target)}): {exc.__class__.__name__}: {_first_line(exc)}")
        out.print(f"结算库已是最新版本 {sorted(current_heads(target))} · {_safe(target)}")

    @app.command("serve")
    def serve(host: str = typer.Option("127.0.0.1", help="监听地址"), port: int = typer.Option(8000, help="端口"),
              workers: int = typer.Option(1, min=1, max=32, help="工作进程数"),
              threads: int = typer.Option(1, min=1, max=64, help="每个工作进程同时办理的请求数(线程); "
                                          "默认 1: 并发靠多进程, 见 docs/service.md"),
              url: Optional[str] = typer.Option(None, help="数据库 URL, 不含密码(命令行在 ps 中可见); 默认见 yibao db upgrade"),
              url_file: Optional[Path] = typer.Option(None, help="含数据库 URL 的文件(可含密码, 权限 0600); "
                                                      "或环境变量 YIBAO_DATABASE_URL / YIBAO_DATABASE_URL_FILE"),
              max_body_bytes: Optional[int] = typer.Option(None, min=1024, help="请求体上限(字节), 默认 4 MiB"),
              auth_failures: Optional[int] = typer.Option(None, min=0, help="认证失败几次即锁定来源/密钥, 0 = 不锁定"),
              lockout_seconds: Optional[float] = typer.Option(None, min=0, help="锁定时长(秒)"),
              settle_rate: Optional[float] = typer.Option(None, min=0, help="每机构每进程每秒结算笔数上限, 0 = 不限"),
              log_level: str = typer.Option("warning", help="uvicorn 日志级别")):
        """启动结算服务(国家平台接口 + REST, 文档在 /docs) / start the settlement service."""
        import uvicorn

        from yibao.service.body import max_body_from_env

        if url and _has_password(url):
            _fail("SRV006", "--url 中含数据库密码(命令行对本机所有用户在 ps 中可见): 请改用 --url-file、环境变量 "
                            "YIBAO_DATABASE_URL / YIBAO_DATABASE_URL_FILE, 或 PostgreSQL 的 ~/.pgpass / PGPASSWORD")
        if url_file is not None:
            try:
                url = url_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                _fail("SRV007", f"无法读取 --url-file {url_file}: {exc.strerror or exc}")
        if url:  # workers read it from the environment (not from their command line)
            os.environ["YIBAO_DATABASE_URL"] = url
        os.environ["YIBAO_THREADS"] = str(threads)  # read by create_app in every worker
        for name, value in (("YIBAO_MAX_BODY_BYTES", max_body_bytes), ("YIBAO_AUTH_FAILURES", auth_failures),
                            ("YIBAO_LOCKOUT_SECONDS", lockout_seconds), ("YIBAO_SETTLE_RATE", settle_rate)):
            if value is not None:
                os.environ[name] = str(value)
        try:  # check the configuration here, where an error can be printed, not in each worker
            PackSet.load()
            KeyRing.from_env()
            max_body_from_env()
            GuardConfig.from_env()
            Limits.load()
        except YibaoError as exc:
            fail(exc)
        try:
            target = default_url()
        except OSError as exc:
            _fail("SRV007", f"无法读取 YIBAO_DATABASE_URL_FILE: {exc.strerror or exc}")
        try:
            make_engine(target).dispose()  # the URL's form and driver; connections are made per request
        except Exception as exc:  # noqa: BLE001 - any driver's refusal, told without a stack trace
            _fail("DB002", f"数据库 URL 无法使用 ({_safe(target)}): {exc.__class__.__name__}: {_first_line(exc)}")
        if workers > 1 and procs.available():  # a listening socket per process: connections spread evenly
            try:
                procs.serve(host, port, workers, log_level=log_level, access_log=False)
            except OSError as exc:
                _fail("SRV001", f"无法监听 {host}:{port}: {exc.strerror or exc}")
            except procs.WorkerFailed as exc:
                _fail("SRV002", str(exc))
            return
        uvicorn.run(procs.APP, factory=True, host=host, port=port, workers=workers,
                    log_level=log_level, access_log=False)

    @service_app.command("load")
    def load(pack: str = typer.Option("shandong-2024", help="政策包(决定地区与年度)"),
             persons: int = typer.Option(1000, min=1, max=2_000_000, help="参保人数"),
             seed: int = typer.Option(1, help="随机种子"),
             url: Optional[str] = typer.Option(None, help="数据库 URL")):
        """把合成地区的参保人与定点机构装入结算库 / load a synthetic region's registry into the store."""
        try:
            p = resolve_pack(pack)
            tables = generate(p, persons=persons, seed=seed)
            engine = make_engine(url)
            with Session(engine) as session, session.begin():
                counts = load_region(session, tables, p.pack.effective_from.year)
        except YibaoError as exc:
            fail(exc)
        except Exception as exc:  # e.g. already loaded (unique ids), store not migrated
            _fail("DB002", f"装入失败: {exc.__class__.__name__}: {_first_line(exc)}(是否已运行 yibao db upgrade, 或已装入过?)")
        out.print("已装入 " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))

    @service_app.command("key")
    def key(name: str = typer.Option(..., help="名称(机构系统或工作人员)"),
            role: str = typer.Option(..., help="institution / clerk / reviewer / rechecker / auditor / analyst / admin"),
            fixmedins_code: Optional[str] = typer.Option(None, help="机构编号(仅 institution)"),
            file: Optional[Path] = typer.Option(None, help="密钥文件; 默认 YIBAO_API_KEYS_FILE")):
        """签发 API 密钥: 文件中只存哈希, 密钥只显示这一次 / issue an API key (only its hash is stored)."""
        path = file or (Path(os.environ["YIBAO_API_KEYS_FILE"]) if os.environ.get("YIBAO_API_KEYS_FILE") else None)
        if path is None:
            _fail("AUT020", "请用 --file 或环境变量 YIBAO_API_KEYS_FILE 指定密钥文件")
        try:
            secret = add_key(path, name, role, fixmedins_code)
        except YibaoError as exc:
            fail(exc)
        out.print(f"已写入 {path}(仅哈希)。密钥(只显示这一次):")
        print(secret)

    @bench_app.command("serve")
    def bench_serve(seconds: float = typer.Option(10.0, min=1, max=600, help="每个后端的压测时长(秒)"),
                    clients: int = typer.Option(16, min=1, max=256, help="并发客户端数"),
                    items: int = typer.Option(30, min=1, max=500, help="每次结算的费用明细条数"),
                    workers: int = typer.Option(2, min=1, max=16, help="yibao serve 工作进程数"),
                    threads: int = typer.Option(1, min=1, max=64, help="yibao serve 每进程线程数(--threads)"),
                    backend: list[str] = typer.Option(["sqlite", "postgresql"], help="sqlite / postgresql"),
                    online_audit: bool = typer.Option(True, help="结算时运行事中审核规则(智能审核)"),
                    client: str = typer.Option("aiohttp", help="压测客户端: aiohttp, 或 httpx(同样的 HTTP/1.1 "
                                                "长连接, 但自己占约 0.45 核, 与服务抢 CPU)"),
                    rate: float = typer.Option(300.0, min=0, max=100000,
                                               help="定速一轮的总速率(笔/秒), 0 = 只测闭环满载")):
        """结算服务压测: 2207 每秒笔数与 p50/p99, 并核对累计台账 / load benchmark of 2207."""
        from yibao.service.bench import run

        bad = [b for b in backend if b not in ("sqlite", "postgresql")]
        if bad:
            _fail("BEN001", f"--backend 只能是 sqlite 或 postgresql, 实际为 {bad}")
        if client not in ("httpx", "aiohttp"):
            _fail("BEN002", f"--client 只能是 httpx 或 aiohttp, 实际为 {client}")
        run(seconds=seconds, clients=clients, items=items, workers=workers, threads=threads, backends=backend,
            online_audit=online_audit, client=client, rate=rate)


def _safe(url: str) -> str:
    """A database URL without its password, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<url>"


def _has_password(url: str) -> bool:
    try:
        return bool(make_url(url).password)
    except Exception:  # an unparsable URL is reported when it is used
        return False


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def _fail(code: str, message: str) -> None:
    fail(ServiceError(Problem(code, "", message)))
