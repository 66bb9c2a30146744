"""Terminal output shared by every command: a leaf that imports nothing of the domains.

Commands in ``yibao/<domain>/commands.py`` print through these so that a user error looks the
same everywhere (Chinese message, code, field path, exit status 2) and ``--json`` answers keep
Chinese as is. Keeping them out of ``cli.py`` is what lets ``cli.py`` import the domain command
modules at its top without an import cycle.
"""

from __future__ import annotations

import json
import sys

import typer
from rich.console import Console
from rich.markup import escape

from yibao.errors import YibaoError

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def print_json(data) -> None:
    """A command's ``--json`` answer on stdout: readable, Chinese kept as is, amounts (Decimal yuan) and dates as
    exact strings."""
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")


def fail(exc: YibaoError, as_json: bool = False) -> None:
    """Print a coded user error (never a traceback) and leave with exit status 2."""
    if as_json:
        err.print_json(json.dumps(exc.to_dict(), ensure_ascii=False))
    else:
        err.print(f"[bold red]{exc.title}[/]" + (f" ({escape(exc.source)})" if exc.source else "") + ":")
        for p in exc.problems:
            err.print(f"  [red]{p.code}[/] [bold]{escape(p.path)}[/]{': ' if p.path else ''}{escape(p.message)}")
    raise typer.Exit(code=2)
