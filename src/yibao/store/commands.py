"""``yibao db ...``: the store's own commands (verify the chains; backup, restore, key rotation).

``db_app`` is the ``yibao db`` group; the service's commands add ``db upgrade`` to the same group.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from sqlalchemy.engine import make_url

from yibao.console import fail, out, print_json
from yibao.errors import Problem, YibaoError
from yibao.service import ledger
from yibao.store import chain, keys, rotation
from yibao.store.backup import backup, restore
from yibao.store.database import default_url, make_engine, read_snapshot

db_app = typer.Typer(help="结算库: 迁移、校验、备份、恢复、密钥轮换 / the settlement store", no_args_is_help=True)

URL_HELP = "数据库 URL; 默认 YIBAO_DATABASE_URL 或 YIBAO_DATA_DIR/yibao.db"


def _fail(code: str, path: str, message: str) -> None:
    fail(YibaoError(Problem(code, path, message)))


def safe_url(url: str) -> str:
    """A database URL without its password, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a malformed URL is still not printed
        return "<url>"


@db_app.command("verify")
def verify(url: Optional[str] = typer.Option(None, help=URL_HELP),
           as_json: bool = typer.Option(False, "--json", help="以 JSON 输出")):
    """重算哈希链并核对台账, 指出第一处被改动的行 / recompute the hash chains, name the first altered row."""
    target = url or default_url()
    engine = make_engine(target)
    try:
        with engine.connect() as raw:
            conn = read_snapshot(raw)
            with conn.begin():
                report = chain.verify(conn)
                report.problems += ledger.verify(conn)
    except YibaoError as exc:
        fail(exc, as_json)
    except Exception as exc:  # noqa: BLE001 - unreachable database, not migrated: said plainly
        _fail("CHN020", "--url", f"无法校验 {safe_url(target)}: {exc.__class__.__name__}: {str(exc).splitlines()[0]}")
    finally:
        engine.dispose()
    if report.problems:
        err = YibaoError(report.problems, safe_url(target))
        err.title = "台账校验未通过(数据在写入后被改动或删除)"
        fail(err, as_json)
    summary = {t: {"rows": report.rows[t], "streams": report.streams[t]} for t in report.rows}
    if as_json:
        print_json({"ok": True, "tables": summary})
        return
    out.print(f"台账校验通过 · {safe_url(target)}")
    for t, s in summary.items():
        out.print(f"  {t}: {s['rows']:,} 行, {s['streams']:,} 条链")


@db_app.command("rotate-key")
def rotate_key(url: Optional[str] = typer.Option(None, help=URL_HELP),
               forget_old: bool = typer.Option(False, "--forget-old",
                                               help="从密钥文件删除旧密钥(此前的备份将无法解密证件号)")):
    """轮换证件号加密密钥: 一个事务内全部重新加密并重建盲索引 / rotate the 证件号 key (re-encrypt, re-index)."""
    target = url or default_url()
    engine = make_engine(target)
    try:
        done = rotation.rotate_certno_key(engine, forget_old)
    except YibaoError as exc:
        fail(exc)
    except Exception as exc:  # noqa: BLE001 - the transaction rolled back; the new key is only staged
        _fail("KEY006", "--url", f"轮换失败, 数据未改动 ({safe_url(target)}): {exc.__class__.__name__}: "
              f"{str(exc).splitlines()[0] if str(exc) else ''}")
    finally:
        engine.dispose()
    out.print(f"已轮换证件号密钥: 新密钥 {done['key_id']}, 重新加密 {done['persons']:,} 人 · 密钥文件 {keys.where()}")
    if done["retired"]:
        out.print(f"旧密钥 {', '.join(done['retired'])} 仍保留在密钥文件中(用于读取轮换前的备份); "
                  "确认不再需要后用 --forget-old 再轮换一次即可删除")


@db_app.command("backup")
def backup_cmd(out_file: Path = typer.Argument(..., help="备份文件(新文件, 权限 0600)"),
               url: Optional[str] = typer.Option(None, help=URL_HELP)):
    """在线备份结算库(SQLite 在线备份 / pg_dump) / back up the store while it runs."""
    target = url or default_url()
    try:
        done = backup(target, out_file)
    except YibaoError as exc:
        fail(exc)
    out.print(f"已备份 {safe_url(target)} → {done['file']} ({done['format']}, {done['bytes']:,} 字节)")
    out.print(f"SHA-256 {done['sha256']}(请另行记录, 恢复前可核对)")
    out.print(f"注意: 存储密钥({keys.where()})不在备份中, 须另行安全保管; 没有它无法读取证件号、无法校验哈希链")


@db_app.command("restore")
def restore_cmd(backup_file: Path = typer.Argument(..., help="yibao db backup 生成的备份文件"),
                url: Optional[str] = typer.Option(None, help="恢复到的空数据库 URL(默认同 yibao db upgrade)")):
    """把备份恢复到一个空库, 并校验哈希链与台账 / restore a backup into an empty database, then verify it."""
    target = url or default_url()
    try:
        done = restore(backup_file, target)
        engine = make_engine(target)
        try:
            with engine.connect() as raw:
                conn = read_snapshot(raw)
                with conn.begin():
                    report = chain.verify(conn)
                    report.problems += ledger.verify(conn)
        finally:
            engine.dispose()
    except YibaoError as exc:
        fail(exc)
    if report.problems:
        err = YibaoError(report.problems, safe_url(target))
        err.title = "已恢复, 但台账校验未通过(备份在生成后被改动, 或密钥不匹配)"
        fail(err)
    rows = sum(report.rows.values())
    out.print(f"已恢复 {done['file']} → {safe_url(target)}; 台账校验通过({rows:,} 行链式记录)")
