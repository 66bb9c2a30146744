"""Rich progress bars for long batch work (settling a pack over a whole region).

A step such as "settle under the reform pack" is one or a few large DuckDB statements, so the
bar shows two things: which step of how many is running (the bar), and how far DuckDB says the
statement now executing is (``connection.query_progress()``, read by a small polling thread).
Used by ``yibao simulate`` and ``yibao monitor``; library callers pass their own ``progress``
callback, or none.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn


@contextmanager
def step_progress(console: Console, con=None) -> Iterator:
    """Yields a callback ``(description, steps done, steps in all)`` driving one rich bar."""
    if con is not None:
        try:
            con.sql("SET enable_progress_bar = true; SET enable_progress_bar_print = false")
        except Exception:  # an engine without progress reporting: steps only
            con = None
    bar = Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
                   TextColumn("步骤 {task.completed:.0f}/{task.total:.0f}"), TextColumn("{task.fields[query]}"),
                   TimeElapsedColumn(), console=console, transient=True)
    stop = threading.Event()
    with bar:
        task = bar.add_task("准备", total=1, query="")

        def poll() -> None:
            while not stop.wait(0.25):
                try:
                    done = con.query_progress()
                except Exception:
                    return
                bar.update(task, query=f"当前查询 {done:.0f}%" if done >= 0 else "")

        poller = threading.Thread(target=poll, daemon=True) if con is not None else None
        if poller is not None:
            poller.start()

        def note(description: str, done: int, total: int) -> None:
            bar.update(task, description=description, completed=done, total=total, query="")

        try:
            yield note
        finally:
            stop.set()
            if poller is not None:
                poller.join()
