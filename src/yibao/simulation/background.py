"""A simulation's files (simulation.json/.xlsx/.html and the PNG charts) written by a child process.

Drawing the charts and filling the workbook is Python work that holds the GIL (matplotlib's import, the
CJK font, four figures, openpyxl: about 2 s of one core for the demo), and nothing the caller does next
reads those files until much later (``yibao demo``: the fund step reads simulation.json). A thread could
not run it beside the caller's own Python work; a second interpreter can. :class:`OutputsProcess` starts
that interpreter early, where it imports matplotlib and openpyxl and loads the font while the caller is
still busy, then waits for the result on its stdin and writes the files with :func:`write_outputs`, the
same code and so the same bytes as writing them in-process.

Run as ``python -m yibao.simulation.background`` it is that child: the pickled ``(result, out_dir)`` comes on
stdin, the pickled ``("ok", (outputs, warnings))``, ``("problems", (error class, problems, source))`` or
``("error", text)`` goes to stdout.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import yibao
from yibao.errors import YibaoError
from yibao.simulation.outputs import write_outputs
from yibao.simulation.result import SimulationResult


class OutputsProcess:
    """``start()`` early, ``write(result, out_dir)`` when the comparison is done, ``wait()`` before the
    files are read: returns {name: path} as :func:`write_outputs` does, and adds the child's warnings
    (e.g. matplotlib missing) to ``result.warnings``. Where no child can be started the files are
    written in-process by ``write``; an error of the child (SIM003: the folder cannot be written) is
    raised again by ``wait``."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.result: SimulationResult | None = None
        self.outputs: dict[str, Path] | None = None
        self.seconds = 0.0  # from write() to the files in place (the child's share runs beside the caller)
        self._sent = 0.0

    def start(self) -> "OutputsProcess":
        src = str(Path(yibao.__file__).resolve().parents[1])  # the child imports the yibao this process runs
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, *filter(None, [os.environ.get("PYTHONPATH")])])}
        try:
            self.proc = subprocess.Popen([sys.executable, "-m", "yibao.simulation.background"], env=env,
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        except OSError:
            self.proc = None
        return self

    def write(self, result: SimulationResult, out_dir: Path) -> None:
        self.result, self._sent = result, time.perf_counter()
        if self.proc is not None:
            try:
                self.proc.stdin.write(pickle.dumps((result, Path(out_dir)), protocol=pickle.HIGHEST_PROTOCOL))
                self.proc.stdin.close()
                return
            except OSError:  # the child died before it read: write here instead
                self.close()
        self.outputs = write_outputs(result, Path(out_dir))
        self.seconds = time.perf_counter() - self._sent

    def wait(self) -> dict[str, Path]:
        if self.outputs is None:
            out = self.proc.stdout.read()
            code = self.proc.wait()
            self.proc = None
            if code != 0 or not out:
                raise RuntimeError(f"写出政策模拟报告的子进程异常退出(退出码 {code})")
            status, payload = pickle.loads(out)
            if status == "problems":  # a YibaoError (its pickle would not rebuild its problems)
                kind, problems, source = payload
                raise kind(problems, source)
            if status == "error":
                raise RuntimeError(f"写出政策模拟报告失败: {payload}")
            self.outputs, warnings = payload
            self.result.warnings.extend(w for w in warnings if w not in self.result.warnings)
            self.seconds = time.perf_counter() - self._sent
        self.result.outputs = self.outputs
        return self.outputs

    def close(self) -> None:
        """Stop a child that was never given work (or whose result is no longer wanted)."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


def _warm_up() -> None:
    """What the first chart would pay: matplotlib, openpyxl and the packaged CJK font, imported and loaded."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: F401
        from matplotlib.figure import Figure  # noqa: F401
        import openpyxl  # noqa: F401

        from yibao.charts import cjk_font_path
        cjk_font_path()
    except ImportError:  # write_outputs says what is missing
        pass


def main() -> int:
    _warm_up()
    data = sys.stdin.buffer.read()
    if not data:  # the parent went on without us
        return 0
    result, out_dir = pickle.loads(data)
    try:
        reply = ("ok", (write_outputs(result, out_dir), result.warnings))
    except YibaoError as exc:  # SIM003: handed to the parent, which raises it as it would have been raised there
        reply = ("problems", (type(exc), exc.problems, exc.source))
    except Exception as exc:  # noqa: BLE001 - the parent raises it
        reply = ("error", f"{type(exc).__name__}: {exc}")
    sys.stdout.buffer.write(pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL))
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
