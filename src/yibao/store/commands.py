"""``yibao db ...``: the store's own commands (verify the chains; backup, restore, key rotation).

``db_app`` is the ``yibao db`` group; the service's commands add ``db upgrade`` to the same group.
"""

from __future__ import annotations

from typing import Optional

import typer

db_app = typer.Typer(help="结算库: 迁移、校验、备份、恢复、密钥轮换 / the settlement store", no_args_is_help=True)

URL_HELP = "数据库 URL; 默认 YIBAO_DATABASE_URL 或 YIBAO_DATA_DIR/yibao.db"


def _fail(code: str, path: str, message: str) -> None:
    from yibao.cli import fail
    from yibao.errors import Problem, YibaoError

    fail(YibaoError(Problem(code, path, message)))


def safe_url(url: str) -> str:
    """A database URL without its password, for messages."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a malformed URL is still not printed
        return "<url>"


@db_app.command("verify")
def verify(url: Optional[str] = typer.Option(None, help=URL_HELP),
           as_json: bool = typer.Option(False, "--json", help="以 JSON 输出")):
    """重算哈希链并核对台账, 指出第一处被改动的行 / recompute the hash chains, name the first altered row."""
    from yibao.cli import fail, out, print_json
    from yibao.errors import YibaoError
    from yibao.service import ledger
    from yibao.store import chain
    from yibao.store.database import default_url, make_engine

    target = url or default_url()
    engine = make_engine(target)
    try:
        with engine.connect() as conn:
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
