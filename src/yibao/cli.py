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

from yibao.console import err, fail
from yibao.errors import YibaoError
from yibao.privacy import scrub
from yibao import demo_commands
from yibao.batch import commands as batch_commands
from yibao.bench import commands as bench_commands
from yibao.claims import commands as claims_commands
from yibao.enrolment import commands as enrolment_commands
from yibao.handling import commands as handling_commands
from yibao.institutions import commands as institutions_commands
from yibao.ltc import commands as ltc_commands
from yibao.monitoring import commands as monitoring_commands
from yibao.payment import commands as payment_commands
from yibao.policy import commands as policy_commands
from yibao.service import commands as service_commands
from yibao.settlement import commands as settlement_commands
from yibao.simulation import commands as simulation_commands
from yibao.supervision import commands as supervision_commands
from yibao.synth import commands as synth_commands
from yibao.web import commands as web_commands

app = typer.Typer(
    help="yibao 开源医疗保障系统: 政策包、一站式结算 (open-source medical-security system)",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
bench_app = typer.Typer(help="性能基准 (benchmarks)", no_args_is_help=True)
app.add_typer(bench_app, name="bench")

# Each domain keeps its commands beside its code, in ``yibao/<domain>/commands.py`` with a
# ``register(app, bench_app)`` function; listing the module here puts it under ``yibao``, in this order.
DOMAIN_COMMANDS = (
    policy_commands, settlement_commands, demo_commands, batch_commands, bench_commands, synth_commands,
    claims_commands, simulation_commands, monitoring_commands, service_commands, supervision_commands,
    payment_commands, ltc_commands, enrolment_commands, handling_commands, web_commands,
    institutions_commands,
)

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
        code = app(standalone_mode=False)
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


for _domain in DOMAIN_COMMANDS:
    _domain.register(app, bench_app)
