"""The ``yibao`` command: the app, its registration of every domain's commands, and the entry point.

Every user error is printed as a Chinese message with a code and the field concerned, and the
command exits non-zero without printing any result. Set ``YIBAO_DEBUG=1`` to see tracebacks
of unexpected errors (for developers only).
"""

from __future__ import annotations

import os

import typer
from rich.markup import escape

try:  # Typer ≥ 0.26 ships its own copy of click; older Typer uses click itself
    from typer._click import exceptions as usage
except ImportError:  # pragma: no cover
    import click.exceptions as usage  # type: ignore[no-redef]

import importlib
import sys

from yibao.console import err, fail
from yibao.errors import YibaoError
from yibao.privacy import scrub

# Each domain keeps its commands beside its code, in ``yibao/<domain>/commands.py`` with a
# ``register(app, bench_app)`` function; listing the module here puts it under ``yibao``, in this order, with the
# commands it registers (``yibao <name>``; ``yibao bench <name>``). A command line imports only the module of its
# command: importing all seventeen costs every start about half a second (SQLAlchemy, the pydantic models, ...).
# tests/test_cli.py checks the names against what each module registers.
DOMAIN_COMMANDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "yibao.policy.commands": (("policy",), ()),
    "yibao.settlement.commands": (("settle",), ()),
    "yibao.demo_commands": (("demo",), ()),
    "yibao.batch.commands": (("batch",), ("settle",)),
    "yibao.bench.commands": ((), ("scalar",)),
    "yibao.synth.commands": (("synth",), ()),
    "yibao.claims.commands": (("claims",), ()),
    "yibao.simulation.commands": (("simulate",), ()),
    "yibao.monitoring.commands": (("monitor",), ()),
    "yibao.service.commands": (("serve", "db", "service"), ("serve",)),
    "yibao.supervision.commands": (("audit", "case"), ("audit",)),
    "yibao.payment.commands": (("dip", "drg", "fund"), ("dip",)),
    "yibao.ltc.commands": (("ltc",), ("ltc",)),
    "yibao.enrolment.commands": (("enrol",), ("enrol",)),
    "yibao.handling.commands": (("handling",), ()),
    "yibao.web.commands": (("user",), ("web",)),
    "yibao.institutions.commands": (("institutions",), ("institutions", "catalogue", "tariffs")),
}


def modules_for(args: list[str]) -> list[str]:
    """The command modules a command line needs: its command's; every one for help, no command or a name no
    module registers (so the listing and the "no such command" answer are complete)."""
    words = [a for a in args if not a.startswith("-")]
    if not words or (args and args[0].startswith("-")):
        return list(DOMAIN_COMMANDS)
    bench = words[0] == "bench"
    if bench and len(words) < 2:
        return list(DOMAIN_COMMANDS)
    name = words[1] if bench else words[0]
    found = [m for m, (top, benches) in DOMAIN_COMMANDS.items() if name in (benches if bench else top)]
    return found or list(DOMAIN_COMMANDS)


def build(modules) -> typer.Typer:
    """The ``yibao`` app with the commands of ``modules`` (names from :data:`DOMAIN_COMMANDS`)."""
    app = typer.Typer(
        help="yibao 开源医疗保障系统: 政策包、一站式结算 (open-source medical-security system)",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
    )
    bench_app = typer.Typer(help="性能基准 (benchmarks)", no_args_is_help=True)
    app.add_typer(bench_app, name="bench")
    for name in modules:
        importlib.import_module(name).register(app, bench_app)
    return app


def __getattr__(name: str):
    """``yibao.cli.app``: every command (tests, ``python -c``); built on first use."""
    if name == "app":
        globals()["app"] = built = build(DOMAIN_COMMANDS)
        return built
    raise AttributeError(name)


def usage_message(exc: usage.UsageError) -> str:
    """Click's usage errors, said in Chinese and naming the option."""
    hint = getattr(exc, "param_hint", None) or (exc.param.opts[0] if getattr(exc, "param", None) else "")
    if isinstance(exc, usage.MissingParameter):
        return f"缺少必填选项 {hint or exc.param_hint}"
    if isinstance(exc, usage.NoSuchOption):
        return f"没有选项 {exc.option_name}" + (f"; 是否想用 {', '.join(exc.possibilities)}" if exc.possibilities else "")
    if isinstance(exc, usage.BadParameter):
        return f"选项 {hint} 的值无效: {exc.message}"
    return exc.format_message()


def main() -> None:  # pragma: no cover - entry point guard
    try:
        # a program that has built the whole app (and perhaps added to it) runs that one
        whole = globals().get("app")
        code = (whole or build(modules_for(sys.argv[1:])))(standalone_mode=False)
        raise SystemExit(code or 0)
    except usage.NoArgsIsHelpError as exc:
        exc.show()
        raise SystemExit(2)
    except usage.UsageError as exc:
        command = exc.ctx.command_path if exc.ctx else "yibao"
        err.print(f"[bold red]命令用法有误[/] ({escape(command)}):")
        err.print(f"  [red]CLI001[/] {escape(usage_message(exc))}")
        err.print(f"  查看帮助 help: {escape(command)} --help")
        raise SystemExit(2)
    except typer.Abort:
        err.print("已中断")
        raise SystemExit(130)
    except YibaoError as exc:  # a command that let its coded error through: same answer, no traceback
        try:
            fail(exc)
        except typer.Exit as done:
            raise SystemExit(done.exit_code) from None
    except KeyboardInterrupt:
        err.print("已中断")
        raise SystemExit(130)
    except Exception as exc:  # an unexpected failure: short message, no traceback for users
        if os.environ.get("YIBAO_DEBUG"):
            raise
        err.print(f"[bold red]内部错误 (internal error)[/]: {type(exc).__name__}: {escape(scrub(str(exc)))}\n"
                  "请设置 YIBAO_DEBUG=1 重试并报告此问题。")
        raise SystemExit(70)

